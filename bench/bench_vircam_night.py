"""A full-geometry simulated VIRCAM night end to end on this machine's cores.

VIRCAM is configuration only (qclib/instruments/vircam/): its night (resets, darks of
four setups, the linearity sequence, gain pairs, twilight flats, two standard-field
visits and the science pawprints; 16 arrays of 2048 x 2048 per file) is simulated
into a fresh workspace's inbox, then one `qc run` pass on a local pool of 2 ingests,
classifies, associates, runs every calibration recipe (detectors shared among the
workers), scores and writes the reports. Prints the stage times, the jobs (blocks
processed) per hour and the raw data rate of the pass; writes
bench/results/vircam_night.json.

    python bench/bench_vircam_night.py [--no-reports] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

from qclib.simulate.night import simulate_night
from qclib.workflow.executors import open_executor
from qclib.workflow.run import run_pass
from qclib.workspace import init_workspace

NIGHT = dt.date(2026, 11, 23)


def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-reports", action="store_true")
    parser.add_argument("--keep", action="store_true", help="Keep the workspace (about 25 GB).")
    parser.add_argument("--dir", type=Path, default=Path(), help="Where the workspace goes.")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-vircam-", dir=args.dir.resolve()))
    try:
        workspace = init_workspace(root / "ws")
        start = time.perf_counter()
        simulate_night("VIRCAM", NIGHT, workspace.inbox / "vircam", seed=3, scale="full")
        simulated = time.perf_counter() - start
        files = sorted((workspace.inbox / "vircam").glob("*.fits"))
        raw_bytes = sum(f.stat().st_size for f in files)
        print(f"simulated {len(files)} files, {raw_bytes / 1e9:.1f} GB in {simulated:.0f} s")
        database = workspace.open_database()
        with open_executor("local", workers=2) as pool:
            start = time.perf_counter()
            summary = run_pass(
                workspace, database, progress=True, write_reports=not args.no_reports, workers=pool
            )
            wall = time.perf_counter() - start
        database.close()
        done = [o for o in summary.outcomes if o.status == "done"]
        result = {
            "files": len(files),
            "raw_gb": round(raw_bytes / 1e9, 2),
            "simulate_s": round(simulated, 1),
            "pass_s": round(wall, 1),
            "stages_s": {k: round(v, 1) for k, v in summary.seconds.items()},
            "blocks_done": len(done),
            "blocks_not_done": {
                o.ab_id: f"{o.status}: {o.reason}" for o in summary.outcomes if o.status != "done"
            },
            "jobs_per_hour": round(len(done) / wall * 3600, 1),
            "raw_mb_per_s": round(raw_bytes / 1e6 / wall, 1),
            "peak_rss_mb": round(_peak_mb()),
            "reports": not args.no_reports,
        }
        print(json.dumps(result, indent=2))
        out = Path(__file__).parent / "results" / "vircam_night.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if not args.keep:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
