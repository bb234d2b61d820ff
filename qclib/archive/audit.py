"""The audit log as the workspace keeps it: rows in the database, the newest row's
(id, hash) in ``data/audit-head.json`` (written after each committed decision), and
the check of both (``qc audit verify``)."""

from __future__ import annotations

import json

from qclib.atomicfile import write_text_atomic
from qclib.db import Database
from qclib.db import audit as audit_store
from qclib.workspace import Workspace

HEAD_FILE = "audit-head.json"


def record_head(workspace: Workspace, database: Database) -> None:
    """Write the newest row's id and hash beside the database (after a commit)."""
    with database.transaction() as session:
        newest = audit_store.head(session)
    if newest is None:
        return
    path = workspace.data_dir / HEAD_FILE
    known = audit_store.read_head_file(path)
    if known is not None and known[0] >= newest[0]:
        return  # another writer recorded a newer one
    write_text_atomic(path, json.dumps({"id": newest[0], "row_hash": newest[1]}) + "\n")


def verify_audit(workspace: Workspace, database: Database) -> tuple[int, list[str]]:
    """(rows checked, problems): every changed, removed or out-of-chain row, named."""
    with database.transaction() as session:
        rows = audit_store.all_rows(session)
        problems = audit_store.verify_chain(
            rows, audit_store.read_head_file(workspace.data_dir / HEAD_FILE)
        )
    return len(rows), problems
