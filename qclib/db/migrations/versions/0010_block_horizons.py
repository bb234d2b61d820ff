"""Each block's association horizon, so that new frames redo only the blocks they change.

A block's association log changes only when a candidate within its horizon (the
night distance of the last runner-up it shows, or the whole validity window while
it has room for more) appears, goes or changes status. Incremental association
looks up the blocks whose horizon a change reaches by this column instead of
associating every block within the reach again. Blocks stored before it have none
(NULL: treated as the reach) until they are associated again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("association_blocks") as batch:
        batch.add_column(sa.Column("horizon_days", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("association_blocks") as batch:
        batch.drop_column("horizon_days")
