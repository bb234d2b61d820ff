"""The qc command as a user types it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from click.testing import CliRunner

from qclib.cli import main
from qclib.instruments import native_instruments
from qclib.simulate.eso import SIMULATED_ESO_INSTRUMENTS


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    qc = Path(sys.executable).with_name("qc")
    return subprocess.run(
        [str(qc), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def test_help_lists_the_verbs() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for verb in ("init", "simulate", "ingest", "frames", "quarantine", "demo"):
        assert verb in result.stdout


def test_python_m_qclib_cli_has_every_verb() -> None:
    """`python -m qclib.cli` runs the same `qc` as the installed script, with the verbs
    registered from cli_certification (once an import loop crashed it)."""
    done = subprocess.run(
        [sys.executable, "-m", "qclib.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for verb in ("ingest", "run", "certify", "archive", "calselector"):
        assert verb in done.stdout


def test_end_to_end(tmp_path: Path, hawki_night: Path, monkeypatch) -> None:
    monkeypatch.delenv("QC_DB_URL", raising=False)
    ws = tmp_path / "ws"
    runner = CliRunner()
    assert runner.invoke(main, ["init", str(ws)]).exit_code == 0
    inbox = tmp_path / "inbox"
    shutil.copytree(hawki_night, inbox)
    (inbox / "broken.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    os.utime(inbox / "broken.fits", (1, 1))
    result = runner.invoke(main, ["--workspace", str(ws), "ingest", str(inbox), "--json"])
    assert result.exit_code == 0, result.output
    outcomes = json.loads(result.output)
    statuses = [o["status"] for o in outcomes]
    assert statuses.count("quarantined") == 1 and statuses.count("ingested") == len(outcomes) - 1

    frames = json.loads(runner.invoke(main, ["-w", str(ws), "frames", "--json"]).output)
    assert len(frames) == len(outcomes) - 1
    assert frames[0]["keywords"]["INSTRUME"] == "HAWKI"
    night = runner.invoke(main, ["-w", str(ws), "frames", "--night", "2026-11-24", "--json"])
    assert night.exit_code == 2 and night.stdout == ""
    assert "no frames on night 2026-11-24; indexed: 2026-11-23 .. 2026-11-23" in night.stderr

    shown = runner.invoke(main, ["-w", str(ws), "quarantine"])
    assert "broken.fits" in shown.output and "truncated" in shown.output
    listed = json.loads(runner.invoke(main, ["-w", str(ws), "quarantine", "--json"]).output)
    assert listed[0]["reason_code"] == "truncated"
    table = runner.invoke(main, ["-w", str(ws), "frames"])
    assert "HAWKI." in table.output


def test_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    result = _run("--workspace", str(tmp_path / "nowhere"), "frames")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:")
    assert "qc init" in result.stderr
    assert "Traceback" not in result.stderr

    result = _run("simulate", "FORS9", "--night", "2026-11-23", "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    known = ", ".join(sorted({*native_instruments(), *SIMULATED_ESO_INSTRUMENTS}))
    assert result.stderr.endswith(f"unknown instrument 'FORS9'; known: {known}\n")
    assert result.stderr.count("\n") == 1  # no usage text, no traceback


def test_an_error_of_the_machine_is_one_line_and_exit_1(tmp_path: Path, monkeypatch) -> None:
    """A full disk in the middle of a command: the error's own line (the file it hit),
    no traceback."""
    import errno

    monkeypatch.delenv("QC_DB_URL", raising=False)
    ws = tmp_path / "ws"
    runner = CliRunner()
    assert runner.invoke(main, ["init", str(ws)]).exit_code == 0
    hit = ws / "data" / "raw" / "x.fits"

    def full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device", str(hit))

    monkeypatch.setattr("qclib.workflow.ingest.ingest_paths", full)
    result = runner.invoke(main, ["--workspace", str(ws), "ingest", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: [Errno 28] No space left on device: '{hit}'")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_simulate_json(tmp_path: Path) -> None:
    result = _run(
        "simulate",
        "HAWKI",
        "--night",
        "2026-11-23",
        "--out",
        str(tmp_path / "sim"),
        "--scale",
        "test",
        "--workers",
        "1",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert Path(data["truth"]).exists() and len(data["files"]) > 10


def _manifest(package: Path) -> dict[str, str]:
    """A PI package's MANIFEST.sha256 as {member name: SHA-256}."""
    with tarfile.open(package) as tar:
        member = tar.extractfile("MANIFEST.sha256")
        assert member is not None
        lines = member.read().decode().splitlines()
    return {name: digest for digest, name in (line.split(maxsplit=1) for line in lines)}


def test_demo_at_test_scale(tmp_path: Path) -> None:
    result = _run(
        "demo", "--workspace-dir", str(tmp_path / "demo"), "--scale", "test", env={"QC_DB_URL": ""}
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "OMEGACAM night 2026-11-23: 21 frames indexed" in out
    assert "HAWKI night 2026-11-23: 25 frames indexed" in out
    assert "not-fits" in out and "truncated" in out
    # Every calibration block processed and scored; science waits for its recipe.
    assert "MASTER_FLAT" in out and "ZEROPOINT" in out and "MASTER_CONF" in out
    assert "EXTINCTION" in out  # the night's two standard visits
    assert "names no recipe" not in out  # both instruments' science have theirs
    assert any(
        "HAWKI." in line and "SCIENCE_REDUCED: science is processed on request" in line
        for line in out.splitlines()
    )
    assert "science is processed on request" in out
    scored = out.split("scored: ")[1].splitlines()[0]
    assert " OK" in scored and "MONITORED" in scored
    # The history before the night: a pass per night, each followed by the review.
    assert "history: 10 test-scale nights of OMEGACAM and HAWKI" in out
    # The night was simulated beside the history, then moved into the inbox whole.
    assert "the night simulated beside it" in out
    for name in ("omegacam_2026-11-23", "hawki_2026-11-23"):
        assert (tmp_path / "demo" / "inbox" / name / "truth.json").exists()
        assert not (tmp_path / "demo" / "simulated" / name).exists()
    review = out.split("the QC scientist's review: ")[1].splitlines()[0]
    assert "certify" in review and "certified by auto" in review
    # The history's two OmegaCAM science OBs: processed with its certified masters,
    # graded, reported, and packaged for their PI with both OBs' products and reports.
    science = [line for line in out.splitlines() if line.startswith("OMEGACAM science ")]
    assert len(science) == 2 and all(": done, grade " in line for line in science), science
    package = tmp_path / "demo" / "packages" / "198.A-2021_A_.tar"
    assert f"PI package of 198.A-2021(A): {package} (" in out and "verified)" in out
    verified = _run("package", "verify", str(package))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    with tarfile.open(package) as tar:
        names = tar.getnames()
    obs = {n.split("/")[0] for n in names if "/sci_proc/" in n}
    assert len(obs) == 2
    for ob in obs:
        assert any(n.startswith(f"{ob}/reports/") and n.endswith(".html") for n in names)
        assert sum(n.startswith(f"{ob}/sci_proc/") for n in names) == 2  # coadd, weight
    assert any(n.startswith("calib/cal_proc/") and "MASTER_BIAS" in n for n in names)
    assert "review queue: " in out and "wait for a QC scientist" in out
    token = (tmp_path / "demo" / ".demo-token").read_text().strip()
    assert f"?token={token}" in out and "make dashboards" in out
    for check in (("audit", "verify"), ("archive", "verify")):
        verified = _run("--workspace", str(tmp_path / "demo"), *check, env={"QC_DB_URL": ""})
        assert verified.returncode == 0, verified.stdout + verified.stderr
    written = int(out.split(" report(s) written")[0].rsplit(maxsplit=1)[-1])
    reports = list((tmp_path / "demo" / "parameterized_runs" / "2026-11-23").glob("*.html"))
    assert written == len(reports) >= 12
    packaged = _manifest(package)
    again = _run(
        "demo", "--workspace-dir", str(tmp_path / "demo"), "--scale", "test", env={"QC_DB_URL": ""}
    )
    assert again.returncode == 0
    # Run again, the history is not: its reviews stand. The package is written again and
    # now also holds the night's raw science (ingested since); every file it held before
    # has the same SHA-256, except the README that counts the files.
    assert "history: 10 test-scale nights" in again.stdout
    assert "history: run before (" in again.stdout
    repacked = _manifest(package)
    changed = sorted(n for n, d in packaged.items() if repacked.get(n) != d and n != "README.txt")
    assert not changed, changed
    assert any("/sci_raw/OMEGACAM.2026-11-24" in n for n in set(repacked) - set(packaged))
    assert "reusing it" in again.stdout
    assert "inbox: 2 already-quarantined" in again.stdout  # the damaged examples
    assert "a second pass" in again.stdout and "nothing new" in again.stdout
    # The night's science is not the demo's to process (at full scale, 11 minutes).
    assert "OMEGACAM science " not in again.stdout
    assert "PI package of 198.A-2021(A)" in again.stdout
