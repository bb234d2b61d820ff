"""Products, their QC values, and the processing state of association blocks.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ab_id", sa.String(200), nullable=False, index=True),
        sa.Column("instrument", sa.String(40), nullable=False, index=True),
        sa.Column("pro_catg", sa.String(80), nullable=False, index=True),
        sa.Column("night", sa.Date, nullable=False, index=True),
        sa.Column("mid_mjd", sa.Float, nullable=False),
        sa.Column("path", sa.Text, nullable=False, unique=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("header", sa.JSON, nullable=False),
        sa.Column("provenance", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "qc_values",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id"), nullable=False,
                  index=True),
        sa.Column("name", sa.String(80), nullable=False, index=True),
        sa.Column("detector", sa.String(40), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("unit", sa.String(20), nullable=False),
    )
    with op.batch_alter_table("association_blocks") as batch:
        batch.add_column(sa.Column("state", sa.String(20), nullable=False,
                                   server_default="created"))
        batch.add_column(sa.Column("state_reason", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("association_blocks") as batch:
        batch.drop_column("state_reason")
        batch.drop_column("state")
    op.drop_table("qc_values")
    op.drop_table("products")
