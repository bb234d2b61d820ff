"""Review and certification: reviewers, the append-only audit log, the archive, passes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_APPEND_ONLY = "audit_log is append-only: its rows are never changed or deleted"


def upgrade() -> None:
    with op.batch_alter_table("products") as batch:
        # Why the product is in the review queue (NOK, drawn at random, tainted...);
        # NULL: not drawn, so certified automatically after the workspace's delay.
        batch.add_column(sa.Column("review_reason", sa.Text))
        batch.add_column(sa.Column("taint_reason", sa.Text))
        batch.add_column(sa.Column("scored_at", sa.DateTime(timezone=True)))
    op.create_table(
        "reviewers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(80), nullable=False, unique=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("product_id", sa.Integer, index=True),
        sa.Column("product", sa.Text, nullable=False),
        sa.Column("old_status", sa.String(20)),
        sa.Column("new_status", sa.String(20)),
        sa.Column("comment", sa.Text),
        # The chain: each row names the hash of the row before it (unique: two writers
        # can never both extend the same row) and carries its own.
        sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("row_hash", sa.String(64), nullable=False, unique=True),
    )
    op.create_table(
        "archive_files",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(120), nullable=False, unique=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("product_id", sa.Integer, index=True),
        sa.Column("product", sa.Text, nullable=False),
        sa.Column("instrument", sa.String(40), nullable=False, index=True),
        sa.Column("pro_catg", sa.String(80), nullable=False),
        sa.Column("night", sa.Date, nullable=False),
        sa.Column("mid_mjd", sa.Float, nullable=False),
        sa.Column("setup", sa.JSON, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_reason", sa.Text),
        sa.Column("report_of", sa.String(120)),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "passes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("summary", sa.JSON),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$ BEGIN "
            f"RAISE EXCEPTION '{_APPEND_ONLY}'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
            "ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    op.drop_table("passes")
    op.drop_table("archive_files")
    op.drop_table("audit_log")
    op.drop_table("reviewers")
    with op.batch_alter_table("products") as batch:
        batch.drop_column("scored_at")
        batch.drop_column("taint_reason")
        batch.drop_column("review_reason")
