"""Database side of classification and association: DO.CATG per frame, stored ABs."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from qclib.associate import AssociationBlock
from qclib.db.database import IN_CHUNK
from qclib.db.models import AssociationBlockRow, AssociationStateRow, FrameRow

#: Slack on horizons: times read back from the database may differ in the last bits.
_EPSILON_DAYS = 1e-6


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


def set_classifications(session: Session, classified: dict[str, tuple[str, dict[str, Any]]]) -> int:
    """Store many frames' DO.CATG (arcfile -> (DO.CATG, classification)), reading the
    rows in chunks; returns how many changed."""
    changed = 0
    names = sorted(classified)
    for start in range(0, len(names), IN_CHUNK):
        chunk = names[start : start + IN_CHUNK]
        for row in session.scalars(select(FrameRow).where(FrameRow.arcfile.in_(chunk))):
            do_catg, classification = classified[row.arcfile]
            if row.do_catg == do_catg and row.classification == classification:
                continue
            row.do_catg = do_catg
            row.classification = classification
            changed += 1
    return changed


@dataclass(frozen=True)
class AssociationState:
    """What an instrument's stored blocks were associated from (see
    ``qclib.workflow.association``)."""

    rules_digest: str
    last_frame_id: int


def association_state(session: Session, instrument: str) -> AssociationState | None:
    """The instrument's association state, or None before its first association."""
    row = session.get(AssociationStateRow, instrument)
    if row is None:
        return None
    return AssociationState(row.rules_digest, row.last_frame_id)


def save_association_state(
    session: Session, instrument: str, *, rules_digest: str, last_frame_id: int
) -> None:
    """Record what the instrument's stored blocks now reflect (insert or update)."""
    row = session.get(AssociationStateRow, instrument)
    if row is None:
        row = AssociationStateRow(instrument=instrument)
        session.add(row)
    row.rules_digest = rules_digest
    row.last_frame_id = last_frame_id
    row.updated_at = dt.datetime.now(dt.UTC)


def blocks_between(
    session: Session, instrument: str, lo_mjd: float, hi_mjd: float
) -> list[AssociationBlock]:
    """An instrument's stored ABs whose mid-time lies in [lo_mjd, hi_mjd], in time order."""
    query = (
        select(AssociationBlockRow)
        .where(
            AssociationBlockRow.instrument == instrument,
            AssociationBlockRow.mid_mjd >= lo_mjd,
            AssociationBlockRow.mid_mjd <= hi_mjd,
        )
        .order_by(AssociationBlockRow.mid_mjd, AssociationBlockRow.id)
    )
    return [_block(row) for row in session.scalars(query)]


def count_blocks(session: Session, instrument: str) -> tuple[int, int]:
    """An instrument's stored ABs: (how many, how many incomplete), counted from the
    index on instrument and completeness (0013), without reading the rows."""
    query = select(func.count()).where(AssociationBlockRow.instrument == instrument)
    total = session.execute(query).scalar_one()
    incomplete = session.execute(
        query.where(AssociationBlockRow.completeness == "incomplete")
    ).scalar_one()
    return int(total), int(incomplete)


def store_blocks(
    session: Session,
    instrument: str,
    blocks: Iterable[AssociationBlock],
    rules_digest: str,
    *,
    replace: Collection[str] | None = None,
    reach: float | None = None,
) -> tuple[int, int, int]:
    """Replace an instrument's ABs with ``blocks``; returns (added, changed, removed).

    Each block is stored as its ``as_dict()`` JSON, with its horizon. Unchanged
    blocks are left untouched, so re-associating the same data is a no-op.

    ``replace`` (block ids): ``blocks`` replace only these stored blocks (and those
    with their ids); the others stay. ``reach`` (days): how far from a block its
    children can be (``qclib.associate.association_reach``), so that reopening
    blocks downstream of changed ones reads only the blocks that near.
    """
    blocks = list(blocks)
    if replace is None:
        query = select(AssociationBlockRow).where(AssociationBlockRow.instrument == instrument)
        rows = list(session.scalars(query))
    else:
        rows = _rows_by_id(session, set(replace) | {b.id for b in blocks})
    existing = {row.id: row for row in rows}
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
            if row.horizon_days != block.horizon_days and block.horizon_days is not None:
                row.horizon_days = block.horizon_days  # stored before horizons were
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
        row.horizon_days = block.horizon_days
        # Written even when equal: rows updated alike go in one batched statement.
        flag_modified(row, "horizon_days")
        row.updated_at = now
    if reopened:
        session.flush()
        _reopen(session, instrument, reopened, reach)
    stale = [block_id for block_id in existing if block_id not in seen]
    for start in range(0, len(stale), IN_CHUNK):
        session.execute(
            delete(AssociationBlockRow).where(
                AssociationBlockRow.id.in_(stale[start : start + IN_CHUNK])
            )
        )
    return added, changed, len(stale)


def _reopen(session: Session, instrument: str, ids: set[str], reach: float | None) -> None:
    """Set blocks, and every block downstream of them, back to 'created'.

    With ``reach``, only blocks within ``reach`` days of a reopened one are read at
    each step (a child chose its parent's product within that window)."""
    query = select(AssociationBlockRow).where(AssociationBlockRow.instrument == instrument)
    todo = set(ids)
    ids = set(ids)
    rows: dict[str, AssociationBlockRow] = {}
    while todo:
        if reach is None:
            rows = {row.id: row for row in session.scalars(query)}
        else:
            mids = [rows[i].mid_mjd if i in rows else _mid(session, i) for i in todo]
            near = query.where(
                AssociationBlockRow.mid_mjd >= min(mids) - reach,
                AssociationBlockRow.mid_mjd <= max(mids) + reach,
            )
            rows.update({row.id: row for row in session.scalars(near)})
        for block_id in todo:
            if block_id in rows:
                row = rows[block_id]
                row.state, row.state_reason, row.attempts = "created", None, 0
        todo = {
            row.id
            for row in rows.values()
            if row.state != "created" and set(row.content.get("parents", ())) & ids
        }
        ids |= todo


def block_times(session: Session, ids: Collection[str]) -> dict[str, float]:
    """The mid-times of the stored blocks among ``ids``."""
    names = sorted(ids)
    out: dict[str, float] = {}
    for start in range(0, len(names), IN_CHUNK):
        query = select(AssociationBlockRow.id, AssociationBlockRow.mid_mjd).where(
            AssociationBlockRow.id.in_(names[start : start + IN_CHUNK])
        )
        out.update((block_id, mid) for block_id, mid in session.execute(query))
    return out


def _rows_by_id(session: Session, ids: Iterable[str]) -> list[AssociationBlockRow]:
    names = sorted(ids)
    rows: list[AssociationBlockRow] = []
    for start in range(0, len(names), IN_CHUNK):
        query = select(AssociationBlockRow).where(
            AssociationBlockRow.id.in_(names[start : start + IN_CHUNK])
        )
        rows += session.scalars(query)
    return rows


def blocks_within_horizon(
    session: Session, instrument: str, times: Iterable[float], reach: float
) -> list[AssociationBlock]:
    """The instrument's stored ABs that a candidate appearing, going or changing at
    one of ``times`` (MJD) can change: those with one of the times within their
    horizon (``AssociationBlock.horizon_days``; a block without one: within
    ``reach``), in time order.

    The blocks' ids, times and horizons are read first, and only the blocks within
    reach of a time are read whole."""
    points = sorted(times)
    if not points:
        return []
    horizon = func.coalesce(AssociationBlockRow.horizon_days, reach)
    query = select(
        AssociationBlockRow.id, AssociationBlockRow.mid_mjd, AssociationBlockRow.horizon_days
    ).where(
        AssociationBlockRow.instrument == instrument,
        AssociationBlockRow.mid_mjd >= points[0] - reach,
        AssociationBlockRow.mid_mjd <= points[-1] + reach,
        AssociationBlockRow.mid_mjd + horizon >= points[0],
        AssociationBlockRow.mid_mjd - horizon <= points[-1],
    )
    ids = []
    for block_id, mid, days in session.execute(query):
        days = reach if days is None else days
        i = bisect.bisect_left(points, mid - days - _EPSILON_DAYS)
        if i < len(points) and points[i] <= mid + days + _EPSILON_DAYS:
            ids.append(block_id)
    blocks = [_block(row) for row in _rows_by_id(session, ids)]
    return sorted(blocks, key=lambda b: (b.mid_mjd, b.id))


def _mid(session: Session, block_id: str) -> float:
    row = session.get(AssociationBlockRow, block_id)
    return row.mid_mjd if row is not None else 0.0


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
