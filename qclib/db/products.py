"""Database side of processing: products, QC values, AB processing state."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from qclib.associate import AssociationBlock
from qclib.db.models import AssociationBlockRow, DecisionChangeRow, ProductRow, QCValueRow

#: Statuses of a product a QC scientist has certified (archiving and being superseded
#: by a newer master do not undo that): what history and reference rules compare with.
CERTIFIED_STATES = ("certified", "archived", "superseded")
#: Statuses that still wait for a decision.
UNDECIDED_STATES = ("candidate", "scored")


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
    review_reason: str | None = None
    taint_reason: str | None = None
    scored_at: dt.datetime | None = None

    @property
    def name(self) -> str:
        """The product's file name."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def certified(self) -> bool:
        return self.status in CERTIFIED_STATES

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["night"] = self.night.isoformat()
        out["scored_at"] = self.scored_at.isoformat() if self.scored_at else None
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
        row.review_reason,
        row.taint_reason,
        row.scored_at,
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


def list_products(
    session: Session,
    *,
    instrument: str | None = None,
    pro_catgs: tuple[str, ...] | None = None,
    nights: Collection[dt.date] | None = None,
) -> list[StoredProduct]:
    """Products (of an instrument, of these categories, of these nights), in time order."""
    query = select(ProductRow).order_by(ProductRow.mid_mjd, ProductRow.id)
    if nights is not None:
        query = query.where(ProductRow.night.in_(sorted(nights)))
    if instrument is not None:
        query = query.where(ProductRow.instrument == instrument)
    if pro_catgs is not None:
        query = query.where(ProductRow.pro_catg.in_(pro_catgs))
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
    """Every block's (state, reason): for reports over all blocks, not for a pass."""
    rows = session.execute(
        select(AssociationBlockRow.id, AssociationBlockRow.state, AssociationBlockRow.state_reason)
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def block_state(session: Session, ab_id: str) -> tuple[str, str | None] | None:
    """One block's (state, reason), or None when there is no such block."""
    row = session.execute(
        select(AssociationBlockRow.state, AssociationBlockRow.state_reason).where(
            AssociationBlockRow.id == ab_id
        )
    ).first()
    return None if row is None else (row[0] or "created", row[1])


@dataclass(frozen=True)
class UnfinishedBlock:
    """A block a pass has to look at: not done, with its state and failed attempts."""

    block: AssociationBlock
    state: str
    reason: str | None
    attempts: int


def unfinished_blocks(
    session: Session,
    *,
    night: dt.date | None = None,
    ids: list[str] | None = None,
    recipes: Collection[str] | None = None,
    on_request: bool = False,
) -> list[UnfinishedBlock]:
    """The blocks not done (of a night, or with these ids), in time order. Done blocks
    are not read, so a pass costs what is left to do, not the size of the history.

    ``recipes``: the recipes that exist; a block recorded as waiting whose recipe is
    not among them (it waits for that recipe, not for a parent) is not read either.
    ``on_request``: also the science blocks recorded as processed on request
    (``qclib.workflow.science``); they are read anyway when ``ids`` name them.
    """
    waiting = AssociationBlockRow.state == "waiting"
    if recipes is not None:
        waiting = and_(waiting, AssociationBlockRow.recipe.in_(sorted(recipes)))
    states = ["created", "running", "failed"]
    if on_request or ids is not None:
        states.append("on_request")
    query = (
        select(AssociationBlockRow)
        .where(or_(AssociationBlockRow.state.in_(states), waiting))
        .order_by(AssociationBlockRow.mid_mjd, AssociationBlockRow.id)
    )
    if night is not None:
        query = query.where(AssociationBlockRow.night == night)
    if ids is not None:
        query = query.where(AssociationBlockRow.id.in_(ids))
    return [
        UnfinishedBlock(
            AssociationBlock.from_dict(row.content),
            row.state or "created",
            row.state_reason,
            int(row.attempts or 0),
        )
        for row in session.scalars(query)
    ]


def done_blocks(session: Session) -> list[tuple[str, dt.date, str, str]]:
    """(id, night, recipe, instrument) of every done block, without reading their content."""
    rows = session.execute(
        select(
            AssociationBlockRow.id,
            AssociationBlockRow.night,
            AssociationBlockRow.recipe,
            AssociationBlockRow.instrument,
        )
        .where(AssociationBlockRow.state == "done")
        .order_by(AssociationBlockRow.mid_mjd, AssociationBlockRow.id)
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def existing_block_ids(
    session: Session, ids: list[str], *, night: dt.date | None = None
) -> set[str]:
    """Which of ``ids`` are stored blocks (of the night, when given)."""
    query = select(AssociationBlockRow.id).where(AssociationBlockRow.id.in_(ids))
    if night is not None:
        query = query.where(AssociationBlockRow.night == night)
    return set(session.scalars(query))


def reference_product(
    session: Session,
    *,
    instrument: str,
    pro_catg: str,
    before_mjd: float,
    setup: dict[str, Any],
) -> StoredProduct | None:
    """The product a new one of this category and setup is compared with: the newest
    earlier certified one, else the newest earlier one not rejected. ``setup``: the
    keywords (and values) that make the category's setup (``InstrumentConfig.setup_of``).

    Rows are read newest first, a few at a time, until one of the setup turns up: the
    cost does not grow with the history of the category."""
    query = (
        select(ProductRow)
        .where(
            ProductRow.instrument == instrument,
            ProductRow.pro_catg == pro_catg,
            ProductRow.mid_mjd < before_mjd,
        )
        .order_by(ProductRow.mid_mjd.desc(), ProductRow.id.desc())
        .execution_options(yield_per=_BATCH)
    )
    for statuses in (CERTIFIED_STATES, None):
        rows = query.where(
            ProductRow.status.in_(statuses) if statuses else ProductRow.status != "rejected"
        )
        result = session.scalars(rows)
        try:
            for row in result:
                if same_setup(row.header, setup):
                    return _stored(row)
        finally:
            result.close()
    return None


#: Rows fetched at a time by the newest-first searches.
_BATCH = 32


def same_setup(header: Mapping[str, Any], setup: Mapping[str, Any]) -> bool:
    """Whether a product's header has the values of ``setup`` (a keyword neither has
    is the same, unrecorded setup)."""
    return all(header.get(key) == value for key, value in setup.items())


def mark_scored(session: Session, product_id: int) -> bool:
    """candidate -> scored (a product further along keeps its status); whether it moved."""
    row = session.get(ProductRow, product_id)
    if row is not None and row.status == "candidate":
        row.status = "scored"
        row.scored_at = dt.datetime.now(dt.UTC)
        return True
    return False


def decision_of(status: str) -> str | None:
    """The QC decision a product status stands for, as association takes it:
    "certified", "rejected", or None (not decided).

    >>> decision_of("archived"), decision_of("rejected"), decision_of("scored")
    ('certified', 'rejected', None)
    """
    if status in CERTIFIED_STATES:
        return "certified"
    return "rejected" if status == "rejected" else None


def _note_decision_change(session: Session, row: ProductRow) -> None:
    """Queue the product's block for association (``decision_changes``)."""
    session.add(
        DecisionChangeRow(
            instrument=row.instrument, ab_id=row.ab_id, changed_at=dt.datetime.now(dt.UTC)
        )
    )


def set_product_status(session: Session, product_id: int, status: str) -> None:
    """Move a product along its lifecycle (candidate, scored, certified, rejected...);
    a change of its QC decision is queued for association."""
    row = session.get(ProductRow, product_id)
    if row is None:
        raise KeyError(product_id)
    if decision_of(row.status) != decision_of(status):
        _note_decision_change(session, row)
    row.status = status


def set_review(
    session: Session,
    product_id: int,
    *,
    review_reason: str | None,
    taint_reason: str | None = None,
    keep_taint: bool = True,
) -> None:
    """Record why a product is (or is not) in the review queue, and its taint."""
    row = session.get(ProductRow, product_id)
    if row is None:
        raise KeyError(product_id)
    row.review_reason = review_reason
    if not keep_taint or taint_reason is not None:
        row.taint_reason = taint_reason


def get_product(session: Session, product_id: int) -> StoredProduct | None:
    row = session.get(ProductRow, product_id)
    return _stored(row) if row is not None else None


def get_products(session: Session, ids: list[int]) -> list[StoredProduct]:
    """The products with these ids, in the order asked; KeyError names a missing one."""
    rows = {r.id: r for r in session.scalars(select(ProductRow).where(ProductRow.id.in_(ids)))}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise KeyError(missing[0])
    return [_stored(rows[i]) for i in ids]


def product_by_name(session: Session, name: str) -> StoredProduct | None:
    """A product by its file name (the end of its path)."""
    for row in session.scalars(select(ProductRow).where(ProductRow.path.like(f"%/{name}"))):
        if row.path.rsplit("/", 1)[-1] == name:
            return _stored(row)
    return None


def product_by_sha256(session: Session, sha256: str) -> StoredProduct | None:
    """The product whose file has this SHA-256 (None: none)."""
    row = session.scalars(select(ProductRow).where(ProductRow.sha256 == sha256)).first()
    return _stored(row) if row else None


def products_in(session: Session, statuses: tuple[str, ...]) -> list[StoredProduct]:
    query = (
        select(ProductRow)
        .where(ProductRow.status.in_(statuses))
        .order_by(ProductRow.night, ProductRow.mid_mjd, ProductRow.id)
    )
    return [_stored(r) for r in session.scalars(query)]


def unreviewed_scored(session: Session) -> list[StoredProduct]:
    """Scored products not in the review queue and not tainted: those automatic
    certification considers (the review queue's backlog is not read)."""
    query = (
        select(ProductRow)
        .where(
            ProductRow.status == "scored",
            ProductRow.review_reason.is_(None),
            ProductRow.taint_reason.is_(None),
            ProductRow.scored_at.is_not(None),
        )
        .order_by(ProductRow.night, ProductRow.mid_mjd, ProductRow.id)
    )
    return [_stored(r) for r in session.scalars(query)]


def block_nights(session: Session, ab_ids: Collection[str]) -> set[dt.date]:
    """The nights of these blocks."""
    ids = sorted(ab_ids)
    out: set[dt.date] = set()
    for start in range(0, len(ids), 500):  # bound the IN list
        query = select(AssociationBlockRow.night).where(
            AssociationBlockRow.id.in_(ids[start : start + 500])
        )
        out.update(session.scalars(query.distinct()))
    return out


def tainted_nights(session: Session, pro_catg: str) -> set[dt.date]:
    """The nights of this category's products marked tainted (and not rejected)."""
    query = select(ProductRow.night).where(
        ProductRow.pro_catg == pro_catg,
        ProductRow.taint_reason.is_not(None),
        ProductRow.status != "rejected",
    )
    return set(session.scalars(query.distinct()))


def provenance_checksums(provenance: dict[str, Any]) -> set[str]:
    """The SHA-256s of the files a product was made from (calibrations, inputs)."""
    calibrations = provenance.get("calibrations", {})
    used = {s for shas in calibrations.values() for s in shas}
    return used | set(provenance.get("input_sha256", [])) | set(provenance.get("inputs", []))


def products_made_with(session: Session, sha256s: set[str]) -> list[StoredProduct]:
    """Products whose provenance names any of these files (by SHA-256) among its
    calibrations or inputs (a night-level product's inputs are products)."""
    out = []
    for row in session.scalars(select(ProductRow).order_by(ProductRow.mid_mjd, ProductRow.id)):
        if provenance_checksums(row.provenance or {}) & sha256s:
            out.append(_stored(row))
    return out


def qc_decisions(
    session: Session, instrument: str, ab_ids: Collection[str] | None = None
) -> dict[str, tuple[str, str]]:
    """QC decisions on an instrument's products (of the blocks ``ab_ids``; default
    all), as association takes them: ``<ab_id>:<PRO.CATG>`` -> ("certified" |
    "rejected", why)."""
    # Four short columns, not the rows (whose header and provenance JSON cost 20x more
    # to read).
    columns = (ProductRow.ab_id, ProductRow.pro_catg, ProductRow.path, ProductRow.status)
    decided = (*CERTIFIED_STATES, "rejected")
    if ab_ids is None:
        query = select(*columns).where(
            ProductRow.instrument == instrument, ProductRow.status.in_(decided)
        )
        rows = list(session.execute(query))
    else:
        # By block only: with the instrument or the status too, SQLite would walk
        # every product of the instrument (or of those statuses) instead.
        names = sorted(ab_ids)
        rows = []
        for start in range(0, len(names), 900):  # below SQLite's parameter limit
            query = select(*columns, ProductRow.instrument).where(
                ProductRow.ab_id.in_(names[start : start + 900])
            )
            rows += [r[:4] for r in session.execute(query) if r[4] == instrument]
        rows = [r for r in rows if r[3] in decided]
    out = {}
    for ab_id, pro_catg, path, status in rows:
        name = path.rsplit("/", 1)[-1]
        if status == "rejected":
            out[f"{ab_id}:{pro_catg}"] = ("rejected", f"{name} rejected by QC: never used")
        else:
            out[f"{ab_id}:{pro_catg}"] = ("certified", f"{name} {status}")
    return out


def decision_changes(session: Session, instrument: str) -> dict[int, str]:
    """The instrument's queued decision changes association has not taken: id -> block."""
    query = select(DecisionChangeRow.id, DecisionChangeRow.ab_id).where(
        DecisionChangeRow.instrument == instrument
    )
    return {int(row[0]): str(row[1]) for row in session.execute(query)}


def take_decision_changes(session: Session, ids: Collection[int]) -> None:
    """Remove queued decision changes association has taken."""
    names = sorted(ids)
    for start in range(0, len(names), 900):
        session.execute(
            delete(DecisionChangeRow).where(DecisionChangeRow.id.in_(names[start : start + 900]))
        )


def reopen_block(session: Session, ab_id: str, reason: str) -> None:
    """Set a done block back to 'created' so that the next pass processes it again."""
    row = session.get(AssociationBlockRow, ab_id)
    if row is not None:
        row.state, row.state_reason, row.attempts = "created", reason, 0


def remove_products_of_block(session: Session, ab_id: str) -> list[str]:
    """Delete a block's product rows with their QC values and scores; returns the paths
    (the files are the caller's: they are replaced in place)."""
    from qclib.db.models import ScoreRow

    rows = list(session.scalars(select(ProductRow).where(ProductRow.ab_id == ab_id)))
    for row in rows:
        if decision_of(row.status) is not None:
            _note_decision_change(session, row)
        session.execute(delete(ScoreRow).where(ScoreRow.product_id == row.id))
        session.execute(delete(QCValueRow).where(QCValueRow.product_id == row.id))
        session.delete(row)
    session.flush()
    return [r.path for r in rows]
