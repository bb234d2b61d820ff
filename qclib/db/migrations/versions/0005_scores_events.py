"""QC1 scores (grade, reason, rule version per value) and the quality-event log.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scores",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("qc_value_id", sa.Integer, sa.ForeignKey("qc_values.id"), nullable=False,
                  unique=True),
        sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id"), nullable=False,
                  index=True),
        sa.Column("grade", sa.String(10), nullable=False, index=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("rule", sa.String(200)),
        sa.Column("low", sa.Float),
        sa.Column("high", sa.Float),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "quality_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("instrument", sa.String(40), nullable=False, index=True),
        sa.Column("date", sa.Date, nullable=False, index=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("quality_events")
    op.drop_table("scores")
