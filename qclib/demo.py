"""``qc demo``: a simulated OmegaCAM and HAWK-I night, run through ``qc run``.

Two damaged files are put beside the night on purpose (one truncated in transfer,
one that is not FITS at all) to show that bad input is quarantined with its
reason while everything else goes on.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from qclib.atomicfile import write_bytes_atomic
from qclib.calchecker import check_calibrations
from qclib.db import Database, ingest_log, qc1
from qclib.db import blocks as block_store
from qclib.db import products as product_store
from qclib.instruments import load_instrument, load_rules
from qclib.qc.scoring import roll_up
from qclib.simulate.night import TRUTH_FILE, simulate_night
from qclib.workflow.executors import open_executor
from qclib.workflow.run import run_pass
from qclib.workspace import init_workspace

DEMO_INSTRUMENTS = ("OMEGACAM", "HAWKI")


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


def _frames_table(frames: list, instrument: str, night: dt.date) -> Table:
    table = Table(title=f"{instrument} night {night}: {len(frames)} frames indexed")
    for column in ("DPR.CATG", "DPR.TYPE", "filter", "frames", "EXPTIME (s)"):
        table.add_column(column)
    groups: dict[tuple, list] = {}
    for f in frames:
        groups.setdefault((f.dpr_catg, f.dpr_type, f.filters), []).append(f)
    for (catg, kind, filt), members in sorted(groups.items(), key=lambda kv: str(kv[0])):
        times = sorted({f.exptime_s for f in members})
        table.add_row(
            catg or "",
            kind or "",
            filt or "",
            str(len(members)),
            ", ".join(f"{t:g}" for t in times),
        )
    return table


def _blocks_table(blocks: list[dict], instrument: str) -> Table:
    table = Table(title=f"{instrument}: {len(blocks)} association blocks (the calibration cascade)")
    for column in ("action", "raw", "calibrations (level)", "state"):
        table.add_column(column)
    for block in blocks:
        cals = ", ".join(
            f"{t['tag']}:{t['chosen'][0]['level'] if t['chosen'] else 'MISSING'}"
            for t in block["calibrations"]
        )
        table.add_row(block["action"], str(len(block["inputs"])), cals, block["completeness"])
    return table


def _products_table(
    database: Database, blocks: list[dict], instrument: str, night: dt.date, outcomes: dict
) -> Table:
    with database.transaction() as session:
        products = list(product_store.list_products(session, instrument=instrument))
        grades = {p.id: qc1.product_grades(session, p.id) for p in products}
        states = product_store.block_states(session)
    table = Table(title=f"{instrument}: products and grades (NOK detectors named)")
    for column in ("block", "state", "product", "grade", "NOK"):
        table.add_column(column, overflow="fold")

    def add(action: str, product: product_store.StoredProduct) -> None:
        by_detector = grades[product.id]
        rolled = roll_up(g for det in by_detector.values() for g in det.values())
        bad = sorted(d for d, values in by_detector.items() if "NOK" in values.values())
        table.add_row(action, "done", product.pro_catg, rolled, ", ".join(bad))

    for block in blocks:
        made = [p for p in products if p.ab_id == block["id"]]
        for product in made:
            add(block["action"], product)
        if not made:
            outcome = outcomes.get(block["id"])
            state, reason = states.get(block["id"], ("created", None))
            if outcome is not None:
                state, reason = outcome.status, outcome.reason
            table.add_row(block["action"], state, reason or "", "", "")
    block_ids = {b["id"] for b in blocks}
    for product in products:
        if product.ab_id not in block_ids and product.night == night:  # night-level
            add("(the night)", product)
    return table


def run_demo(
    root: Path, night: dt.date, *, scale: str, console: Console, workers: int | None = None
) -> None:
    """Run the demo into ``root`` (created if needed); safe to run again.

    Simulates an OmegaCAM and a HAWK-I night into the inbox (with two damaged files),
    then makes one ``qc run`` pass on a local process pool (``workers``, default the
    cores) and a second one, which finds nothing to do; shows what each stage found.
    """
    workspace = init_workspace(root)
    console.rule(f"QC Workbench demo: {' and '.join(DEMO_INSTRUMENTS)} night {night} ({scale})")
    start = time.perf_counter()
    night_dirs = {}
    for instrument in DEMO_INSTRUMENTS:
        night_dir = night_dirs[instrument] = (
            workspace.inbox / f"{instrument.lower()}_{night.isoformat()}"
        )
        if _already_simulated(night_dir, workspace.raw_dir / night.isoformat(), night, scale):
            console.print(f"{instrument}: simulated night already in {night_dir}: reusing it")
            continue
        result = simulate_night(instrument, night, night_dir, seed=0, scale=scale)
        console.print(
            f"{instrument}: simulated {len(result.files)} raw files, "
            f"{result.bytes_written / 1e9:.1f} GB, truth in {result.truth_path}"
        )
    simulated_s = time.perf_counter() - start
    example = next(night_dirs["OMEGACAM"].glob("*.fits"), None) or next(
        (workspace.raw_dir / night.isoformat()).glob("OMEGACAM*.fits")
    )
    _plant_bad_files(workspace.inbox / "damaged_examples", example)

    database = workspace.open_database()
    console.rule("qc run: ingest, classify, associate, process, score, report")
    with open_executor("local", workers=workers) as pool:
        console.print(f"on a local process pool of {pool.count} workers")
        summary = run_pass(workspace, database, night=night, progress=True, workers=pool)
        again = run_pass(workspace, database, night=night, workers=pool, write_reports=False)

    with database.transaction() as session:
        quarantined = ingest_log.list_quarantine(session)
        frames = ingest_log.list_frames(session, night=night)
        blocks = block_store.list_blocks(session, night=night)
    outcomes = {o.ab_id: o for o in summary.outcomes}
    for instrument in DEMO_INSTRUMENTS:
        mine = [b for b in blocks if b["instrument"] == instrument]
        console.print(
            _frames_table([f for f in frames if f.instrument == instrument], instrument, night)
        )
        console.print(_blocks_table(mine, instrument))
        checks = check_calibrations(
            load_rules(instrument), load_instrument(instrument).association, mine
        )
        for check in checks:
            console.print(f"calChecker: {check.verdict} for {check.action} {check.setup}")
        console.print(_products_table(database, mine, instrument, night, outcomes))
    console.print("inbox: " + ", ".join(f"{n} {s}" for s, n in sorted(summary.ingested.items())))
    if quarantined:
        console.print(f"[bold]{len(quarantined)} file(s) in quarantine[/] (on purpose):")
        for entry in quarantined:
            console.print(f"  [red]{entry.reason_code}[/]: {entry.reason}", highlight=False)
    console.print(
        "scored: " + (", ".join(f"{n} {g}" for g, n in sorted(summary.scored.items())) or "-")
    )
    written = [r for r in summary.reports if r.status == "written"]
    console.print(f"{len(written)} report(s) written (papermill notebook + HTML)")
    for r in summary.reports:
        if r.status == "failed":
            console.print(f"[bold red]report failed[/] {r.reason}", highlight=False)
    console.print(
        f"timings: simulate {simulated_s:.1f} s, "
        + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in summary.seconds.items())
    )
    retried = [o for o in again.outcomes if o.status == "failed" and o.ab_id in outcomes]
    console.print(
        f"a second pass ({sum(again.seconds.values()):.1f} s): "
        + ("nothing new" if not again.ingested.get("ingested") else "new files")
        + (
            f"; {len(retried)} failed block(s) tried again "
            f"(up to \\[workflow] max_retries={workspace.config.workflow.max_retries} passes)"
            if retried
            else ""
        )
    )
    database_url = database.url
    database.close()
    console.rule("where things are")
    ws = f"qc --workspace {workspace.root}"
    console.print(f"workspace        {workspace.root}")
    console.print(f"raw frames       {workspace.raw_dir / night.isoformat()}")
    console.print(f"quarantine       {workspace.quarantine_dir}")
    console.print(f"database         {database_url}")
    for instrument, night_dir in night_dirs.items():
        console.print(f"truth            {night_dir / TRUTH_FILE} ({instrument})")
    console.print(f"products         {workspace.products_dir / night.isoformat()}")
    console.print(f"reports          {workspace.runs_dir / night.isoformat()} (open the .html)")
    console.print(f"try              {ws} frames --night {night}")
    console.print(f"                 {ws} quarantine")
    console.print(f"                 {ws} abs --night {night}")
    console.print(f"                 {ws} calchecker")
    console.print(f"                 {ws} qc1 export --param QC.RON --format csv")
    console.print(f"                 {ws} health OMEGACAM")
    console.print(f"                 {ws} run      (what arrives in {workspace.inbox})")
    console.print(
        "Not yet built: science-frame recipes, the dashboards, certification, archive "
        "and PI packages; the demo grows with them"
    )
