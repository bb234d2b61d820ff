"""Database side of ingest: frames, quarantine entries and the log of sources seen."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qclib.db.models import FrameRow, QuarantineRow, SourceRow
from qclib.frames import FrameInfo


@dataclass(frozen=True)
class StoredFrame:
    """An ingested frame as the index holds it."""

    id: int
    arcfile: str
    instrument: str
    night: dt.date
    mjd_obs: float
    exptime_s: float
    dpr_catg: str | None
    dpr_type: str | None
    dpr_tech: str | None
    object: str | None
    tpl_id: str | None
    filters: str | None
    detectors: list[str]
    path: str
    sha256: str
    size_bytes: int
    source_path: str
    ingested_at: dt.datetime
    keywords: dict[str, Any]
    do_catg: str | None = None
    classification: dict[str, Any] | None = None

    def as_dict(self, *, with_keywords: bool = False) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("keywords", "classification")}
        out["night"] = self.night.isoformat()
        out["ingested_at"] = self.ingested_at.isoformat()
        if with_keywords:
            out["keywords"] = self.keywords
        return out


@dataclass(frozen=True)
class QuarantineEntry:
    """A quarantined file: where it came from, where it is kept, and why."""

    id: int
    source_path: str
    stored_path: str
    sha256: str
    size_bytes: int
    reason_code: str
    reason: str
    quarantined_at: dt.datetime
    resolved_at: dt.datetime | None
    resolution: str | None

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["quarantined_at"] = self.quarantined_at.isoformat()
        out["resolved_at"] = self.resolved_at.isoformat() if self.resolved_at else None
        return out


@dataclass(frozen=True)
class SeenSource:
    size_bytes: int
    mtime_ns: int
    sha256: str
    frame_id: int | None
    quarantine_id: int | None
    pending_dest: str | None = None
    source_path: str = ""


def _stored_frame(row: FrameRow) -> StoredFrame:
    return StoredFrame(
        id=row.id,
        arcfile=row.arcfile,
        instrument=row.instrument,
        night=row.night,
        mjd_obs=row.mjd_obs,
        exptime_s=row.exptime_s,
        dpr_catg=row.dpr_catg,
        dpr_type=row.dpr_type,
        dpr_tech=row.dpr_tech,
        object=row.object,
        tpl_id=row.tpl_id,
        filters=row.filters,
        detectors=list(row.detectors),
        path=row.path,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        source_path=row.source_path,
        ingested_at=row.ingested_at,
        keywords=dict(row.keywords),
        do_catg=row.do_catg,
        classification=row.classification,
    )


def _entry(row: QuarantineRow) -> QuarantineEntry:
    return QuarantineEntry(
        id=row.id,
        source_path=row.source_path,
        stored_path=row.stored_path,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        reason_code=row.reason_code,
        reason=row.reason,
        quarantined_at=row.quarantined_at,
        resolved_at=row.resolved_at,
        resolution=row.resolution,
    )


def seen_source(session: Session, source_path: str) -> SeenSource | None:
    row = session.scalars(select(SourceRow).where(SourceRow.source_path == source_path)).first()
    if row is None:
        return None
    return _seen(row)


def _seen(row: SourceRow) -> SeenSource:
    return SeenSource(
        row.size_bytes,
        row.mtime_ns,
        row.sha256,
        row.frame_id,
        row.quarantine_id,
        row.pending_dest,
        row.source_path,
    )


def pending_moves(session: Session) -> list[SeenSource]:
    """Sources whose move into data/raw was started but not recorded as finished."""
    rows = session.scalars(select(SourceRow).where(SourceRow.pending_dest.is_not(None)))
    return [_seen(row) for row in rows]


def record_source(
    session: Session,
    source_path: str,
    *,
    size_bytes: int,
    mtime_ns: int,
    sha256: str,
    frame_id: int | None = None,
    quarantine_id: int | None = None,
    pending_dest: str | None = None,
) -> None:
    """Remember what ingest concluded about a source file (insert or update)."""
    row = session.scalars(select(SourceRow).where(SourceRow.source_path == source_path)).first()
    if row is None:
        row = SourceRow(source_path=source_path)
        session.add(row)
    row.size_bytes = size_bytes
    row.mtime_ns = mtime_ns
    row.sha256 = sha256
    row.frame_id = frame_id
    row.quarantine_id = quarantine_id
    row.pending_dest = pending_dest
    row.seen_at = dt.datetime.now(dt.UTC)


def frame_by_sha256(session: Session, sha256: str) -> StoredFrame | None:
    row = session.scalars(select(FrameRow).where(FrameRow.sha256 == sha256)).first()
    return _stored_frame(row) if row else None


def frame_by_arcfile(session: Session, arcfile: str) -> StoredFrame | None:
    row = session.scalars(select(FrameRow).where(FrameRow.arcfile == arcfile)).first()
    return _stored_frame(row) if row else None


def add_frame(
    session: Session,
    info: FrameInfo,
    *,
    path: str,
    sha256: str,
    size_bytes: int,
    source_path: str,
    do_catg: str | None = None,
    classification: dict[str, Any] | None = None,
) -> int:
    """Index a frame; returns its id."""
    row = FrameRow(
        arcfile=info.arcfile,
        sha256=sha256,
        instrument=info.instrument,
        night=info.night,
        mjd_obs=info.mjd_obs,
        date_obs=info.date_obs,
        exptime_s=info.exptime_s,
        dpr_catg=info.dpr_catg,
        dpr_type=info.dpr_type,
        dpr_tech=info.dpr_tech,
        object=info.object,
        tpl_id=info.tpl_id,
        tpl_start=info.tpl_start,
        prog_id=info.prog_id,
        filters=info.filters,
        detectors=list(info.detectors),
        keywords=info.keywords,
        path=path,
        size_bytes=size_bytes,
        source_path=source_path,
        ingested_at=dt.datetime.now(dt.UTC),
        do_catg=do_catg,
        classification=classification,
    )
    session.add(row)
    session.flush()
    return row.id


def list_frames(
    session: Session, *, night: dt.date | None = None, instrument: str | None = None
) -> list[StoredFrame]:
    query = select(FrameRow).order_by(FrameRow.mjd_obs)
    if night is not None:
        query = query.where(FrameRow.night == night)
    if instrument is not None:
        query = query.where(FrameRow.instrument == instrument.upper())
    return [_stored_frame(row) for row in session.scalars(query)]


def add_quarantine(
    session: Session,
    *,
    source_path: str,
    stored_path: str,
    sha256: str,
    size_bytes: int,
    reason_code: str,
    reason: str,
) -> int:
    row = QuarantineRow(
        source_path=source_path,
        stored_path=stored_path,
        sha256=sha256,
        size_bytes=size_bytes,
        reason_code=reason_code,
        reason=reason,
        quarantined_at=dt.datetime.now(dt.UTC),
    )
    session.add(row)
    session.flush()
    return row.id


def resolve_quarantine_of_source(session: Session, source_path: str, resolution: str) -> int:
    """Mark the open quarantine entries of a source as resolved; returns how many."""
    rows = session.scalars(
        select(QuarantineRow).where(
            QuarantineRow.source_path == source_path, QuarantineRow.resolved_at.is_(None)
        )
    ).all()
    for row in rows:
        row.resolved_at = dt.datetime.now(dt.UTC)
        row.resolution = resolution
    return len(rows)


def list_quarantine(session: Session, *, include_resolved: bool = False) -> list[QuarantineEntry]:
    query = select(QuarantineRow).order_by(QuarantineRow.id)
    if not include_resolved:
        query = query.where(QuarantineRow.resolved_at.is_(None))
    return [_entry(row) for row in session.scalars(query)]


def frames_between(
    session: Session, instrument: str, lo_mjd: float, hi_mjd: float
) -> list[StoredFrame]:
    """An instrument's frames whose MJD-OBS lies in [lo_mjd, hi_mjd], in time order."""
    query = (
        select(FrameRow)
        .where(
            FrameRow.instrument == instrument,
            FrameRow.mjd_obs >= lo_mjd,
            FrameRow.mjd_obs <= hi_mjd,
        )
        .order_by(FrameRow.mjd_obs)
    )
    return [_stored_frame(row) for row in session.scalars(query)]


def frames_after(session: Session, instrument: str, frame_id: int) -> list[StoredFrame]:
    """An instrument's frames indexed after frame ``frame_id`` (ids only grow)."""
    query = (
        select(FrameRow)
        .where(FrameRow.instrument == instrument, FrameRow.id > frame_id)
        .order_by(FrameRow.mjd_obs)
    )
    return [_stored_frame(row) for row in session.scalars(query)]


def frames_by_arcfile(session: Session, arcfiles: list[str]) -> list[StoredFrame]:
    """The indexed frames among ``arcfiles`` (unknown names are left out)."""
    out = []
    names = sorted(set(arcfiles))
    for start in range(0, len(names), 900):  # below SQLite's parameter limit
        query = select(FrameRow).where(FrameRow.arcfile.in_(names[start : start + 900]))
        out += [_stored_frame(row) for row in session.scalars(query)]
    return out


def frames_with_catg(session: Session, instrument: str, do_catg: str) -> list[StoredFrame]:
    """An instrument's frames classified as ``do_catg``, in time order."""
    # Sorted here: ordered in SQL, SQLite would walk the instrument's frames in time
    # order rather than look the category up (index on instrument and category).
    query = select(FrameRow).where(FrameRow.instrument == instrument, FrameRow.do_catg == do_catg)
    rows = sorted(session.scalars(query), key=lambda row: (row.mjd_obs, row.id))
    return [_stored_frame(row) for row in rows]


def frame_count(session: Session, instrument: str) -> tuple[int, int]:
    """An instrument's indexed frames: (how many, the newest frame id or 0)."""
    count, newest = session.execute(
        select(func.count(), func.max(FrameRow.id)).where(FrameRow.instrument == instrument)
    ).one()
    return int(count), int(newest or 0)
