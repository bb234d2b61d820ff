"""``qc demo``: a simulated OmegaCAM night, ingested, associated, processed and scored.

Two damaged files are put beside the night on purpose (one truncated in transfer,
one that is not FITS at all) to show that bad input is quarantined with its
reason while everything else goes on.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from qclib.atomicfile import write_bytes_atomic
from qclib.calchecker import check_calibrations
from qclib.db import blocks as block_store
from qclib.db import ingest_log, qc1
from qclib.db import products as product_store
from qclib.instruments import load_instrument, load_rules
from qclib.qc.scoring import roll_up
from qclib.simulate.night import TRUTH_FILE, simulate_night
from qclib.workflow.association import associate_workspace
from qclib.workflow.extinction import measure_extinction
from qclib.workflow.ingest import ingest_paths
from qclib.workflow.process import process_blocks
from qclib.workflow.reports import render_reports
from qclib.workflow.scoring import score_values
from qclib.workspace import init_workspace

DEMO_INSTRUMENT = "OMEGACAM"


def _already_simulated(folder: Path, raw_night: Path, night: dt.date, scale: str) -> bool:
    """True when the night was simulated before (its files in the inbox or already ingested)."""
    truth = folder / TRUTH_FILE
    if not truth.exists():
        return False
    data = json.loads(truth.read_text())
    complete = all(
        (folder / e["arcfile"]).exists() or (raw_night / e["arcfile"]).exists()
        for e in data["exposures"]
    )
    return complete and data["night"] == night.isoformat() and data["scale"] == scale


def _plant_bad_files(folder: Path, example: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    truncated = folder / "TRUNCATED_TRANSFER.fits"
    if not truncated.exists():
        with open(example, "rb") as handle:
            write_bytes_atomic(truncated, handle.read(3 * 2880 * 10))
        # An hour old: a transfer that stopped, not one still under way.
        old = time.time() - 3600
        os.utime(truncated, (old, old))
    not_fits = folder / "NOTES_NOT_FITS.fits"
    if not not_fits.exists():
        write_bytes_atomic(not_fits, b"observer notes, saved under a .fits name\n")


def run_demo(root: Path, night: dt.date, *, scale: str, console: Console) -> None:
    """Run the demo into ``root`` (created if needed); safe to run again."""
    timings: dict[str, float] = {}
    workspace = init_workspace(root)
    night_dir = workspace.inbox / f"{DEMO_INSTRUMENT.lower()}_{night.isoformat()}"
    console.rule(f"QC Workbench demo: {DEMO_INSTRUMENT} night {night} ({scale} scale)")
    start = time.perf_counter()
    if _already_simulated(night_dir, workspace.raw_dir / night.isoformat(), night, scale):
        console.print(f"simulated night already in {night_dir}: reusing it")
    else:
        result = simulate_night(DEMO_INSTRUMENT, night, night_dir, seed=0, scale=scale)
        console.print(
            f"simulated {len(result.files)} raw files, {result.bytes_written / 1e9:.1f} GB, "
            f"truth in {result.truth_path}"
        )
    timings["simulate"] = time.perf_counter() - start
    bad_dir = workspace.inbox / "damaged_examples"
    example = next(night_dir.glob("*.fits"), None) or next(
        (workspace.raw_dir / night.isoformat()).glob("*.fits")
    )
    _plant_bad_files(bad_dir, example)

    start = time.perf_counter()
    database = workspace.open_database()
    # The inbox is ESO-style: files move into data/raw (a rename: no data copied).
    outcomes = ingest_paths(workspace, database, [night_dir, bad_dir], move=True, progress=True)
    timings["ingest"] = time.perf_counter() - start
    counts = Counter(o.status for o in outcomes)

    with database.transaction() as session:
        frames = ingest_log.list_frames(session, night=night)
        quarantined = ingest_log.list_quarantine(session)
    table = Table(title=f"night {night}: {len(frames)} frames indexed")
    for column in ("DPR.CATG", "DPR.TYPE", "filter", "frames", "EXPTIME (s)"):
        table.add_column(column)
    groups = Counter((f.dpr_catg, f.dpr_type, f.filters) for f in frames)
    for (catg, kind, filt), n in sorted(groups.items(), key=lambda kv: str(kv[0])):
        times = sorted(
            {
                f.exptime_s
                for f in frames
                if (f.dpr_catg, f.dpr_type, f.filters) == (catg, kind, filt)
            }
        )
        table.add_row(
            catg or "", kind or "", filt or "", str(n), ", ".join(f"{t:g}" for t in times)
        )
    console.print(table)
    console.print(
        "this pass: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    )
    if quarantined:
        console.print(f"[bold]{len(quarantined)} file(s) in quarantine[/] (on purpose):")
        for entry in quarantined:
            console.print(f"  [red]{entry.reason_code}[/]: {entry.reason}", highlight=False)
    start = time.perf_counter()
    summary = associate_workspace(workspace, database)
    timings["classify+associate"] = time.perf_counter() - start
    with database.transaction() as session:
        blocks = block_store.list_blocks(session, night=night, instrument=DEMO_INSTRUMENT)
    ab_table = Table(title=f"{len(blocks)} association blocks (the calibration cascade)")
    for column in ("action", "raw", "calibrations (level)", "state"):
        ab_table.add_column(column)
    for block in blocks:
        cals = ", ".join(
            f"{t['tag']}:{t['chosen'][0]['level'] if t['chosen'] else 'MISSING'}"
            for t in block["calibrations"]
        )
        ab_table.add_row(block["action"], str(len(block["inputs"])), cals, block["completeness"])
    console.print(ab_table)
    for arcfile, misses in summary.unclassified:
        console.print(f"[red]UNCLASSIFIED[/] {arcfile}: {misses[0] if misses else ''}")
    checks = check_calibrations(
        load_rules(DEMO_INSTRUMENT), load_instrument(DEMO_INSTRUMENT).association, blocks
    )
    for check in checks:
        console.print(f"calChecker: {check.verdict} for {check.action} {check.setup}")

    start = time.perf_counter()
    outcomes_by_block = process_blocks(workspace, database, night=night)
    measure_extinction(workspace, database)
    timings["process"] = time.perf_counter() - start
    start = time.perf_counter()
    scoring = score_values(database, instrument=DEMO_INSTRUMENT)
    timings["score"] = time.perf_counter() - start
    with database.transaction() as session:
        products = {
            p.id: p for p in product_store.list_products(session, instrument=DEMO_INSTRUMENT)
        }
        grades = {pid: qc1.product_grades(session, pid) for pid in products}
    state = {o.ab_id: o for o in outcomes_by_block}
    product_table = Table(title="processed blocks: products and grades (NOK detectors named)")
    for column in ("block", "state", "product", "grade", "NOK"):
        product_table.add_column(column, overflow="fold")
    for block in blocks:
        outcome = state.get(block["id"])
        made = [p for p in products.values() if p.ab_id == block["id"]]
        if not made:
            status = outcome.status if outcome else "done earlier"
            reason = (outcome.reason or "") if outcome else ""
            product_table.add_row(block["action"], status, reason, "", "")
            continue
        for product in made:
            by_detector = grades[product.id]
            rolled = roll_up(g for det in by_detector.values() for g in det.values())
            bad = sorted(d for d, values in by_detector.items() if "NOK" in values.values())
            product_table.add_row(block["action"], "done", product.pro_catg, rolled, ", ".join(bad))
    block_ids = {b["id"] for b in blocks}
    for product in products.values():
        if product.ab_id not in block_ids and product.night == night:  # night-level
            by_detector = grades[product.id]
            rolled = roll_up(g for det in by_detector.values() for g in det.values())
            product_table.add_row("(the night)", "done", product.pro_catg, rolled, "")
    console.print(product_table)
    console.print(
        f"scored {scoring.scored} QC value(s): "
        + ", ".join(f"{n} {g}" for g, n in sorted(scoring.grades.items()))
    )
    start = time.perf_counter()
    reports = render_reports(
        workspace, database, [o.ab_id for o in outcomes_by_block if o.status == "done"]
    )
    timings["report"] = time.perf_counter() - start
    written = [r for r in reports if r.status == "written"]
    console.print(f"{len(written)} report(s) written (papermill notebook + HTML)")
    for r in reports:
        if r.status == "failed":
            console.print(f"[bold red]report failed[/] {r.reason}", highlight=False)
    console.print(
        "timings: " + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in timings.items())
    )
    console.rule("where things are")
    console.print(f"workspace        {workspace.root}")
    console.print(f"raw frames       {workspace.raw_dir / night.isoformat()}")
    console.print(f"quarantine       {workspace.quarantine_dir}")
    console.print(f"database         {database.url}")
    console.print(f"truth            {night_dir / TRUTH_FILE}")
    console.print(f"try              qc --workspace {workspace.root} frames --night {night}")
    console.print(f"                 qc --workspace {workspace.root} quarantine")
    console.print(f"                 qc --workspace {workspace.root} abs --night {night}")
    console.print(f"                 qc --workspace {workspace.root} calchecker")
    console.print(f"products         {workspace.products_dir / night.isoformat()}")
    console.print(f"reports          {workspace.runs_dir / night.isoformat()} (open the .html)")
    console.print(f"                 qc --workspace {workspace.root} qc1 export --param QC.RON")
    console.print(
        "next: `qc run` / `qc watch` do all of this for whatever arrives in the inbox. "
        "Not yet built: science-frame recipes, the dashboards, certification, archive "
        "and PI packages; the demo grows with them"
    )
