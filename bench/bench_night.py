"""A full simulated OmegaCAM calibration night end to end, and the Dask speed-up.

The night's raw files (32 CCDs each; `make demo` leaves them in
demo-workspace/data/raw/<night>/) are hard-linked into a fresh workspace's inbox and
run through `qc run` stage by stage: ingest (moves: renames, plus SHA-256 of every
byte), classify + associate, process (every calibration block), score, reports. Wall
time per stage and the peak memory of this process and its workers; then processing
alone on Dask with 1 and with 2 workers (fresh workspaces, same frames).

    python bench/bench_night.py [--raw-dir DIR] [--skip-dask] [--no-reports]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from qclib.workflow.association import associate_workspace
from qclib.workflow.executors import open_executor
from qclib.workflow.ingest import ingest_paths
from qclib.workflow.process import process_blocks
from qclib.workflow.reports import render_reports
from qclib.workflow.scoring import score_values
from qclib.workspace import init_workspace


def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _workspace_with(raw: Path, catalogues: Path, root: Path):
    workspace = init_workspace(root)
    inbox = workspace.inbox / "night"
    (inbox / "catalogues").mkdir(parents=True)
    for path in raw.glob("*.fits"):
        os.link(path, inbox / path.name)
    for path in catalogues.glob("*.csv"):
        shutil.copy(path, inbox / "catalogues" / path.name)
    return workspace


def _timed(stage: str, seconds: dict, fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    seconds[stage] = round(time.perf_counter() - start, 2)
    print(f"{stage:<20} {seconds[stage]:8.1f} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, default=Path("demo-workspace/data/raw/2026-11-23"))
    parser.add_argument(
        "--catalogues",
        type=Path,
        default=Path("demo-workspace/inbox/omegacam_2026-11-23/catalogues"),
        help="The standard-field catalogues the night ships (the zeropoints need them).",
    )
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--no-reports", action="store_true")
    args = parser.parse_args()
    raw = args.raw_dir.resolve()
    tmp = Path(tempfile.mkdtemp(prefix="bench-night-", dir=raw.parent))  # same file system
    files = sorted(raw.glob("*.fits"))
    print(f"{len(files)} raw files, {sum(f.stat().st_size for f in files) / 1e9:.1f} GB")

    seconds: dict[str, float] = {}
    workspace = _workspace_with(raw, args.catalogues, tmp / "night")
    database = workspace.open_database()
    _timed("ingest", seconds, ingest_paths, workspace, database, [workspace.inbox], move=True)
    _timed("classify+associate", seconds, associate_workspace, workspace, database)
    with open_executor("local", workers=2) as pool:
        outcomes = _timed(
            "process (pool of 2)", seconds, process_blocks, workspace, database, executor=pool
        )
    _timed("score", seconds, score_values, database)
    done = [o.ab_id for o in outcomes if o.status == "done"]
    for o in outcomes:
        print(f"  {o.status:<8} {o.ab_id} {o.reason or ''}", flush=True)
    if not args.no_reports:
        _timed("reports", seconds, render_reports, workspace, database, done)
    second = {}
    _timed("second pass (process)", second, process_blocks, workspace, database)
    database.close()
    shutil.rmtree(workspace.products_dir)  # 19 GB: the disk holds one night's products
    total = round(sum(seconds.values()), 1)
    print(f"{'total':<20} {total:8.1f} s; {len(done)} blocks done; peak RSS {_peak_mb():.0f} MB")

    dask: dict[str, float] = {}
    if not args.skip_dask:
        for workers in (1, 2):
            ws = _workspace_with(raw, args.catalogues, tmp / f"dask{workers}")
            db = ws.open_database()
            ingest_paths(ws, db, [ws.inbox], move=True)
            associate_workspace(ws, db)
            with open_executor("dask", workers=workers) as executor:
                _timed(f"process dask x{workers}", dask, process_blocks, ws, db, executor=executor)
            db.close()
            shutil.rmtree(ws.products_dir)
        ratio = dask["process dask x1"] / dask["process dask x2"]
        print(f"Dask speed-up 1 -> 2 workers: {ratio:.2f}x")
    result = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "files": len(files),
        "stages_s": seconds,
        "total_s": total,
        "second_pass_s": second,
        "peak_rss_mb": round(_peak_mb()),
        "dask_s": dask,
        "work_dir": str(tmp),
    }
    out = Path(__file__).parent / "results" / "night.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
