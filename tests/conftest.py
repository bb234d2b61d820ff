"""Shared fixtures: simulated nights (test scale), databases on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from qclib.simulate.night import simulate_night

NIGHT = dt.date(2026, 11, 23)
REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


def missing_dependency(reason: str) -> None:
    """Skip a test for want of an outside dependency, loudly (``reason`` says what is
    missing and how to install it); under CI=true fail it instead: CI must run every
    test (esorex, PostgreSQL, Chromium and ../shared/realdata are all installed there)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            f"CI=true and a dependency is missing, but CI runs every test: {reason}",
            pytrace=False,
        )
    pytest.skip(reason)


@pytest.fixture(scope="session")
def realdata() -> Path:
    if not REALDATA.exists():
        missing_dependency(f"REAL-HEADER TESTS SKIPPED: shared/realdata not found at {REALDATA}")
    return REALDATA


@contextmanager
def scratch(request: pytest.FixtureRequest, name: str) -> Iterator[Path]:
    """A folder for a fixture wider than one test (``tmp_path_factory.mktemp(name)``),
    removed when the fixture ends unless a test failed meanwhile: the suite writes
    about 30 GB in all, more than a CI disk may hold at once. Per-test folders go the
    same way (``tmp_path_retention_policy = "failed"`` in pyproject.toml)."""
    failed = request.session.testsfailed
    path = request.getfixturevalue("tmp_path_factory").mktemp(name)
    yield path
    if request.session.testsfailed == failed:
        shutil.rmtree(path, ignore_errors=True)


def _simulated(tmp_path_factory: pytest.TempPathFactory, instrument: str) -> Path:
    out = tmp_path_factory.mktemp(f"sim-{instrument.lower()}")
    simulate_night(instrument, NIGHT, out, seed=7, scale="test", workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def omegacam_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test-scale OmegaCAM night (read-only: copy files before changing them)."""
    return _simulated(tmp_path_factory, "OMEGACAM")


@pytest.fixture(scope="session")
def hawki_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test-scale HAWK-I night (read-only: copy files before changing them)."""
    return _simulated(tmp_path_factory, "HAWKI")


def load_truth(folder: Path) -> dict:
    return json.loads((folder / "truth.json").read_text())


# ---------------------------------------------------------------- PostgreSQL
def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """A throwaway PostgreSQL cluster in a temporary folder (started as 'postgres' if root)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="qc-pg-"))
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        data = self.root / "data"
        self._run(
            "initdb",
            "-D",
            str(data),
            "-U",
            "qc",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        self._run(
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def new_database(self) -> str:
        import psycopg

        name = f"qc_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=qc dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://qc@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    bindir = _pg_bindir()
    if bindir is None:
        missing_dependency(
            "POSTGRESQL VARIANTS OF THE DATABASE TESTS SKIPPED: PostgreSQL server "
            "binaries missing (apt-get install postgresql)"
        )
    cluster = PostgresCluster(bindir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL: SQLite file, then PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'qc.sqlite'}"
    cluster = request.getfixturevalue("postgres_cluster")
    return cluster.new_database()


@pytest.fixture
def workspace(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch):
    """An initialised workspace on each database backend."""
    from qclib.workspace import init_workspace

    monkeypatch.setenv("QC_DB_URL", db_url)
    return init_workspace(tmp_path / "ws")


# ---------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def qc_browser() -> Iterator[object]:
    """Debian's Chromium through Playwright, one for the session (a second sync Playwright
    in the process would find the first one's event loop running); missing: FAIL under
    CI=true, else skip."""
    from qclib.dashboards.chromium import CHROMIUM, CHROMIUM_ARGS

    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "Python Playwright is not installed (pip install playwright)"
    if missing is None and not CHROMIUM.exists():
        missing = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    if missing:
        missing_dependency(f"BROWSER TESTS SKIPPED: {missing}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
