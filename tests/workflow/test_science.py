"""Science on request, with certified masters only, and the grade of its OB, through the
public path (``qc run``, ``qc science``, ``qc grades``) on a test-scale OmegaCAM night
whose science OB asks for better seeing than it got (a profile changed for the test:
image quality 0.5 arcsec requested, 0.6-1.1 arcsec delivered)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from qclib.cli import main
from qclib.config.simulator import ObConstraints
from qclib.db import blocks as block_store
from qclib.db import ob_grades, qc1
from qclib.db import products as product_store
from qclib.instruments import load_instrument
from qclib.simulate.night import simulate_night
from qclib.workflow.inputs import resolve_inputs
from qclib.workflow.process import run_recipe
from qclib.workflow.reports import render_reports
from tests.conftest import NIGHT


@pytest.fixture(scope="module")
def strict_night(tmp_path_factory) -> Path:
    """A test-scale night whose science OB asks for 0.5 arcsec and full darkness."""
    omegacam = load_instrument("OMEGACAM")
    plan = [
        p.model_copy(
            update={
                "constraints": ObConstraints(
                    seeing_arcsec=0.5, airmass=1.6, moon_fli=1.0, moon_distance_deg=30
                )
            }
        )
        if p.kind == "science"
        else p
        for p in omegacam.simulator.plan
    ]
    profile = omegacam.model_copy(
        update={"simulator": omegacam.simulator.model_copy(update={"plan": plan})}
    )
    out = tmp_path_factory.mktemp("omegacam-strict")
    simulate_night(profile, NIGHT, out, seed=7, scale="test", workers=1, progress=False)
    return out


def _cli(ws: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["-w", str(ws), *args])
    assert result.exit_code == 0, result.output
    return result.output


def _workspace(tmp_path: Path, night: Path, monkeypatch) -> Path:
    monkeypatch.delenv("QC_DB_URL", raising=False)
    ws = tmp_path / "ws"
    assert CliRunner().invoke(main, ["init", str(ws)]).exit_code == 0
    shutil.copytree(night, ws / "inbox", dirs_exist_ok=True)
    return ws


def _science_state(ws: Path) -> tuple[str, str]:
    from qclib.workspace import load_workspace

    database = load_workspace(ws).open_database()
    with database.transaction() as session:
        states = product_store.block_states(session)
    database.close()
    (ab_id,) = [ab for ab in states if ab.endswith("SCIENCE_REDUCED")]
    return states[ab_id]


def test_science_on_request_then_waits_for_certification_then_graded(
    tmp_path: Path, strict_night: Path, monkeypatch
) -> None:
    ws = _workspace(tmp_path, strict_night, monkeypatch)
    first = _cli(ws, "run", "--no-reports", "--executor", "serial")
    assert "science is processed on request: 'qc science --ab" in first
    assert "[science] programmes" in first  # printed as written (no markup lost)
    state, reason = _science_state(ws)
    assert state == "on_request" and "198.A-2021(A)" in reason
    # A later pass does not read it again.
    assert "SCIENCE_REDUCED" not in _cli(ws, "run", "--no-reports", "--executor", "serial")

    # Asked for, it waits for its masters' certification, naming each.
    waiting = json.loads(_cli(ws, "science", "--json"))
    (block,) = waiting["blocks"]
    assert block["status"] == "waiting" and waiting["grades"] == []
    assert "certified masters only" in block["reason"]
    for master in ("MASTER_BIAS.fits (scored)", "MASTER_FLAT.fits (scored)", "ZEROPOINT.fits"):
        assert master in block["reason"]

    queue = json.loads(_cli(ws, "review", "--all", "--json"))
    ids = [str(p["product_id"]) for p in queue]
    _cli(ws, "certify", *ids, "--ok", "--comment", "checked by eye")
    done = json.loads(_cli(ws, "science", "--executor", "serial", "--json"))
    (block,) = done["blocks"]
    assert block["status"] == "done", block
    # Finished as a pass finishes what it made: its report written, its QC values graded.
    (report,) = done["reports"]
    assert report["status"] == "written" and Path(report["html"]).is_file(), report
    (grade,) = done["grades"]
    assert grade["grade"] == "C"
    assert grade["reason"].startswith("image quality ")
    assert "requested (out by" in grade["reason"] and '0.50"' in grade["reason"]
    checks = {c["constraint"]: c for c in grade["checks"]}
    assert checks["airmass"]["grade"] == "A" and checks["image quality"]["grade"] == "C"

    # Calibrated with the night's certified extinction fit, not the nominal one.
    from qclib.workspace import load_workspace

    database = load_workspace(ws).open_database()
    with database.transaction() as session:
        made = {p.pro_catg: p for p in product_store.list_products(session)}
        night_fit = product_store.qc_values(session, made["EXTINCTION"].id)
        science = product_store.qc_values(session, made["SCIENCE_COADD"].id)
        graded = qc1.product_grades(session, made["SCIENCE_COADD"].id)
    database.close()
    assert made["EXTINCTION"].certified
    assert graded and all(
        g in {"OK", "NOK", "MONITORED"} for d in graded.values() for g in d.values()
    )
    for extname, values in night_fit.items():
        assert science[extname]["QC.EXTINCTION"] == values["QC.EXTINCTION"] != 0.09
        assert science[extname]["QC.ZPOINT.X0"] == values["QC.ZPOINT.X0.FIT"]

    # The monitor dashboard shows the night's OB grade, why, and the report's link.
    from qclib.dashboards.loaders import night_grades
    from qclib.dashboards.panels import ob_grades_panel

    database = load_workspace(ws).open_database()
    shown = ob_grades_panel(NIGHT, night_grades(database, NIGHT), lambda r: f"/reports/{r}")
    database.close()
    assert ">C</span>" in shown and "image quality" in shown
    assert f"/reports/{NIGHT.isoformat()}/{grade['ab_id']}.html" in shown

    listed = _cli(ws, "ob-grades", "--prog-id", "198.A-2021(A)")
    assert "C" in listed and grade["ab_id"] in listed
    # Asked again: nothing left to do.
    assert json.loads(_cli(ws, "science", "--json"))["blocks"] == []


def test_qc_run_processes_the_programmes_qc_toml_names(
    tmp_path: Path, strict_night: Path, monkeypatch
) -> None:
    ws = _workspace(tmp_path, strict_night, monkeypatch)
    _cli(ws, "run", "--no-reports", "--executor", "serial")
    queue = json.loads(_cli(ws, "review", "--all", "--json"))
    _cli(ws, "certify", *[str(p["product_id"]) for p in queue], "--ok", "--comment", "checked")
    config = ws / "qc.toml"
    config.write_text(
        config.read_text().replace("programmes = []", 'programmes = ["198.A-2021(A)"]')
    )
    # The block was recorded as on request; the next pass reads it again because
    # qc.toml names a programme the last pass did not, and processes it.
    ran = json.loads(_cli(ws, "run", "--no-reports", "--executor", "serial", "--json"))
    (done,) = [o for o in ran["processed"] if o["ab_id"].endswith("SCIENCE_REDUCED")]
    assert done["status"] == "done", done
    assert ran["science_programmes"] == ["198.A-2021(A)"]
    from qclib.workspace import load_workspace

    database = load_workspace(ws).open_database()
    with database.transaction() as session:
        made = product_store.products_of_block(session, done["ab_id"])
        assert sorted(p.pro_catg for p in made) == ["SCIENCE_COADD", "SCIENCE_COADD_WEIGHT"]
        assert ob_grades.grade_of(session, done["ab_id"]).grade == "C"  # graded by the pass
        block = block_store.get_block(session, done["ab_id"])
    # Its report: every figure drawn, no cell in error, self-contained HTML.
    (report,) = render_reports(load_workspace(ws), database, [done["ab_id"]])
    assert report.status == "written", report.reason
    book = json.loads(report.notebook.read_text())
    errors = [o for c in book["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, errors
    html = report.html.read_text()
    for title in (
        "image quality per exposure",
        "PSF ellipticity and orientation",
        "number counts",
        "astrometric residuals",
        "photometric residuals",
        "grade C",
    ):
        assert title in html, title
    # Byte for byte reproducible: the recipe again, into a new folder.
    ctx = resolve_inputs(load_workspace(ws), database, block)
    again = run_recipe(dataclasses.replace(ctx, product_dir=tmp_path / "again"))
    assert sorted(a.sha256 for a in again) == sorted(p.sha256 for p in made)
    database.close()
