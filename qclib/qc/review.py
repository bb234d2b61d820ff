"""Which products a QC scientist reviews, and why. Pure.

ESO reviews every red score and a fraction of the green ones: a product with a NOK
value is always reviewed; so is one whose rules could grade none of its values, and one
made with a calibration that was later rejected (tainted); of the all-OK ones a
``fraction`` is drawn at random. The draw is reproducible: it is taken from the
product's checksum, so grading a product again never changes whether it was drawn.
"""

from __future__ import annotations

from collections.abc import Iterable

from qclib.qc.scoring import Grade, roll_up


def drawn_at_random(sha256: str, fraction: float) -> bool:
    """Whether a product with this checksum is among the ``fraction`` drawn for review.

    >>> drawn_at_random("00000000" + "f" * 56, 0.1), drawn_at_random("f" * 64, 0.1)
    (True, False)
    >>> drawn_at_random("f" * 64, 1.0), drawn_at_random("0" * 64, 0.0)
    (True, False)
    """
    return int(sha256[:8], 16) / 2**32 < fraction


def review_reasons(
    graded: Iterable[tuple[str, str, Grade, str]],
    *,
    sha256: str,
    fraction: float,
    taint: str | None = None,
) -> tuple[str, ...]:
    """Why a product goes to the review queue (empty: it does not).

    ``graded``: (parameter, detector, grade, reason) of each of its values.

    >>> review_reasons([("QC.RON", "CCD1", "NOK", "QC.RON = 4 above 3")],
    ...                sha256="f" * 64, fraction=0.0)
    ('NOK CCD1: QC.RON = 4 above 3',)
    >>> review_reasons([("QC.RON", "CCD1", "OK", "within limits")], sha256="f" * 64,
    ...                fraction=0.0)
    ()
    >>> review_reasons([("QC.X", "CCD1", "UNSCORED", "history of 0 certified value(s)")],
    ...                sha256="f" * 64, fraction=0.0)
    ('rules apply but no value could be graded: review by eye',)
    """
    values = list(graded)
    reasons = [f"NOK {det}: {why}" for _, det, grade, why in values if grade == "NOK"]
    if roll_up(grade for _, _, grade, _ in values) == "UNSCORED":
        reasons.append("rules apply but no value could be graded: review by eye")
    if taint:
        reasons.insert(0, f"tainted: {taint}")
    if not reasons and drawn_at_random(sha256, fraction):
        reasons.append(f"drawn at random ({fraction:.0%} of all-OK products are reviewed)")
    return tuple(reasons)
