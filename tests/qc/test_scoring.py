"""Grading QC values: each rule kind, valid-from dates, roll-up; the grader never raises."""

from __future__ import annotations

import datetime as dt
import math

from hypothesis import given
from hypothesis import strategies as st

from qclib.qc.scoring import Rule, grade_value, roll_up, select_rule

D = dt.date(2020, 1, 1)


def _grade(value, rule, **kw):
    return grade_value(value, rule, parameter="QC.X", detector="CCD1", **kw)


def test_range() -> None:
    rule = Rule("CAT", "QC.X", "range", D, min=1.0, max=2.0)
    assert _grade(1.5, rule).grade == "OK"
    assert _grade(1.0, rule).grade == "OK"  # inclusive
    below = _grade(0.5, rule)
    assert below.grade == "NOK" and below.reason == "QC.X = 0.5 below 1 (range@2020-01-01)"
    assert _grade(2.5, rule).grade == "NOK"
    assert _grade(9.0, Rule("CAT", "QC.X", "range", D, min=1.0)).grade == "OK"


def test_reference_value_and_reference_product() -> None:
    fixed = Rule("CAT", "QC.X", "reference", D, value=10.0, tolerance=0.5)
    assert _grade(10.4, fixed).grade == "OK" and _grade(10.6, fixed).grade == "NOK"
    relative = Rule("CAT", "QC.X", "reference", D, tolerance_percent=5.0)
    assert _grade(2.6, relative, reference=2.5).grade == "OK"
    assert _grade(2.7, relative, reference=2.5).grade == "NOK"
    missing = _grade(2.6, relative)
    assert missing.grade == "UNSCORED" and "no reference value" in missing.reason


def test_history_mad_and_percent() -> None:
    history = [10.0, 10.2, 9.8, 10.1, 9.9]
    mad = Rule("CAT", "QC.X", "history", D, k=5.0, n=20)
    assert _grade(10.3, mad, history=history).grade == "OK"
    high = _grade(11.0, mad, history=history)
    assert high.grade == "NOK" and high.limits[1] is not None and high.limits[1] < 11.0
    percent = Rule("CAT", "QC.X", "history", D, percent=5.0)
    assert _grade(10.4, percent, history=history).grade == "OK"
    assert _grade(10.6, percent, history=history).grade == "NOK"
    short = _grade(10.0, mad, history=history[:2])
    assert short.grade == "UNSCORED" and "history of 2 certified value(s), 3 needed" in short.reason
    # Only the last n count.
    recent = Rule("CAT", "QC.X", "history", D, percent=1.0, n=3)
    assert _grade(20.0, recent, history=[10.0] * 10 + [20.0] * 3).grade == "OK"


def test_missing_values_and_rules_are_unscored_with_reason() -> None:
    rule = Rule("CAT", "QC.X", "range", D, max=1.0)
    for value in (None, math.nan, math.inf):
        score = _grade(value, rule)
        assert score.grade == "UNSCORED" and score.reason == "QC.X has no value"
    monitored = _grade(1.0, None)
    assert monitored.grade == "MONITORED" and monitored.reason == "no rule for QC.X: monitored"


def test_the_rule_valid_on_the_night_grades() -> None:
    old = Rule("CAT", "QC.X", "range", dt.date(2020, 1, 1), max=3.0)
    new = Rule("CAT", "QC.X", "range", dt.date(2026, 12, 1), max=2.0)
    only_66 = Rule("CAT", "QC.X", "range", dt.date(2020, 1, 1), max=5.0, detectors=("CCD66",))
    rules = [old, new, only_66]
    pick = lambda night, det="CCD1": select_rule(  # noqa: E731
        rules, pro_catg="CAT", parameter="QC.X", detector=det, night=night
    )
    assert pick(dt.date(2026, 11, 23)) is old
    assert pick(dt.date(2026, 12, 1)) is new
    assert pick(dt.date(2026, 11, 23), "CCD66") is only_66  # specific beats general
    assert pick(dt.date(2019, 1, 1)) is None


def test_roll_up() -> None:
    assert roll_up(["OK", "OK"]) == "OK"
    assert roll_up(["OK", "UNSCORED", "NOK"]) == "NOK"
    assert roll_up(["UNSCORED"]) == "UNSCORED"


values = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
bounds = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=32))


@given(
    value=values,
    kind=st.sampled_from(["range", "reference", "history"]),
    low=bounds,
    high=bounds,
    ref=bounds,
    history=st.lists(values, max_size=30),
    k=st.floats(min_value=0.1, max_value=10),
)
def test_the_grader_never_raises(value, kind, low, high, ref, history, k) -> None:
    rule = Rule(
        "CAT", "QC.X", kind, D, min=low, max=high, value=ref, tolerance=1.0, k=k, min_history=1
    )
    score = grade_value(value, rule, parameter="QC.X", detector="D", history=history)
    assert score.grade in ("OK", "NOK", "UNSCORED", "MONITORED") and score.reason
