"""Science OBs' grades against their constraints (table ``ob_grades``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qclib.db.models import ObGradeRow


@dataclass(frozen=True)
class StoredGrade:
    ab_id: str
    instrument: str
    night: dt.date
    prog_id: str | None
    obs_id: int | None
    grade: str
    reason: str
    checks: list[dict[str, Any]]
    product_sha256: str
    graded_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "ab_id": self.ab_id,
            "instrument": self.instrument,
            "night": self.night.isoformat(),
            "prog_id": self.prog_id,
            "obs_id": self.obs_id,
            "grade": self.grade,
            "reason": self.reason,
            "checks": self.checks,
            "product_sha256": self.product_sha256,
            "graded_at": self.graded_at.isoformat(),
        }


def _stored(row: ObGradeRow) -> StoredGrade:
    return StoredGrade(
        row.ab_id,
        row.instrument,
        row.night,
        row.prog_id,
        row.obs_id,
        row.grade,
        row.reason,
        list(row.checks),
        row.product_sha256,
        row.graded_at,
    )


def set_grade(session: Session, grade: StoredGrade) -> None:
    """Record an OB's grade (replacing an earlier one of the same block)."""
    row = session.get(ObGradeRow, grade.ab_id) or ObGradeRow(ab_id=grade.ab_id)
    row.instrument = grade.instrument
    row.night = grade.night
    row.prog_id = grade.prog_id
    row.obs_id = grade.obs_id
    row.grade = grade.grade
    row.reason = grade.reason
    row.checks = grade.checks
    row.product_sha256 = grade.product_sha256
    row.graded_at = grade.graded_at
    session.add(row)


def grade_of(session: Session, ab_id: str) -> StoredGrade | None:
    row = session.get(ObGradeRow, ab_id)
    return None if row is None else _stored(row)


def list_grades(
    session: Session, *, prog_id: str | None = None, nights: list[dt.date] | None = None
) -> list[StoredGrade]:
    """Grades (of a programme, of these nights), by night then block."""
    query = select(ObGradeRow).order_by(ObGradeRow.night, ObGradeRow.ab_id)
    if prog_id is not None:
        query = query.where(ObGradeRow.prog_id == prog_id)
    if nights is not None:
        query = query.where(ObGradeRow.night.in_(nights))
    return [_stored(r) for r in session.scalars(query)]
