"""Score QC values in the database with the instrument's rules (qclib.qc.scoring).

Each value is graded by the rule valid on its product's night, with the history of
certified values and the reference value the rule needs, and stored with the rule's
version; products whose values are all scored move from ``candidate`` to ``scored``,
and are put in the review queue or not (``qclib.qc.review``). Values a rule could not
grade yet (too short a certified history, no certified reference) are graded again on
later passes while their product waits for a decision: certifying products is what
brings history rules to life. ``rescore`` grades everything again: with the rules'
valid-from dates, past values keep the grades of their time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qclib.db import Database, qc1
from qclib.db import products as product_store
from qclib.instruments import load_instrument
from qclib.qc.review import review_reasons
from qclib.qc.scoring import Rule, grade_value, roll_up, rules_from_config, select_rule


@dataclass(frozen=True)
class ScoringSummary:
    scored: int
    grades: dict[str, int]
    products: dict[int, str] = field(default_factory=dict)  # product id -> rolled-up grade


def score_values(
    database: Database,
    *,
    instrument: str | None = None,
    rescore: bool = False,
    rules: Mapping[str, list[Rule]] | None = None,
    review_fraction: float = 0.1,
) -> ScoringSummary:
    """Grade every QC value not graded yet (all with ``rescore``), with each
    instrument's rules from its TOML (or ``rules``, by instrument).

    ``scored`` and ``grades`` count the values whose grade is new or changed.
    ``review_fraction``: of the all-OK products, the fraction drawn for review."""
    rules = dict(rules or {})
    counts: Counter[str] = Counter()
    touched: set[int] = set()
    with database.transaction() as session:
        items = qc1.values_to_score(session, _setup_of, instrument=instrument, rescore=rescore)
        stored = qc1.scores_of(session, [item.qc_value_id for item in items])
        # New scores are written in one flush at the end: the history and reference
        # lookups below read certified values, never scores (autoflush before each of
        # them wrote the scores one statement at a time).
        with session.no_autoflush:
            _grade_items(session, items, stored, rules, counts, touched)
        session.flush()
        rolled = {}
        for product in product_store.get_products(session, sorted(touched)):
            graded = qc1.product_scores(session, product.id)
            rolled[product.id] = roll_up(grade for _, _, grade, _ in graded)
            product_store.mark_scored(session, product.id)
            if product.status in product_store.UNDECIDED_STATES:
                reasons = review_reasons(
                    graded,
                    sha256=product.sha256,
                    fraction=review_fraction,
                    taint=product.taint_reason,
                )
                product_store.set_review(
                    session, product.id, review_reason="\n".join(reasons) or None
                )
    return ScoringSummary(sum(counts.values()), dict(counts), rolled)


def _grade_items(
    session: Any,
    items: list[qc1.ValueToScore],
    stored: dict[int, Any],
    rules: dict[str, list[Rule]],
    counts: Counter[str],
    touched: set[int],
) -> None:
    """Grade each item and save its score; count the changed grades and note the
    products they belong to."""
    for item in items:
        if item.instrument not in rules:
            rules[item.instrument] = rules_from_config(load_instrument(item.instrument).scoring)
        rule = select_rule(
            rules[item.instrument],
            pro_catg=item.pro_catg,
            parameter=item.parameter,
            detector=item.detector,
            night=item.night,
        )
        history: list[float] = []
        reference = None
        if rule is not None and rule.kind == "history":
            history = qc1.certified_history(session, item, rule.n)
        elif rule is not None and rule.kind == "reference" and rule.value is None:
            reference = qc1.reference_value(session, item)
        score = grade_value(
            item.value,
            rule,
            parameter=item.parameter,
            detector=item.detector,
            history=history,
            reference=reference,
        )
        changed = qc1.save_score(
            session,
            item,
            grade=score.grade,
            reason=score.reason,
            rule=score.rule,
            low=score.limits[0],
            high=score.limits[1],
            stored=stored,
        )
        if changed:
            counts[score.grade] += 1
            touched.add(item.product_id)


def _setup_of(instrument: str, pro_catg: str, header: Mapping[str, Any]) -> dict[str, Any]:
    """A product's setup, by its instrument's ``[setups]``."""
    return load_instrument(instrument).setup_of(pro_catg, header)
