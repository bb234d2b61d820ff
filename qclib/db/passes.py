"""The record of passes (``qc run``/``qc watch``): when each ran and what it did."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qclib.db.models import PassRow


def start_pass(session: Session) -> int:
    row = PassRow(started_at=dt.datetime.now(dt.UTC))
    session.add(row)
    session.flush()
    return row.id


def finish_pass(session: Session, pass_id: int, summary: dict[str, Any]) -> None:
    row = session.get(PassRow, pass_id)
    if row is not None:
        row.finished_at = dt.datetime.now(dt.UTC)
        row.summary = summary


def last_finished_summary(session: Session) -> dict[str, Any] | None:
    """The summary of the newest finished pass (None: none finished)."""
    row = session.scalars(
        select(PassRow).where(PassRow.finished_at.is_not(None)).order_by(PassRow.id.desc()).limit(1)
    ).first()
    return None if row is None else row.summary


def recent_passes(session: Session, n: int = 10) -> list[dict[str, Any]]:
    """The newest ``n`` passes, newest first (an unfinished one: still running or killed)."""
    rows = session.scalars(select(PassRow).order_by(PassRow.id.desc()).limit(n))
    return [
        {
            "id": r.id,
            "started_at": r.started_at.isoformat(),
            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            "summary": r.summary,
        }
        for r in rows
    ]
