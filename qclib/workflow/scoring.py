"""Score QC values in the database with the instrument's rules (qclib.qc.scoring).

Each value is graded by the rule valid on its product's night, with the history of
certified values and the reference value the rule needs, and stored with the rule's
version; products whose values are all scored move from ``candidate`` to ``scored``.
``rescore`` grades everything again: with the rules' valid-from dates, past values
keep the grades of their time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from qclib.db import Database, qc1
from qclib.db import products as product_store
from qclib.instruments import load_instrument
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
) -> ScoringSummary:
    """Grade every QC value not graded yet (all with ``rescore``), with each
    instrument's rules from its TOML (or ``rules``, by instrument)."""
    rules = dict(rules or {})
    counts: Counter[str] = Counter()
    touched: set[int] = set()
    with database.transaction() as session:
        items = qc1.values_to_score(session, instrument=instrument, rescore=rescore)
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
            qc1.save_score(
                session,
                item,
                grade=score.grade,
                reason=score.reason,
                rule=score.rule,
                low=score.limits[0],
                high=score.limits[1],
            )
            counts[score.grade] += 1
            touched.add(item.product_id)
        session.flush()
        rolled = {}
        for product_id in sorted(touched):
            grades = qc1.product_grades(session, product_id)
            rolled[product_id] = roll_up(g for det in grades.values() for g in det.values())
            product_store.mark_scored(session, product_id)
    return ScoringSummary(len(items), dict(counts), rolled)
