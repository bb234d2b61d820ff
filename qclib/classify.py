"""Classification: FrameInfo headers + OCA rules -> DO.CATG and the rule that set it. Pure.

Rules are applied in file order and every matching rule's assignments are applied,
so later rules overwrite earlier ones, as in ESO's Data Organizer. Assigned keywords
(``DO.CATG``, ``RAW.TYPE``, ...) are visible to the conditions of later rules and
to the organisation rules.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qclib.oca.evaluate import evaluate, failed_conditions, truthy
from qclib.oca.rules import (
    Classification,
    RuleSet,
    Text,
    keywords_in,
    required_values,
)

UNCLASSIFIED = "UNCLASSIFIED"
CATEGORY = "DO.CATG"


@dataclass(frozen=True)
class ClassifiedFrame:
    """The outcome of classifying one header."""

    do_catg: str  # UNCLASSIFIED when no rule assigned DO.CATG
    assigned: dict[str, Any]
    rule_line: int | None
    rule_text: str | None
    near_misses: tuple[str, ...] = field(default=())

    @property
    def classified(self) -> bool:
        return self.do_catg != UNCLASSIFIED

    def as_dict(self) -> dict[str, Any]:
        return {
            "do_catg": self.do_catg,
            "assigned": self.assigned,
            "rule_line": self.rule_line,
            "rule": self.rule_text,
            "near_misses": list(self.near_misses),
        }


def _assigned_value(rule: Classification, keyword: str, header: Mapping[str, Any]) -> Any:
    expr = rule.assigned(keyword)
    return None if expr is None else evaluate(expr, header)


def classify_header(rules: RuleSet, header: Mapping[str, Any]) -> ClassifiedFrame:
    """Classify one flattened header with a rule set."""
    view = dict(header)
    view.pop(CATEGORY, None)  # a raw file's own DO.CATG (if any) is not evidence
    assigned: dict[str, Any] = {}
    rule_line = rule_text = None
    for rule in rules.classifications:
        if not truthy(evaluate(rule.condition, view)):
            continue
        for assignment in rule.assignments:
            value = evaluate(assignment.value, view)
            assigned[assignment.keyword] = value
            view[assignment.keyword] = value
            if assignment.keyword == CATEGORY:
                rule_line, rule_text = rule.line, rule.condition.to_oca()
    category = assigned.get(CATEGORY)
    if category is not None:
        return ClassifiedFrame(str(category), assigned, rule_line, rule_text)
    return ClassifiedFrame(UNCLASSIFIED, assigned, None, None, _near_misses(rules, view))


def _near_misses(rules: RuleSet, header: Mapping[str, Any], limit: int = 2) -> tuple[str, ...]:
    """The DO.CATG rules that came closest, with the conditions that failed."""
    scored = []
    for rule in rules.classifications:
        if rule.assigned(CATEGORY) is None:
            continue
        failed = failed_conditions(rule.condition, header)
        atoms = len(getattr(rule.condition, "items", (rule.condition,)))
        scored.append((len(failed) / atoms, len(failed), rule, failed))
    scored.sort(key=lambda s: (s[0], s[1]))
    out = []
    for _fraction, _n, rule, failed in scored[:limit]:
        target = rule.assigned(CATEGORY)
        name = target.to_oca() if target is not None else "?"
        out.append(f"line {rule.line} (DO.CATG = {name}) failed: " + "; ".join(failed))
    return tuple(out)


@dataclass(frozen=True)
class RuleProblem:
    """Something wrong in a rule file, found when it loads."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def _assigned_categories(rules: RuleSet) -> dict[str, set[str]]:
    """For each keyword set by classification or product rules, the text values it can take."""
    values: dict[str, set[str]] = {}
    for rule in rules.classifications:
        for a in rule.assignments:
            if isinstance(a.value, Text):
                values.setdefault(a.keyword, set()).add(a.value.value)
    for action in rules.actions:
        for product in action.products:
            for a in product.assignments:
                if isinstance(a.value, Text):
                    values.setdefault(a.keyword, set()).add(a.value.value)
                    if a.keyword == "PRO.CATG":
                        values.setdefault(CATEGORY, set()).add(a.value.value)
    return values


def check_rules(
    rules: RuleSet, declared: Mapping[str, set[str]] | None = None
) -> list[RuleProblem]:
    """Find typos in category names: values selected on that no rule ever assigns.

    ``declared`` maps keywords (``DO.CATG``, ``PRO.CATG``) to the categories the
    instrument declares; any assigned value outside them is reported too.
    """
    assigned = _assigned_categories(rules)
    problems: list[RuleProblem] = []

    def suggest(word: str, pool: set[str]) -> str:
        close = difflib.get_close_matches(word, sorted(pool), n=1)
        return f"; did you mean {close[0]}?" if close else ""

    def check_condition(condition: Any, line: int, where: str) -> None:
        for keyword in {k.name for k in keywords_in(condition) if not k.of_input}:
            if keyword not in assigned:
                continue
            for value in required_values(condition, keyword):
                if value not in assigned[keyword]:
                    problems.append(
                        RuleProblem(
                            line,
                            f"{where} selects {keyword} == {value!r}, which no rule assigns"
                            + suggest(value, assigned[keyword]),
                        )
                    )

    for org in rules.organisations:
        check_condition(org.condition, org.line, f"select execute({org.action})")
        if rules.action(org.action) is None:
            problems.append(RuleProblem(org.line, f"select execute({org.action}) names no action"))
    for action in rules.actions:
        for assoc in action.associations:
            check_condition(assoc.condition, assoc.line, f"action {action.name} tag {assoc.tag}")
    if declared:
        for keyword, allowed in declared.items():
            for value in sorted(assigned.get(keyword, set()) - allowed):
                line = next(
                    (r.line for r in rules.classifications if r.assigned(keyword) == Text(value)),
                    0,
                )
                problems.append(
                    RuleProblem(
                        line,
                        f"{keyword} = {value!r} is not a category the instrument declares"
                        + suggest(value, allowed),
                    )
                )
    return problems
