"""Database side of classification and association: DO.CATG per frame, stored ABs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from qclib.associate import AssociationBlock
from qclib.db.models import AssociationBlockRow, FrameRow


def set_classification(
    session: Session, arcfile: str, do_catg: str, classification: dict[str, Any]
) -> bool:
    """Store a frame's DO.CATG; returns whether anything changed."""
    row = session.scalars(select(FrameRow).where(FrameRow.arcfile == arcfile)).one()
    if row.do_catg == do_catg and row.classification == classification:
        return False
    row.do_catg = do_catg
    row.classification = classification
    return True


def store_blocks(
    session: Session, instrument: str, blocks: Iterable[AssociationBlock], rules_digest: str
) -> tuple[int, int, int]:
    """Replace an instrument's ABs with ``blocks``; returns (added, changed, removed).

    Each block is stored as its ``as_dict()`` JSON. Unchanged blocks are left
    untouched, so re-associating the same data is a no-op.
    """
    existing = {
        row.id: row
        for row in session.scalars(
            select(AssociationBlockRow).where(AssociationBlockRow.instrument == instrument)
        )
    }
    added = changed = 0
    seen = set()
    reopened: set[str] = set()
    now = dt.datetime.now(dt.UTC)
    for block in blocks:
        content = block.as_dict()
        seen.add(block.id)
        row = existing.get(block.id)
        if row is None:
            row = AssociationBlockRow(id=block.id, instrument=instrument)
            session.add(row)
            added += 1
        elif row.content == content and row.rules_digest == rules_digest:
            continue
        else:
            changed += 1
            if row.content.get("inputs") != content["inputs"]:
                # New raw frames: what was made from the old set is out of date; process
                # the block again (its products are replaced), and what was made from
                # its products (below). A better calibration appearing later does not
                # reopen a processed block.
                reopened.add(block.id)
        row.action = block.action
        row.recipe = block.recipe
        row.night = dt.date.fromisoformat(block.night)
        row.mid_mjd = block.mid_mjd
        row.completeness = block.completeness
        row.reason = block.reason
        row.content = content
        row.rules_digest = rules_digest
        row.updated_at = now
    _reopen(session, instrument, reopened)
    stale = [block_id for block_id in existing if block_id not in seen]
    if stale:
        session.execute(delete(AssociationBlockRow).where(AssociationBlockRow.id.in_(stale)))
    return added, changed, len(stale)


def _reopen(session: Session, instrument: str, ids: set[str]) -> None:
    """Set blocks, and every block downstream of them, back to 'created'."""
    rows = list(
        session.scalars(
            select(AssociationBlockRow).where(AssociationBlockRow.instrument == instrument)
        )
    )
    parents = {row.id: set(_block(row).parents) for row in rows}
    todo = set(ids)
    while todo:
        for row in rows:
            if row.id in todo:
                row.state, row.state_reason, row.attempts = "created", None, 0
        todo = {row.id for row in rows if row.state != "created" and parents[row.id] & (ids | todo)}
        ids = ids | todo


def _block(row: AssociationBlockRow) -> AssociationBlock:
    return AssociationBlock.from_dict(row.content)


def list_blocks(
    session: Session,
    *,
    night: dt.date | None = None,
    instrument: str | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> list[AssociationBlock]:
    """Stored ABs, in time order."""
    query = select(AssociationBlockRow).order_by(
        AssociationBlockRow.mid_mjd, AssociationBlockRow.id
    )
    if night is not None:
        query = query.where(AssociationBlockRow.night == night)
    if instrument is not None:
        query = query.where(AssociationBlockRow.instrument == instrument.upper())
    if since is not None:
        query = query.where(AssociationBlockRow.night >= since)
    if until is not None:
        query = query.where(AssociationBlockRow.night <= until)
    return [_block(row) for row in session.scalars(query)]


def get_block(session: Session, block_id: str) -> AssociationBlock | None:
    """The stored AB ``block_id``, or None if there is none."""
    row = session.get(AssociationBlockRow, block_id)
    return _block(row) if row else None
