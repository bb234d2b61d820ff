"""Classification columns on frames; association blocks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("frames") as batch:
        batch.add_column(sa.Column("do_catg", sa.String(80), nullable=True))
        batch.add_column(sa.Column("classification", sa.JSON, nullable=True))
        batch.create_index("ix_frames_do_catg", ["do_catg"])
    op.create_table(
        "association_blocks",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("instrument", sa.String(40), nullable=False, index=True),
        sa.Column("action", sa.String(80), nullable=False),
        sa.Column("recipe", sa.String(80)),
        sa.Column("night", sa.Date, nullable=False, index=True),
        sa.Column("mid_mjd", sa.Float, nullable=False),
        sa.Column("completeness", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("rules_digest", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("association_blocks")
    with op.batch_alter_table("frames") as batch:
        batch.drop_index("ix_frames_do_catg")
        batch.drop_column("classification")
        batch.drop_column("do_catg")
