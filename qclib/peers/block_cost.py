"""What one block costs: its wall time and peak memory, measured by processing it
alone in a child process.

The child (forked by a fork server that imported the flow once) loads the workspace
and what the block's recipe needs once per worker (its module, the instrument's
rules, numba's compiler contexts and, for ESO's recipes, the QC1 dictionary), notes
its resident memory at rest, and times ``process_blocks`` on the one block: reading
the inputs, the recipe (a native one in the child, or esorex as its child),
writing and recording the products. The block's memory is the child's peak resident
memory (the kernel's high-water mark, VmHWM) above its rest, plus esorex's own peak
where the block ran an ESO job (``qclib.eso.job.job_cost``): an upper bound of the two
together, exact for each. The rest (the interpreter and its libraries) is reported
apart.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from qclib.compile_once import ready_numba
from qclib.db import Database
from qclib.db import blocks as block_store
from qclib.errors import ConfigError
from qclib.eso.job import job_cost
from qclib.eso.pipelines import find_pipeline
from qclib.instruments import is_eso, load_instrument, load_rules
from qclib.recipes.registry import find_recipe
from qclib.workflow.process import process_blocks
from qclib.workspace import load_workspace

_KB_PER_MB = 1024


@dataclass(frozen=True)
class BlockCost:
    """One block processed alone: its outcome, the wall time of ``process_blocks``,
    its peak memory above the child at rest, and that rest (MB)."""

    ab_id: str
    status: str
    reason: str | None
    products: tuple[str, ...]
    wall_s: float
    peak_mb: float
    rest_mb: float

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "products": list(self.products)}


def measure_block(root: Path, ab_id: str) -> BlockCost:
    """Process block ``ab_id`` of the workspace at ``root`` alone in a child process.

    The child is forked by multiprocessing's fork server, which imported this module
    (and the flow) once: a child costs no start-up of its own (a fresh interpreter took
    2.0 s here), and starts single-threaded whatever threads this process runs.

    Raises
    ------
    ConfigError
        The child failed before it could report (the message names its error).
    """
    receive, send = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(target=_report_alone, args=(str(root), ab_id, send))
    child.start()
    send.close()
    try:
        report = receive.recv() if receive.poll(None) else None
    except EOFError:
        report = None
    child.join()
    if child.exitcode != 0 or not isinstance(report, dict) or "error" in report:
        why = report["error"] if isinstance(report, dict) and "error" in report else ""
        raise ConfigError(
            f"measuring block {ab_id} in {root} failed (exit {child.exitcode}) {why}".strip()
        )
    return BlockCost(
        ab_id=ab_id,
        status=report["status"],
        reason=report["reason"],
        products=tuple(report["products"]),
        wall_s=report["wall_s"],
        peak_mb=report["peak_mb"],
        rest_mb=report["rest_mb"],
    )


def _resident_mb(field: str) -> float:
    """VmRSS or VmHWM of this process (Linux's /proc/self/status), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / _KB_PER_MB
    raise OSError(f"/proc/self/status has no {field}: block costs are measured on Linux only")


def _load_once(database: Database, ab_id: str) -> None:
    """What a worker loads once for the block's recipe, loaded now (numba's contexts
    included: a worker readies them at its first kernel, 0.3 s, not at every block)."""
    ready_numba()
    with database.transaction() as session:
        block = block_store.get_block(session, ab_id)
    if block is None:
        return
    load_rules(block.instrument)
    spec = find_recipe(block.recipe, block.instrument)
    if spec is not None:
        spec.load()
    if is_eso(block.instrument):
        config = load_instrument(block.instrument)
        find_pipeline(config.eso.pipeline).qc_entries()  # type: ignore[union-attr]


def _process_alone(root: str, ab_id: str) -> dict[str, object]:
    workspace = load_workspace(root)
    database = workspace.open_database()
    try:
        _load_once(database, ab_id)
        rest_mb = _resident_mb("VmRSS")
        start = time.perf_counter()
        outcomes = process_blocks(workspace, database, ids=[ab_id], max_retries=0)
        wall_s = time.perf_counter() - start
        own_mb = _resident_mb("VmHWM") - rest_mb
        with database.transaction() as session:
            block = block_store.get_block(session, ab_id)
    finally:
        database.close()
    outcome = next((o for o in outcomes if o.ab_id == ab_id), None)
    job = block and job_cost(workspace.products_dir / block.night / f"{ab_id}.esorex")
    esorex_mb = job["peak_rss_mb"] if job else 0.0
    done = {"wall_s": wall_s, "rest_mb": rest_mb, "peak_mb": max(own_mb, 0.0) + esorex_mb}
    if outcome is None:
        return {"status": "not run", "reason": "not a block to process", "products": [], **done}
    return {**outcome.as_dict(), **done}


def _report_alone(root: str, ab_id: str, send: Connection) -> None:
    try:
        send.send(_process_alone(root, ab_id))
    except Exception as err:  # any error: told to the parent, which raises it
        send.send({"error": f"{type(err).__name__}: {err}"})
    finally:
        send.close()


_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload([__name__])
