"""ESO's grade of a service-mode OB against the conditions its PI asked for. Pure.

ESO grades each executed OB on its constraint set (image quality, airmass, sky
transparency, moon): **A** every constraint fulfilled; **B** some constraint missed by
up to 10 %; **C** out of constraints (the OB is repeated); **D** out of constraints but
not repeated, an exceptional decision a person takes (ESO's helpdesk, "What is the role
of the quality control grades in OB classification"; docs/references/science_products.md
section 2). This module gives A, B or C with the reason for each constraint; D is left
to the QC scientist.

What is compared:

- image quality: the requested OBS.AMBI.FWHM (since P96 the image quality at the
  observed wavelength and airmass; 0 means any) against the median over the OB's
  exposures of each one's measured FWHM;
- airmass: the requested largest airmass against the largest the exposures reached;
- moon: while the Moon is above the horizon during an exposure, its lit fraction and
  its distance from the target against the requested limits (a Moon below the horizon
  meets both);
- transparency: the light the science's stars lost against the night's zeropoint
  (the photometric offset of the coadd, magnitudes) against the instrument's limit for
  the requested class, where one is configured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Grade = Literal["A", "B", "C"]
_ORDER = {"A": 0, "B": 1, "C": 2}


@dataclass(frozen=True)
class ConstraintCheck:
    """One constraint: what was asked, what was delivered, its grade and why."""

    constraint: str
    requested: float | str | None
    delivered: float | None
    grade: Grade
    reason: str


@dataclass(frozen=True)
class ObGrade:
    """An OB's grade: the worst of its constraints'."""

    grade: Grade
    checks: tuple[ConstraintCheck, ...]

    @property
    def reason(self) -> str:
        """Why: the constraints that set the grade (every one, for an A)."""
        worst = [c.reason for c in self.checks if c.grade == self.grade]
        return "; ".join(worst) if worst else "no constraint to check"


def check_upper_limit(
    constraint: str,
    requested: float | None,
    delivered: float | None,
    *,
    tolerance: float,
    unit: str = "",
) -> ConstraintCheck:
    """A constraint that ``delivered`` must not exceed (``requested`` None or 0: any).
    Missed by up to ``tolerance`` (a fraction of the limit): B; by more: C.

    >>> check_upper_limit("image quality", 0.8, 0.85, tolerance=0.1, unit='"').grade
    'B'
    >>> check_upper_limit("image quality", 0.8, 0.95, tolerance=0.1, unit='"').reason
    'image quality 0.95" > 0.80" requested (out by 19 %)'
    """
    if requested is None or requested <= 0:
        return ConstraintCheck(constraint, requested, delivered, "A", f"{constraint}: any")
    if delivered is None or not math.isfinite(delivered):
        why = f"{constraint}: not measured ({requested:.2f}{unit} requested)"
        return ConstraintCheck(constraint, requested, None, "C", why)
    excess = delivered / requested - 1
    if excess <= 0:
        grade: Grade = "A"
        reason = f"{constraint} {delivered:.2f}{unit} <= {requested:.2f}{unit} requested"
    else:
        grade = "B" if excess <= tolerance else "C"
        reason = (
            f"{constraint} {delivered:.2f}{unit} > {requested:.2f}{unit} requested "
            f"(out by {100 * excess:.0f} %)"
        )
    return ConstraintCheck(constraint, requested, delivered, grade, reason)


def check_lower_limit(
    constraint: str,
    requested: float | None,
    delivered: float | None,
    *,
    tolerance: float,
    unit: str = "",
) -> ConstraintCheck:
    """A constraint that ``delivered`` must reach (``requested`` None or 0: any).

    >>> check_lower_limit("moon distance", 60, 57, tolerance=0.1, unit=" deg").grade
    'B'
    """
    if requested is None or requested <= 0:
        return ConstraintCheck(constraint, requested, delivered, "A", f"{constraint}: any")
    if delivered is None or not math.isfinite(delivered):
        why = f"{constraint}: met (the Moon was below the horizon)"
        return ConstraintCheck(constraint, requested, None, "A", why)
    shortfall = 1 - delivered / requested
    if shortfall <= 0:
        grade: Grade = "A"
        reason = f"{constraint} {delivered:.1f}{unit} >= {requested:.1f}{unit} requested"
    else:
        grade = "B" if shortfall <= tolerance else "C"
        reason = (
            f"{constraint} {delivered:.1f}{unit} < {requested:.1f}{unit} requested "
            f"(short by {100 * shortfall:.0f} %)"
        )
    return ConstraintCheck(constraint, requested, delivered, grade, reason)


@dataclass(frozen=True)
class Delivered:
    """What an OB's exposures delivered."""

    image_quality_arcsec: float | None  # median of the exposures' FWHM
    airmass: float | None  # the largest
    moon_fli: float | None  # the largest while the Moon was up; None: never up
    moon_distance_deg: float | None  # the smallest while the Moon was up
    light_loss_mag: float | None  # the stars' loss against the night's zeropoint


@dataclass(frozen=True)
class Requested:
    """An OB's constraint set (None: not given)."""

    image_quality_arcsec: float | None
    airmass: float | None
    transparency: str | None  # ESO's class: PHO, CLR, THN, THK
    moon_fli: float | None
    moon_distance_deg: float | None


def grade_ob(
    requested: Requested,
    delivered: Delivered,
    *,
    tolerance: float,
    transparency_loss_mag: dict[str, float],
) -> ObGrade:
    """The OB's grade: the worst of its constraints' (see the module).

    >>> asked = Requested(0.8, 1.6, "CLR", 0.4, 60)
    >>> got = Delivered(0.93, 1.2, None, None, 0.01)
    >>> g = grade_ob(asked, got, tolerance=0.1, transparency_loss_mag={})
    >>> g.grade, g.reason
    ('C', 'image quality 0.93" > 0.80" requested (out by 16 %)')
    """
    fli = requested.moon_fli if requested.moon_fli is not None and requested.moon_fli < 1 else None
    checks = [
        check_upper_limit(
            "image quality",
            requested.image_quality_arcsec,
            delivered.image_quality_arcsec,
            tolerance=tolerance,
            unit='"',
        ),
        check_upper_limit("airmass", requested.airmass, delivered.airmass, tolerance=tolerance),
        check_upper_limit(
            "moon illumination",
            fli,
            delivered.moon_fli if delivered.moon_fli is not None else 0.0,
            tolerance=tolerance,
        ),
        check_lower_limit(
            "moon distance",
            requested.moon_distance_deg,
            delivered.moon_distance_deg,
            tolerance=tolerance,
            unit=" deg",
        ),
    ]
    limit = transparency_loss_mag.get(requested.transparency or "")
    if limit is not None:
        checks.append(
            check_upper_limit(
                f"light lost ({requested.transparency})",
                limit,
                max(delivered.light_loss_mag or 0.0, 0.0),
                tolerance=tolerance,
                unit=" mag",
            )
        )
    grade = max((c.grade for c in checks), key=_ORDER.__getitem__)
    return ObGrade(grade, tuple(checks))
