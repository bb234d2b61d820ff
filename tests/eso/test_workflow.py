"""Calibration nights of instruments ESO's pipelines process, through ``qc run``: ingest,
ESO's classification and association, esorex, QC1 harvest, scoring and reports; and a
recipe that crashes, outlives its time or writes no product, failing only its block.

Tolerances against the simulator's truth are those of the statistic each recipe
computes (tests/simulate/test_eso_simulators.py explains each): GIRAFFE's raw read
noise is the median rms of five 100x100 windows of a difference of two biases (each
good to 0.7 %: 3 %); UVES's is measured over most of the chip (1 %); NACO's and
VISIR's from 100 random 5x5 windows (6 %); MUSE's within three times the error the
recipe states with it (QC.BIAS.MASTERn.RONERR). Bias levels are means over millions of
pixels (0.05 ADU; MUSE's per output of the test scale's 256x256 pixels, 0.5 ADU).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import pytest

from qclib.db import products as product_store
from qclib.db import qc1
from qclib.dictionary import find_entry
from qclib.eso import block_job
from qclib.eso.job import run_job
from qclib.eso.pipelines import ESOREX_ENV, find_pipeline
from qclib.simulate.eso import simulate_eso_night
from qclib.workflow.ingest import ingest_paths
from qclib.workflow.run import run_pass
from qclib.workspace import init_workspace
from tests.conftest import load_truth, scratch

NIGHT = dt.date(2026, 12, 4)
#: ESO's own product names, kept where the project's does not fit one card.
ESO_NAMES = ("masterbias_blue.fits", "masterdark_blue.fits")
#: Instrument -> (its pipeline, its calibration actions).
INSTRUMENTS = {
    "GIRAFFE": ("giraf", {"gimasterbias", "gimasterdark"}),
    "UVES": ("uves", {"UVES_MASTER_BIAS_B", "UVES_MASTER_DARK_B"}),
    "NACO": ("naco", {"naco_img_dark", "naco_img_lampflat"}),
    "VISIR": ("visir", {"visir_img_dark", "visir_img_ff"}),
    "MUSE": ("muse", {"muse_bias", "muse_dark"}),
}


def _workspace(root: Path, instruments: list[str]):  # type: ignore[no-untyped-def]
    workspace = init_workspace(root)
    config = workspace.root / "qc.toml"
    listed = ", ".join(f'"{name}"' for name in instruments)
    text = config.read_text()
    start = text.index("\ninstruments = ")
    end = text.index("\n", start + 1)
    config.write_text(f"{text[:start]}\ninstruments = [{listed}]{text[end:]}")
    return init_workspace(root)


@pytest.fixture(scope="module")
def eso_night(request: pytest.FixtureRequest, esorex_giraffe: None):
    """One workspace, the four instruments' calibration nights ingested and run."""
    if {p.name for p in _installed()} < {p for p, _ in INSTRUMENTS.values()}:
        pytest.fail("ESO's giraf, uves, naco, visir and muse pipelines must be installed")
    with scratch(request, "eso") as root:
        yield _eso_night(root)


def _eso_night(root: Path):  # type: ignore[no-untyped-def]
    raws = {
        name: simulate_eso_night(name, NIGHT, root / "raw" / name, scale="test")
        for name in INSTRUMENTS
    }
    os.environ.pop("QC_DB_URL", None)
    workspace = _workspace(root / "ws", list(INSTRUMENTS))
    database = workspace.open_database()
    ingest_paths(workspace, database, [r.out_dir for r in raws.values()])
    summary = _pass_retrying_stuck_jobs(workspace, database)
    with database.transaction() as session:
        rows = qc1.export_rows(session)
        states = product_store.block_states(session)
        products = product_store.products_in(session, ("candidate", "certified", "scored"))
    database.close()
    return workspace, raws, summary, rows, states, products


#: A job of this test-scale night takes 5 s at most; one still running after this long
#: is stuck. Once, in a full suite, ESO's muse_dark ran until pytest's 900 s timeout;
#: 24 runs of the same job took 4.1-5.1 s. The flow stops a job at its time limit and
#: retries the block on its next pass: so does this night.
STUCK_JOB_S = 180.0


def _stopped_when_stuck(*args: Any, **kwargs: Any) -> Any:
    """``run_job`` with a time limit of at most ``STUCK_JOB_S``."""
    limit = min(kwargs.get("timeout_s", STUCK_JOB_S), STUCK_JOB_S)
    return run_job(*args, **{**kwargs, "timeout_s": limit})


def _pass_retrying_stuck_jobs(workspace, database):  # type: ignore[no-untyped-def]
    """One ``run_pass``; where a job was stopped as stuck, a second pass, whose
    outcomes (and reports) stand for the blocks it ran."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(block_job, "run_job", _stopped_when_stuck)
        summary = run_pass(workspace, database)
        stuck = sorted(
            o.ab_id
            for o in summary.outcomes
            if o.status == "failed" and f"ran out of its {STUCK_JOB_S:g} s" in (o.reason or "")
        )
        if not stuck:
            return summary
        warnings.warn(
            f"esorex stuck in {stuck}: stopped, and retried by a second pass", stacklevel=2
        )
        retry = run_pass(workspace, database)
    again = {o.ab_id: o for o in retry.outcomes}
    return dataclasses.replace(
        summary,
        outcomes=[again.get(o.ab_id, o) for o in summary.outcomes],
        reports=[*summary.reports, *retry.reports],
    )


def _installed():  # type: ignore[no-untyped-def]
    from qclib.eso.pipelines import installed_pipelines

    return installed_pipelines()


def _values(rows: list[dict], instrument: str, pro_catg: str) -> dict[str, float]:
    return {
        r["parameter"]: r["value"]
        for r in rows
        if r["instrument"] == instrument and r["pro_catg"] == pro_catg
    }


def test_every_calibration_block_is_processed_by_esos_recipe(eso_night) -> None:
    workspace, _, summary, _, states, products = eso_night
    assert states and all(state == "done" for state, _ in states.values()), states
    actions = {ab_id.split("_", 1)[1] for ab_id in states}  # <first ARCFILE>_<action>
    assert actions == set().union(*(wanted for _, wanted in INSTRUMENTS.values()))
    assert {o.status for o in summary.outcomes} == {"done"}
    made = {p.pro_catg for p in products}
    assert {"MASTER_BIAS", "MASTER_DARK", "MASTER_BIAS_BLUE", "MASTER_DARK_BLUE"} <= made
    assert {"NACO_IMG_DARK_AVG", "MASTER_LAMP_FLAT", "IMG_DARK_AVG", "IMG_FF"} <= made
    # Each product: ESO's file with the project's provenance and checksums.
    from astropy.io import fits

    for product in products:
        path = workspace.root / product.path
        with fits.open(path, checksum=True) as hdus:
            assert "PROVENANCE" in hdus and "CHECKSUM" in hdus[0].header
            assert hdus[0].header["PIPEFILE"] in (path.name, *ESO_NAMES)
            assert "CONTINUE" not in hdus[0].header  # ESO's UVES recipes cannot read it
            assert hdus[0].header["HIERARCH ESO PRO CATG"] == product.pro_catg
        assert (path.parent / f"{product.ab_id}.esorex" / "esorex.log").is_file()
    # Reports: the generic template, executed for every block.
    reports = list((workspace.runs_dir / NIGHT.isoformat()).glob("*.html"))
    assert len(reports) == len(states)
    html = next(r for r in reports if "gimasterbias" in r.name).read_text()
    assert "Recipe operation(s) took" in html and "QC.OUT1.RON.RAW" in html
    assert "MB (esorex)" in html  # the job's peak memory


def test_every_harvested_keyword_is_in_esos_dictionary_with_its_unit(eso_night) -> None:
    _, _, _, rows, _, _ = eso_night
    assert len(rows) > 60
    for name, (pipeline, _) in INSTRUMENTS.items():
        entries = find_pipeline(pipeline).qc_entries()
        mine = [r for r in rows if r["instrument"] == name]
        assert mine, name
        for row in mine:
            entry = find_entry(entries, row["parameter"])
            assert entry is not None, (name, row["parameter"])
            assert (row["unit"] or "") == entry.unit, (name, row["parameter"])


def test_esos_read_noise_and_levels_agree_with_the_truth(eso_night) -> None:
    _, raws, _, rows, _, _ = eso_night
    giraffe = load_truth(raws["GIRAFFE"].out_dir)["outputs"]["OUT1"]
    bias = _values(rows, "GIRAFFE", "MASTER_BIAS")
    assert bias["QC.OUT1.RON.RAW"] == pytest.approx(
        math.hypot(giraffe["read_noise_adu"], math.sqrt(1 / 12)), rel=0.03
    )
    assert bias["QC.BIAS.MASTER.MEAN"] == pytest.approx(giraffe["bias_adu"], abs=0.05)
    dark = _values(rows, "GIRAFFE", "MASTER_DARK")
    assert dark["QC.DARK.CURRENT"] == pytest.approx(giraffe["dark_adu_per_h"], rel=0.02)

    uves = load_truth(raws["UVES"].out_dir)["outputs"]["OUT1"]
    blue = _values(rows, "UVES", "MASTER_BIAS_BLUE")
    assert blue["QC.OUT1.RON.RAW"] == pytest.approx(
        math.hypot(uves["read_noise_adu"], math.sqrt(1 / 12)), rel=0.01
    )

    for name, catg in (("NACO", "NACO_IMG_DARK_AVG"), ("VISIR", "IMG_DARK_AVG")):
        truth = load_truth(raws[name].out_dir)
        out = truth["outputs"]["CHIP1"]
        values = _values(rows, name, catg)
        for key in ("QC.RON1", "QC.RON2"):
            assert values[key] == pytest.approx(out["read_noise_adu"], rel=0.06), (name, key)
        assert values["QC.NBHOTPIX"] == out["hot_pixels_count"]


def test_muse_read_noise_of_every_output_agrees_with_the_truth(eso_night) -> None:
    """muse_bias with ESO's options (all 24 IFUs at once, merged): QC per IFU, harvested
    from its CHANnn.DATA extension (the DQ and STAT planes repeat it: kept once)."""
    _, raws, _, rows, _, _ = eso_night
    truth = load_truth(raws["MUSE"].out_dir)["outputs"]
    mine = [r for r in rows if r["instrument"] == "MUSE" and r["pro_catg"] == "MASTER_BIAS"]
    by_ifu: dict[str, dict[str, float]] = {}
    for row in mine:
        by_ifu.setdefault(row["detector"], {})[row["parameter"]] = row["value"]
    assert sorted(by_ifu) == [f"CHAN{i:02d}" for i in range(1, 25)]
    for ifu, values in by_ifu.items():
        for n in range(1, 5):
            out = truth[f"{ifu}.OUT{n}"]
            error = values[f"QC.BIAS.MASTER{n}.RONERR"]
            assert values[f"QC.BIAS.MASTER{n}.RON"] == pytest.approx(
                out["read_noise_e"], abs=3 * error
            ), (ifu, n)
            assert values[f"QC.BIAS.LEVEL{n}.MEAN"] == pytest.approx(out["bias_adu"], abs=0.5)


def test_grades_come_from_the_tomls_thresholds(eso_night) -> None:
    _, _, _, rows, _, _ = eso_night
    median = next(r for r in rows if r["parameter"] == "QC.BIAS.MASTER.MEDIAN")
    assert median["grade"] == "OK" and (median["low"], median["high"]) == (100.0, 300.0)
    ron = next(
        r for r in rows if r["parameter"] == "QC.OUT1.RON.RAW" and r["instrument"] == "GIRAFFE"
    )
    assert ron["grade"] == "UNSCORED" and "history" in ron["reason"]


# ----------------------------------------------------------------- failures
FAKE_ESOREX = """#!/bin/sh
# esorex that lists recipes like the real one and misbehaves when it runs one.
for a in "$@"; do case "$a" in --recipes|--man-page) exec esorex "$@";; esac; done
case "$QC_TEST_ESOREX" in
  crash) echo "[ ERROR ] gimasterbias: simulated crash: Segmentation fault"; exit 139;;
  hang) sleep 60;;
  empty) echo "[ INFO  ] done, nothing written"; exit 0;;
esac
"""


def _within_two_seconds(*args: Any, **kwargs: Any) -> Any:
    """``run_job`` with a time limit of 2 s, whatever the recipe's."""
    return run_job(*args, **{**kwargs, "timeout_s": 2.0})


@pytest.mark.parametrize(
    ("mode", "phrase"),
    [
        ("crash", "failed (exit 139)"),
        ("hang", "ran out of its 2 s and was stopped"),
        ("empty", "wrote no product"),
    ],
)
def test_a_failing_job_fails_its_block_and_the_next_pass_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, phrase: str, esorex_giraffe: None
) -> None:
    fake = tmp_path / "esorex"
    fake.write_text(FAKE_ESOREX)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    raws = simulate_eso_night("GIRAFFE", NIGHT, tmp_path / "raw", scale="test")
    monkeypatch.delenv("QC_DB_URL", raising=False)
    workspace = _workspace(tmp_path / "ws", ["GIRAFFE"])
    database = workspace.open_database()
    ingest_paths(workspace, database, [raws.out_dir])
    monkeypatch.setenv(ESOREX_ENV, str(fake))
    monkeypatch.setenv("QC_TEST_ESOREX", mode)
    monkeypatch.setattr(block_job, "run_job", _within_two_seconds)
    first = run_pass(workspace, database, write_reports=False)
    failed = {o.ab_id: o for o in first.outcomes if o.status == "failed"}
    bias = next(ab for ab in failed if ab.endswith("_gimasterbias"))
    reason = failed[bias].reason
    assert phrase in reason and ("esorex.log" in reason or "esorex.out" in reason)
    assert "failed attempt 1" in reason
    with database.transaction() as session:
        assert product_store.products_of_block(session, bias) == []
        state, stored = product_store.block_states(session)[bias]
    assert state == "failed" and phrase in stored
    folder = workspace.products_dir / NIGHT.isoformat()
    assert (folder / f"{bias}.esorex.failed").is_dir()
    assert not list(folder.glob(f"{bias}_*.fits"))  # nothing half-written where products are
    # The dark waits for its master bias, saying which block failed.
    dark = next(o for o in first.outcomes if o.ab_id.endswith("_gimasterdark"))
    assert dark.status == "waiting" and bias in dark.reason
    # esorex mended: the next pass retries both and makes them.
    monkeypatch.setenv(ESOREX_ENV, "esorex")
    monkeypatch.setattr(block_job, "run_job", run_job)
    second = run_pass(workspace, database, write_reports=False)
    assert {o.ab_id: o.status for o in second.outcomes} == {bias: "done", dark.ab_id: "done"}
    database.close()


def test_an_optional_calibration_its_block_did_not_make_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, esorex_giraffe: None
) -> None:
    """giraf.oca gives a bias block the earlier nights' BAD_PIXEL_MAP (minRet = 0), and
    gimasterbias given one makes none: the next night's blocks, which chose the one
    announced, are made without it instead of waiting for ever."""
    monkeypatch.delenv("QC_DB_URL", raising=False)
    workspace = _workspace(tmp_path / "ws", ["GIRAFFE"])
    nights = [NIGHT, NIGHT + dt.timedelta(days=1), NIGHT + dt.timedelta(days=2)]
    raws = [
        simulate_eso_night("GIRAFFE", n, tmp_path / str(n), seed=i, scale="test")
        for i, n in enumerate(nights)
    ]
    database = workspace.open_database()
    ingest_paths(workspace, database, [r.out_dir for r in raws])
    summary = run_pass(workspace, database, write_reports=False)
    database.close()
    statuses = {o.ab_id: (o.status, o.reason) for o in summary.outcomes}
    assert len(statuses) == 6
    assert all(status == "done" for status, _ in statuses.values()), statuses


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "dask"])
def test_esorex_jobs_run_on_the_pool_and_on_dask(
    kind: str, eso_night, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIRAFFE's and NACO's nights (the same frames as eso_night's) on two workers of a
    local pool or of a Dask LocalCluster: every block done, every QC value the one the
    serial pass harvested."""
    from qclib.workflow.executors import open_executor

    monkeypatch.delenv("QC_DB_URL", raising=False)
    names = ["GIRAFFE", "NACO"]
    raws = [simulate_eso_night(n, NIGHT, tmp_path / "raw" / n, scale="test").out_dir for n in names]
    workspace = _workspace(tmp_path / "ws", names)
    database = workspace.open_database()
    ingest_paths(workspace, database, raws)
    with open_executor(kind, workers=2) as workers:  # type: ignore[arg-type]
        summary = run_pass(workspace, database, write_reports=False, workers=workers)
    with database.transaction() as session:
        rows = qc1.export_rows(session)
    database.close()
    assert summary.outcomes and {o.status for o in summary.outcomes} == {"done"}

    def keyed(found: list[dict]) -> dict[tuple, float]:
        return {
            (r["ab_id"], r["detector"], r["parameter"]): r["value"]
            for r in found
            if r["instrument"] in names
        }

    serial = keyed(eso_night[3])
    assert len(serial) == 20  # GIRAFFE's bias and dark, NACO's dark and flat
    assert keyed(rows) == serial
