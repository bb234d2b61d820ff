"""How grades read in reports: one label, one colour and one meaning per grade, in the
order operations staff should look at them (what needs attention first).

The stored grades are ``qclib.qc.scoring``'s: OK and NOK are graded by a rule;
UNSCORED means a rule applies but could not grade the value (no value, too short a
history, no reference), which someone should look at; MONITORED means no rule covers
the value: it is recorded and trended, never graded. A value without a stored score
has not been through ``qc score`` yet.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GradeStyle:
    """How one grade is shown."""

    label: str
    colour: str
    text_colour: str
    meaning: str


#: Stored grade -> style, most urgent first (tables are sorted in this order).
GRADE_STYLES: dict[str, GradeStyle] = {
    "NOK": GradeStyle("NOK", "#d62728", "white", "outside the limits of its rule"),
    "UNSCORED": GradeStyle(
        "not graded", "#f0a30a", "black", "a rule applies but could not grade it (see reason)"
    ),
    "OK": GradeStyle("OK", "#2ca02c", "white", "within the limits of its rule"),
    "MONITORED": GradeStyle("monitored", "#7a8ca8", "white", "no rule: recorded and trended"),
}
#: A value the scoring step has not reached yet (no stored score).
NOT_SCORED = GradeStyle("not scored yet", "#c7c7c7", "black", "'qc score' has not graded it yet")


def grade_style(grade: str | None) -> GradeStyle:
    """The style of a stored grade (None: not scored yet; an unknown grade: grey).

    >>> grade_style("MONITORED").label, grade_style("UNSCORED").label, grade_style(None).label
    ('monitored', 'not graded', 'not scored yet')
    """
    if grade is None or grade != grade:  # None or NaN (a missing score in a DataFrame)
        return NOT_SCORED
    return GRADE_STYLES.get(grade, GradeStyle(str(grade), "#7f7f7f", "white", str(grade)))


def grade_label(grade: str | None) -> str:
    """What a report calls a stored grade.

    >>> [grade_label(g) for g in ("OK", "NOK", "UNSCORED", "MONITORED")]
    ['OK', 'NOK', 'not graded', 'monitored']
    """
    return grade_style(grade).label


def grade_rank(grade: str | None) -> int:
    """Sort key: NOK first, then not graded, OK, monitored, not scored yet.

    >>> sorted(["MONITORED", "OK", "NOK", "UNSCORED"], key=grade_rank)
    ['NOK', 'UNSCORED', 'OK', 'MONITORED']
    """
    order = list(GRADE_STYLES)
    if grade is None or grade != grade:
        return len(order) + 1
    return order.index(grade) if grade in order else len(order)


#: Column labels of grade counts, in order.
GRADE_LABELS = [style.label for style in GRADE_STYLES.values()]
