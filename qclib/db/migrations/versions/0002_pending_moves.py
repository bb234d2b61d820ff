"""Journal of moves in progress: a source renamed into data/raw but not yet indexed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_sources") as batch:
        batch.add_column(sa.Column("pending_dest", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ingest_sources") as batch:
        batch.drop_column("pending_dest")
