"""The grade of each science OB against its constraints (ESO's A/B/C, with the reason
and every constraint's check); products by checksum (a PI package follows provenance,
which names files by SHA-256).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ob_grades",
        sa.Column("ab_id", sa.String(160), primary_key=True),
        sa.Column("instrument", sa.String(40), nullable=False),
        sa.Column("night", sa.Date, nullable=False),
        sa.Column("prog_id", sa.String(40)),
        sa.Column("obs_id", sa.BigInteger),
        sa.Column("grade", sa.String(1), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("checks", sa.JSON, nullable=False),
        sa.Column("product_sha256", sa.String(64), nullable=False),
        sa.Column("graded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ob_grades_prog_id", "ob_grades", ["prog_id"])
    op.create_index("ix_ob_grades_night", "ob_grades", ["night"])
    op.create_index("ix_products_sha256", "products", ["sha256"])


def downgrade() -> None:
    op.drop_index("ix_products_sha256", "products")
    op.drop_index("ix_ob_grades_night", "ob_grades")
    op.drop_index("ix_ob_grades_prog_id", "ob_grades")
    op.drop_table("ob_grades")
