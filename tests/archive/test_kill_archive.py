"""Archive ingestion killed with SIGKILL at any point leaves no half-ingested file: every
visible archive file is whole and has its record; the next archive operation completes
or undoes what was pending, and every certified product ends archived exactly once."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qclib.archive.audit import verify_audit
from qclib.archive.certification import archive_certified
from qclib.archive.store import verify_archive
from qclib.atomicfile import TEMP_PREFIX
from qclib.db import archive as archive_store
from qclib.db import products as product_store
from qclib.fitsio import sha256_file
from qclib.workflow.run import run_pass
from qclib.workspace import init_workspace, load_workspace
from tests.archive.conftest import fill_inbox

pytestmark = pytest.mark.slow

_CHILD = """
import sys
from qclib.archive.certification import archive_certified
from qclib.workspace import load_workspace
workspace = load_workspace(sys.argv[1])
database = workspace.open_database()
print("ready", flush=True)
archive_certified(workspace, database)
print("done", flush=True)
"""


@pytest.fixture(scope="module")
def certified_template(tmp_path_factory, bias_nights) -> Path:
    """A workspace whose four master biases are certified, none archived yet."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("QC_DB_URL", raising=False)
        workspace = init_workspace(tmp_path_factory.mktemp("kill-archive") / "ws")
        fill_inbox(workspace, bias_nights)
        database = workspace.open_database()
        run_pass(workspace, database, write_reports=False)
        with database.transaction() as session:
            for product in product_store.list_products(session):
                product_store.set_product_status(session, product.id, "certified")
        database.close()
        return workspace.root


@pytest.mark.parametrize("delay_s", [0.0, 0.05, 0.15, 0.3, 0.6])
def test_kill_during_ingestion_leaves_nothing_half_done(
    certified_template: Path, tmp_path: Path, monkeypatch, delay_s: float
) -> None:
    monkeypatch.delenv("QC_DB_URL", raising=False)
    root = tmp_path / "ws"
    shutil.copytree(certified_template, root)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    time.sleep(delay_s)
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()

    workspace = load_workspace(root)
    database = workspace.open_database()
    with database.transaction() as session:
        records = {
            workspace.confine(f.path): f for f in archive_store.files(session, include_pending=True)
        }
    visible = [
        p
        for p in workspace.archive_dir.rglob("*")
        if p.is_file() and not p.name.startswith(TEMP_PREFIX)
    ]
    for path in visible:  # whole, and recorded (maybe still pending)
        assert path in records, f"{path.name} is in the archive without a record"
        assert sha256_file(path) == records[path].sha256, f"{path.name} is half-written"

    archive_certified(workspace, database)  # completes or undoes what was pending
    with database.transaction() as session:
        products = product_store.list_products(session)
        archived = archive_store.files(session)
    assert {p.status for p in products} <= {"archived", "superseded"}
    assert sorted(f.sha256 for f in archived if f.kind == "product") == sorted(
        p.sha256 for p in products
    )  # each product archived exactly once
    assert not list(workspace.archive_dir.rglob(f"{TEMP_PREFIX}*"))
    assert verify_archive(workspace, database).ok
    assert verify_audit(workspace, database)[1] == []
    database.close()
