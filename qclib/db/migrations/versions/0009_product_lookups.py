"""Indexes for the lookups a pass makes in a long history.

Scoring and association look for the newest earlier product of a category
(``instrument, pro_catg, mid_mjd``, read newest first until one matches), and
automatic certification for the scored products (``status``), archiving for the
current master of a category and setup: without these, each lookup read every
product of the category, and a pass grew with the history.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_products_instrument_pro_catg_mid_mjd",
        "products",
        ["instrument", "pro_catg", "mid_mjd"],
    )
    op.create_index("ix_products_status", "products", ["status"])
    op.create_index("ix_qc_values_product_id_name", "qc_values", ["product_id", "name"])
    op.create_index(
        "ix_archive_files_instrument_pro_catg_status",
        "archive_files",
        ["instrument", "pro_catg", "status"],
    )


def downgrade() -> None:
    op.drop_index("ix_archive_files_instrument_pro_catg_status", "archive_files")
    op.drop_index("ix_qc_values_product_id_name", "qc_values")
    op.drop_index("ix_products_status", "products")
    op.drop_index("ix_products_instrument_pro_catg_mid_mjd", "products")
