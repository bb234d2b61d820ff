"""Database side of processing: products, QC values, AB processing state."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from qclib.db.models import AssociationBlockRow, ProductRow, QCValueRow


@dataclass(frozen=True)
class StoredProduct:
    id: int
    ab_id: str
    instrument: str
    pro_catg: str
    night: dt.date
    mid_mjd: float
    path: str
    sha256: str
    status: str
    header: dict[str, Any]
    provenance: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["night"] = self.night.isoformat()
        return out


def _stored(row: ProductRow) -> StoredProduct:
    return StoredProduct(
        row.id,
        row.ab_id,
        row.instrument,
        row.pro_catg,
        row.night,
        row.mid_mjd,
        row.path,
        row.sha256,
        row.status,
        dict(row.header),
        dict(row.provenance or {}),
    )


def add_product(
    session: Session,
    *,
    ab_id: str,
    instrument: str,
    pro_catg: str,
    night: dt.date,
    mid_mjd: float,
    path: str,
    sha256: str,
    header: dict[str, Any],
    provenance: dict[str, Any],
    qc: dict[str, dict[str, float]],
    units: dict[str, str],
) -> int:
    """Record a product and its QC values (one row per value and detector)."""
    row = ProductRow(
        ab_id=ab_id,
        instrument=instrument,
        pro_catg=pro_catg,
        night=night,
        mid_mjd=mid_mjd,
        path=path,
        sha256=sha256,
        status="candidate",
        header=header,
        provenance=provenance,
        created_at=dt.datetime.now(dt.UTC),
    )
    session.add(row)
    session.flush()
    for detector, values in qc.items():
        for name, value in values.items():
            session.add(
                QCValueRow(
                    product_id=row.id,
                    name=name,
                    detector=detector,
                    value=value,
                    unit=units.get(name, ""),
                )
            )
    return row.id


def products_of_block(session: Session, ab_id: str) -> list[StoredProduct]:
    rows = session.scalars(select(ProductRow).where(ProductRow.ab_id == ab_id))
    return [_stored(r) for r in rows]


def list_products(session: Session, *, instrument: str | None = None) -> list[StoredProduct]:
    query = select(ProductRow).order_by(ProductRow.mid_mjd, ProductRow.id)
    if instrument is not None:
        query = query.where(ProductRow.instrument == instrument)
    return [_stored(r) for r in session.scalars(query)]


def qc_values(session: Session, product_id: int) -> dict[str, dict[str, float | None]]:
    """detector -> QC name -> value."""
    out: dict[str, dict[str, float | None]] = {}
    for row in session.scalars(select(QCValueRow).where(QCValueRow.product_id == product_id)):
        out.setdefault(row.detector, {})[row.name] = row.value
    return out


def set_block_state(session: Session, ab_id: str, state: str, reason: str | None = None) -> None:
    """Record a block's processing state; a failure also counts as an attempt."""
    row = session.get(AssociationBlockRow, ab_id)
    if row is not None:
        row.state = state
        row.state_reason = reason
        if state == "failed":
            row.attempts = (row.attempts or 0) + 1


def block_attempts(session: Session) -> dict[str, int]:
    """Failed attempts per block id."""
    rows = session.execute(select(AssociationBlockRow.id, AssociationBlockRow.attempts))
    return {r[0]: int(r[1] or 0) for r in rows}


def block_states(session: Session) -> dict[str, tuple[str, str | None]]:
    rows = session.execute(
        select(AssociationBlockRow.id, AssociationBlockRow.state, AssociationBlockRow.state_reason)
    )
    return {r[0]: (r[1], r[2]) for r in rows}


#: Keywords two products must share to be compared (where both have them).
REFERENCE_SETUP_KEYS = (
    "INS.FILT1.NAME",
    "INS.FILT2.NAME",
    "DET.DIT",
    "DET.NDIT",
    "DET.READ.CLOCK",
    "DET.NCORRS.NAME",
    "EXPTIME",
)


def reference_product(
    session: Session,
    *,
    instrument: str,
    pro_catg: str,
    before_mjd: float,
    setup: dict[str, Any],
) -> StoredProduct | None:
    """The product a new one of this category and setup is compared with: the newest
    earlier certified one, else the newest earlier one not rejected."""
    query = (
        select(ProductRow)
        .where(
            ProductRow.instrument == instrument,
            ProductRow.pro_catg == pro_catg,
            ProductRow.mid_mjd < before_mjd,
            ProductRow.status != "rejected",
        )
        .order_by(ProductRow.mid_mjd.desc(), ProductRow.id.desc())
    )
    candidates = [
        p
        for p in map(_stored, session.scalars(query))
        if all(
            p.header.get(key) == setup[key]
            for key in REFERENCE_SETUP_KEYS
            if key in setup and key in p.header
        )
    ]
    certified = [p for p in candidates if p.status == "certified"]
    return (certified or candidates or [None])[0]


def mark_scored(session: Session, product_id: int) -> None:
    """candidate -> scored (a product further along keeps its status)."""
    row = session.get(ProductRow, product_id)
    if row is not None and row.status == "candidate":
        row.status = "scored"


def set_product_status(session: Session, product_id: int, status: str) -> None:
    """Move a product along its lifecycle (candidate, scored, certified, rejected...)."""
    row = session.get(ProductRow, product_id)
    if row is None:
        raise KeyError(product_id)
    row.status = status


def remove_products_of_block(session: Session, ab_id: str) -> list[str]:
    """Delete a block's product rows with their QC values and scores; returns the paths
    (the files are the caller's: they are replaced in place)."""
    from qclib.db.models import ScoreRow

    rows = list(session.scalars(select(ProductRow).where(ProductRow.ab_id == ab_id)))
    for row in rows:
        session.execute(delete(ScoreRow).where(ScoreRow.product_id == row.id))
        session.execute(delete(QCValueRow).where(QCValueRow.product_id == row.id))
        session.delete(row)
    session.flush()
    return [r.path for r in rows]
