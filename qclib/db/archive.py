"""Database side of the archive: one row per archived file (product or its report)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qclib.db.models import ArchiveFileRow

#: A row written before its file is moved into place; the next archive operation
#: completes it (file there, checksum right) or removes it.
PENDING = "pending"


@dataclass(frozen=True)
class ArchivedFile:
    id: int
    name: str
    kind: str
    product_id: int | None
    product: str
    instrument: str
    pro_catg: str
    night: dt.date
    mid_mjd: float
    setup: dict[str, Any]
    path: str
    sha256: str
    size_bytes: int
    status: str
    status_reason: str | None
    report_of: str | None
    archived_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["night"] = self.night.isoformat()
        out["archived_at"] = self.archived_at.isoformat()
        return out


def _file(row: ArchiveFileRow) -> ArchivedFile:
    return ArchivedFile(
        row.id,
        row.name,
        row.kind,
        row.product_id,
        row.product,
        row.instrument,
        row.pro_catg,
        row.night,
        row.mid_mjd,
        dict(row.setup),
        row.path,
        row.sha256,
        row.size_bytes,
        row.status,
        row.status_reason,
        row.report_of,
        row.archived_at,
    )


def add_file(session: Session, **fields: Any) -> int:
    row = ArchiveFileRow(archived_at=dt.datetime.now(dt.UTC), **fields)
    session.add(row)
    session.flush()
    return row.id


def files(
    session: Session,
    *,
    instrument: str | None = None,
    include_pending: bool = False,
) -> list[ArchivedFile]:
    query = select(ArchiveFileRow).order_by(ArchiveFileRow.mid_mjd, ArchiveFileRow.id)
    if instrument:
        query = query.where(ArchiveFileRow.instrument == instrument)
    if not include_pending:
        query = query.where(ArchiveFileRow.status != PENDING)
    return [_file(r) for r in session.scalars(query)]


def pending(session: Session) -> list[ArchivedFile]:
    """Files whose ingestion has not completed (a killed pass may leave some)."""
    query = select(ArchiveFileRow).where(ArchiveFileRow.status == PENDING)
    return [_file(r) for r in session.scalars(query.order_by(ArchiveFileRow.id))]


def by_id(session: Session, file_id: int) -> ArchivedFile | None:
    row = session.get(ArchiveFileRow, file_id)
    return _file(row) if row is not None else None


def archived_products(session: Session, instrument: str, pro_catg: str) -> list[ArchivedFile]:
    """The archived (current, not superseded or withdrawn) products of a category."""
    query = select(ArchiveFileRow).where(
        ArchiveFileRow.instrument == instrument,
        ArchiveFileRow.pro_catg == pro_catg,
        ArchiveFileRow.status == "archived",
        ArchiveFileRow.kind == "product",
    )
    return [_file(r) for r in session.scalars(query.order_by(ArchiveFileRow.id))]


class TakenNames:
    """``name in taken``: whether the archive holds a file of that name (one indexed
    lookup, where a set of every name grew with the archive)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def __contains__(self, name: object) -> bool:
        query = select(ArchiveFileRow.id).where(ArchiveFileRow.name == name)
        return self.session.scalar(query) is not None


def by_name(session: Session, name: str) -> ArchivedFile | None:
    row = session.scalar(select(ArchiveFileRow).where(ArchiveFileRow.name == name))
    return _file(row) if row is not None else None


def of_product(session: Session, product_sha256: str) -> list[ArchivedFile]:
    """The archived files of one product (found by its checksum), reports included."""
    product = session.scalar(
        select(ArchiveFileRow).where(
            ArchiveFileRow.sha256 == product_sha256, ArchiveFileRow.kind == "product"
        )
    )
    if product is None:
        return []
    rows = session.scalars(
        select(ArchiveFileRow).where(
            (ArchiveFileRow.id == product.id) | (ArchiveFileRow.report_of == product.name)
        )
    )
    return [_file(r) for r in rows]


def set_status(session: Session, file_id: int, status: str, reason: str | None = None) -> None:
    row = session.get(ArchiveFileRow, file_id)
    if row is None:
        raise KeyError(file_id)
    row.status = status
    row.status_reason = reason


def remove(session: Session, file_id: int) -> None:
    row = session.get(ArchiveFileRow, file_id)
    if row is not None:
        session.delete(row)
