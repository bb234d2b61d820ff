"""SQLAlchemy models of the QC database. Schema changes go through alembic migrations."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class FrameRow(Base):
    """One ingested raw frame: header facts only, never pixels."""

    __tablename__ = "frames"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    arcfile: Mapped[str] = mapped_column(String(120), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    instrument: Mapped[str] = mapped_column(String(40), index=True)
    night: Mapped[dt.date] = mapped_column(Date, index=True)
    mjd_obs: Mapped[float] = mapped_column(Float, index=True)
    date_obs: Mapped[str] = mapped_column(String(30))
    exptime_s: Mapped[float] = mapped_column(Float)
    dpr_catg: Mapped[str | None] = mapped_column(String(60))
    dpr_type: Mapped[str | None] = mapped_column(String(60))
    dpr_tech: Mapped[str | None] = mapped_column(String(60))
    object: Mapped[str | None] = mapped_column(String(120))
    tpl_id: Mapped[str | None] = mapped_column(String(120))
    tpl_start: Mapped[str | None] = mapped_column(String(30))
    prog_id: Mapped[str | None] = mapped_column(String(40))
    filters: Mapped[str | None] = mapped_column(String(120))
    detectors: Mapped[list[str]] = mapped_column(JSON)
    keywords: Mapped[dict[str, Any]] = mapped_column(JSON)
    do_catg: Mapped[str | None] = mapped_column(String(80), index=True)
    #: How the rules classified it: {assigned: {...}, rule_line, rule_text, near_misses}.
    classification: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    path: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    source_path: Mapped[str] = mapped_column(Text)
    ingested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    # Association reads an instrument's frames in a window of time (migration 0008).
    __table_args__ = (
        Index("ix_frames_instrument_mjd_obs", "instrument", "mjd_obs"),
        Index("ix_frames_instrument_do_catg", "instrument", "do_catg"),  # 0013
    )


class QuarantineRow(Base):
    """A file that could not be ingested, kept with its reason."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_path: Mapped[str] = mapped_column(Text, index=True)
    stored_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    reason_code: Mapped[str] = mapped_column(String(40), index=True)
    reason: Mapped[str] = mapped_column(Text)
    quarantined_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    resolution: Mapped[str | None] = mapped_column(Text)


class SourceRow(Base):
    """A source file ingest has already looked at, so that a re-run skips it cheaply."""

    __tablename__ = "ingest_sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_path: Mapped[str] = mapped_column(Text, unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    frame_id: Mapped[int | None] = mapped_column(ForeignKey("frames.id"))
    quarantine_id: Mapped[int | None] = mapped_column(ForeignKey("quarantine.id"))
    #: Set while a source is being moved into data/raw: the write-ahead record that
    #: lets the next pass finish a move a killed process left half done.
    pending_dest: Mapped[str | None] = mapped_column(Text)

    # Only the unfinished moves, which every ingest looks up (0013).
    __table_args__ = (
        Index(
            "ix_ingest_sources_pending_dest",
            "pending_dest",
            sqlite_where=text("pending_dest IS NOT NULL"),
            postgresql_where=text("pending_dest IS NOT NULL"),
        ),
    )
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class AssociationBlockRow(Base):
    """A planned unit of processing (see qclib.associate); ``content`` holds the full AB."""

    __tablename__ = "association_blocks"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    instrument: Mapped[str] = mapped_column(String(40), index=True)
    action: Mapped[str] = mapped_column(String(80))
    recipe: Mapped[str | None] = mapped_column(String(80))
    night: Mapped[dt.date] = mapped_column(Date, index=True)
    mid_mjd: Mapped[float] = mapped_column(Float)
    completeness: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    rules_digest: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    #: Processing state: created, running, waiting, done, failed (with state_reason).
    state: Mapped[str] = mapped_column(String(20), default="created")
    state_reason: Mapped[str | None] = mapped_column(Text)
    #: Failed runs of the recipe so far (a pass retries up to the workspace's max_retries).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: How far (days) from the block a changed candidate can change its association
    #: (``AssociationBlock.horizon_days``); NULL: unknown, as far as the reach (0010).
    horizon_days: Mapped[float | None] = mapped_column(Float, nullable=True)

    # Incremental association reads an instrument's blocks in a window of time (0008);
    # processing reads the blocks not done, by state (0012); a pass counts them (0013).
    __table_args__ = (
        Index("ix_association_blocks_instrument_mid_mjd", "instrument", "mid_mjd"),
        Index("ix_association_blocks_state_recipe", "state", "recipe"),
        Index("ix_association_blocks_instrument_completeness", "instrument", "completeness"),
    )


class AssociationStateRow(Base):
    """What an instrument's stored blocks were last associated from, so that the next
    association redoes only the blocks new frames or QC decisions can change."""

    __tablename__ = "association_state"

    instrument: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: Digest of the rules and configuration the stored blocks were made with.
    rules_digest: Mapped[str] = mapped_column(String(64))
    #: The newest frame id (frames.id) the stored blocks include.
    last_frame_id: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class DecisionChangeRow(Base):
    """A block whose products' QC decision changed (certified, rejected, neither, or
    gone) since association last took its decisions: written with the change, and
    removed by the association that takes it (0011)."""

    __tablename__ = "decision_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instrument: Mapped[str] = mapped_column(String(40), index=True)
    ab_id: Mapped[str] = mapped_column(String(200))
    changed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ProductRow(Base):
    """A product file made by a recipe from one AB."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ab_id: Mapped[str] = mapped_column(String(200), index=True)
    instrument: Mapped[str] = mapped_column(String(40), index=True)
    pro_catg: Mapped[str] = mapped_column(String(80), index=True)
    night: Mapped[dt.date] = mapped_column(Date, index=True)
    mid_mjd: Mapped[float] = mapped_column(Float)
    path: Mapped[str] = mapped_column(Text, unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    #: Lifecycle: candidate -> scored -> certified | rejected -> archived -> superseded.
    status: Mapped[str] = mapped_column(String(20))
    header: Mapped[dict[str, Any]] = mapped_column(JSON)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    #: When its values were graded (the auto-certification delay runs from here).
    scored_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: Why it is in the review queue (NOK values, drawn at random, tainted); None: not
    #: drawn, certified automatically after the workspace's delay.
    review_reason: Mapped[str | None] = mapped_column(Text)
    #: Set when a calibration it was made from (directly or not) was rejected.
    taint_reason: Mapped[str | None] = mapped_column(Text)

    # A pass looks up the newest earlier product of a category and the scored ones
    # (migration 0009); a PI package follows provenance by checksum (0014).
    __table_args__ = (
        Index("ix_products_instrument_pro_catg_mid_mjd", "instrument", "pro_catg", "mid_mjd"),
        Index("ix_products_status", "status"),
        Index("ix_products_sha256", "sha256"),
    )


class QCValueRow(Base):
    """One QC parameter value of one detector of one product."""

    __tablename__ = "qc_values"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    name: Mapped[str] = mapped_column(String(80), index=True)
    detector: Mapped[str] = mapped_column(String(40))
    value: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(20))

    __table_args__ = (Index("ix_qc_values_product_id_name", "product_id", "name"),)


class ScoreRow(Base):
    """The grade of one QC value, with the rule (and its version) that gave it."""

    __tablename__ = "scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    qc_value_id: Mapped[int] = mapped_column(ForeignKey("qc_values.id"), unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    grade: Mapped[str] = mapped_column(String(10), index=True)
    reason: Mapped[str] = mapped_column(Text)
    rule: Mapped[str | None] = mapped_column(String(200))
    low: Mapped[float | None] = mapped_column(Float)
    high: Mapped[float | None] = mapped_column(Float)
    scored_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class QualityEventRow(Base):
    """An intervention or incident that explains a jump in a trend."""

    __tablename__ = "quality_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instrument: Mapped[str] = mapped_column(String(40), index=True)
    date: Mapped[dt.date] = mapped_column(Date, index=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ReviewerRow(Base):
    """A person who may open the dashboards and certify; only the token's hash is kept."""

    __tablename__ = "reviewers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class AuditRow(Base):
    """One certification decision or lifecycle change. Append-only (database triggers
    refuse updates and deletes); each row carries the hash of the row before it."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[str] = mapped_column(String(32))  # ISO UTC, part of the hashed text
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))
    product_id: Mapped[int | None] = mapped_column(Integer, index=True)
    product: Mapped[str] = mapped_column(Text)  # file name: survives reprocessing
    old_status: Mapped[str | None] = mapped_column(String(20))
    new_status: Mapped[str | None] = mapped_column(String(20))
    comment: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    row_hash: Mapped[str] = mapped_column(String(64), unique=True)


class ArchiveFileRow(Base):
    """A file in the archive (a certified product, or the QC report beside it)."""

    __tablename__ = "archive_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # product | report
    product_id: Mapped[int | None] = mapped_column(Integer, index=True)
    product: Mapped[str] = mapped_column(Text)
    instrument: Mapped[str] = mapped_column(String(40), index=True)
    pro_catg: Mapped[str] = mapped_column(String(80))
    night: Mapped[dt.date] = mapped_column(Date)
    mid_mjd: Mapped[float] = mapped_column(Float)
    setup: Mapped[dict[str, Any]] = mapped_column(JSON)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    #: archived | superseded | withdrawn
    status: Mapped[str] = mapped_column(String(20))
    status_reason: Mapped[str | None] = mapped_column(Text)
    report_of: Mapped[str | None] = mapped_column(String(120))
    archived_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    # Archiving looks up the current master of a category (migration 0009).
    __table_args__ = (
        Index("ix_archive_files_instrument_pro_catg_status", "instrument", "pro_catg", "status"),
    )


class PassRow(Base):
    """One pass of the flow (``qc run``, ``qc watch``): when, and what it did."""

    __tablename__ = "passes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ObGradeRow(Base):
    """A science OB's grade against its constraints (``qclib.qc.ob_grading``)."""

    __tablename__ = "ob_grades"

    ab_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    instrument: Mapped[str] = mapped_column(String(40))
    night: Mapped[dt.date] = mapped_column(Date, index=True)
    prog_id: Mapped[str | None] = mapped_column(String(40), index=True)
    obs_id: Mapped[int | None] = mapped_column(BigInteger)
    grade: Mapped[str] = mapped_column(String(1))
    reason: Mapped[str] = mapped_column(Text)
    #: Each constraint: {constraint, requested, delivered, grade, reason}.
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    #: The science product the grade was measured on.
    product_sha256: Mapped[str] = mapped_column(String(64))
    graded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
