"""``qc demo``: a short history and a night of OmegaCAM and HAWK-I, run through ``qc run``.

First a history of test-scale nights (slow detector drifts, an intervention recorded
as a quality event) arrives one night at a time; after each pass a QC scientist's
review is made through the same code ``qc certify`` uses (``review_as_qc_scientist``),
and the all-OK products nobody drew for review are certified by ``auto``. The
history's OmegaCAM science OBs are then processed with those certified masters (as
``qc science`` does) and packaged for their PI (``qc package``). Then the
demo night itself (at the scale asked for), whose review queue is left for the
certification dashboard. Two damaged files are put beside the night on purpose (one
truncated in transfer, one that is not FITS at all) to show that bad input is
quarantined with its reason while everything else goes on.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from qclib.archive.certification import decide
from qclib.archive.package import plan_package, verify_package, write_package
from qclib.archive.review import ReviewItem, review_queue
from qclib.associate import AssociationBlock
from qclib.atomicfile import write_bytes_atomic, write_text_atomic
from qclib.calchecker import check_calibrations
from qclib.db import Database, audit, ingest_log, qc1, reviewers
from qclib.db import blocks as block_store
from qclib.db import products as product_store
from qclib.instruments import eso_instruments, load_instrument, load_rules
from qclib.qc.scoring import roll_up
from qclib.simulate.eso import simulate_eso_night
from qclib.simulate.history import plan_history, simulate_history
from qclib.simulate.night import TRUTH_FILE, simulate_night
from qclib.simulate.workers import simulator_pool
from qclib.workflow.executors import Workers, open_executor
from qclib.workflow.run import run_pass, run_science
from qclib.workflow.science import science_blocks
from qclib.workspace import CONFIG_FILE, Workspace, init_workspace, load_workspace

DEMO_INSTRUMENTS = ("OMEGACAM", "HAWKI")
#: Instruments whose night ESO's installed pipeline processes (through esorex).
DEMO_ESO = ("GIRAFFE",)
HISTORY_NIGHTS = 10
HISTORY_SEED = 0
#: In ``simulated/``: the history ran to its end (what it said then).
HISTORY_DONE = "history.done"
#: Whose test-scale science OBs of the history the demo processes and packages. HAWK-I's
#: test-scale detectors see 26" x 26" each, too little sky for its jitter science's
#: astrometric match (its science is tested at full scale, tests/calib/test_science_hawki.py).
DEMO_SCIENCE = {"OMEGACAM": "198.A-2021(A)"}
PACKAGES_DIR = "packages"
#: The demo reviewer; its token is kept (mode 600) in the workspace for `make dashboards`.
DEMO_REVIEWER = "demo"
TOKEN_FILE = ".demo-token"


def review_as_qc_scientist(
    workspace: Workspace,
    database: Database,
    items: list[ReviewItem],
    *,
    reviewer: str,
    interventions: Sequence[Mapping[str, Any]] = (),
) -> dict[str, int]:
    """Decide on review-queue items as a QC scientist would, through ``decide`` (what
    ``qc certify`` calls): NOK on a single detector of a mosaic, or only on detectors a
    recorded intervention changed in the three nights before (``interventions``: date,
    instrument, detectors, text), is certified with a comment saying so (a score override);
    NOK elsewhere is rejected; products drawn at random or with nothing graded are
    looked at and certified; tainted ones are left for the pass that remakes them.
    Returns counts per decision."""
    counts: dict[str, int] = {}
    handled = set()
    while True:
        # A rejection taints products further down the queue: look again after each
        # decision, and leave tainted ones to the pass that remakes them.
        pending = [
            i
            for i in review_queue(workspace, database)
            if i.product_id in {x.product_id for x in items}
            and i.product_id not in handled
            and not i.reasons[0].startswith("tainted:")
        ]
        if not pending:
            return counts
        item = pending[0]
        handled.add(item.product_id)
        nok = [r for r in item.reasons if r.startswith("NOK ")]
        detectors = sorted({r.split()[1].rstrip(":") for r in nok})
        recent = [
            step["text"]
            for step in interventions
            if step["instrument"] == item.instrument
            and 0 <= (item.night - dt.date.fromisoformat(step["date"])).days <= 3
            and set(detectors) <= set(step["detectors"])
        ]
        if not nok:
            decision, comment = "certify", "reviewed: fine"
        elif recent:
            decision = "certify"
            comment = (
                f"NOK on {', '.join(detectors)} follows the recorded intervention: {recent[0]}"
            )
        elif len(detectors) == 1:
            decision = "certify"
            comment = f"NOK on {detectors[0]} only, a known detector problem; the others are fine"
        else:
            decision = "reject"
            comment = f"NOK on {len(detectors)} detectors: {nok[0]}"
        decide(
            workspace,
            database,
            [item.product_id],
            decision=decision,  # type: ignore[arg-type]
            comment=comment,
            reviewer=reviewer,
        )
        counts[decision] = counts.get(decision, 0) + 1


def _demo_settings(workspace: Workspace, eso: Sequence[str]) -> Workspace:
    """The demo certifies at once what nobody drew for review (the default waits 24 h),
    and takes the ESO-pipeline instruments ``eso`` too."""
    path = workspace.root / CONFIG_FILE
    text = path.read_text()
    text = text.replace("auto_certify_after_hours = 24", "auto_certify_after_hours = 0")
    listed = re.search(r"^instruments = \[(.*)\]$", text, flags=re.MULTILINE)
    if listed is not None:
        names = [n.strip().strip('"') for n in listed[1].split(",") if n.strip()]
        names += [n for n in eso if n not in names]
        line = "instruments = [" + ", ".join(f'"{n}"' for n in names) + "]"
        text = text[: listed.start()] + line + text[listed.end() :]
    if text != path.read_text():
        write_text_atomic(path, text)
    return load_workspace(workspace.root)


def _installed_eso(console: Console) -> tuple[str, ...]:
    """The ``DEMO_ESO`` instruments whose pipeline is installed; a line for the others."""
    ready = eso_instruments()
    for name in DEMO_ESO:
        if not ready.get(name):
            console.print(
                f"[yellow]{name} left out[/]: ESO's pipeline for it is not installed "
                "(make system-deps installs esorex and ESO's pipelines)"
            )
    return tuple(n for n in DEMO_ESO if ready.get(n))


def _eso_night(workspace: Workspace, night: dt.date, scale: str, night_dir: Path) -> str:
    """An ESO-pipeline instrument's calibration night into its inbox folder, unless it
    is there or ingested already; a line saying what was done."""
    instrument = night_dir.name.split("_")[0].upper()
    truth = night_dir / TRUTH_FILE
    prefix = load_instrument(instrument).arcfile_prefix
    if truth.exists() or any((workspace.raw_dir / night.isoformat()).glob(f"{prefix}.*")):
        return f"{instrument}: simulated night already in {night_dir}: reusing it"
    staged = workspace.root / "simulated" / night_dir.name
    shutil.rmtree(staged, ignore_errors=True)
    result = simulate_eso_night(instrument, night, staged, scale=scale)
    _move_into_inbox(staged, night_dir)
    return (
        f"{instrument}: simulated {len(result.files)} raw files of its calibration night "
        f"(ESO's pipeline processes them), truth in {truth}"
    )


def _demo_token(workspace: Workspace, database: Database) -> str:
    """The demo reviewer's token: made once, kept beside the workspace's data (mode 600)."""
    path = workspace.root / TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    with database.transaction() as session:
        if any(r["name"] == DEMO_REVIEWER for r in reviewers.list_reviewers(session)):
            reviewers.remove_reviewer(session, DEMO_REVIEWER)
        token = reviewers.add_reviewer(session, DEMO_REVIEWER)
    write_text_atomic(path, token + "\n")
    path.chmod(0o600)
    return token


class _Arrivals:
    """The history's nights as the simulator writes them, for the passes that wait on
    them (a failed simulation ends the wait with its error)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._written: set[tuple[str, str]] = set()
        self._error: BaseException | None = None

    def add(self, instrument: str, night: str) -> None:
        with self._changed:
            self._written.add((instrument, night))
            self._changed.notify_all()

    def fail(self, error: BaseException) -> None:
        with self._changed:
            self._error = error
            self._changed.notify_all()

    def wait(self, instrument: str, night: str) -> None:
        with self._changed:
            while (instrument, night) not in self._written:
                if self._error is not None:
                    raise RuntimeError(
                        f"the history's simulation failed before {instrument} {night}: "
                        f"{self._error}"
                    ) from self._error
                self._changed.wait()


def _simulate_histories(
    workspace: Workspace,
    first: dt.date,
    simulating: concurrent.futures.Executor,
    arrivals: _Arrivals,
) -> None:
    """Simulate the test-scale history of each demo instrument, all at once on the
    simulator pool, each night announced to ``arrivals`` as it is written. Nothing when
    a history was run to its end before (``HISTORY_DONE``)."""
    staged = workspace.root / "simulated"
    if (staged / HISTORY_DONE).exists():
        return

    def simulate(instrument: str) -> None:
        simulate_history(
            instrument,
            first,
            HISTORY_NIGHTS,
            staged / f"{instrument.lower()}_history",
            seed=HISTORY_SEED,
            scale="test",
            science_every=5,
            progress=False,
            pool=simulating,
            on_night=lambda result: arrivals.add(instrument, result.out_dir.name),
        )

    try:
        with concurrent.futures.ThreadPoolExecutor(len(DEMO_INSTRUMENTS)) as each:
            list(each.map(simulate, DEMO_INSTRUMENTS))
    except BaseException as err:
        arrivals.fail(err)
        raise


def _run_history(
    workspace: Workspace,
    database: Database,
    first: dt.date,
    arrivals: _Arrivals,
    console: Console,
    pool: Workers,
) -> None:
    """Let the history arrive night by night as it is simulated (``arrivals``), each
    pass followed by the QC scientist's review (and a last pass, which remakes what the
    last review's rejections tainted, reviewed as well). A history run to its end
    before is left as it is (``HISTORY_DONE`` holds what it said); one that was
    interrupted goes on where it stopped."""
    staged = workspace.root / "simulated"
    done = staged / HISTORY_DONE
    if done.exists():
        console.print(f"history: run before ({done}), reusing it", highlight=False)
        console.print(done.read_text().strip(), highlight=False)
        return
    # The interventions are the history's plan (what history.json lists at the end).
    steps = [
        step.as_dict()
        for instrument in DEMO_INSTRUMENTS
        for step in plan_history(
            load_instrument(instrument), first, HISTORY_NIGHTS, seed=HISTORY_SEED, scale="test"
        ).interventions
    ]
    with database.transaction() as session:
        known = {(e["instrument"], e["date"]) for e in qc1.list_events(session)}
        for step in steps:
            if (step["instrument"], step["date"]) not in known:
                qc1.add_event(
                    session,
                    instrument=str(step["instrument"]),
                    date=dt.date.fromisoformat(str(step["date"])),
                    text=str(step["text"]),
                )
    decided: dict[str, int] = {}
    # One pass more than nights: it remakes what the last night's rejections tainted.
    for i in range(HISTORY_NIGHTS + 1):
        night = (first + dt.timedelta(days=i)).isoformat()
        for instrument in DEMO_INSTRUMENTS if i < HISTORY_NIGHTS else ():
            arrivals.wait(instrument, night)
            source = staged / f"{instrument.lower()}_history" / night
            target = workspace.inbox / f"{instrument.lower()}_{night}"
            if source.exists() and not target.exists():
                shutil.copytree(source, target)
        run_pass(workspace, database, workers=pool, write_reports=False)
        items = review_queue(workspace, database)
        for kind, n in review_as_qc_scientist(
            workspace, database, items, reviewer="qcsci", interventions=steps
        ).items():
            decided[kind] = decided.get(kind, 0) + n
    with database.transaction() as session:
        statuses = [p.status for p in product_store.list_products(session)]
        automatic = sum(e.actor == "auto" for e in audit.entries(session))
    said = (
        f"history: {HISTORY_NIGHTS} test-scale nights of {' and '.join(DEMO_INSTRUMENTS)} "
        f"({first} ...), a pass per night; the QC scientist's review: "
        + ", ".join(f"{n} {k}" for k, n in sorted(decided.items()))
        + f"; certified by auto: {automatic}; {len(statuses)} products in all"
    )
    console.print(said)
    write_text_atomic(done, said + "\n")


def _history_science(
    workspace: Workspace,
    database: Database,
    nights: Sequence[dt.date],
    console: Console,
    pool: Workers,
) -> None:
    """Process the ``DEMO_SCIENCE`` OBs of the history's ``nights`` (their masters
    certified by the history's reviews) as ``qc science`` does, and write each
    programme's PI package into ``packages/`` (again when re-run: the same inputs give
    the same bytes), verified; say what was done."""
    for instrument, prog_id in DEMO_SCIENCE.items():
        ids = [
            b.ab_id
            for night in nights
            for b in science_blocks(database, night=night)
            if b.prog_id == prog_id and b.ab_id.startswith(f"{instrument}.") and b.state != "done"
        ]
        if ids:
            done = run_science(workspace, database, ids, workers=pool)
            grades = {g.ab_id: g for g in done.grades}
            for o in done.outcomes:
                said = f"{instrument} science {o.ab_id}: {o.status}"
                if o.ab_id in grades:
                    said += f", grade {grades[o.ab_id].grade} ({grades[o.ab_id].reason})"
                elif o.reason:
                    said += f" ({o.reason})"
                console.print(said, highlight=False)
        out = workspace.root / PACKAGES_DIR / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', prog_id)}.tar"
        out.unlink(missing_ok=True)
        plan = plan_package(workspace, database, prog_id)
        write_package(plan, out)
        problems = verify_package(out)
        console.print(
            f"PI package of {prog_id}: {out} ({len(plan.files)} files + manifest, "
            + ("verified)" if not problems else f"does NOT verify: {problems[0]})"),
            highlight=False,
        )


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


def _simulate_night(
    workspace: Workspace,
    night: dt.date,
    scale: str,
    night_dirs: Mapping[str, Path],
    simulating: concurrent.futures.Executor,
) -> dict[str, tuple[Path | None, str]]:
    """Simulate the demo night of each instrument into ``simulated/``, unless it is in
    its inbox folder (``night_dirs``) or ingested already: per instrument, the staged
    folder (None: nothing to move) and a line saying what was done."""
    done: dict[str, tuple[Path | None, str]] = {}
    for instrument, night_dir in night_dirs.items():
        if _already_simulated(night_dir, workspace.raw_dir / night.isoformat(), night, scale):
            done[instrument] = (
                None,
                f"{instrument}: simulated night already in {night_dir}: reusing it",
            )
            continue
        staged = workspace.root / "simulated" / night_dir.name
        shutil.rmtree(staged, ignore_errors=True)  # what an interrupted demo left
        result = simulate_night(
            instrument, night, staged, seed=0, scale=scale, progress=False, pool=simulating
        )
        done[instrument] = (
            staged,
            f"{instrument}: simulated {len(result.files)} raw files, "
            f"{result.bytes_written / 1e9:.1f} GB, truth in {night_dir / TRUTH_FILE}",
        )
    return done


def _move_into_inbox(staged: Path, night_dir: Path) -> None:
    """A whole simulated night into the inbox (an incomplete earlier copy replaced)."""
    shutil.rmtree(night_dir, ignore_errors=True)
    night_dir.parent.mkdir(parents=True, exist_ok=True)
    staged.rename(night_dir)


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


def _blocks_table(blocks: list[AssociationBlock], instrument: str) -> Table:
    table = Table(title=f"{instrument}: {len(blocks)} association blocks (the calibration cascade)")
    for column in ("action", "raw", "calibrations (level)", "state"):
        table.add_column(column)
    for block in blocks:
        cals = ", ".join(
            f"{t.tag}:{t.chosen[0].level if t.chosen else 'MISSING'}" for t in block.tags
        )
        table.add_row(block.action, str(len(block.inputs)), cals, block.completeness)
    return table


def _products_table(
    database: Database,
    blocks: list[AssociationBlock],
    instrument: str,
    night: dt.date,
    outcomes: dict,
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
        made = [p for p in products if p.ab_id == block.id]
        for product in made:
            add(block.action, product)
        if not made:
            outcome = outcomes.get(block.id)
            state, reason = states.get(block.id, ("created", None))
            if outcome is not None:
                state, reason = outcome.status, outcome.reason
            table.add_row(block.action, state, reason or "", "", "")
    block_ids = {b.id for b in blocks}
    for product in products:
        if product.ab_id not in block_ids and product.night == night:  # night-level
            add("(the night)", product)
    return table


def run_demo(
    root: Path, night: dt.date, *, scale: str, console: Console, workers: int | None = None
) -> None:
    """Run the demo into ``root`` (created if needed); safe to run again.

    Simulates an OmegaCAM and a HAWK-I night into the inbox (with two damaged files),
    and a GIRAFFE calibration night that ESO's pipeline processes (where it is
    installed), then makes one ``qc run`` pass on a local process pool (``workers``, default the
    cores) and a second one, which finds nothing to do; shows what each stage found.
    """
    eso = _installed_eso(console)
    workspace = _demo_settings(init_workspace(root), eso)
    shown = (*DEMO_INSTRUMENTS, *eso)
    console.rule(f"QC Workbench demo: {', '.join(shown)} night {night} ({scale})")
    database = workspace.open_database()
    start = time.perf_counter()
    night_dirs = {i: workspace.inbox / f"{i.lower()}_{night.isoformat()}" for i in DEMO_INSTRUMENTS}
    # The history is simulated while its passes run, each pass waiting only for its own
    # night; then the night (into a folder outside the inbox, moved in after the
    # history): the passes leave a core idle much of the time, the simulation keeps both
    # busy. One recipe pool for the history and the night: its workers (and their report
    # kernels) start once, not twice (about 2 s of imports a worker, 5 s a kernel); one
    # simulator pool for both histories and the night (not one per simulation: eight
    # processes started).
    with (
        open_executor("local", workers=workers) as pool,
        simulator_pool(pool.count) as simulating,
        concurrent.futures.ThreadPoolExecutor(1) as beside,
    ):
        first = night - dt.timedelta(days=HISTORY_NIGHTS + 1)
        arrivals = _Arrivals()

        def simulate() -> dict[str, tuple[Path | None, str]]:
            _simulate_histories(workspace, first, simulating, arrivals)
            return _simulate_night(workspace, night, scale, night_dirs, simulating)

        simulated = beside.submit(simulate)
        _run_history(workspace, database, first, arrivals, console, pool)
        history = [first + dt.timedelta(days=i) for i in range(HISTORY_NIGHTS)]
        _history_science(workspace, database, history, console, pool)
        history_s = time.perf_counter() - start
        start = time.perf_counter()
        # Into the inbox only now: a history pass would have taken it.
        for instrument, (staged, line) in simulated.result().items():
            if staged is not None:
                _move_into_inbox(staged, night_dirs[instrument])
            console.print(line)
        eso_dirs = {i: workspace.inbox / f"{i.lower()}_{night.isoformat()}" for i in eso}
        for night_dir in eso_dirs.values():
            console.print(_eso_night(workspace, night, scale, night_dir))
        simulated_s = time.perf_counter() - start
        example = next(night_dirs["OMEGACAM"].glob("*.fits"), None) or next(
            (workspace.raw_dir / night.isoformat()).glob("OMEGACAM*.fits")
        )
        _plant_bad_files(workspace.inbox / "damaged_examples", example)

        console.rule("qc run: ingest, classify, associate, process, score, report")
        console.print(f"on a local process pool of {pool.count} workers")
        summary = run_pass(workspace, database, night=night, progress=True, workers=pool)
        again = run_pass(workspace, database, night=night, workers=pool, write_reports=False)

    with database.transaction() as session:
        quarantined = ingest_log.list_quarantine(session)
        frames = ingest_log.list_frames(session, night=night)
        blocks = block_store.list_blocks(session, night=night)
    outcomes = {o.ab_id: o for o in summary.outcomes}
    for instrument in shown:
        mine = [b for b in blocks if b.instrument == instrument]
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
        f"timings: history {history_s:.1f} s (the night simulated beside it), "
        f"simulate {simulated_s:.1f} s more, "
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
    queue = review_queue(workspace, database)
    console.print(
        f"review queue: {len(queue)} product(s) of the night wait for a QC scientist "
        f"({sum(i.grade == 'NOK' for i in queue)} NOK); the rest is certified by auto"
    )
    token = _demo_token(workspace, database)
    database_url = database.url
    database.close()
    console.rule("where things are")
    ws = f"qc --workspace {workspace.root}"
    console.print(f"workspace        {workspace.root}")
    console.print(f"raw frames       {workspace.raw_dir / night.isoformat()}")
    console.print(f"quarantine       {workspace.quarantine_dir}")
    console.print(f"database         {database_url}")
    for instrument, night_dir in {**night_dirs, **eso_dirs}.items():
        console.print(f"truth            {night_dir / TRUTH_FILE} ({instrument})")
    console.print(f"products         {workspace.products_dir / night.isoformat()}")
    console.print(f"PI packages      {workspace.root / PACKAGES_DIR}")
    console.print(f"reports          {workspace.runs_dir / night.isoformat()} (open the .html)")
    console.print(f"try              {ws} frames --night {night}")
    console.print(f"                 {ws} quarantine")
    console.print(f"                 {ws} abs --night {night}")
    console.print(f"                 {ws} calchecker")
    console.print(f"                 {ws} qc1 export --param QC.RON --format csv")
    console.print(f"                 {ws} health OMEGACAM")
    console.print(f"                 {ws} run      (what arrives in {workspace.inbox})")
    console.print(f"                 {ws} review")
    console.print(f"                 {ws} archive list")
    console.print(f"                 {ws} audit")
    console.rule("dashboards")
    console.print(
        f"serve them:  make dashboards   (or: {ws} dashboards)\n"
        f"then open:   http://127.0.0.1:8866/?token={token}\n"
        f"             (reviewer '{DEMO_REVIEWER}'; the token is kept in "
        f"{workspace.root / TOKEN_FILE}; `qc user add NAME` gives each reviewer their own)",
        highlight=False,
    )
    if eso:
        console.print(
            f"ESO's pipelines: {', '.join(eso)}'s calibration night went through ESO's rule "
            "file and ESO's recipes (esorex), its QC1 values harvested with ESO's dictionary; "
            "each block's esorex log is beside its products",
            highlight=False,
        )
    console.print(
        f"science: the history's {', '.join(DEMO_SCIENCE)} OBs are processed, graded and "
        f"packaged for their PI ({workspace.root / PACKAGES_DIR}); the night's OB waits, on "
        "request: once its masters are certified, "
        f"{ws} science processes and grades it, and {ws} package --prog-id "
        f"'198.A-2021(A)' --out pi-package.tar packs it for its PI",
        highlight=False,
    )
