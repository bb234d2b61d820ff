"""A full simulated OmegaCAM calibration night end to end, and the Dask speed-up.

The night's raw files (32 CCDs each; `make demo` leaves them in
demo-workspace/data/raw/<night>/) are hard-linked into a fresh workspace's inbox and
run through one `qc run` pass on a local pool of 2 (as `qc run` does): ingest (moves:
renames, plus SHA-256 of every byte), classify + associate, process (every calibration
block, detectors shared among the workers), score, reports; then a second pass (which
must find nothing to do). The raws are read once before each pass, untimed, as the
transfer that delivers a night leaves them in memory. Wall time per stage and the peak
memory of this process and its workers; then the same pass without reports on Dask
with 1 and with 2 workers of one numba thread each (fresh workspaces, same frames):
with the cores shared out, one worker would already use both, and the ratio would
measure numba, not the workers.

    python bench/bench_night.py [--raw-dir DIR] [--catalogues DIR] [--skip-dask]
        [--dask-only] [--no-reports]

``--catalogues``: the standard fields' reference catalogues (default: the demo's; a
``qc simulate`` folder's own ``catalogues/`` when --raw-dir is one). Without them the
zeropoint blocks cannot run, and the bench refuses to start.

On Dask, each run also prints the workers' CPU time (user + system, all their threads)
against the stage's wall time, and how long the tasks of each kind ran (recipes, the
finishing of products written in place) from Dask's task stream: where the second
worker's time goes.
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

from qclib.workflow.executors import open_executor
from qclib.workflow.run import run_pass
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


def _in_page_cache(raw: Path) -> float:
    """Read the night's raws once, untimed: a night arrives by a transfer that has just
    written its files, so their pages are in memory when ``qc run`` ingests them. (From
    disk instead, reads cost the fresh pages they fill, about 2.2 s/GiB on this VM:
    ingest of this night took 14.5-35 s then, against 6 s.) Returns the seconds."""
    start = time.perf_counter()
    buffer = bytearray(8 << 20)
    for path in raw.glob("*.fits"):
        with open(path, "rb", buffering=0) as stream:
            while stream.readinto(buffer):
                pass
    return time.perf_counter() - start


def _pass(root_name: str, raw: Path, catalogues: Path, tmp: Path, workers, reports: bool):
    workspace = _workspace_with(raw, catalogues, tmp / root_name)
    database = workspace.open_database()
    print(f"raws read into the page cache (untimed): {_in_page_cache(raw):.1f} s", flush=True)
    start = time.perf_counter()
    summary = run_pass(workspace, database, progress=True, write_reports=reports, workers=workers)
    wall = time.perf_counter() - start
    start = time.perf_counter()
    again = run_pass(workspace, database, write_reports=reports, workers=workers)
    second = time.perf_counter() - start
    database.close()
    shutil.rmtree(workspace.products_dir)  # 19 GB: the disk holds one night's products
    return summary, wall, second, again


def _worker_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _dask_pass(
    workers: int, raw: Path, catalogues: Path, tmp: Path, timeline: Path | None = None
) -> dict[str, float]:
    """One pass without reports on ``workers`` Dask workers of one numba thread each:
    the process stage's wall time, the workers' CPU time, the task kinds' busy time."""
    from distributed import default_client, get_task_stream

    with open_executor("dask", workers=workers, threads_per_worker=1) as executor:
        client = default_client()
        before = sum(client.run(_worker_cpu_s).values())
        with get_task_stream(client) as stream:
            result, _, _, _ = _pass(f"dask{workers}", raw, catalogues, tmp, executor, False)
        cpu = sum(client.run(_worker_cpu_s).values()) - before
    if timeline is not None:  # one row per task: what, where, when (s from the first)
        origin = min(span["start"] for task in stream.data for span in task["startstops"])
        rows = [
            {
                "task": task["key"].split("-")[0],
                "worker": task["worker"],
                "start": round(span["start"] - origin, 2),
                "stop": round(span["stop"] - origin, 2),
            }
            for task in stream.data
            for span in task["startstops"]
            if span["action"] == "compute"
        ]
        path = timeline.with_name(f"{timeline.stem}-x{workers}{timeline.suffix}")
        path.write_text(json.dumps(sorted(rows, key=lambda r: r["start"]), indent=0))
    busy: dict[str, float] = {}
    for task in stream.data:
        kind = task["key"].split("-")[0]
        for span in task["startstops"]:
            if span["action"] == "compute":
                busy[kind] = busy.get(kind, 0.0) + span["stop"] - span["start"]
    process = result.seconds["process"]
    print(
        f"process, dask x{workers}: {process:.1f} s; workers' CPU {cpu:.1f} s "
        f"({cpu / process:.2f} cores); task time "
        + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(busy.items())),
        flush=True,
    )
    return {"process": process, "cpu": cpu, **{f"busy {k}": v for k, v in busy.items()}}


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
    parser.add_argument("--dask-only", action="store_true", help="Only the Dask passes.")
    parser.add_argument(
        "--dask-workers", type=int, nargs="+", default=[1, 2], help="With --dask-only."
    )
    parser.add_argument(
        "--timeline", type=Path, help="Write each Dask run's tasks (JSON) to FILE-x<workers>."
    )
    parser.add_argument("--no-reports", action="store_true")
    args = parser.parse_args()
    raw = args.raw_dir.resolve()
    catalogues = args.catalogues
    if not any(catalogues.glob("*.csv")) and any((raw / "catalogues").glob("*.csv")):
        catalogues = raw / "catalogues"  # a `qc simulate` folder holds its own
    if not any(catalogues.glob("*.csv")):
        raise SystemExit(
            f"no standard-field catalogues (*.csv) in {args.catalogues} or {raw / 'catalogues'}:"
            " the night's zeropoint blocks would fail; pass --catalogues DIR"
        )
    args.catalogues = catalogues
    tmp = Path(tempfile.mkdtemp(prefix="bench-night-", dir=raw.parent))  # same file system
    files = sorted(raw.glob("OMEGACAM*.fits"))
    print(f"{len(files)} raw files, {sum(f.stat().st_size for f in files) / 1e9:.1f} GB")

    if args.dask_only:
        for workers in args.dask_workers:
            _dask_pass(workers, raw, args.catalogues, tmp, args.timeline)
        shutil.rmtree(tmp)
        return
    with open_executor("local", workers=2) as pool:
        summary, wall, second, again = _pass(
            "night", raw, args.catalogues, tmp, pool, not args.no_reports
        )
    for o in summary.outcomes:
        print(f"  {o.status:<8} {o.ab_id} {o.reason or ''}", flush=True)
    done = sum(o.status == "done" for o in summary.outcomes)
    seconds = {k: round(v, 2) for k, v in summary.seconds.items()}
    print(f"qc run (pool of 2): {wall:.1f} s {seconds}; {done} blocks done")
    print(f"second pass: {second:.2f} s, did something: {again.did_something}")
    reports = [r for r in summary.reports if r.status == "written"]

    dask: dict[str, float] = {}
    if not args.skip_dask:
        for workers in (1, 2):
            measured = _dask_pass(workers, raw, args.catalogues, tmp, args.timeline)
            dask[f"process dask x{workers}"] = round(measured["process"], 2)
            dask[f"workers' cpu x{workers}"] = round(measured["cpu"], 1)
        ratio = dask["process dask x1"] / dask["process dask x2"]
        print(f"Dask speed-up 1 -> 2 workers: {ratio:.2f}x")
    result = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "files": len(files),
        "qc_run_s": round(wall, 1),
        "stages_s": seconds,
        "blocks_done": done,
        "reports_written": len(reports),
        "second_pass_s": round(second, 2),
        "second_pass_did_something": again.did_something,
        "peak_rss_mb": round(_peak_mb()),
        "dask_s": dask,
    }
    out = Path(__file__).parent / "results" / "night.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
