"""QC decisions association has not taken yet, as a queue instead of a copy of them all.

Association kept every decision it took (one JSON value per instrument), read every
decision of the instrument's products each pass, compared the two and wrote the
whole value back: a pass grew with the history. Now a change of a product's
decision (certified, rejected, neither, or the product removed) adds its block to
``decision_changes`` in the same transaction, and the association that takes it
removes the row. Upgrading queues the blocks whose decisions differ from the copy
kept, then drops it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

import datetime as dt
import json

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_CERTIFIED = ("certified", "archived", "superseded")


def _kind(status: str) -> str | None:
    if status in _CERTIFIED:
        return "certified"
    return "rejected" if status == "rejected" else None


def upgrade() -> None:
    op.create_table(
        "decision_changes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("instrument", sa.String(40), nullable=False, index=True),
        sa.Column("ab_id", sa.String(200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    bind = op.get_bind()
    taken: dict[str, dict[str, str]] = {}
    for instrument, decisions in bind.execute(
        sa.text("SELECT instrument, decisions FROM association_state")
    ):
        value = json.loads(decisions) if isinstance(decisions, str) else decisions or {}
        taken[instrument] = {ref: d[0] for ref, d in value.items()}
    now: dict[str, dict[str, str]] = {name: {} for name in taken}
    for instrument, ab_id, pro_catg, status in bind.execute(
        sa.text("SELECT instrument, ab_id, pro_catg, status FROM products")
    ):
        kind = _kind(status)
        if instrument in now and kind is not None:
            now[instrument][f"{ab_id}:{pro_catg}"] = kind
    rows = []
    stamp = dt.datetime.now(dt.UTC)
    for instrument, old in taken.items():
        new = now[instrument]
        refs = {r for r in old.keys() | new.keys() if old.get(r) != new.get(r)}
        for ab_id in sorted({ref.rsplit(":", 1)[0] for ref in refs}):
            rows.append({"instrument": instrument, "ab_id": ab_id, "changed_at": stamp})
    if rows:
        table = sa.table(
            "decision_changes",
            sa.column("instrument", sa.String),
            sa.column("ab_id", sa.String),
            sa.column("changed_at", sa.DateTime(timezone=True)),
        )
        op.bulk_insert(table, rows)
    with op.batch_alter_table("association_state") as batch:
        batch.drop_column("decisions")


def downgrade() -> None:
    # The copy of decisions is not rebuilt: an empty one makes the next association
    # (of the older code) take every decision again.
    with op.batch_alter_table("association_state") as batch:
        batch.add_column(sa.Column("decisions", sa.JSON, nullable=False, server_default="{}"))
    op.drop_table("decision_changes")
