"""The audit log: who decided what about which product, when, and why. Append-only.

The database refuses updates and deletes of its rows (triggers, migration 0007). Each
row carries the SHA-256 of the row before it and its own, over every field that means
something, so a row changed or removed behind the tool's back breaks the chain; the
newest row's id and hash are also kept in a file of the workspace (``head``), so that
removing the last rows is seen too. ``verify_chain`` checks all of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from qclib.db.models import AuditRow

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    product_id: int | None
    product: str
    old_status: str | None
    new_status: str | None
    comment: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _row_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    text_ = json.dumps([prev_hash, fields], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text_.encode()).hexdigest()


def _fields(row: AuditRow) -> dict[str, Any]:
    return {
        "at": row.at,
        "actor": row.actor,
        "action": row.action,
        "product_id": row.product_id,
        "product": row.product,
        "old_status": row.old_status,
        "new_status": row.new_status,
        "comment": row.comment,
    }


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    product: str,
    product_id: int | None = None,
    old_status: str | None = None,
    new_status: str | None = None,
    comment: str | None = None,
) -> AuditEntry:
    """Add one row at the end of the chain (in the caller's transaction)."""
    if session.get_bind().dialect.name == "postgresql":
        # Writers queue here; SQLite serialises writers by itself. The unique
        # prev_hash would refuse a fork either way.
        session.execute(text("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE"))
    last = session.scalar(select(AuditRow).order_by(AuditRow.id.desc()).limit(1))
    prev = last.row_hash if last is not None else GENESIS
    row = AuditRow(
        at=dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
        actor=actor,
        action=action,
        product_id=product_id,
        product=product,
        old_status=old_status,
        new_status=new_status,
        comment=comment,
        prev_hash=prev,
    )
    row.row_hash = _row_hash(prev, _fields(row))
    session.add(row)
    session.flush()
    return _entry(row)


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        row.id,
        row.at,
        row.actor,
        row.action,
        row.product_id,
        row.product,
        row.old_status,
        row.new_status,
        row.comment,
    )


def entries(
    session: Session, *, product_id: int | None = None, product: str | None = None
) -> list[AuditEntry]:
    """The log, oldest first (of one product, by id or file name, if given)."""
    query = select(AuditRow).order_by(AuditRow.id)
    if product_id is not None:
        query = query.where(AuditRow.product_id == product_id)
    if product is not None:
        query = query.where(AuditRow.product == product)
    return [_entry(r) for r in session.scalars(query)]


def head(session: Session) -> tuple[int, str] | None:
    """(id, hash) of the newest row, or None for an empty log."""
    last = session.scalar(select(AuditRow).order_by(AuditRow.id.desc()).limit(1))
    return (last.id, last.row_hash) if last is not None else None


def verify_chain(rows: Iterable[AuditRow], recorded_head: tuple[int, str] | None) -> list[str]:
    """Every break of the chain, one line each (empty: the log is intact).

    ``recorded_head``: the (id, hash) of the newest row as last written beside the
    database; the log may have grown since (a writer killed before updating it), but
    that row must still be there, unchanged.
    """
    problems: list[str] = []
    prev_hash, prev_id = GENESIS, 0
    by_id: dict[int, str] = {}
    for row in rows:
        if row.prev_hash != prev_hash:
            if row.id != prev_id + 1:
                problems.append(
                    f"rows {prev_id + 1}..{row.id - 1} are missing (deleted): the chain "
                    f"breaks between row {prev_id} and row {row.id}"
                )
            else:
                problems.append(
                    f"row {row.id} does not follow row {prev_id}: "
                    "a row was removed or rewritten before it"
                )
        expected = _row_hash(row.prev_hash, _fields(row))
        if expected != row.row_hash:
            problems.append(
                f"row {row.id} ({row.action} {row.product} by {row.actor}) was changed "
                "after it was written: its hash does not match its content"
            )
        by_id[row.id] = row.row_hash
        prev_hash, prev_id = row.row_hash, row.id
    if recorded_head is not None:
        head_id, head_hash = recorded_head
        if head_id not in by_id:
            problems.append(
                f"row {head_id}, recorded as written, is missing: the newest rows were deleted"
            )
        elif by_id[head_id] != head_hash:
            problems.append(f"row {head_id} differs from the one recorded when it was written")
    return problems


def all_rows(session: Session) -> list[AuditRow]:
    return list(session.scalars(select(AuditRow).order_by(AuditRow.id)))


def read_head_file(path: Path) -> tuple[int, str] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return int(data["id"]), str(data["row_hash"])
