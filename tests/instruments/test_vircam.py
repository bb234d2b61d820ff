"""VIRCAM, added by configuration alone (qclib/instruments/vircam/: its OCA rules and
TOML): a simulated test-scale night classifies, associates and processes end to end
with the declared recipes; each detector's QC values recover the simulator's truth;
the detector known to misbehave (DET1.CHIP13, "quite non-linear") is NOK, and only it.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import qclib
from qclib.calib.linearity import nonlinearity_at
from qclib.db import blocks as block_store
from qclib.db import products as product_store
from qclib.db import qc1
from qclib.instruments import INSTRUMENTS_DIR, load_instrument, load_rules
from qclib.reports import load_report
from qclib.simulate.night import simulate_night
from qclib.workflow.association import associate_workspace
from qclib.workflow.ingest import ingest_paths
from qclib.workflow.process import process_blocks
from qclib.workflow.scoring import score_values
from qclib.workspace import init_workspace
from tests.conftest import NIGHT, load_truth, scratch

INSTRUMENT = load_instrument("VIRCAM")
BAD = "DET1.CHIP13"


@pytest.fixture(scope="module")
def night(request: pytest.FixtureRequest) -> Iterator[Path]:
    with scratch(request, "vircam-night") as out:
        simulate_night("VIRCAM", NIGHT, out, seed=11, scale="test", progress=False)
        yield out


@pytest.fixture(scope="module")
def processed(night: Path, request: pytest.FixtureRequest):
    """The night through ingest, association, every recipe and scoring (SQLite)."""
    with pytest.MonkeyPatch.context() as patch, scratch(request, "vircam-ws") as folder:
        patch.setenv("QC_DB_URL", f"sqlite:///{folder / 'qc.sqlite'}")
        workspace = init_workspace(folder / "ws")
        db = workspace.open_database()
        ingest_paths(workspace, db, [night])
        associate_workspace(workspace, db)
        outcomes = process_blocks(workspace, db)
        score_values(db)
        yield workspace, db, outcomes
        db.close()


def _values(db, pro_catg: str) -> dict[str, dict[str, float]]:
    """detector -> QC name -> value of the night's one product of a category."""
    with db.transaction() as session:
        products = [
            p
            for p in product_store.list_products(session, instrument="VIRCAM")
            if p.pro_catg == pro_catg
        ]
        assert len(products) >= 1, pro_catg
        return product_store.qc_values(session, products[0].id)


def _code_mentions(path: Path, word: str) -> list[int]:
    """Lines of a module whose code mentions ``word``: a name or a string it computes
    with, not its comments, docstrings (of modules, classes, functions, attributes) or
    the descriptions of its configuration fields."""
    source = path.read_text()
    prose: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        texts = []
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            texts.append(node.value)
        if isinstance(node, ast.keyword) and node.arg in ("description", "help"):
            texts.append(node.value)
        for text in texts:
            prose.update(range(text.lineno, (text.end_lineno or text.lineno) + 1))
    lines = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT or token.start[0] in prose:
            continue
        if word.lower() in token.string.lower():
            lines.append(token.start[0])
    return lines


def test_vircam_is_configuration_only() -> None:
    folder = INSTRUMENTS_DIR / "vircam"
    assert sorted(p.name for p in folder.iterdir()) == ["vircam.oca", "vircam.toml"]
    package = Path(qclib.__file__).parent
    mentions = {
        str(p.relative_to(package)): lines
        for p in package.rglob("*.py")
        if (lines := _code_mentions(p, "vircam"))
    }
    assert mentions == {}


def test_the_night_gives_the_calibration_plan_s_blocks(processed) -> None:
    _, db, _ = processed
    rules = load_rules("VIRCAM")
    assert {a.name for a in rules.actions} >= {"MASTER_RESET", "LINEARITY", "DETECTOR_NOISE"}
    with db.transaction() as session:
        blocks = block_store.list_blocks(session, instrument="VIRCAM")
    actions = Counter(b.action for b in blocks)
    assert actions == {
        "MASTER_RESET": 1,
        "MASTER_DARK": 4,  # 1.0011 s, 10 s, 120 s and the science setup's 10 s x 6
        "LINEARITY": 1,
        "DETECTOR_NOISE": 1,
        "MASTER_TWILIGHT_FLAT": 1,
        "ZEROPOINT": 2,  # two standard-field visits: at dusk and later (the extinction)
        "SCIENCE_REDUCED": 1,
    }
    assert all(b.completeness == "complete" for b in blocks), [
        (b.id, b.reason) for b in blocks if b.completeness != "complete"
    ]


def test_every_calibration_block_is_processed(processed) -> None:
    _, _, outcomes = processed
    states = {o.ab_id.split("_", 1)[1]: (o.status, o.reason) for o in outcomes}
    for action, (status, reason) in states.items():
        if action == "SCIENCE_REDUCED":
            assert status == "waiting" and "names no recipe" in reason
        else:
            assert status == "done", (action, reason)


def _truth(night: Path) -> dict[str, dict]:
    return load_truth(night)["detectors"]


def test_master_reset_per_detector(processed, night: Path) -> None:
    """The median of three reset frames: each detector's reset level, lowered by its
    reset anomaly where the first rows are read (at most the anomaly's amplitude); the
    spread is the fixed reset pattern's, and the detector with the strong anomaly
    (DET1.CHIP13, 90 ADU against 20-30) spreads most."""
    truth = _truth(night)
    values = _values(processed[1], "MASTER_RESET")
    assert set(values) == {d.extname for d in INSTRUMENT.detectors}
    pattern = INSTRUMENT.simulator.reset_pattern_rms_adu
    for extname, qc in values.items():
        det = truth[extname]
        assert -det["reset_anomaly_adu"] <= qc["QC.RESETMED"] - det["reset_level_adu"] <= 0.5
        assert pattern <= qc["QC.RESETRMS"] <= 1.1 * pattern or extname == BAD, extname
    assert values[BAD]["QC.RESETRMS"] > max(v["QC.RESETRMS"] for k, v in values.items() if k != BAD)


def test_linearity_per_detector_against_the_truth(processed, night: Path) -> None:
    """QC.LINEARITY (per cent at a measured 10000 ADU, the charge of the 1.0011 s before
    the first read included) from the truth's polynomial of each readout channel, at
    the lamp's rate: within 0.25 percentage points (the test-size fit's own scatter is
    0.01-0.02; the lamp rate's PRNU and illumination, +-5 %, move the reset-read charge
    and so the value by up to about 0.2)."""
    truth = _truth(night)
    lamp = next(p for p in INSTRUMENT.simulator.plan if p.kind == "linearity_flat").lamp_e_per_s
    values = _values(processed[1], "MASTER_LINEARITY")
    for extname, qc in values.items():
        det = truth[extname]
        rate = lamp / det["gain_e_per_adu"]
        expected = np.median(
            [
                nonlinearity_at(
                    10_000.0,
                    np.array(
                        [
                            1.0,
                            det["nonlinearity_per_adu"] * f,
                            det["nonlinearity_cubic_per_adu2"] * f,
                        ]
                    ),
                    rate,
                    reset_read_s=INSTRUMENT.reset_read_s,
                )
                for f in det["nonlinearity_channel_factors"]
            ]
        )
        assert abs(qc["QC.LINEARITY"] - expected) < 0.25, (extname, qc["QC.LINEARITY"], expected)
        assert qc["QC.LINERROR"] < 0.1


def test_gain_and_read_noise_per_detector(processed, night: Path) -> None:
    """Photon transfer of two 5-s dome flats and two 5-s darks, linearised: the gain within
    2.5 % (0.55 % statistical for 65,536-pixel pairs: 4.5 sigma); QC.READNOISE within 3 %
    of what a dark pair holds: the read noise, the stripes of each read (1.5 ADU rms)
    and the shot noise of 5 s of dark current (VIRCAM's raws have no pixels that give
    the level apart from the charge, so that part stays in, as ESO's does)."""
    truth = _truth(night)
    stripes = INSTRUMENT.simulator.stripe_rms_adu
    values = _values(processed[1], "MASTER_READGAIN")
    for extname, qc in values.items():
        det = truth[extname]
        gain = det["gain_e_per_adu"]
        assert qc["QC.GAIN"] == pytest.approx(gain, rel=0.025), extname
        expected = np.sqrt(
            det["read_noise_e"] ** 2 + (stripes * gain) ** 2 + det["dark_current_e_per_s"] * 5.0
        )
        assert qc["QC.READNOISE"] == pytest.approx(expected, rel=0.03), extname
        assert "QC.RON.ELECTRONS" not in qc  # carried under ESO's name only


def test_dark_current_per_detector(processed, night: Path) -> None:
    """Every master dark's QC.DARK.CURRENT (the slope over the day's darks of 1, 10 and
    120 s, and the science setup's 10 s x 6 summed reads) within 8 % or 60 ADU/hr of
    the truth: DET1.CHIP2's 3 ADU/s as well as the 0.03-0.5 ADU/s of the others.
    Darks of six summed reads are read as their mean: the master's level is the 10-s
    single read's (within 3 ADU: each frame's level jitters by 1 ADU rms, so two
    three-frame masters differ by 0.8 ADU rms; read as a sum, they would differ by
    five times the level), its stripes averaged down by six reads."""
    truth = _truth(night)
    with processed[1].transaction() as session:
        darks = {
            (p.header["DET.DIT"], p.header["DET.NDIT"]): product_store.qc_values(session, p.id)
            for p in product_store.list_products(session, instrument="VIRCAM")
            if p.pro_catg == "MASTER_DARK"
        }
    assert sorted(darks) == [(1.0011, 1), (10.0, 1), (10.0, 6), (120.0, 1)]
    for values in darks.values():
        for extname, qc in values.items():
            det = truth[extname]
            expected = det["dark_current_e_per_s"] / det["gain_e_per_adu"] * 3600
            assert abs(qc["QC.DARK.CURRENT"] - expected) < max(0.08 * expected, 60.0), extname
    for extname in truth:
        single, summed = darks[10.0, 1][extname], darks[10.0, 6][extname]
        assert abs(summed["QC.DARKMED"] - single["QC.DARKMED"]) < 3.0, extname
    stripes = [
        (darks[10.0, 6][e]["QC.STRIPERMS"], darks[10.0, 1][e]["QC.STRIPERMS"]) for e in truth
    ]
    assert np.median([six / one for six, one in stripes]) < 0.75


def test_zeropoint_against_the_truth(processed, night: Path) -> None:
    """QC.MAGZPT.X0 (the zeropoint in ADU above the atmosphere, from 1 e-/s at 23.0 and
    each detector's gain): the median over detectors and visits within 0.03 mag, each
    within 4 sigma of its error and the catalogue's 0.02 mag."""
    truth = _truth(night)
    zeropoint = INSTRUMENT.simulator.filters["Ks"].zeropoint_mag
    with processed[1].transaction() as session:
        visits = [
            product_store.qc_values(session, p.id)
            for p in product_store.list_products(session, instrument="VIRCAM")
            if p.pro_catg == "ZEROPOINT"
        ]
    offsets = []
    for values in visits:
        for extname, qc in values.items():
            expected = zeropoint - 2.5 * np.log10(truth[extname]["gain_e_per_adu"])
            # The simulated WCS is only shifted: what remains is centroid noise.
            assert qc["QC.WCS_RMS"] < 0.15, (extname, qc["QC.WCS_RMS"])
            assert "QC.WCS.RMS" not in qc
            offset = qc["QC.MAGZPT.X0"] - expected
            assert abs(offset) < 4 * np.hypot(qc["QC.MAGZERR"], 0.02), (extname, offset)
            offsets.append(offset)
    assert len(offsets) >= 10
    assert abs(np.median(offsets)) < 0.03


def test_the_known_bad_detector_is_nok_and_only_it(processed) -> None:
    _, db, _ = processed
    with db.transaction() as session:
        rows = qc1.export_rows(session, instrument="VIRCAM")
    nok = {(r["detector"], r["parameter"]) for r in rows if r["grade"] == "NOK"}
    assert nok == {(BAD, "QC.LINEARITY")}
    graded = {
        r["detector"] for r in rows if r["parameter"] == "QC.LINEARITY" and r["grade"] == "OK"
    }
    assert graded == {d.extname for d in INSTRUMENT.detectors} - {BAD}


def test_block_reports_show_the_four_by_four_mosaic(processed) -> None:
    """A master dark's report places the 16 arrays as on the sky: four rows of four,
    DET1.CHIP13-16 on top (the TOML's layout)."""
    workspace, _, outcomes = processed
    dark = next(o.ab_id for o in outcomes if o.ab_id.endswith("_MASTER_DARK"))
    figure = load_report(dark, str(workspace.root)).mosaic()
    assert len([t for t in figure.data if t.type == "heatmap"]) == 16
    titles = [a.text for a in figure.layout.annotations][:16]
    assert titles[:4] == ["DET1.CHIP13", "DET1.CHIP14", "DET1.CHIP15", "DET1.CHIP16"]
    assert titles[12:] == ["DET1.CHIP1", "DET1.CHIP2", "DET1.CHIP3", "DET1.CHIP4"]
    grid = figure._grid_ref  # plotly's subplot grid: rows x columns
    assert (len(grid), len(grid[0])) == (4, 4)
