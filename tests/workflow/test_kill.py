"""``qc run`` killed with SIGKILL at chosen points, then run again, ends exactly as an
uninterrupted run: the same frames, products (SHA-256), QC values, grades, block states
and reports; no orphan file, no duplicate row, no temporary or part left. Each kill is
proven to have happened at its point (a marker written there by ``tests.killpoints``,
and what the workspace holds right after it), and no worker, Dask worker or report
kernel outlives the killed command.

The matrix: every point on the local pool with SQLite; on Dask with PostgreSQL the
points where workers are at work (a recipe, a join) and the record that follows them,
the ones where the executor and the database backend change what a kill leaves. Ingest
and archive ingestion run in the command's own process whatever the executor
(archive ingestion: tests/archive/test_kill_archive.py, on both backends).
One night of biases and dome flats (three blocks: MASTER_BIAS, then READ_GAIN and
MASTER_DOME_FLAT from it), two workers, so every product is made in two parts and
joined.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from qclib.atomicfile import TEMP_PREFIX
from qclib.db import ingest_log, qc1
from qclib.db import products as product_store
from qclib.fitsio import scan_fits
from qclib.previews import PREVIEW_FOLDER, image_hdus, read_previews
from qclib.products import PART_PREFIX
from qclib.workspace import init_workspace, load_workspace
from tests.archive.conftest import _nights as simulated_nights
from tests.conftest import NIGHT
from tests.killpoints import POINTS, environment, read_marker

pytestmark = pytest.mark.slow

QC = Path(sys.executable).with_name("qc")
#: A killed command's workers must be gone this soon (pool workers: PR_SET_PDEATHSIG,
#: at once; Dask workers: when the pipe from their nanny closes; report kernels: they
#: poll their parent once a second).
WORKERS_GONE_S = 10.0
#: Where each point is reached: in the command itself, in a worker, or in a report kernel.
ROLE = {
    "ingest-moved": "command",
    "after-ingest": "command",
    "recipe": "worker",
    "join": "worker",
    "record": "command",
    "report": "kernel",
}
MATRIX = [
    *[pytest.param(p, "local", "sqlite", id=f"{p}-local-sqlite") for p in ROLE],
    *[
        pytest.param(p, "dask", "postgres", id=f"{p}-dask-postgres", marks=pytest.mark.postgres)
        for p in ("recipe", "join", "record")
    ],
]


@dataclass(frozen=True)
class EndState:
    """What a workspace holds after a pass, checked for orphans and duplicates."""

    frames: dict[str, str]  # ARCFILE -> SHA-256
    products: dict[str, str]  # path -> SHA-256
    qc: dict[str, dict[str, dict[str, float | None]]]  # path -> detector -> name -> value
    grades: dict[str, dict[str, dict[str, str]]]
    blocks: dict[str, str]  # block id -> state
    reports: frozenset[str]


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def end_state(root: Path) -> EndState:
    workspace = load_workspace(root)
    database = workspace.open_database()
    with database.transaction() as session:
        frames = ingest_log.list_frames(session)
        rows = product_store.list_products(session)
        qc = {p.path: product_store.qc_values(session, p.id) for p in rows}
        grades = {p.path: qc1.product_grades(session, p.id) for p in rows}
        blocks = {i: state for i, (state, _) in product_store.block_states(session).items()}
    database.close()
    assert len({f.arcfile for f in frames}) == len(frames), "a frame indexed twice"
    assert len({p.path for p in rows}) == len(rows), "a product recorded twice"
    raw = {str(workspace.confine(f.path).relative_to(workspace.raw_dir)) for f in frames}
    assert _files(workspace.raw_dir) == raw, "raw files and the frame index differ"
    products = {p.path: p.sha256 for p in rows}
    files = _files(workspace.products_dir)
    kept = {f for f in files if f"/{PREVIEW_FOLDER}/" in f"/{f}"}
    on_disk = {str(Path("data/products") / f) for f in files - kept}
    assert on_disk == set(products), "product files and product rows differ"
    for path, sha in products.items():
        assert hashlib.sha256((root / path).read_bytes()).hexdigest() == sha, path
        # Every product image's previews, those of its content.
        if image_hdus(scan_fits(root / path)):
            assert read_previews(root / path, sha), f"{path}: no previews of its content"
    previewed = {str(Path("data/products") / Path(f).parent.parent / Path(f).stem) for f in kept}
    assert previewed <= set(products), "previews of no product"
    leftovers = [p for p in root.rglob("*") if p.name.startswith((TEMP_PREFIX, PART_PREFIX))]
    assert not leftovers, f"left behind: {leftovers}"
    assert not list(workspace.inbox.rglob("*.fits")), "raw files left in the inbox"
    return EndState(
        {f.arcfile: f.sha256 for f in frames},
        products,
        qc,
        grades,
        blocks,
        frozenset(f for f in _files(workspace.runs_dir) if f.endswith((".ipynb", ".html"))),
    )


@pytest.fixture(scope="module")
def kill_night(tmp_path_factory) -> Path:
    (night,) = simulated_nights(tmp_path_factory, "kill", 1, {"bias", "dome_flat"})
    return night


def _workspace(root: Path, night: Path) -> Path:
    workspace = init_workspace(root)
    shutil.copytree(night, workspace.inbox / "night")
    return workspace.root


def _command(root: Path, executor: str, *, reports: bool) -> list[str]:
    return [
        str(QC),
        "--workspace",
        str(root),
        "run",
        "--json",
        "--executor",
        executor,
        "--workers",
        "2",
        *([] if reports else ["--no-reports"]),
    ]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, kill_night: Path) -> EndState:
    """The end state of the same command, not killed (local pool, SQLite, no reports:
    the reports a resumed pass must hold are named by ``_reports_of``)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("QC_DB_URL", raising=False)
        root = _workspace(tmp_path_factory.mktemp("uninterrupted") / "ws", kill_night)
        env = {k: v for k, v in os.environ.items() if k != "QC_DB_URL"}
        done = subprocess.run(
            _command(root, "local", reports=False), env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        state = end_state(root)
    assert set(state.blocks.values()) == {"done"} and len(state.blocks) == 3
    return state


def _reports_of(state: EndState) -> frozenset[str]:
    """Every block's report: the executed notebook and its HTML (all three blocks of
    the night have a template)."""
    return frozenset(
        f"{NIGHT.isoformat()}/{block}{suffix}"
        for block in state.blocks
        for suffix in (".ipynb", ".html")
    )


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _outliving(pids: list[int]) -> list[int]:
    """The processes still running ``WORKERS_GONE_S`` after their command was killed."""
    deadline = time.monotonic() + WORKERS_GONE_S
    while (alive := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def _assert_killed_at(point: str, root: Path, reference: EndState) -> None:
    """What the workspace holds right after the kill: only a kill at ``point`` leaves it."""
    workspace = load_workspace(root)
    database = workspace.open_database()
    with database.transaction() as session:
        frames = ingest_log.list_frames(session)
        rows = product_store.list_products(session)
        blocks = product_store.block_states(session)
        pending = ingest_log.pending_moves(session)
    database.close()
    products = _files(workspace.products_dir) if workspace.products_dir.exists() else set()
    if point == "ingest-moved":  # 3 indexed; the 4th renamed under its write-ahead row
        assert len(frames) == 3 and len(pending) == 1
        assert len(_files(workspace.raw_dir)) == 4
    elif point == "after-ingest":
        assert len(frames) == len(reference.frames) and not blocks and not pending
        assert not list(workspace.inbox.rglob("*.fits"))
    elif point in ("recipe", "join"):  # a product's shared file, half-written or whole
        assert not rows
        names = [Path(p).name for p in products]
        assert any(n.startswith(f"{PART_PREFIX}OMEGACAM") for n in names), names
        assert not [n for n in names if n.startswith("OMEGACAM")], names
    elif point == "record":  # one block recorded, the next block's products unrecorded
        assert {blocks[r.ab_id][0] for r in rows} == {"done"}
        assert len({r.ab_id for r in rows}) == 1
        made = {p for p in products if not Path(p).name.startswith(".")}
        recorded = {str(Path(r.path).relative_to("data/products")) for r in rows}
        assert recorded < made, "the products of the block being recorded are not on disk"
    elif point == "report":  # everything processed and recorded; reports unfinished
        assert {s for s, _ in blocks.values()} == {"done"} and len(rows) == len(reference.products)
        written = list(workspace.runs_dir.rglob("*.html"))
        assert len(written) < 3, written


@pytest.mark.parametrize(("point", "executor", "backend"), MATRIX)
def test_killed_pass_resumes_to_the_uninterrupted_end_state(
    point: str,
    executor: str,
    backend: str,
    uninterrupted: EndState,
    kill_night: Path,
    tmp_path: Path,
    monkeypatch,
    request,
) -> None:
    if backend == "postgres":
        monkeypatch.setenv("QC_DB_URL", request.getfixturevalue("postgres_cluster").new_database())
    else:
        monkeypatch.delenv("QC_DB_URL", raising=False)
    root = _workspace(tmp_path / "ws", kill_night)
    marker = tmp_path / "killpoint.json"
    command = _command(root, executor, reports=point == "report")

    # stderr to a file: a worker that outlived the command would hold a pipe open.
    with open(tmp_path / "stderr.txt", "w") as log:
        child = subprocess.Popen(
            command, env=environment(point, marker), stdout=subprocess.DEVNULL, stderr=log
        )
        child.wait(timeout=240)
    stderr = (tmp_path / "stderr.txt").read_text()
    reached = read_marker(marker)
    descendants = [d["pid"] for d in (reached or {}).get("descendants", [])]
    try:
        assert child.returncode == -9, f"not killed (exit {child.returncode}): {stderr[-2000:]}"
        assert reached is not None and reached["point"] == point, POINTS[point].what
        assert reached["root"] == child.pid
        by = {d["pid"]: d["cmdline"] for d in reached["descendants"]}
        if ROLE[point] == "command":
            assert reached["pid"] == child.pid
        else:
            assert reached["pid"] in by, "reached outside the command's process tree"
            assert ("ipykernel" in by[reached["pid"]]) == (ROLE[point] == "kernel")
        outliving = _outliving(descendants)
        assert not outliving, "outlived the killed command: " + "; ".join(
            f"{p} {by[p]}" for p in outliving
        )
        _assert_killed_at(point, root, uninterrupted)
    finally:
        for pid in descendants:  # a failed test leaves nothing running
            if _alive(pid):
                psutil.Process(pid).kill()

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    state = end_state(root)
    assert state.frames == uninterrupted.frames
    assert state.products == uninterrupted.products
    assert state.qc == uninterrupted.qc
    assert state.grades == uninterrupted.grades
    assert state.blocks == uninterrupted.blocks
    assert state.reports == (_reports_of(uninterrupted) if point == "report" else frozenset())


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
