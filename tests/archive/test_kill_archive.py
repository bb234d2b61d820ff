"""Archive ingestion killed with SIGKILL at chosen points, then run again, ends as an
uninterrupted ingestion: the same archive rows and statuses, the same product
statuses and audit trail, every archive file whole and recorded once, nothing pending,
no temporary. Each kill is proven to have happened at its point (the marker
``tests.killpoints`` writes there, and what the archive holds right after it).

The command is ``qc run`` on a workspace whose four master biases are certified: the
pass has nothing else to do and archives them. Archive ingestion runs in the command's
own process whatever the executor, so the executor is ``serial``; both database
backends, since the write-ahead row is what a resumed ingestion trusts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from qclib.archive.audit import verify_audit
from qclib.archive.store import verify_archive
from qclib.atomicfile import TEMP_PREFIX
from qclib.db import archive as archive_store
from qclib.db import audit as audit_store
from qclib.db import products as product_store
from qclib.db.archive import PENDING
from qclib.fitsio import sha256_file
from qclib.workflow.run import run_pass
from qclib.workspace import init_workspace, load_workspace
from tests.archive.conftest import fill_inbox
from tests.conftest import PostgresCluster
from tests.killpoints import environment, read_marker

pytestmark = pytest.mark.slow

QC = Path(sys.executable).with_name("qc")
POINTS = ("archive-pending", "archive-copying", "archive-copied")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def _database_url(url: str | None) -> Iterator[None]:
    """Open workspaces here on ``url`` (None: their SQLite file)."""
    with pytest.MonkeyPatch.context() as mp:
        if url is None:
            mp.delenv("QC_DB_URL", raising=False)
        else:
            mp.setenv("QC_DB_URL", url)
        yield


@dataclass(frozen=True)
class Template:
    """A workspace whose four master biases are certified, none archived yet, and its
    database URL (None: the workspace's SQLite file)."""

    root: Path
    db_name: str | None
    cluster: PostgresCluster | None

    def copy(self, dest: Path) -> str | None:
        """Copy the workspace (and database) to ``dest``; returns the copy's URL."""
        shutil.copytree(self.root, dest)
        if self.cluster is None:
            return None
        import psycopg

        port = self.cluster.port
        name = f"{self.db_name}_{os.urandom(4).hex()}"
        with psycopg.connect(
            f"host=127.0.0.1 port={port} user=qc dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.db_name}"')
        return f"postgresql+psycopg://qc@127.0.0.1:{port}/{name}"


@pytest.fixture(scope="module", params=BACKENDS)
def certified(request, tmp_path_factory, bias_nights) -> Template:
    cluster = request.getfixturevalue("postgres_cluster") if request.param == "postgres" else None
    url = cluster.new_database() if cluster is not None else None
    with _database_url(url):
        workspace = init_workspace(tmp_path_factory.mktemp("kill-archive") / "ws")
        fill_inbox(workspace, bias_nights)
        database = workspace.open_database()
        run_pass(workspace, database, write_reports=False)
        with database.transaction() as session:
            for product in product_store.list_products(session):
                product_store.set_product_status(session, product.id, "certified")
        database.close()
    return Template(workspace.root, url.rsplit("/", 1)[1] if url else None, cluster)


def _command(root: Path) -> list[str]:
    return [str(QC), "--workspace", str(root), "run", "--no-reports", "--executor", "serial"]


def _env(url: str | None, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.pop("QC_DB_URL", None)
    if url is not None:
        env["QC_DB_URL"] = url
    return env


@dataclass(frozen=True)
class ArchiveState:
    rows: Counter  # (kind, PRO.CATG, night, SHA-256, status) -> how many
    products: dict[str, str]  # product path -> status
    audit: Counter  # (actor, action, product, old status, new status) -> how many


def archive_state(root: Path) -> ArchiveState:
    """The archive after the pass, checked: every file whole and recorded once, every
    record's file present, nothing pending, no temporary, audit chain intact."""
    workspace = load_workspace(root)
    database = workspace.open_database()
    with database.transaction() as session:
        rows = archive_store.files(session, include_pending=True)
        products = {p.path: p.status for p in product_store.list_products(session)}
        audit = audit_store.entries(session)
    assert PENDING not in {r.status for r in rows}, "an ingestion left pending"
    paths = [workspace.confine(r.path) for r in rows]
    assert len(set(paths)) == len(paths), "two records of one archive file"
    on_disk = {p for p in workspace.archive_dir.rglob("*") if p.is_file()}
    assert on_disk == set(paths), "archive files and records differ"
    for row, path in zip(rows, paths, strict=True):
        assert sha256_file(path) == row.sha256, f"{row.name} is not the product archived"
    assert verify_archive(workspace, database).ok
    assert verify_audit(workspace, database)[1] == []
    database.close()
    return ArchiveState(
        Counter((r.kind, r.pro_catg, r.night, r.sha256, r.status) for r in rows),
        products,
        Counter((e.actor, e.action, e.product, e.old_status, e.new_status) for e in audit),
    )


@pytest.fixture(scope="module")
def uninterrupted(certified: Template, tmp_path_factory) -> ArchiveState:
    root = tmp_path_factory.mktemp("archive-uninterrupted") / "ws"
    url = certified.copy(root)
    done = subprocess.run(_command(root), env=_env(url), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with _database_url(url):
        state = archive_state(root)
    assert set(state.products.values()) == {"archived", "superseded"}
    assert sum(state.rows.values()) == 4
    return state


def _assert_killed_at(point: str, root: Path, url: str | None, killer: int) -> None:
    """What the archive holds right after the kill: only a kill at ``point`` leaves it."""
    with _database_url(url):
        workspace = load_workspace(root)
        database = workspace.open_database()
        with database.transaction() as session:
            rows = archive_store.files(session, include_pending=True)
        database.close()
    done = [r for r in rows if r.status != PENDING]
    (pending,) = [r for r in rows if r.status == PENDING]
    assert len(done) == 1, "the first product is archived, the second being ingested"
    files = {p.name for p in workspace.archive_dir.rglob("*") if p.is_file()}
    temporary = f"{TEMP_PREFIX}{killer}-{pending.name}"
    if point == "archive-pending":
        assert files == {done[0].name}
    elif point == "archive-copying":
        assert files == {done[0].name, temporary}
    elif point == "archive-copied":
        assert files == {done[0].name, pending.name}
        assert sha256_file(workspace.confine(pending.path)) == pending.sha256


@pytest.mark.parametrize("point", POINTS)
def test_killed_archive_ingestion_resumes_to_the_uninterrupted_archive(
    point: str, certified: Template, uninterrupted: ArchiveState, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    url = certified.copy(root)
    marker = tmp_path / "killpoint.json"
    child = subprocess.run(
        _command(root),
        env=environment(point, marker, _env(url)),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert child.returncode == -9, f"not killed (exit {child.returncode}): {child.stderr[-2000:]}"
    reached = read_marker(marker)
    assert reached is not None and reached["point"] == point
    assert reached["pid"] == reached["root"]  # in the command itself
    _assert_killed_at(point, root, url, reached["pid"])

    resumed = subprocess.run(_command(root), env=_env(url), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    with _database_url(url):
        state = archive_state(root)
    assert state == uninterrupted
