"""Scoring in the database (SQLite and PostgreSQL): a degraded CCD is NOK alone, with the
reason; re-scoring reproduces past grades after the rules change; QC1 export; events; a
pass costs the same on a longer history."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import event, select

from qclib.cli import main
from qclib.db import open_database, qc1
from qclib.db import products as product_store
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


#: OmegaCAM masters of the history: category, QC parameters (and typical values), setup.
MASTERS = (
    ("READ_GAIN", {"QC.GAIN": 2.5, "QC.RON.ELECTRONS": 5.0},  # reference, range
     {"INS.FILT1.NAME": "r_SDSS", "EXPTIME": 10.0, "DET.READ.CLOCK": "normal"}),
    ("MASTER_BIAS", {"QC.NHOTPIX": 170.0, "QC.MASTER.BIAS.STDEV": 0.7},  # history
     {"DET.READ.CLOCK": "normal", "DET.BINX": 1, "DET.BINY": 1}),
)  # fmt: skip


def _history(db, nights: int, *, never_certified: str | None = None) -> None:
    """``nights`` nights of OmegaCAM masters and a new one of candidates (with
    ``never_certified``, every product of that category waits, its values ungraded, as
    in a review queue nobody works through). Each night is
    drawn from its own seed, counted back from the new one: the newest nights (all that
    grading the new one needs), the review queue (two nights waiting, with values no
    rule could grade) and the new night are the same at every length; the older
    nights add certified and rejected products, and values no rule could grade."""
    from qclib.db.models import QCValueRow, ScoreRow

    scored_at = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with db.transaction() as session:
        for back in range(nights, -1, -1):
            rng = random.Random(back)
            for k, (pro_catg, parameters, setup) in enumerate(MASTERS):
                mid_mjd = 61000.0 - back + 0.1 * k
                name = f"{pro_catg}-{back}"
                product_id = product_store.add_product(
                    session, ab_id=name, instrument="OMEGACAM", pro_catg=pro_catg,
                    night=dt.date(2026, 1, 1) + dt.timedelta(days=nights - back),
                    mid_mjd=mid_mjd, path=f"data/products/{name}.fits", sha256="0" * 64,
                    header=setup | {"OBJECT": pro_catg}, provenance={}, units={},
                    qc={detector: {p: None if rng.random() < 0.05 else rng.gauss(v, v / 50)
                                   for p, v in parameters.items()}
                        for detector in ("ESO_CCD_#65", "ESO_CCD_#66")},
                )  # fmt: skip
                if back == 0:
                    continue
                waiting = back in (2, 5) or pro_catg == never_certified
                status = "scored" if waiting else rng.choice(("certified",) * 9 + ("rejected",))
                product_store.set_product_status(session, product_id, status)
                session.flush()
                for value in session.scalars(
                    select(QCValueRow).where(QCValueRow.product_id == product_id)
                ):
                    grade = "UNSCORED" if waiting or value.value is None else "OK"
                    session.add(ScoreRow(qc_value_id=value.id, product_id=product_id,
                                         grade=grade, reason="", scored_at=scored_at))  # fmt: skip


def _steps_of_a_pass(db) -> tuple[int, dict[str, int]]:
    """SQLite virtual-machine steps (in hundreds) of one scoring pass, and its grades:
    the work of its statements, whatever the machine's speed."""
    steps = 0
    watched = set()

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    def watch(conn, *_args) -> None:  # type: ignore[no-untyped-def]
        connection = conn.connection.driver_connection
        if connection not in watched:
            connection.set_progress_handler(count, 100)
            watched.add(connection)

    event.listen(db.engine, "before_cursor_execute", watch)
    try:
        summary = score_values(db)
    finally:
        event.remove(db.engine, "before_cursor_execute", watch)
        for connection in watched:
            connection.set_progress_handler(None, 0)
    return steps, summary.grades


def test_a_pass_costs_the_same_on_a_4x_history(tmp_path: Path) -> None:
    """Grading one new night (with the review queue's waiting values) takes as many
    SQLite steps on a history of 160 nights as on one of 40: no statement reads more
    of the history as it grows (as reading the first certified product of every
    category by a GROUP BY, and the waiting values no rule could grade by their grade,
    did)."""
    passes = []
    for nights in (40, 160):
        db = open_database(f"sqlite:///{tmp_path / f'{nights}.sqlite'}")
        _history(db, nights)
        passes.append(_steps_of_a_pass(db))
        db.close()
    (short, grades), (long, same_grades) = passes
    assert grades == same_grades and grades["OK"] > 0
    # Equal but for the counter's rounding at statement ends (135 and 135, 134 with 640
    # nights; with those two reads: 147, 199 and 393).
    assert short > 0 and abs(long - short) <= 2, passes


def test_a_queue_that_grows_with_the_history_is_not_read_per_value(tmp_path: Path) -> None:
    """A category never certified whose products all wait with values no rule graded
    (READ_GAIN without a reference, nobody reviewing): its queue grows with the history
    and is never graded again. A pass reads the queue once and walks the category once
    for a certified product, so its cost grows at most as the history does: 134 and 195
    hundred SQLite steps on 40 and 160 nights (an EXISTS per waiting value walked the
    category's earlier products for each: 199 and 1,316)."""
    passes = []
    for nights in (40, 160):
        db = open_database(f"sqlite:///{tmp_path / f'{nights}.sqlite'}")
        _history(db, nights, never_certified="READ_GAIN")
        passes.append(_steps_of_a_pass(db))
        db.close()
    (short, grades), (long, same_grades) = passes
    assert grades == same_grades and grades["OK"] > 0
    assert long <= 4 * short, passes
