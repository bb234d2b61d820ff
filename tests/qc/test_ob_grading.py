"""ESO's A/B/C grade of an OB against its constraints: each constraint, the worst wins,
and the reason names what set the grade."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qclib.qc.ob_grading import Delivered, Requested, check_lower_limit, check_upper_limit, grade_ob

ASKED = Requested(0.8, 1.6, "CLR", 0.5, 60.0)
GOOD = Delivered(0.75, 1.3, 0.3, 90.0, 0.0)


def test_all_met_is_a_and_says_so() -> None:
    grade = grade_ob(ASKED, GOOD, tolerance=0.1, transparency_loss_mag={})
    assert grade.grade == "A"
    assert 'image quality 0.75" <= 0.80" requested' in grade.reason
    assert "airmass 1.30 <= 1.60 requested" in grade.reason


@pytest.mark.parametrize(
    ("delivered", "expected", "why"),
    [
        (
            Delivered(0.87, 1.3, 0.3, 90.0, 0.0),
            "B",
            'image quality 0.87" > 0.80" requested (out by 9 %)',
        ),
        (
            Delivered(0.90, 1.3, 0.3, 90.0, 0.0),
            "C",
            'image quality 0.90" > 0.80" requested (out by 12 %)',
        ),
        (Delivered(0.75, 1.75, 0.3, 90.0, 0.0), "B", "airmass 1.75 > 1.60 requested (out by 9 %)"),
        (Delivered(0.75, 1.3, 0.9, 90.0, 0.0), "C", "moon illumination 0.90 > 0.50 requested"),
        (Delivered(0.75, 1.3, 0.3, 50.0, 0.0), "C", "moon distance 50.0 deg < 60.0 deg requested"),
        (Delivered(0.75, 1.3, 0.3, 56.0, 0.0), "B", "moon distance 56.0 deg < 60.0 deg requested"),
    ],
)
def test_a_missed_constraint_sets_the_grade(delivered: Delivered, expected: str, why: str) -> None:
    grade = grade_ob(ASKED, delivered, tolerance=0.1, transparency_loss_mag={})
    assert grade.grade == expected
    assert why in grade.reason


def test_the_worst_constraint_wins_and_only_it_is_the_reason() -> None:
    grade = grade_ob(
        ASKED, Delivered(0.86, 2.0, 0.3, 90.0, 0.0), tolerance=0.1, transparency_loss_mag={}
    )
    assert grade.grade == "C"
    assert grade.reason.startswith("airmass 2.00 > 1.60") and "image quality" not in grade.reason
    assert {c.constraint: c.grade for c in grade.checks}["image quality"] == "B"


def test_moon_below_the_horizon_meets_moon_constraints() -> None:
    grade = grade_ob(
        ASKED, Delivered(0.75, 1.3, None, None, 0.0), tolerance=0.1, transparency_loss_mag={}
    )
    assert grade.grade == "A"
    assert "moon distance: met (the Moon was below the horizon)" in grade.reason


def test_unmeasured_image_quality_is_not_a_pass() -> None:
    grade = grade_ob(
        ASKED, Delivered(None, 1.3, None, None, 0.0), tolerance=0.1, transparency_loss_mag={}
    )
    assert grade.grade == "C" and "image quality: not measured" in grade.reason


def test_no_constraint_means_any() -> None:
    nothing = Requested(0.0, None, None, 1.0, 0.0)
    grade = grade_ob(
        nothing, Delivered(2.5, 3.0, 1.0, 1.0, 1.0), tolerance=0.1, transparency_loss_mag={}
    )
    assert grade.grade == "A"


def test_transparency_graded_only_where_configured() -> None:
    cloudy = Delivered(0.75, 1.3, 0.3, 90.0, 0.25)
    assert grade_ob(ASKED, cloudy, tolerance=0.1, transparency_loss_mag={}).grade == "A"
    graded = grade_ob(ASKED, cloudy, tolerance=0.1, transparency_loss_mag={"CLR": 0.1})
    assert graded.grade == "C" and "light lost (CLR) 0.25 mag > 0.10 mag" in graded.reason


@given(
    limit=st.floats(0.1, 10.0),
    ratio=st.floats(0.0, 3.0),
    tolerance=st.floats(0.0, 0.5),
)
def test_upper_limit_grade_follows_the_ratio(limit: float, ratio: float, tolerance: float) -> None:
    check = check_upper_limit("x", limit, limit * ratio, tolerance=tolerance)
    excess = (limit * ratio) / limit - 1
    expected = "A" if excess <= 0 else ("B" if excess <= tolerance else "C")
    assert check.grade == expected


@given(limit=st.floats(1.0, 180.0), ratio=st.floats(0.0, 2.0), tolerance=st.floats(0.0, 0.5))
def test_lower_limit_grade_follows_the_ratio(limit: float, ratio: float, tolerance: float) -> None:
    check = check_lower_limit("x", limit, limit * ratio, tolerance=tolerance)
    shortfall = 1 - (limit * ratio) / limit
    expected = "A" if shortfall <= 0 else ("B" if shortfall <= tolerance else "C")
    assert check.grade == expected
