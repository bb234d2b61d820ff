"""A processed simulated workspace, ``qc dashboards`` serving it, and Chromium.

The workspace (built once per session, about a minute on 2 cores):
- three consecutive OmegaCAM nights (``simulate_history``: drifting detectors, one
  intervention recorded as a quality event);
- a fourth night five weeks later whose flat frames were removed from the inbox before
  processing (calChecker: MISS, nothing within any validity window);
- a truncated FITS file in the inbox (quarantined with its reason);
- one ``qc run`` pass; reports are written for two blocks of the last full night only
  (each report is a papermill run of 10 s or more here; the pass itself is run with
  ``write_reports=False`` and ``render_reports`` renders those two).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

FIRST_NIGHT = dt.date(2026, 11, 20)
HISTORY_NIGHTS = 3
#: Five weeks after the history: no flat of it is within any validity window (30 d).
NIGHT_WITHOUT_FLATS = dt.date(2027, 1, 5)
FLAT_KINDS = ("dome_flat", "twilight_flat")
TRUNCATED = "TRUNCATED_TRANSFER.fits"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "dashboards"


@dataclass(frozen=True)
class Site:
    """The processed workspace and what the tests need to know about it."""

    root: Path
    tokens: dict[str, str]  # reviewer -> token
    report: str  # a report path relative to parameterized_runs/
    event: str  # the quality event's text


@dataclass(frozen=True)
class Server:
    url: str  # http://127.0.0.1:PORT/
    site: Site

    def wait_for_kernels(self) -> None:
        """Until every dashboard has a preheated kernel again (earlier tests used some)."""
        from qclib.dashboards.server import wait_until_ready

        wait_until_ready(self.url, self.site.tokens["alice"], kernels=4, timeout_s=120)

    def page_url(self, notebook: str, reviewer: str | None = "alice") -> str:
        token = f"?token={self.site.tokens[reviewer]}" if reviewer else ""
        return f"{self.url}voila/render/{notebook}{token}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _remove_flats(night_dir: Path) -> int:
    truth = json.loads((night_dir / "truth.json").read_text())
    removed = 0
    for exposure in truth["exposures"]:
        if exposure["kind"] in FLAT_KINDS:
            (night_dir / exposure["arcfile"]).unlink()
            removed += 1
    return removed


def _plant_truncated(inbox: Path, example: Path) -> None:
    with open(example, "rb") as handle:
        (inbox / TRUNCATED).write_bytes(handle.read(3 * 2880 * 10))
    old = time.time() - 3600  # an hour old: a transfer that stopped, not one under way
    os.utime(inbox / TRUNCATED, (old, old))


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    from qclib.cli import main
    from qclib.db import qc1
    from qclib.simulate.history import simulate_history
    from qclib.simulate.night import simulate_night
    from qclib.workflow.reports import render_reports
    from qclib.workflow.run import run_pass
    from qclib.workspace import init_workspace

    base = tmp_path_factory.mktemp("dashboards")
    mp = pytest.MonkeyPatch()
    mp.delenv("QC_DB_URL", raising=False)  # SQLite in the workspace, whatever the shell says
    try:
        workspace = init_workspace(base / "ws")
        history = simulate_history(
            "OMEGACAM",
            FIRST_NIGHT,
            HISTORY_NIGHTS,
            workspace.inbox / "history",
            seed=11,
            scale="test",
            workers=2,
            progress=False,
        )
        lonely = workspace.inbox / NIGHT_WITHOUT_FLATS.isoformat()
        simulate_night(
            "OMEGACAM",
            NIGHT_WITHOUT_FLATS,
            lonely,
            seed=12,
            scale="test",
            workers=2,
            progress=False,
        )
        assert _remove_flats(lonely) > 0
        _plant_truncated(workspace.inbox, next(lonely.glob("*.fits")))
        database = workspace.open_database()
        summary = run_pass(workspace, database, write_reports=False)
        assert summary.ingested.get("quarantined") == 1, summary.ingested
        interventions = json.loads(history.history_path.read_text())["interventions"]
        with database.transaction() as session:
            for event in interventions:
                qc1.add_event(
                    session,
                    instrument=event["instrument"],
                    date=dt.date.fromisoformat(event["date"]),
                    text=event["text"],
                )
        last = (FIRST_NIGHT + dt.timedelta(days=HISTORY_NIGHTS - 1)).isoformat()
        done = [
            o.ab_id
            for o in summary.outcomes
            if o.status == "done" and last in o.ab_id and ("BIAS" in o.ab_id or "DARK" in o.ab_id)
        ]
        reports = render_reports(workspace, database, done[:2])
        assert {r.status for r in reports} == {"written"}, reports
        database.close()
        tokens = {}
        for name in ("alice", "bob"):
            result = CliRunner().invoke(
                main, ["--workspace", str(workspace.root), "user", "add", name, "--json"]
            )
            assert result.exit_code == 0, result.output
            tokens[name] = json.loads(result.output)["token"]
        report = reports[0].html
        assert report is not None
        return Site(
            root=workspace.root,
            tokens=tokens,
            report=report.relative_to(workspace.runs_dir).as_posix(),
            event=interventions[0]["text"],
        )
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def server(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``qc dashboards`` on the site: preheated kernels, refresh every 4 s."""
    from qclib.dashboards.server import (
        start_server_process,
        stop_server_process,
        wait_until_ready,
    )

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "QC_DB_URL"}
    log = tmp_path_factory.mktemp("server") / "qc-dashboards.log"
    process = start_server_process(site.root, port, "--refresh-seconds", "4", log=log, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_ready(
            url, site.tokens["alice"], kernels=4, timeout_s=180, process=process, log=log
        )
        yield Server(url, site)
    finally:
        stop_server_process(process)
        print(f"qc dashboards log: {log}")


@pytest.fixture
def qc_context(qc_browser):  # type: ignore[no-untyped-def]
    """A fresh browser context (no cookies) per test. (Not ``context``/``browser``:
    those are pytest-playwright's.)"""
    ctx = qc_browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield ctx
    finally:
        ctx.close()


def screenshot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
    """Save a full-height screenshot under tests/artifacts/dashboards/ and print where."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    # Voila's page scrolls inside a container: make the window as tall as its content.
    height = page.evaluate(
        """() => {
            let best = document.documentElement.scrollHeight;
            for (const e of document.querySelectorAll('*')) {
                const style = getComputedStyle(e);
                if (['auto', 'scroll'].includes(style.overflowY) && e.clientHeight > 300)
                    best = Math.max(best, e.scrollHeight + e.getBoundingClientRect().top);
            }
            return best;
        }"""
    )
    page.set_viewport_size({"width": 1400, "height": max(1000, min(int(height) + 40, 6000))})
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def clean_artifacts() -> None:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
