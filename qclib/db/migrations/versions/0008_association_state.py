"""Incremental association: its state per instrument, and indexes on time windows.

Association redoes only the window of time that new frames (or new QC decisions)
touch: it reads frames and blocks of one instrument between two times, and
ingest looks quarantine entries up by source path.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "association_state",
        sa.Column("instrument", sa.String(40), primary_key=True),
        sa.Column("rules_digest", sa.String(64), nullable=False),
        sa.Column("last_frame_id", sa.Integer, nullable=False),
        sa.Column("decisions", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_frames_instrument_mjd_obs", "frames", ["instrument", "mjd_obs"])
    op.create_index(
        "ix_association_blocks_instrument_mid_mjd",
        "association_blocks",
        ["instrument", "mid_mjd"],
    )
    op.create_index("ix_quarantine_source_path", "quarantine", ["source_path"])


def downgrade() -> None:
    op.drop_index("ix_quarantine_source_path", "quarantine")
    op.drop_index("ix_association_blocks_instrument_mid_mjd", "association_blocks")
    op.drop_index("ix_frames_instrument_mjd_obs", "frames")
    op.drop_table("association_state")
