"""Indexes for lookups every pass makes: unclassified frames, unfinished moves, counts.

Every association lists the instrument's unclassified frames and counts its
incomplete blocks, and every ingest looks for the sources whose move into data/raw
was started but not recorded as finished. With only the indexes on time, the first
two read every frame and every block of the instrument; the third read every source
ever ingested (SQLite uses no plain index for ``IS NOT NULL``: this one is partial,
holding only the unfinished moves).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_PENDING = sa.text("pending_dest IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_frames_instrument_do_catg", "frames", ["instrument", "do_catg"])
    op.create_index(
        "ix_association_blocks_instrument_completeness",
        "association_blocks",
        ["instrument", "completeness"],
    )
    op.create_index(
        "ix_ingest_sources_pending_dest",
        "ingest_sources",
        ["pending_dest"],
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_ingest_sources_pending_dest", "ingest_sources")
    op.drop_index("ix_association_blocks_instrument_completeness", "association_blocks")
    op.drop_index("ix_frames_instrument_do_catg", "frames")
