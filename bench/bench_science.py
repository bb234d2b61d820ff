"""Science processing of one full OmegaCAM dithered OB (5 exposures x 32 CCDs) against
one pass over its data.

    python bench/bench_science.py --work-dir DIR [--seed 3]

Simulates once, into ``DIR/raw``, a full-size OmegaCAM night of what its science block
needs (biases, dome and twilight flats, standard fields, the science OB); runs it
through one ``qc run`` pass on a local pool (the science waits, on request); certifies
every product as a QC scientist would (``decide``); then runs the science block's
recipe in a fresh process, as ``bench_recipe_floors`` runs every recipe: on a warm page
cache, its inputs first read once (the read floor), the recipe timed without imports,
its product's bytes written once more (the write floor). Prints wall time, peak memory
(the child's RSS), the bytes read and written and the ratio to the floor; results in
bench/results/science.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

NIGHT = dt.date(2026, 11, 23)
KINDS = {"bias", "dome_flat", "twilight_flat", "standard", "science"}


def _prepare(work: Path, seed: int) -> tuple[Path, str]:
    """The workspace with certified masters, and the science block's id."""
    from qclib.archive.certification import decide
    from qclib.db import products as product_store
    from qclib.simulate.night import simulate_night
    from qclib.workflow.executors import open_executor
    from qclib.workflow.run import run_pass
    from qclib.workflow.science import science_blocks
    from qclib.workspace import init_workspace, load_workspace

    raw, root = work / "raw", work / "science"
    if not (raw / "truth.json").exists():
        start = time.perf_counter()
        simulate_night("OMEGACAM", NIGHT, raw, seed=seed, scale="full", only=KINDS)
        print(f"simulated in {time.perf_counter() - start:.0f} s", flush=True)
    if not (root / ".prepared").exists():
        workspace = init_workspace(root)
        inbox = workspace.inbox / "night"
        inbox.mkdir(parents=True, exist_ok=True)
        for path in raw.glob("*.fits"):
            if not (inbox / path.name).exists():
                os.link(path, inbox / path.name)
        if (raw / "catalogues").is_dir() and not (inbox / "catalogues").exists():
            shutil.copytree(raw / "catalogues", inbox / "catalogues")
        database = workspace.open_database()
        start = time.perf_counter()
        with open_executor("local") as pool:
            run_pass(workspace, database, progress=True, write_reports=False, workers=pool)
        print(f"calibration pass in {time.perf_counter() - start:.0f} s", flush=True)
        with database.transaction() as session:
            pending = [p.id for p in product_store.list_products(session) if p.status == "scored"]
        if pending:
            decide(
                workspace, database, pending, decision="certify", comment="bench", reviewer="bench"
            )
        database.close()
        (root / ".prepared").touch()
    database = load_workspace(root).open_database()
    (block,) = science_blocks(database, night=NIGHT)
    ab_id = block.ab_id
    database.close()
    return root, ab_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    root, ab_id = _prepare(args.work_dir.resolve(), args.seed)
    floors = Path(__file__).with_name("bench_recipe_floors.py")
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, str(floors), "--work-dir", str(root), "--child", ab_id],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{ab_id}: failed\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["child_wall_s"] = round(wall, 1)
    print(
        f"science OB {ab_id}: {row['detectors']} CCDs; read {row['read_gb']:.2f} GB, "
        f"write {row['write_gb']:.2f} GB; recipe {row['recipe_s']:.1f} s, floor "
        f"{row['floor_s']:.2f} s ({row['x_floor']:.0f}x); whole child {wall:.1f} s; "
        f"peak RSS {row['peak_rss_mb']} MB",
        flush=True,
    )
    result = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "cores": os.cpu_count(),
        "science": row,
    }
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "science.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
