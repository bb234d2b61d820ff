"""Scoring in the database (SQLite and PostgreSQL): a degraded CCD is NOK alone, with the
reason; re-scoring reproduces past grades after the rules change; QC1 export; events."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from qclib.cli import main
from qclib.db import products as product_store
from qclib.db import qc1
from qclib.qc.scoring import Rule
from qclib.simulate.night import simulate_night
from qclib.workflow.association import associate_workspace
from qclib.workflow.ingest import ingest_paths
from qclib.workflow.process import process_blocks
from qclib.workflow.scoring import score_values
from tests.conftest import NIGHT, load_truth

DEGRADED = "ESO_CCD_#66"


@pytest.fixture(scope="module")
def degraded_biases(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("degraded")
    simulate_night(
        "OMEGACAM",
        NIGHT,
        out,
        seed=5,
        scale="test",
        workers=1,
        progress=False,
        only={"bias"},
        degrade={DEGRADED: {"read_noise_e": 13.0}},
    )
    return out


def _processed(workspace, night: Path):
    db = workspace.open_database()
    ingest_paths(workspace, db, [night])
    associate_workspace(workspace, db)
    process_blocks(workspace, db)
    return db


def _ron_grades(db) -> dict[str, tuple[str, str]]:
    with db.transaction() as session:
        rows = qc1.export_rows(session, parameter="QC.RON")
    return {r["detector"]: (r["grade"], r["reason"]) for r in rows}


def test_degraded_detector_alone_is_nok(workspace, degraded_biases: Path) -> None:
    db = _processed(workspace, degraded_biases)
    summary = score_values(db)
    assert summary.scored > 0 and summary.grades["NOK"] >= 1
    grades = _ron_grades(db)
    assert grades[DEGRADED][0] == "NOK"
    truth = load_truth(degraded_biases)["detectors"][DEGRADED]
    reason = grades[DEGRADED][1]
    assert reason.endswith(" above 3 (range@2011-06-01)"), reason
    assert float(reason.split()[2]) == pytest.approx(truth["read_noise_adu"], rel=0.03)
    assert {d for d, (g, _) in grades.items() if g == "NOK"} == {DEGRADED}
    (product_grade,) = summary.products.values()
    assert product_grade == "NOK"  # rolled up from the one detector
    with db.transaction() as session:
        (product,) = product_store.list_products(session)
    assert product.status == "scored"
    assert score_values(db).scored == 0  # idempotent: nothing new to grade
    db.close()


def test_rescoring_reproduces_past_grades(workspace, degraded_biases: Path) -> None:
    db = _processed(workspace, degraded_biases)
    old = Rule("MASTER_BIAS", "QC.RON", "range", dt.date(2011, 6, 1), max=3.0)
    score_values(db, rules={"OMEGACAM": [old]})
    before = _ron_grades(db)
    # Tighter thresholds from next month: last month's grades stay.
    later = Rule("MASTER_BIAS", "QC.RON", "range", dt.date(2026, 12, 1), max=1.0)
    score_values(db, rules={"OMEGACAM": [old, later]}, rescore=True)
    assert _ron_grades(db) == before
    # The same thresholds valid from before the night do change them.
    earlier = Rule("MASTER_BIAS", "QC.RON", "range", dt.date(2026, 11, 1), max=1.0)
    score_values(db, rules={"OMEGACAM": [old, earlier]}, rescore=True)
    assert {g for g, _ in _ron_grades(db).values()} == {"NOK"}
    db.close()


def test_qc1_export_and_events_from_the_cli(workspace, degraded_biases: Path) -> None:
    db = _processed(workspace, degraded_biases)
    db.close()
    runner = CliRunner()
    base = ["--workspace", str(workspace.root)]
    scored = runner.invoke(main, [*base, "score", "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.output)["grades"]["NOK"] >= 1
    exported = runner.invoke(main, [*base, "qc1", "export", "--param", "QC.RON"])
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(io.StringIO(exported.output)))
    assert len(rows) == 4 and {r["parameter"] for r in rows} == {"QC.RON"}
    assert next(r for r in rows if r["detector"] == DEGRADED)["grade"] == "NOK"
    as_json = runner.invoke(
        main, [*base, "qc1", "export", "--format", "json", "--since", "2026-11-24"]
    )
    assert json.loads(as_json.output) == []  # the night is 2026-11-23
    added = runner.invoke(
        main,
        [*base, "event", "add", "CCD 66 preamp replaced", "--instrument", "omegacam",
         "--date", "2026-11-25"],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    listed = runner.invoke(main, [*base, "event", "list", "--json"])
    assert json.loads(listed.output)[0]["text"] == "CCD 66 preamp replaced"
    bad = runner.invoke(
        main, [*base, "event", "add", "x", "--instrument", "NOPE", "--date", "2026-11-25"]
    )
    assert bad.exit_code != 0 and "unknown instrument 'NOPE'" in bad.output


def test_grades_roll_up_to_block_night_and_instrument(workspace, degraded_biases: Path) -> None:
    db = _processed(workspace, degraded_biases)
    score_values(db)
    db.close()
    runner = CliRunner()
    base = ["--workspace", str(workspace.root)]
    listed = runner.invoke(main, [*base, "grades", "--json"])
    assert listed.exit_code == 0, listed.output
    levels = {
        tuple(v for k, v in row.items() if k != "grade"): row["grade"]
        for row in json.loads(listed.output)
    }
    (block,) = {path[2] for path in levels if len(path) >= 3}
    assert levels[("OMEGACAM",)] == levels[("OMEGACAM", NIGHT.isoformat())] == "NOK"
    assert levels[("OMEGACAM", NIGHT.isoformat(), block, "MASTER_BIAS")] == "NOK"
    detectors = {p[4]: g for p, g in levels.items() if len(p) == 5}
    assert detectors[DEGRADED] == "NOK"
    assert {d for d, g in detectors.items() if g != "NOK"} == set(detectors) - {DEGRADED}
    assert set(detectors.values()) - {"NOK"} == {"OK"}
    shown = runner.invoke(main, [*base, "grades", "--instrument", "omegacam"])
    assert f"NOK: {DEGRADED}" in shown.output and "MASTER_BIAS" in shown.output
    other_night = runner.invoke(main, [*base, "grades", "--night", "2026-11-24"])
    assert other_night.exit_code == 2 and "no frames on night 2026-11-24" in other_night.output
