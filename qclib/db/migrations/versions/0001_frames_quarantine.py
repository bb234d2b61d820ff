"""Frames, quarantine and the ingest source log.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "frames",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("arcfile", sa.String(120), nullable=False, unique=True),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("instrument", sa.String(40), nullable=False, index=True),
        sa.Column("night", sa.Date, nullable=False, index=True),
        sa.Column("mjd_obs", sa.Float, nullable=False, index=True),
        sa.Column("date_obs", sa.String(30), nullable=False),
        sa.Column("exptime_s", sa.Float, nullable=False),
        sa.Column("dpr_catg", sa.String(60)),
        sa.Column("dpr_type", sa.String(60)),
        sa.Column("dpr_tech", sa.String(60)),
        sa.Column("object", sa.String(120)),
        sa.Column("tpl_id", sa.String(120)),
        sa.Column("tpl_start", sa.String(30)),
        sa.Column("prog_id", sa.String(40)),
        sa.Column("filters", sa.String(120)),
        sa.Column("detectors", sa.JSON, nullable=False),
        sa.Column("keywords", sa.JSON, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("source_path", sa.Text, nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source_path", sa.Text, nullable=False),
        sa.Column("stored_path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, index=True),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("reason_code", sa.String(40), nullable=False, index=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("resolution", sa.Text),
    )
    op.create_table(
        "ingest_sources",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source_path", sa.Text, nullable=False, unique=True),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("frame_id", sa.Integer, sa.ForeignKey("frames.id")),
        sa.Column("quarantine_id", sa.Integer, sa.ForeignKey("quarantine.id")),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ingest_sources")
    op.drop_table("quarantine")
    op.drop_table("frames")
