"""qc run: one idempotent pass over the inbox; a lock against two passes; failed blocks
retried up to a limit, their dependents waiting with the reason; qc watch."""

from __future__ import annotations

import concurrent.futures
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from qclib.cli import main
from qclib.db import products as product_store
from qclib.errors import UnprocessableDataError
from qclib.recipes import master_flat
from qclib.workflow.executors import Workers
from qclib.workflow.process import process_blocks
from qclib.workflow.reports import warm_report_kernel
from qclib.workflow.run import (
    PassLockedError,
    _warm_report_kernels,
    run_pass,
    watch,
    workspace_lock,
)


def _fill_inbox(workspace, night: Path) -> None:
    shutil.copytree(night, workspace.inbox / "night", dirs_exist_ok=True)


def test_a_pass_does_everything_once_and_a_second_does_nothing(
    workspace, omegacam_night: Path
) -> None:
    _fill_inbox(workspace, omegacam_night)
    db = workspace.open_database()
    with_reports = workspace.database_url.startswith("sqlite")  # once is enough (30 s)
    first = run_pass(workspace, db, write_reports=with_reports)
    assert first.ingested["ingested"] == 21 and first.did_something
    done = {o.ab_id for o in first.outcomes if o.status == "done"}
    assert len(done) == 7 and sum(first.scored.values()) > 0
    if with_reports:
        assert {r.status for r in first.reports} == {"written"} and len(first.reports) == 7
    assert not list((workspace.inbox / "night").glob("*.fits"))  # moved into data/raw
    with db.transaction() as session:
        products = {p.path: p.sha256 for p in product_store.list_products(session)}
    waiting = {o.ab_id: o.reason for o in first.outcomes if o.status == "waiting"}
    assert waiting  # science: on request (recorded, not read again)
    second = run_pass(workspace, db)
    assert not second.did_something and not second.reports and second.outcomes == []
    with db.transaction() as session:
        assert {p.path: p.sha256 for p in product_store.list_products(session)} == products
        states = product_store.block_states(session)
    assert {i: states[i] for i in waiting} == {i: ("on_request", r) for i, r in waiting.items()}
    db.close()


def test_two_passes_cannot_run_at_once(workspace) -> None:
    db = workspace.open_database()
    with workspace_lock(workspace):
        with pytest.raises(PassLockedError, match=r"a pass is already running \(pid \d+"):
            run_pass(workspace, db)
        result = CliRunner().invoke(main, ["--workspace", str(workspace.root), "run"])
        assert result.exit_code == 2 and "a pass is already running" in result.output
    run_pass(workspace, db)  # released
    db.close()


def test_failed_block_is_retried_up_to_the_limit_and_dependents_wait(
    workspace, omegacam_night: Path, monkeypatch
) -> None:
    calls = []

    def broken(ctx):
        calls.append(ctx.block_id)
        raise UnprocessableDataError("lamp off in every frame")

    monkeypatch.setattr(master_flat, "run_dome", broken)
    _fill_inbox(workspace, omegacam_night)
    db = workspace.open_database()
    outcomes = run_pass(workspace, db, write_reports=False).outcomes
    first = {o.ab_id.split("_", 1)[1]: o for o in outcomes}
    assert first["MASTER_DOME_FLAT"].status == "failed"
    sky = first["MASTER_SKY_FLAT"]
    assert sky.status == "waiting" and "which failed" in sky.reason
    assert "lamp off in every frame" in sky.reason
    for _ in range(3):
        process_blocks(workspace, db, max_retries=2)
    assert len(calls) == 3  # the first try and two retries
    (last,) = [o for o in process_blocks(workspace, db, max_retries=2) if "DOME" in o.ab_id]
    assert last.status == "failed" and last.reason.startswith("not retried after 3 failed")
    assert len(calls) == 3
    db.close()


def test_watch_runs_a_pass_when_files_arrive(workspace, omegacam_night: Path) -> None:
    db = workspace.open_database()
    summaries = []

    def sleep(_seconds: float) -> None:
        _fill_inbox(workspace, omegacam_night)  # files arrive while the watcher waits

    passes = watch(
        workspace,
        db,
        interval_minutes=60,
        passes=2,
        on_pass=summaries.append,
        sleep=sleep,
        write_reports=False,
    )
    assert passes == 2
    assert not summaries[0].did_something
    assert summaries[1].ingested["ingested"] == 21
    db.close()


def test_a_block_that_gains_frames_is_processed_again(workspace, omegacam_night: Path) -> None:
    """A dome-flat sequence arriving in two parts: the master made from the first three
    frames is replaced by the one made from all four."""
    from qclib.fitsio import scan_fits

    late = sorted(p for p in omegacam_night.glob("*.fits") if "T17:58:40" in p.name)
    assert len(late) == 1 and scan_fits(late[0]).primary["DPR.TYPE"] == "FLAT,DOME"
    first = workspace.inbox / "first"
    first.mkdir(parents=True)
    for path in omegacam_night.glob("*.fits"):
        if path not in late:
            shutil.copy(path, first / path.name)
    shutil.copytree(omegacam_night / "catalogues", first / "catalogues")
    db = workspace.open_database()
    run_pass(workspace, db, write_reports=False)

    def dome():
        with db.transaction() as session:
            return [
                p for p in product_store.list_products(session) if p.pro_catg == "MASTER_DOME_FLAT"
            ]

    (before,) = dome()
    shutil.copy(late[0], workspace.inbox / late[0].name)
    second = run_pass(workspace, db, write_reports=False)
    redone = {o.ab_id.split("_", 1)[1] for o in second.outcomes if o.status == "done"}
    # ... and what was made from it: the master flat, the zeropoints.
    assert {"MASTER_DOME_FLAT", "READ_GAIN", "MASTER_SKY_FLAT", "ZEROPOINT"} <= redone
    assert "MASTER_BIAS" not in redone
    (after,) = dome()
    assert after.sha256 != before.sha256
    from astropy.io import fits

    with fits.open(workspace.root / after.path) as hdul:
        assert hdul[0].header["HIERARCH ESO PRO DATANCOM"] == 4
    assert not run_pass(workspace, db, write_reports=False).did_something
    db.close()


class _Recording(concurrent.futures.Executor):
    """Records what it is given; runs nothing."""

    def __init__(self) -> None:
        self.submitted: list[object] = []

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.submitted.append(fn)
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        future.set_result(None)
        return future


def test_report_kernels_are_warmed_only_for_files_to_ingest(workspace) -> None:
    """Each worker gets a kernel warm-up while the pass ingests, but only when there is
    a FITS file to ingest: an hourly pass over an inbox holding only catalogues (or
    nothing) starts no kernel."""
    executor = _Recording()
    workers = Workers(executor, 2, 1)
    (workspace.inbox / "night" / "catalogues").mkdir(parents=True)
    (workspace.inbox / "night" / "catalogues" / "SA95.csv").write_text("ra,dec\n")
    assert _warm_report_kernels(workspace, workers) == []
    (workspace.inbox / "night" / "OMEGACAM.2026-11-23T17:00:00.000.fits").write_bytes(b"")
    assert len(_warm_report_kernels(workspace, workers)) == 2
    assert executor.submitted == [warm_report_kernel, warm_report_kernel]
    assert _warm_report_kernels(workspace, Workers(None, 1)) == []
