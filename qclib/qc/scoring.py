"""Grading QC values OK / NOK / UNSCORED against versioned rules, and rolling grades up. Pure.

Rule kinds (the instrument TOML's ``[[scoring.<PRO.CATG>."<QC name>"]]`` entries):

- ``range``: ``min`` and/or ``max`` (inclusive);
- ``reference``: within ``tolerance`` (absolute) or ``tolerance_percent`` of a
  ``value`` given in the rule, or, without one, of the same parameter of the reference
  product (the previous certified master of the same setup);
- ``history``: within ``k`` x 1.4826 MAD of the median (or ``percent`` of it) of the
  last ``n`` certified values of the same parameter, setup and detector; needs at least
  ``min_history`` of them.

Every rule has a ``valid_from`` date: a value is graded by the newest rule valid on the
night it was taken, so re-scoring last month reproduces last month's grades whatever
changed since. A missing or non-finite value, a missing reference, or too short a
history is UNSCORED with the reason, never an exception.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

#: OK / NOK: graded by a rule. UNSCORED: a rule applies but could not grade the value
#: (no value, history too short, no reference). MONITORED: no rule covers the value; it
#: is recorded and trended, not graded.
Grade = Literal["OK", "NOK", "UNSCORED", "MONITORED"]
RuleKind = Literal["range", "reference", "history"]


@dataclass(frozen=True)
class Rule:
    """One threshold rule of one QC parameter of one product category."""

    pro_catg: str
    parameter: str
    kind: RuleKind
    valid_from: dt.date
    min: float | None = None
    max: float | None = None
    value: float | None = None
    tolerance: float | None = None
    tolerance_percent: float | None = None
    n: int = 20
    k: float = 5.0
    percent: float | None = None
    min_history: int = 3
    detectors: tuple[str, ...] = ()  # empty: every detector
    note: str = ""

    @property
    def version(self) -> str:
        """What a stored score records: the rule's kind and valid-from date."""
        return f"{self.pro_catg}/{self.parameter}/{self.kind}@{self.valid_from.isoformat()}"

    def applies_to(self, detector: str) -> bool:
        return not self.detectors or detector in self.detectors


@dataclass(frozen=True)
class Score:
    parameter: str
    detector: str
    value: float | None
    grade: Grade
    reason: str
    rule: str | None = None
    limits: tuple[float | None, float | None] = field(default=(None, None))


def _finite(value: float | None) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def select_rule(
    rules: Iterable[Rule], *, pro_catg: str, parameter: str, detector: str, night: dt.date
) -> Rule | None:
    """The newest rule valid on ``night`` for this parameter and detector."""
    valid = [
        r
        for r in rules
        if r.pro_catg == pro_catg
        and r.parameter == parameter
        and r.applies_to(detector)
        and r.valid_from <= night
    ]
    # A detector-specific rule beats a general one of the same date.
    return max(valid, key=lambda r: (r.valid_from, bool(r.detectors)), default=None)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    half = len(ordered) // 2
    return ordered[half] if len(ordered) % 2 else 0.5 * (ordered[half - 1] + ordered[half])


def limits_of(
    rule: Rule, *, history: Sequence[float] = (), reference: float | None = None
) -> tuple[float | None, float | None, str | None]:
    """(low, high, why-not) of a rule: the limits, or None and the reason they are unknown."""
    if rule.kind == "range":
        if rule.min is None and rule.max is None:
            return None, None, "range rule without min or max"
        return rule.min, rule.max, None
    if rule.kind == "reference":
        centre = rule.value if rule.value is not None else reference
        if not _finite(centre):
            return None, None, "no reference value (no earlier certified product)"
        assert centre is not None
        if rule.tolerance is not None:
            width = rule.tolerance
        elif rule.tolerance_percent is not None:
            width = abs(centre) * rule.tolerance_percent / 100
        else:
            return None, None, "reference rule without tolerance"
        return centre - width, centre + width, None
    recent = [v for v in history if _finite(v)][-rule.n :]
    if len(recent) < rule.min_history:
        return None, None, f"history of {len(recent)} certified value(s), {rule.min_history} needed"
    centre = _median(recent)
    if rule.percent is not None:
        width = abs(centre) * rule.percent / 100
    else:
        width = rule.k * 1.482602218505602 * _median([abs(v - centre) for v in recent])
    return centre - width, centre + width, None


def grade_value(
    value: float | None,
    rule: Rule | None,
    *,
    parameter: str,
    detector: str,
    history: Sequence[float] = (),
    reference: float | None = None,
) -> Score:
    """Grade one value. Never raises: what cannot be graded is UNSCORED, with why.

    >>> rule = Rule("MASTER_BIAS", "QC.RON", "range", dt.date(2020, 1, 1), max=3.0)
    >>> grade_value(3.4, rule, parameter="QC.RON", detector="CCD1").reason
    'QC.RON = 3.4 above 3 (range@2020-01-01)'
    """
    if rule is None:
        return Score(parameter, detector, value, "MONITORED", f"no rule for {parameter}: monitored")
    if not _finite(value):
        return Score(
            parameter, detector, None, "UNSCORED", f"{parameter} has no value", rule.version
        )
    assert value is not None
    low, high, why = limits_of(rule, history=history, reference=reference)
    tag = f"({rule.kind}@{rule.valid_from.isoformat()})"
    if why is not None:
        return Score(parameter, detector, value, "UNSCORED", f"{parameter}: {why}", rule.version)
    if low is not None and value < low:
        reason = f"{parameter} = {value:.4g} below {low:.4g} {tag}"
        return Score(parameter, detector, value, "NOK", reason, rule.version, (low, high))
    if high is not None and value > high:
        reason = f"{parameter} = {value:.4g} above {high:.4g} {tag}"
        return Score(parameter, detector, value, "NOK", reason, rule.version, (low, high))
    return Score(
        parameter, detector, value, "OK", f"within limits {tag}", rule.version, (low, high)
    )


def roll_up(grades: Iterable[Grade]) -> Grade:
    """NOK if anything is NOK; OK if something is OK; UNSCORED if something could not be
    graded; MONITORED when every value is only monitored.

    >>> roll_up(["OK", "UNSCORED"]), roll_up(["OK", "NOK"]), roll_up([])
    ('OK', 'NOK', 'UNSCORED')
    >>> roll_up(["MONITORED", "UNSCORED"]), roll_up(["MONITORED"])
    ('UNSCORED', 'MONITORED')
    """
    seen = set(grades)
    if "NOK" in seen:
        return "NOK"
    if "OK" in seen:
        return "OK"
    if seen == {"MONITORED"}:
        return "MONITORED"
    return "UNSCORED"


def roll_up_levels(graded: Iterable[tuple[tuple[str, ...], Grade]]) -> dict[tuple[str, ...], Grade]:
    """The grade of every level above graded values: each value comes with its path
    (instrument, night, block, product, detector, parameter); every prefix of a path
    gets the roll-up of the values below it.

    >>> levels = roll_up_levels([(("I", "n1", "ab1"), "OK"), (("I", "n1", "ab2"), "NOK")])
    >>> levels[("I",)], levels[("I", "n1", "ab1")], levels[("I", "n1", "ab2")]
    ('NOK', 'OK', 'NOK')
    """
    below: dict[tuple[str, ...], set[Grade]] = {}
    for path, grade in graded:
        for depth in range(1, len(path) + 1):
            below.setdefault(path[:depth], set()).add(grade)
    return {path: roll_up(grades) for path, grades in below.items()}


def rules_from_config(scoring: dict) -> list[Rule]:  # type: ignore[type-arg]
    """Rules of an instrument's ``scoring`` section (``InstrumentConfig.scoring``)."""
    rules = []
    for pro_catg, parameters in scoring.items():
        for parameter, entries in parameters.items():
            for entry in entries:
                fields = entry.model_dump()
                fields["detectors"] = tuple(fields["detectors"])
                rules.append(Rule(pro_catg=pro_catg, parameter=parameter, **fields))
    return rules
