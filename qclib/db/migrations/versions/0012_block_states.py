"""Blocks looked up by processing state, so that a pass reads what is left to do.

Processing reads the blocks not done. Without an index on the state that read went
through every block of the history; blocks that wait for a recipe that does not exist
(science, until it has one) are recorded as waiting and are looked up by state and
recipe only once their recipe exists.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_association_blocks_state_recipe", "association_blocks", ["state", "recipe"]
    )


def downgrade() -> None:
    op.drop_index("ix_association_blocks_state_recipe", "association_blocks")
