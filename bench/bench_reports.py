"""Block reports of a processed workspace: seconds per report on 2 workers, each report in
a kernel of its own against kernels kept alive per worker (what ``qc run`` does).

Every done block with a report template is rendered (notebook and HTML, into a scratch
folder of the workspace) twice per round, alternating the two ways, on a spawn pool of
``--workers``; the pool is started and warmed (imports) before the clock starts.

    python bench/bench_reports.py --workspace DIR [--workers 2] [--rounds 2]

Results: bench/results/reports.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import multiprocessing
import os
import shutil
import time
from pathlib import Path


def _render(root: str, ab_id: str, night: str, recipe: str, keep: bool, out: str) -> float:
    from qclib.workflow.reports import render_notebook, template_for

    start = time.perf_counter()
    template = template_for(recipe)
    assert template is not None
    render_notebook(
        template,
        Path(out) / night / f"{ab_id}.ipynb",
        {"ab_id": ab_id, "workspace": root},
        cwd=Path(root),
        keep_kernel=keep,
    )
    return time.perf_counter() - start


def _warm() -> None:
    import qclib.workflow.reports  # noqa: F401 - the imports a worker pays once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from qclib.db import products as product_store
    from qclib.workflow.reports import template_for
    from qclib.workspace import load_workspace

    workspace = load_workspace(args.workspace)
    database = workspace.open_database()
    with database.transaction() as session:
        done = [b for b in product_store.done_blocks(session) if template_for(b[2]) is not None]
    database.close()
    out = workspace.root / "bench-reports"
    root = str(workspace.root)
    results: dict[str, list[float]] = {"kernel per report": [], "kept kernels": []}
    with concurrent.futures.ProcessPoolExecutor(
        args.workers, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        for f in [pool.submit(_warm) for _ in range(args.workers)]:
            f.result()
        for _ in range(args.rounds):
            for way, keep in (("kernel per report", False), ("kept kernels", True)):
                shutil.rmtree(out, ignore_errors=True)
                start = time.perf_counter()
                futures = [
                    pool.submit(_render, root, ab, night.isoformat(), recipe, keep, str(out))
                    for ab, night, recipe in done
                ]
                each = [f.result() for f in futures]
                wall = time.perf_counter() - start
                results[way].append(wall / len(done))
                print(
                    f"{way:<18} {len(done)} reports in {wall:5.1f} s: {wall / len(done):.2f} s "
                    f"per report (each {min(each):.1f}-{max(each):.1f} s in its worker)",
                    flush=True,
                )
    shutil.rmtree(out, ignore_errors=True)
    summary = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "workspace": root,
        "reports": len(done),
        "workers": args.workers,
        "load_average": os.getloadavg(),
        "seconds_per_report": {k: [round(v, 2) for v in vs] for k, vs in results.items()},
    }
    target = Path(__file__).parent / "results" / "reports.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
