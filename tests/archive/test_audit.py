"""The audit log is append-only (the database refuses changes) and hash-chained: `qc audit
verify` names a row edited or deleted behind the tool's back, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from qclib.archive.audit import record_head, verify_audit
from qclib.cli import main
from qclib.db import audit as audit_store


def _write(workspace, db, n: int) -> None:
    for i in range(n):
        with db.transaction() as session:
            audit_store.append(
                session,
                actor="anna",
                action="certify",
                product=f"P{i}.fits",
                product_id=i + 1,
                old_status="scored",
                new_status="certified",
                comment=f"decision {i}",
            )
        record_head(workspace, db)


def _behind_the_tools_back(db, sql: str) -> None:
    """Change the table the way someone with database access could: without triggers."""
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
        else:
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        conn.execute(text(sql))


def _verify_cli(workspace) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--workspace", str(workspace.root), "audit", "verify"])
    return result.exit_code, result.output


@pytest.mark.parametrize("sql", ["UPDATE audit_log SET comment = 'x'", "DELETE FROM audit_log"])
def test_the_database_refuses_to_change_the_log(workspace, sql: str) -> None:
    db = workspace.open_database()
    _write(workspace, db, 2)
    with pytest.raises(DatabaseError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text(sql))
    assert verify_audit(workspace, db) == (2, [])
    db.close()


def test_verify_names_an_edited_row(workspace) -> None:
    db = workspace.open_database()
    _write(workspace, db, 5)
    assert _verify_cli(workspace) == (0, "audit log intact: 5 rows, chain and head verified\n")
    _behind_the_tools_back(db, "UPDATE audit_log SET comment = 'fine' WHERE id = 2")
    checked, problems = verify_audit(workspace, db)
    assert checked == 5 and len(problems) == 1
    assert problems[0].startswith("row 2 (certify P1.fits by anna) was changed")
    code, output = _verify_cli(workspace)
    assert code == 1 and "row 2" in output
    db.close()


def test_verify_names_a_deleted_row_and_deleted_last_rows(workspace) -> None:
    db = workspace.open_database()
    _write(workspace, db, 5)
    _behind_the_tools_back(db, "DELETE FROM audit_log WHERE id = 3")
    _, problems = verify_audit(workspace, db)
    assert problems == ["rows 3..3 are missing (deleted): the chain breaks between row 2 and row 4"]
    _behind_the_tools_back(db, "DELETE FROM audit_log WHERE id >= 4")  # the tail: no break
    _, problems = verify_audit(workspace, db)
    assert problems == ["row 5, recorded as written, is missing: the newest rows were deleted"]
    assert _verify_cli(workspace)[0] == 1
    db.close()
