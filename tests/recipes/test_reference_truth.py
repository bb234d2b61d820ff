"""QC.REFDIFF.MED / RMS against the truth: two test-size OmegaCAM nights of the same
detectors (one static seed, new noise), processed one after the other in one workspace,
so that the second night's masters are compared with the first's.

Where nothing changed, the difference of two masters is their noise: a median of n
frames has c_n / n of one frame's variance (c_n by simulation), so REFDIFF.RMS is
sqrt(2 c_n / n) times a frame's pixel noise (the truth's read noise and photon noise)
and REFDIFF.MED is zero. On the second night ESO_CCD_#65's bias gradient along x grows
by 2 ADU (``degrade``): its master bias differs by a ramp of 2 ADU from edge to edge,
rms 2 / sqrt(12) = 0.58 ADU, which adds to the noise in quadrature.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from qclib.db import products as product_store
from qclib.instruments import load_instrument
from qclib.simulate.night import simulate_night
from qclib.simulate.sky import illumination
from qclib.simulate.truth import build_detector_maps, draw_detector_truth
from qclib.workflow.association import associate_workspace
from qclib.workflow.ingest import ingest_paths
from qclib.workflow.process import process_blocks
from qclib.workspace import init_workspace
from tests.conftest import NIGHT, load_truth

INSTRUMENT = load_instrument("OMEGACAM")
GEOMETRY = INSTRUMENT.geometry["test"]
STATIC_SEED = 21
CHANGED = "ESO_CCD_#65"
GRADIENT_STEP_ADU = 2.0
KINDS = {"bias", "dome_flat", "twilight_flat"}


@pytest.fixture(scope="module")
def second_night(tmp_path_factory, monkeypatch_module) -> tuple[dict, dict[str, dict]]:
    """The truth of the second night and its masters' QC values by PRO.CATG, detector."""
    root = tmp_path_factory.mktemp("refdiff")
    monkeypatch_module.delenv("QC_DB_URL", raising=False)
    workspace = init_workspace(root / "ws")
    database = workspace.open_database()
    index = [d.extname for d in INSTRUMENT.detectors].index(CHANGED)
    before = draw_detector_truth(INSTRUMENT, GEOMETRY, index, STATIC_SEED)
    change = {CHANGED: {"bias_gradient_x_adu": before.bias_gradient_x_adu + GRADIENT_STEP_ADU}}
    for offset, degrade in ((0, None), (1, change)):
        night = root / f"night{offset}"
        simulate_night(
            "OMEGACAM",
            NIGHT + dt.timedelta(days=offset),
            night,
            seed=STATIC_SEED + 1 + offset,
            static_seed=STATIC_SEED,
            scale="test",
            workers=1,
            progress=False,
            only=KINDS,
            degrade=degrade,
        )
        ingest_paths(workspace, database, [night])
        associate_workspace(workspace, database)
        outcomes = process_blocks(workspace, database)
        assert {o.status for o in outcomes} == {"done"}, outcomes
    with database.transaction() as session:
        latest = max(p.night for p in product_store.list_products(session))
        qc = {
            p.pro_catg: product_store.qc_values(session, p.id)
            for p in product_store.list_products(session)
            if p.night == latest
        }
    database.close()
    return load_truth(night), qc


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _median_variance_factor(n: int) -> float:
    """n x the variance of the median of n unit normal values: 400,000 draws."""
    draws = np.random.default_rng(0).standard_normal((400_000, n))
    return float(n * np.median(draws, axis=1).var())


def _frames(truth: dict, kind: str) -> list[dict]:
    return [e for e in truth["exposures"] if e["kind"] == kind]


def test_refdiff_of_master_biases(second_night) -> None:
    truth, qc = second_night
    n = len(_frames(truth, "bias"))
    factor = 2 * _median_variance_factor(n) / n
    for extname, det in truth["detectors"].items():
        values = qc["MASTER_BIAS"][extname]
        # A raw pixel: read noise and the rounding to integers (1/12 ADU^2).
        noise = np.sqrt(factor * (det["read_noise_adu"] ** 2 + 1 / 12))
        change = GRADIENT_STEP_ADU / np.sqrt(12) if extname == CHANGED else 0.0
        # The rms of 131,000 differences is known to 0.3 %; a median of integer raws
        # is not a median of normal values (rounding, c_n for 5 frames): 3 %.
        assert values["QC.REFDIFF.RMS"] == pytest.approx(np.hypot(noise, change), rel=0.03)
        # Each master's level comes from 5 overscans of 8 x 512 pixels (0.03 ADU each):
        # 0.02 ADU for the difference, and the median of 131,000 differences 0.005 ADU.
        assert values["QC.REFDIFF.MED"] == pytest.approx(0.0, abs=0.1)


def _pixel_noise(truth: dict, extname: str, exposure: dict, kind: str) -> float:
    """Relative rms noise of one raw flat's normal pixels: photon and read noise of the
    true signal (flux x time x illumination x response)."""
    det = truth["detectors"][extname]
    index = [d.extname for d in INSTRUMENT.detectors].index(extname)
    detector = draw_detector_truth(INSTRUMENT, GEOMETRY, index, STATIC_SEED)
    response = build_detector_maps(
        detector, GEOMETRY.data_shape, infrared=False, seed=STATIC_SEED
    ).response
    light = illumination(INSTRUMENT, GEOMETRY, extname, kind=kind) * response
    signal_e = (exposure["flux_e_per_s"] * exposure["exptime_s"] * light)[response > 0.9]
    return float(np.sqrt(((signal_e + det["read_noise_e"] ** 2) / signal_e**2).mean()))


#: Both flats are normalised to median 1; the median of their difference moves with the
#: noise of both norms and its own: 3.3e-5 by simulation of a 131,000-pixel flat (1 %
#: response, 2 % illumination, 0.33 % noise). The eight differences measured scatter
#: by 6.5e-5; 3e-4 is 4.5 times that. A 0.1 % change of a flat's shape reads 1e-3.
FLAT_MED_LIMIT = 3e-4


def test_refdiff_of_master_flats(second_night) -> None:
    truth, qc = second_night
    dome = _frames(truth, "dome_flat")
    twilight = _frames(truth, "twilight_flat")
    dome_factor = np.sqrt(2 * _median_variance_factor(len(dome)) / len(dome))
    twilight_factor = np.sqrt(2 * _median_variance_factor(len(twilight)) / len(twilight))
    for extname in truth["detectors"]:
        # Equal-level dome flats: 0.46 %. The rms of 131,000 differences is known to
        # 0.3 %; c_n of normal values for Poisson ones of 30,000 e-, and the
        # non-linearity (-0.3 % at 12,000 ADU): 3 %.
        expected = dome_factor * _pixel_noise(truth, extname, dome[0], "dome_flat")
        values = qc["MASTER_DOME_FLAT"][extname]
        assert values["QC.REFDIFF.RMS"] == pytest.approx(expected, rel=0.03), extname
        assert abs(values["QC.REFDIFF.MED"]) < FLAT_MED_LIMIT, extname
        # The master flat is the dome flat times twilight / dome in 8-px blocks, whose
        # noise adds at most 1.5 % in quadrature (0.4 % measured on a full CCD): 4 %.
        values = qc["MASTER_FLAT"][extname]
        assert values["QC.REFDIFF.RMS"] == pytest.approx(expected, rel=0.04), extname
        assert abs(values["QC.REFDIFF.MED"]) < FLAT_MED_LIMIT, extname
        # Twilight flats fall in level: the median of frames of unequal noise lies
        # between the brightest frame's noise and the faintest's (through c_n).
        noises = [_pixel_noise(truth, extname, e, "sky") for e in twilight]
        values = qc["MASTER_SKY_FLAT"][extname]
        assert (
            twilight_factor * min(noises) < values["QC.REFDIFF.RMS"] < twilight_factor * max(noises)
        ), extname
        assert abs(values["QC.REFDIFF.MED"]) < FLAT_MED_LIMIT, extname
