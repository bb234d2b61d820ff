"""One incremental pass of the whole flow (``qc run``), and passes on a schedule (``qc watch``).

A pass: ingest what is new in the inbox (moved into ``data/raw``), classify and
associate, process the complete blocks in dependency order, grade the new QC values,
execute the report of every block processed, certify (as ``auto``) the all-OK
products not drawn for review once their delay is over, and archive what is certified.
Each pass is recorded (start, end, what it did) for the monitor dashboard.
``run_science`` (``qc science``) processes science blocks on request and finishes them
the way a pass finishes what it processed.
Every stage is idempotent, so a second pass over the same data does nothing, and a
pass killed anywhere is finished by the next one (products are written atomically and
recorded in one transaction with their block's state). A lock file keeps two passes
(two watchers) from working on one workspace at the same time.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import fcntl
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qclib.archive.certification import archive_certified, auto_certify
from qclib.atomicfile import sweep_stale_temporaries
from qclib.db import Database
from qclib.db import ob_grades as grade_store
from qclib.db import passes as pass_store
from qclib.db import products as product_store
from qclib.errors import ConfigError
from qclib.products import PART_PREFIX
from qclib.workflow.association import associate_workspace
from qclib.workflow.executors import SERIAL, Workers
from qclib.workflow.extinction import measure_extinction, nights_to_refit
from qclib.workflow.grading import grade_science
from qclib.workflow.ingest import expand_sources, ingest_paths
from qclib.workflow.process import ProcessOutcome, process_blocks
from qclib.workflow.reports import (
    ReportOutcome,
    render_reports,
    template_for,
    warm_report_kernel,
)
from qclib.workflow.science import ScienceRequest
from qclib.workflow.scoring import score_values
from qclib.workspace import Workspace

LOCK_NAME = ".qc-run.lock"


class PassLockedError(ConfigError):
    """Another pass holds the workspace."""


@dataclass(frozen=True)
class PassSummary:
    ingested: dict[str, int]
    blocks: dict[str, int]
    outcomes: list[ProcessOutcome]
    scored: dict[str, int]
    reports: list[ReportOutcome] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    certified: int = 0
    archived: dict[int, str] = field(default_factory=dict)
    science_programmes: list[str] = field(default_factory=list)
    """qc.toml's [science] programmes during the pass (a change makes the next pass read
    the science blocks recorded as on request again)."""

    @property
    def did_something(self) -> bool:
        new_files = sum(n for status, n in self.ingested.items() if status != "already-ingested")
        processed = any(o.status in ("done", "failed") for o in self.outcomes)
        return bool(
            new_files or processed or sum(self.scored.values()) or self.certified or self.archived
        )

    def as_dict(self) -> dict[str, Any]:
        """What the pass did, for the passes table and ``--json``."""
        return {
            "ingested": self.ingested,
            "blocks": self.blocks,
            "outcomes": [o.as_dict() for o in self.outcomes],
            "scored": self.scored,
            "reports": {
                status: sum(r.status == status for r in self.reports)
                for status in sorted({r.status for r in self.reports})
            },
            "certified": self.certified,
            "archived": {str(k): v for k, v in self.archived.items()},
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "did_something": self.did_something,
            "science_programmes": self.science_programmes,
        }


@contextmanager
def workspace_lock(workspace: Workspace) -> Iterator[None]:
    """Hold the workspace's pass lock, or raise PassLockedError at once."""
    path = workspace.data_dir / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise PassLockedError(
                f"{workspace.root}: a pass is already running ({holder}); "
                "wait for it, or stop that watcher"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _sweep_leftovers(workspace: Workspace) -> None:
    """Remove what a killed pass left: temporaries of dead processes, and product parts
    (none is live outside a pass, which holds the lock). Done at the start of a pass,
    and again at its end: the workers of a pass killed just before this one began may
    still have been dying then. Only folders changed since the last sweep are listed
    (``sweep_stale_temporaries``), not every product and report of the history."""
    sweep_stale_temporaries(
        workspace.products_dir, also=(PART_PREFIX,), record=workspace.sweep_record("products")
    )
    sweep_stale_temporaries(workspace.runs_dir, record=workspace.sweep_record("runs"))


def _warm_report_kernels(workspace: Workspace, workers: Workers) -> list[Any]:
    """Each worker starts its report kernel (and the reports' imports) while the pass
    ingests, which needs no worker: when the inbox has FITS files to ingest (a pass with
    none starts no kernel: 1-3 s of kernel start for nothing, every hour). Full
    OmegaCAM night: the first reports took 7.5 s (kernel start and imports), the others
    about 1 s."""
    if workers.executor is None or next(expand_sources([workspace.inbox]), None) is None:
        return []
    root = str(workspace.root)
    return [workers.executor.submit(warm_report_kernel, root) for _ in range(workers.count)]


def _reports_owed(workspace: Workspace, database: Database, pass_id: int) -> list[str]:
    """Blocks a killed pass left without their report: when the pass before this one
    never finished (the lock rules out its still running), every done block with a
    report template whose HTML report is missing. A block is processed once, so its
    report is owed by whichever pass comes next."""
    with database.transaction() as session:
        previous = [p for p in pass_store.recent_passes(session, 2) if p["id"] != pass_id]
        if not previous or previous[0]["finished_at"] is not None:
            return []
        done = product_store.done_blocks(session)
    return _without_report(workspace, done)


def _without_report(workspace: Workspace, done: list[tuple[str, dt.date, str, str]]) -> list[str]:
    """Of done blocks (id, night, recipe, instrument), those with a report template and
    no HTML report."""
    return [
        ab_id
        for ab_id, night, recipe, instrument in done
        if not (workspace.runs_dir / night.isoformat() / f"{ab_id}.html").exists()
        and template_for(recipe, instrument) is not None
    ]


def run_pass(
    workspace: Workspace,
    database: Database,
    *,
    night: dt.date | None = None,
    progress: bool = False,
    write_reports: bool = True,
    workers: Workers = SERIAL,
) -> PassSummary:
    """One pass over whatever is new. Raises PassLockedError if another pass runs.

    ``workers``: where recipes and reports run (``qclib.workflow.executors.open_executor``);
    the default: here, one after another."""
    seconds: dict[str, float] = {}
    with workspace_lock(workspace):
        programmes = sorted(workspace.config.science.programmes)
        with database.transaction() as session:
            before = pass_store.last_finished_summary(session)
            pass_id = pass_store.start_pass(session)
        # Science blocks recorded as on request are read again when qc.toml names
        # programmes it did not name at the last pass.
        reread = bool(programmes) and (before or {}).get("science_programmes") != programmes
        _sweep_leftovers(workspace)
        warming = _warm_report_kernels(workspace, workers) if write_reports else []
        start = time.perf_counter()
        outcomes = ingest_paths(
            workspace, database, [workspace.inbox], move=True, progress=progress
        )
        seconds["ingest"] = time.perf_counter() - start
        start = time.perf_counter()
        summary = associate_workspace(workspace, database)
        seconds["associate"] = time.perf_counter() - start
        start = time.perf_counter()
        processed = process_blocks(
            workspace,
            database,
            night=night,
            max_retries=workspace.config.workflow.max_retries,
            executor=workers.executor,
            # Two tasks per worker: a worker that finishes its share early takes the
            # next instead of waiting (OmegaCAM night, 2 Dask workers: 89.0 s -> 85.9 s;
            # each more part costs about 0.2 s of calibration reads). One worker has
            # no one to share with: its blocks stay whole (no product to finish).
            detector_tasks=2 * workers.count if workers.count > 1 else 1,
            slots=workers.count,
            memory_mb=workers.memory_mb,
            progress=progress,
            science=ScienceRequest.of_programmes(programmes),
            on_request=reread,
        )
        done_ids = [o.ab_id for o in processed if o.status == "done"]
        measure_extinction(workspace, database, nights=nights_to_refit(database, done_ids))
        grade_science(database, done_ids)
        seconds["process"] = time.perf_counter() - start
        start = time.perf_counter()
        scoring = score_values(
            database, review_fraction=workspace.config.certification.review_fraction
        )
        seconds["score"] = time.perf_counter() - start
        start = time.perf_counter()
        done = [o.ab_id for o in processed if o.status == "done"]
        for warm in concurrent.futures.as_completed(warming):
            # Dropped: a kernel that did not start is started again by the first
            # report, which says why if it fails again.
            warm.exception()
        if write_reports:
            done += [i for i in _reports_owed(workspace, database, pass_id) if i not in done]
        reports = (
            render_reports(workspace, database, done, executor=workers.executor, progress=progress)
            if write_reports
            else []
        )
        seconds["report"] = time.perf_counter() - start
        start = time.perf_counter()
        certified = auto_certify(workspace, database)
        archived = archive_certified(workspace, database)
        seconds["certify"] = time.perf_counter() - start
        _sweep_leftovers(workspace)
        result = PassSummary(
            ingested=dict(Counter(o.status for o in outcomes)),
            blocks={
                kind: sum(change[i] for change in summary.changes.values())
                for i, kind in enumerate(("added", "changed", "removed"))
            },
            outcomes=processed,
            scored=scoring.grades,
            reports=reports,
            seconds=seconds,
            certified=len(certified),
            archived={**{d.product_id: d.archived or "" for d in certified}, **archived},
            science_programmes=programmes,
        )
        with database.transaction() as session:
            pass_store.finish_pass(session, pass_id, result.as_dict())
    return result


@dataclass(frozen=True)
class ScienceSummary:
    """What ``run_science`` did: each block's outcome, the OBs' grades, the QC values'
    grades (counts), the reports, the products certified by ``auto``."""

    outcomes: list[ProcessOutcome]
    grades: list[grade_store.StoredGrade]
    scored: dict[str, int]
    reports: list[ReportOutcome]
    certified: int


def run_science(
    workspace: Workspace,
    database: Database,
    ab_ids: list[str],
    *,
    progress: bool = False,
    write_reports: bool = True,
    workers: Workers = SERIAL,
) -> ScienceSummary:
    """Science blocks ``ab_ids`` processed on request (with certified masters only: a
    block whose masters are not waits and names them), then finished as a pass finishes
    what it processed: the OBs graded, the QC values scored, the reports written, the
    all-OK products not drawn for review certified and archived. Raises
    PassLockedError if a pass runs."""
    with workspace_lock(workspace):
        outcomes = process_blocks(
            workspace,
            database,
            ids=ab_ids,
            executor=workers.executor,
            detector_tasks=2 * workers.count if workers.count > 1 else 1,
            slots=workers.count,
            memory_mb=workers.memory_mb,
            progress=progress,
        )
        done = [o.ab_id for o in outcomes if o.status == "done"]
        grades = grade_science(database, done)
        scoring = score_values(
            database, review_fraction=workspace.config.certification.review_fraction
        )
        if write_reports:
            # Also the reports a killed earlier run of these blocks did not write.
            with database.transaction() as session:
                asked = [b for b in product_store.done_blocks(session) if b[0] in set(ab_ids)]
            done += [i for i in _without_report(workspace, asked) if i not in done]
        reports = (
            render_reports(workspace, database, done, executor=workers.executor, progress=progress)
            if write_reports
            else []
        )
        certified = auto_certify(workspace, database)
        archive_certified(workspace, database)
        _sweep_leftovers(workspace)
    return ScienceSummary(outcomes, grades, scoring.grades, reports, len(certified))


def _inbox_state(inbox: Path) -> tuple[tuple[str, int, int], ...]:
    """What the inbox holds (names, sizes, mtimes): a change means new files."""
    state = []
    for path in expand_sources([inbox]) if inbox.exists() else []:
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        state.append((str(path), info.st_size, info.st_mtime_ns))
    return tuple(sorted(state))


def watch(
    workspace: Workspace,
    database: Database,
    *,
    interval_minutes: float,
    poll_seconds: float = 5.0,
    passes: int | None = None,
    on_pass: Callable[[PassSummary], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    write_reports: bool = True,
    workers: Workers = SERIAL,
) -> int:
    """Run passes every ``interval_minutes``, and sooner when the inbox changes.

    Stops after ``passes`` passes (None: never). Returns the number of passes run.
    """
    done = 0
    while passes is None or done < passes:
        summary = run_pass(workspace, database, write_reports=write_reports, workers=workers)
        done += 1
        if on_pass is not None:
            on_pass(summary)
        if passes is not None and done >= passes:
            break
        seen = _inbox_state(workspace.inbox)
        waited = 0.0
        while waited < interval_minutes * 60:
            sleep(poll_seconds)
            waited += poll_seconds
            if _inbox_state(workspace.inbox) != seen:
                break
    return done
