"""ESO jobs through the workflow: jobs per hour, and the project's overhead per job
against the recipe's own time, on 1 and 2 local workers.

Simulated calibration nights (``qc simulate``, test scale) of GIRAFFE, NACO and VISIR
for ``--nights`` consecutive nights are ingested and associated into one workspace per
worker count; then ``process_blocks`` runs every block (no reports), timed. For each
run the table gives:

  jobs        blocks processed (each one esorex job)
  wall s      the processing, start to last product recorded
  jobs/hour   jobs / wall
  recipe s    the recipes' own time, summed: what esorex logs as "Recipe operation(s)
              took X seconds" in each block's esorex.log
  overhead/job  (wall x workers - recipe s) / jobs: everything that is not the
              recipe, per job: the inputs resolved, the SOF, esorex starting and
              loading the plugin, its checksums, adopting the products (provenance
              table, checksums, previews), the QC harvest and the database records

    python bench/bench_eso_jobs.py --work-dir DIR [--nights 5]

Results: bench/results/eso_jobs.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import time
from pathlib import Path

INSTRUMENTS = ("GIRAFFE", "NACO", "VISIR")
_RECIPE_TIME = re.compile(r"Recipe operation\(s\) took\s+([0-9.]+) seconds")


def _workspace(root: Path):  # type: ignore[no-untyped-def]
    from qclib.workspace import init_workspace

    workspace = init_workspace(root)
    config = workspace.root / "qc.toml"
    text = config.read_text()
    start = text.index("\ninstruments = ")
    end = text.index("\n", start + 1)
    listed = ", ".join(f'"{n}"' for n in INSTRUMENTS)
    config.write_text(f"{text[:start]}\ninstruments = [{listed}]{text[end:]}")
    return init_workspace(root)


def run(raw: Path, root: Path, workers: int) -> dict[str, float]:
    from qclib.workflow.association import associate_workspace
    from qclib.workflow.executors import open_executor
    from qclib.workflow.ingest import ingest_paths
    from qclib.workflow.process import process_blocks

    shutil.rmtree(root, ignore_errors=True)
    workspace = _workspace(root)
    database = workspace.open_database()
    ingest_paths(workspace, database, [raw])
    associate_workspace(workspace, database)
    with open_executor("local", workers=workers) as pool:
        start = time.perf_counter()
        outcomes = process_blocks(
            workspace, database, executor=pool.executor, slots=pool.count, memory_mb=None
        )
        wall = time.perf_counter() - start
    database.close()
    done = [o for o in outcomes if o.status == "done"]
    recipe = 0.0
    for log in workspace.products_dir.glob("*/*.esorex/esorex.log"):
        found = _RECIPE_TIME.search(log.read_text(errors="replace"))
        recipe += float(found[1]) if found else 0.0
    jobs = len(done)
    return {
        "workers": workers,
        "jobs": jobs,
        "failed": len(outcomes) - jobs,
        "wall_s": round(wall, 2),
        "jobs_per_hour": round(jobs / wall * 3600),
        "recipe_s": round(recipe, 2),
        "overhead_per_job_s": round((wall * workers - recipe) / max(jobs, 1), 3),
        "recipe_per_job_s": round(recipe / max(jobs, 1), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--nights", type=int, default=5)
    args = parser.parse_args()
    from qclib.simulate.eso import simulate_eso_night

    raw = args.work_dir / "raw"
    first = dt.date(2026, 11, 1)
    for i in range(args.nights):
        night = first + dt.timedelta(days=i)
        for name in INSTRUMENTS:
            folder = raw / f"{name}_{night}"
            if not (folder / "truth.json").exists():
                simulate_eso_night(name, night, folder, seed=i, scale="test")
    rows = [run(raw, args.work_dir / f"ws{n}", n) for n in (1, 2)]
    columns = ("workers", "jobs", "wall_s", "jobs_per_hour", "recipe_s")
    columns += ("recipe_per_job_s", "overhead_per_job_s")
    print(" ".join(f"{c:>18}" for c in columns))
    for r in rows:
        print(" ".join(f"{r[c]!s:>18}" for c in columns))
    out = Path(__file__).parent / "results" / "eso_jobs.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"nights": args.nights, "runs": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
