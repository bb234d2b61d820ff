"""The local process pool and Dask (LocalCluster, 2 workers) make exactly the products
of the serial run (same SHA-256), recording each block as it completes; each worker's
tasks run numba on the threads asked for."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qclib.db import products as product_store
from qclib.errors import ConfigError
from qclib.workflow.executors import open_executor, share_threads
from qclib.workflow.run import run_pass
from qclib.workspace import init_workspace

pytestmark = pytest.mark.slow


def _products_with(kind: str, root: Path, night: Path) -> dict[str, str]:
    workspace = init_workspace(root)
    shutil.copytree(night, workspace.inbox / "night")
    database = workspace.open_database()
    with open_executor(kind, workers=2) as executor:  # type: ignore[arg-type]
        summary = run_pass(workspace, database, write_reports=False, workers=executor)
    with database.transaction() as session:
        products = {p.path: p.sha256 for p in product_store.list_products(session)}
    database.close()
    assert sum(o.status == "done" for o in summary.outcomes) == 7
    return products


def test_pool_and_dask_make_the_serial_products(
    tmp_path: Path, omegacam_night: Path, monkeypatch
) -> None:
    monkeypatch.delenv("QC_DB_URL", raising=False)
    serial = _products_with("serial", tmp_path / "serial", omegacam_night)
    assert len(serial) == 9  # 8 from the 7 blocks, and the night's extinction
    assert _products_with("local", tmp_path / "local", omegacam_night) == serial
    assert _products_with("dask", tmp_path / "dask", omegacam_night) == serial


def test_unknown_executor_and_unreachable_scheduler() -> None:
    with (
        pytest.raises(ConfigError, match="unknown executor 'gpu'"),
        open_executor("gpu"),  # type: ignore[arg-type]
    ):
        pass
    with (
        pytest.raises(ConfigError, match=r"cannot reach the Dask scheduler tcp://127\.0\.0\.1:9"),
        open_executor("dask", scheduler="tcp://127.0.0.1:9"),
    ):
        pass


def _numba_threads() -> int:
    import numba

    return numba.get_num_threads()


@pytest.mark.parametrize("kind", ["local", "dask"])
def test_tasks_run_numba_on_the_threads_per_worker(kind: str) -> None:
    """Asked for, one thread per worker; by default, the cores shared out. On Dask the
    setting must reach the thread that runs the task (numba's is per thread)."""
    import os

    with open_executor(kind, workers=1, threads_per_worker=1) as workers:  # type: ignore[arg-type]
        assert workers.executor is not None and workers.threads == 1
        assert workers.executor.submit(_numba_threads).result() == 1
    cores = os.cpu_count() or 1
    with open_executor(kind, workers=1) as workers:  # type: ignore[arg-type]
        assert workers.executor is not None and workers.threads == cores
        assert workers.executor.submit(_numba_threads).result() == cores


def test_threads_per_worker_below_one_is_refused() -> None:
    assert share_threads(2, 3) == 3
    with pytest.raises(ConfigError, match="threads per worker must be at least 1, not 0"):
        share_threads(2, 0)
