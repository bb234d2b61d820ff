"""PI data packages: exactly the files provenance names, a manifest that verifies (also
with ``sha256sum -c``), one altered byte named, the same inputs giving the same bytes,
and refusals (a path leaving the workspace, a file changed since it was recorded, an
output that holds something)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from astropy.io import fits
from click.testing import CliRunner

from qclib.archive.package import (
    MANIFEST,
    PackageError,
    plan_package,
    verify_package,
    write_package,
)
from qclib.cli import main
from qclib.db import ingest_log
from qclib.errors import ConfigError
from qclib.workspace import load_workspace
from tests.conftest import scratch

PROGRAMME = "198.A-2021(A)"


def _cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture(scope="module")
def processed(request: pytest.FixtureRequest, omegacam_night: Path) -> Iterator[Path]:
    """A test-scale night run (with reports), every product certified, its science
    processed: a workspace to package."""
    with scratch(request, "package") as folder:
        yield _processed(folder / "ws", omegacam_night)


def _processed(ws: Path, omegacam_night: Path) -> Path:
    os.environ.pop("QC_DB_URL", None)
    _cli("init", str(ws))
    shutil.copytree(omegacam_night, ws / "inbox", dirs_exist_ok=True)
    _cli("-w", str(ws), "run", "--executor", "serial")
    queue = json.loads(_cli("-w", str(ws), "review", "--all", "--json"))
    _cli(
        "-w", str(ws), "certify", *[str(p["product_id"]) for p in queue], "--ok", "--comment", "ok"
    )
    done = json.loads(_cli("-w", str(ws), "science", "--json"))
    assert [b["status"] for b in done["blocks"]] == ["done"], done
    _cli("-w", str(ws), "report", done["blocks"][0]["ab_id"])
    return ws


def _provenance(path: Path) -> tuple[set[str], set[str]]:
    """(raw names, calibration names) a product's PROVENANCE table lists."""
    with fits.open(path) as hdul:
        table = hdul["PROVENANCE"].data
        rows = list(zip(table["ROLE"], table["NAME"], strict=True))
    return {n for r, n in rows if r == "raw"}, {n for r, n in rows if r == "calib"}


def _block_of(product: Path) -> str:
    """The block that made a product: its name less ``_<PRO.CATG>.fits``."""
    catg = fits.getheader(product)["HIERARCH ESO PRO CATG"]
    return product.name.removesuffix(f"_{catg}.fits")


def test_a_package_holds_exactly_what_provenance_names(processed: Path, tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    _cli("-w", str(processed), "package", "--prog-id", PROGRAMME, "--out", str(out))
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}

    # What the products' own PROVENANCE tables name, followed from the science product
    # down to the raw calibrations (read from the files, not the database).
    science, weight = sorted(out.glob("*/sci_proc/*.fits"))
    assert science.name.endswith("_SCIENCE_COADD.fits")
    assert weight.name.endswith("_SCIENCE_COADD_WEIGHT.fits")
    assert fits.getheader(science)["ASSON1"] == weight.name  # the coadd's ASSON1 resolves
    ob = science.parent.parent.name
    raws, calibs = _provenance(science)
    assert _provenance(weight) == (raws, calibs)
    products = processed / "data" / "products" / "2026-11-23"
    expected_masters, expected_raw_calibs, todo = set(), set(), set(calibs)
    while todo:
        name = todo.pop()
        expected_masters.add(name)
        master_raws, master_calibs = _provenance(products / name)
        expected_raw_calibs |= master_raws
        todo |= master_calibs - expected_masters
    # The masters' reports, where one was written (the night's extinction has none).
    runs = processed / "parameterized_runs" / "2026-11-23"
    reports = {f"{_block_of(products / m)}.html" for m in expected_masters}
    reports = {name for name in reports if (runs / name).exists()}
    assert len(reports) >= 3
    expected = (
        {f"{ob}/sci_raw/{r}" for r in raws}
        | {f"{ob}/sci_proc/{science.name}", f"{ob}/sci_proc/{weight.name}"}
        | {f"{ob}/reports/{_block_of(science)}.html"}
        | {f"calib/cal_proc/{m}" for m in expected_masters}
        | {f"calib/cal_raw/{r}" for r in expected_raw_calibs}
        | {f"calib/reports/{name}" for name in reports}
        | {"README.txt", "ob_grades.csv", MANIFEST}
    )
    assert files == expected
    # Every raw science frame of the programme, and no calibration it did not use.
    with load_workspace(processed).open_database().transaction() as session:
        frames = ingest_log.list_frames(session)
    science_frames = {
        Path(f.path).name
        for f in frames
        if f.dpr_catg == "SCIENCE" and f.keywords.get("OBS.PROG.ID") == PROGRAMME
    }
    assert {f.rsplit("/", 1)[1] for f in files if "/sci_raw/" in f} == science_frames
    assert not any("READ_GAIN" in f for f in files)  # made that night, used by no product
    assert "grade" in (out / "ob_grades.csv").read_text()
    readme = (out / "README.txt").read_text()
    assert PROGRAMME in readme and "sha256sum -c MANIFEST.sha256" in readme

    # The manifest verifies, with qc and with sha256sum.
    assert verify_package(out) == []
    checked = subprocess.run(
        ["sha256sum", "--quiet", "-c", MANIFEST], cwd=out, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_one_altered_byte_is_named(processed: Path, tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    _cli("-w", str(processed), "package", "--prog-id", PROGRAMME, "--out", str(out))
    victim, _ = sorted(out.glob("*/sci_proc/*.fits"))
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    (problem,) = verify_package(out)
    relative = victim.relative_to(out).as_posix()
    assert problem.startswith(f"altered: {relative}")
    shown = _cli("package", "verify", str(out), code=1)
    assert relative in shown
    # A file taken away and one slipped in are named too.
    (out / "ob_grades.csv").unlink()
    (out / "extra.txt").write_text("x")
    problems = verify_package(out)
    assert "missing: ob_grades.csv" in problems and "not in the manifest: extra.txt" in problems


def test_same_inputs_same_bytes_and_a_tar_that_verifies(processed: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    for out in (first, second):
        _cli("-w", str(processed), "package", "--prog-id", PROGRAMME, "--out", str(out))
    assert first.read_bytes() == second.read_bytes()
    assert verify_package(first) == []
    folder = tmp_path / "pkg"
    _cli("-w", str(processed), "package", "--prog-id", PROGRAMME, "--out", str(folder))
    with tarfile.open(first) as tar:
        manifest = tar.extractfile(MANIFEST).read()  # type: ignore[union-attr]
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())
    assert manifest == (folder / MANIFEST).read_bytes()
    # One byte of the tar's science product altered: named.
    data = bytearray(first.read_bytes())
    with tarfile.open(first) as tar:
        member = next(m for m in tar.getmembers() if "/sci_proc/" in m.name)
    data[member.offset_data + member.size // 2] ^= 0x01
    first.write_bytes(bytes(data))
    (problem,) = verify_package(first)
    assert problem.startswith(f"altered: {member.name}")


def test_refusals(processed: Path, tmp_path: Path) -> None:
    # An output that holds something.
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "note.txt").write_text("mine")
    shown = _cli(
        "-w", str(processed), "package", "--prog-id", PROGRAMME, "--out", str(busy), code=2
    )
    assert "is not empty" in shown
    assert _cli(
        "-w", str(processed), "package", "--prog-id", "NOPE", "--out", str(tmp_path / "x"), code=2
    )
    # A raw changed since it was ingested: refused, naming it; nothing left behind.
    copy = tmp_path / "ws"
    shutil.copytree(processed, copy)
    workspace = load_workspace(copy)
    database = workspace.open_database()
    plan = plan_package(workspace, database, PROGRAMME)
    raw = next(f.source for f in plan.files if "/cal_raw/" in f.path)
    assert raw is not None
    raw.chmod(0o644)
    data = bytearray(raw.read_bytes())
    data[-10] ^= 0x01
    raw.write_bytes(bytes(data))
    out = tmp_path / "changed"
    with pytest.raises(PackageError, match=f"{raw.name}.*changed since"):
        write_package(plan, out)
    assert not out.exists() and not list(tmp_path.glob(".changed.partial-*"))
    # A frame whose recorded path leaves the workspace: refused.
    from sqlalchemy import text

    with database.transaction() as session:
        session.execute(
            text("UPDATE frames SET path = '../../etc/passwd' WHERE dpr_catg = 'SCIENCE'")
        )
    with pytest.raises(ConfigError, match="leaves the workspace"):
        plan_package(workspace, database, PROGRAMME)
    database.close()
