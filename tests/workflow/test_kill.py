"""A ``qc run`` killed with SIGKILL at random points and run again ends with exactly the
products of an uninterrupted run (same SHA-256), no duplicates, no leftovers."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qclib.atomicfile import TEMP_PREFIX
from qclib.db import products as product_store
from qclib.workflow.run import run_pass
from qclib.workspace import init_workspace

pytestmark = pytest.mark.slow


def _products(workspace) -> dict[str, str]:
    database = workspace.open_database()
    with database.transaction() as session:
        rows = product_store.list_products(session)
    database.close()
    stored = {r.path: r.sha256 for r in rows}
    assert len(stored) == len(rows)  # one row per product file
    for path, sha in stored.items():
        assert hashlib.sha256((workspace.root / path).read_bytes()).hexdigest() == sha
    on_disk = {
        str(p.relative_to(workspace.root)) for p in workspace.products_dir.rglob("*") if p.is_file()
    }
    assert on_disk == set(stored)  # nothing half-written, nothing unrecorded
    return stored


def _workspace(root: Path, night: Path):
    workspace = init_workspace(root)
    shutil.copytree(night, workspace.inbox / "night")
    return workspace


@pytest.fixture(scope="module")
def reference(tmp_path_factory, omegacam_night: Path) -> dict[str, str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("QC_DB_URL", raising=False)
        workspace = _workspace(tmp_path_factory.mktemp("uninterrupted") / "ws", omegacam_night)
        database = workspace.open_database()
        run_pass(workspace, database, write_reports=False)
        database.close()
        return _products(workspace)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_killed_pass_resumes_to_the_same_products(
    seed: int, reference: dict[str, str], omegacam_night: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("QC_DB_URL", raising=False)
    workspace = _workspace(tmp_path / "ws", omegacam_night)
    delay = random.Random(seed).uniform(1.0, 5.0)  # start-up is ~1.5 s, the pass ~2-3 s
    command = [sys.executable, "-m", "qclib.cli", "--workspace", str(workspace.root)]
    child = subprocess.Popen(
        [*command, "run", "--no-reports", "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "QC_DB_URL": ""},
    )
    time.sleep(delay)
    if child.poll() is None:
        child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    database = workspace.open_database()
    run_pass(workspace, database, write_reports=False)  # resume
    database.close()
    assert _products(workspace) == reference
    leftovers = list(workspace.root.rglob(f"{TEMP_PREFIX}*"))
    assert not leftovers


def test_temporaries_of_killed_and_unreaped_processes_are_swept(tmp_path: Path) -> None:
    """A killed worker may stay a zombie for a while (its parent died too): its
    temporaries are as dead as those of a process that is gone; a live one's are kept."""
    from qclib.atomicfile import sweep_stale_temporaries

    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        dead = tmp_path / f"{TEMP_PREFIX}{zombie.pid}-MASTER_BIAS.fits"
        kept = tmp_path / f"{TEMP_PREFIX}{live.pid}-MASTER_DARK.fits"
        dead.write_bytes(b"half")
        kept.write_bytes(b"being written")
        assert sweep_stale_temporaries(tmp_path) == [dead]
        assert kept.exists() and not dead.exists()
    finally:
        live.kill()
        live.wait()
        zombie.wait()
