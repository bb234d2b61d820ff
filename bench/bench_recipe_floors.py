"""Every recipe of a full-size night against its I/O floor.

A full-size raw night (`qc simulate OMEGACAM|HAWKI --scale full`) is hard-linked into a
fresh workspace and processed once (`qc run` without reports, serially). Then each
processed block's recipe runs again, in a fresh process of its own, on a warm page
cache, into a scratch folder. For each block the table gives:

  read GB    the bytes the recipe must read: its raws, its calibrations and the
             reference master it is compared with
  write GB   the bytes of its products
  floor s    one streaming pass over those bytes on this machine, measured in the same
             child just before the recipe: every input read from the page cache (a
             second time: the first brings back what the cache had evicted) into a
             reused buffer, and as many bytes written to a new file in the
             product folder the way products are written (O_DIRECT, hashed)
  recipe s   the recipe itself (``run_recipe``): imports and what a worker readies once
             (numba's contexts) excluded
  x floor    recipe s / floor s (issue 13 asks for at most 3)
  fresh s    the child's wall time from start to finished product, imports included

    python bench/bench_recipe_floors.py --raw-dir DIR [--raw-dir DIR2] --work-dir DIR

``--raw-dir``: a simulated night's folder (its ``catalogues/`` are used when present);
repeat it for several instruments. ``--only RECIPE`` runs the children of one recipe.
``--repeat N`` runs N children per block and shows the medians (and the recipe's
range): on a VM whose speed wanders, the same block's child took 0.98-1.31 s.
Results: bench/results/recipe_floors.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

_BUFFER = 8 << 20


def _read_all(paths: list[Path], buffer: memoryview) -> int:
    total = 0
    for path in paths:
        with open(path, "rb", buffering=0) as handle:
            while n := handle.readinto(buffer):
                total += n
    return total


def _write_floor(folder: Path, nbytes: int, buffer: memoryview, repeat: int = 3) -> float:
    """Seconds to write ``nbytes`` to a new file in ``folder`` the way products are
    written (``DirectFile``: O_DIRECT, SHA-256 on its own thread): the median of
    ``repeat`` tries. Buffered writes, which this took before, moved 0.10-1.12 s for
    the same 0.15 GB from try to try: how many of the page cache's pages the VM had to
    fetch fresh from its host."""
    from qclib.direct_file import DirectFile

    path = folder / ".floor-write"
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        with DirectFile(path) as handle:
            left = nbytes
            while left > 0:
                left -= handle.write(buffer[: min(left, len(buffer))])
        times.append(time.perf_counter() - start)
        path.unlink()
    return sorted(times)[len(times) // 2]


def _child(workspace_dir: Path, ab_id: str) -> dict:
    started = time.perf_counter()
    from qclib.compile_once import ready_numba
    from qclib.db import blocks as block_store
    from qclib.workflow.inputs import resolve_inputs
    from qclib.workflow.process import run_recipe
    from qclib.workspace import load_workspace

    workspace = load_workspace(workspace_dir)
    database = workspace.open_database()
    with database.transaction() as session:
        block = block_store.get_block(session, ab_id)
    ctx = resolve_inputs(workspace, database, block)
    scratch = workspace.root / "bench-products" / ab_id
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    import dataclasses

    ctx = dataclasses.replace(ctx, product_dir=scratch)
    inputs = [r.path for r in ctx.raws]
    inputs += [c.path for cs in ctx.calibrations.values() for c in cs]
    inputs += list(ctx.references.values())
    buffer = memoryview(bytearray(_BUFFER))
    # What a worker readies once, at its first kernel, not at every block (as
    # qclib.peers.block_cost does): numba's typing and target contexts, 0.3 s.
    ready_numba()
    imported = time.perf_counter()
    # A night's raws and products outgrow this machine's page cache: the first pass
    # brings back what was evicted (from disk, 0.7-3.0 s for the same 5 GB), the
    # second is the floor's read from the page cache.
    start = time.perf_counter()
    _read_all(inputs, buffer)
    warm_s = time.perf_counter() - start
    start = time.perf_counter()
    read_bytes = _read_all(inputs, buffer)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    results = run_recipe(ctx)
    recipe_s = time.perf_counter() - start
    done = time.perf_counter()
    written = sum(Path(r.path).stat().st_size for r in results)
    write_s = _write_floor(scratch, written, buffer)
    shutil.rmtree(scratch)
    database.close()
    floor = read_s + write_s
    return {
        "block": ab_id,
        "recipe": ctx.spec.name,
        "detectors": len(ctx.detectors()),
        "read_gb": round(read_bytes / 1e9, 3),
        "write_gb": round(written / 1e9, 3),
        "read_s": round(read_s, 3),
        "write_s": round(write_s, 3),
        "floor_s": round(floor, 3),
        "recipe_s": round(recipe_s, 3),
        "x_floor": round(recipe_s / floor, 2),
        "imports_s": round(imported - started, 3),
        "fresh_s": round(done - started - warm_s - read_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def _median_run(runs: list[dict]) -> dict:
    """One block's children as one row: each time the median over them (the floor and
    the recipe each its own), the recipe's least and greatest, x floor of the medians."""
    row = dict(runs[0])
    for key in ("read_s", "write_s", "floor_s", "recipe_s", "imports_s", "fresh_s"):
        row[key] = round(statistics.median(r[key] for r in runs), 3)
    row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    row["x_floor"] = round(row["recipe_s"] / row["floor_s"], 2)
    row["recipe_min_s"] = min(r["recipe_s"] for r in runs)
    row["recipe_max_s"] = max(r["recipe_s"] for r in runs)
    row["runs"] = len(runs)
    return row


def _prepare(raw_dirs: list[Path], work: Path) -> Path:
    from qclib.workflow.run import run_pass
    from qclib.workspace import init_workspace

    root = work / "floors"
    if (root / ".prepared").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    workspace = init_workspace(root)
    for raw in raw_dirs:
        inbox = workspace.inbox / raw.name
        inbox.mkdir(parents=True)
        for path in raw.glob("*.fits"):
            os.link(path, inbox / path.name)
        if (raw / "catalogues").is_dir():
            shutil.copytree(raw / "catalogues", inbox / "catalogues")
    database = workspace.open_database()
    start = time.perf_counter()
    summary = run_pass(workspace, database, progress=True, write_reports=False)
    print(f"first pass: {time.perf_counter() - start:.0f} s", flush=True)
    for outcome in summary.outcomes:
        print(f"  {outcome.status:<8} {outcome.ab_id} {outcome.reason or ''}", flush=True)
    database.close()
    (root / ".prepared").touch()
    return root


def _done_blocks(root: Path, recipe: str | None) -> list[str]:
    """The done blocks (of ``recipe``, when given), in time order."""
    from qclib.db import products as product_store
    from qclib.workspace import load_workspace

    database = load_workspace(root).open_database()
    with database.transaction() as session:
        done = product_store.done_blocks(session)
    database.close()
    return [ab_id for ab_id, _, name, _ in done if recipe in (None, name)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, action="append", default=[])
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--only", help="run only the blocks of this recipe")
    parser.add_argument(
        "--repeat", type=int, default=1, help="children per block; their medians are shown"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.work_dir, args.child)))
        return
    root = _prepare([d.resolve() for d in args.raw_dir], args.work_dir.resolve())
    rows = []
    header = f"{'recipe':<22} {'det':>3} {'read GB':>7} {'write GB':>8} {'floor s':>7}"
    print(f"{header} {'recipe s':>8} {'x floor':>7} {'fresh s':>7}  block", flush=True)
    for ab_id in _done_blocks(root, args.only):
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, __file__, "--work-dir", str(root), "--child", ab_id],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                print(f"{ab_id}: failed\n{out.stderr[-2000:]}", flush=True)
                break
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        if len(runs) < args.repeat:
            continue
        row = _median_run(runs)
        rows.append(row)
        spread = f"  ({row['recipe_min_s']:.2f}-{row['recipe_max_s']:.2f})" if len(runs) > 1 else ""
        print(
            f"{row['recipe']:<22} {row['detectors']:>3} {row['read_gb']:>7.2f} "
            f"{row['write_gb']:>8.2f} {row['floor_s']:>7.2f} {row['recipe_s']:>8.2f} "
            f"{row['x_floor']:>7.1f} {row['fresh_s']:>7.2f}  {ab_id}{spread}",
            flush=True,
        )
    result = {
        "repeat": args.repeat,
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "cores": os.cpu_count(),
        "blocks": rows,
    }
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "recipe_floors.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
