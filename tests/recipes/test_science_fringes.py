"""A z-band OmegaCAM OB through the whole path (simulated, ingested, associated, its
masters made and certified, its science on request): the fringe frame the science
recipe builds from the dithered exposures against the fringes the simulator injected
(``qclib.simulate.sky.fringe_pattern``: 3 % of the sky, each exposure's scale 1 +-
0.15), on the four test-scale CCDs (256 x 512 pixels, the fringes' own 35-200 pixel
periods) in five 360 s exposures. The algorithm on a larger field, with its residuals:
tests/calib/test_dithered_sky.py.

Tolerances: on each CCD the fringe frame (the product's per-CCD image) correlates with
the pattern at 0.95 or better, its amplitude (and QC.FRINGE.RMS) within 5 % (10 %) of
the injected one, the mean of the exposures' scales times 3 %. Measured (seed 5): all
four CCDs correlate at 0.976-0.979, amplitude 2.0-2.5 % low (the smoothing). Without
standard fields the coadd is calibrated on the field's own stars.
"""

from __future__ import annotations

import numpy as np
import pytest

from qclib.instruments import load_instrument
from qclib.simulate.night import simulate_night
from qclib.simulate.sky import fringe_pattern
from tests.conftest import NIGHT
from tests.recipes.conftest import ProcessedScience, _process, process_science

pytestmark = pytest.mark.slow

FILTER = "z_SDSS"


@pytest.fixture(scope="module")
def science(tmp_path_factory) -> ProcessedScience:
    omegacam = load_instrument("OMEGACAM")
    sim = omegacam.simulator
    plan = [
        p.model_copy(update={"filter": FILTER})
        if p.kind in ("dome_flat", "twilight_flat", "science")
        else p
        for p in sim.plan
    ]
    z_band = omegacam.model_copy(update={"simulator": sim.model_copy(update={"plan": plan})})
    night = tmp_path_factory.mktemp("omegacam-z")
    simulate_night(
        z_band,
        NIGHT,
        night,
        seed=5,
        scale="test",
        workers=1,
        progress=False,
        only={"bias", "dome_flat", "twilight_flat", "science"},
        counts={"science": 5},
    )
    with pytest.MonkeyPatch.context() as mp:
        processed = _process(tmp_path_factory.mktemp("omegacam-z-processed"), night, mp)
        return process_science(processed)


def test_fringe_frame_recovers_the_injected_fringes(science: ProcessedScience) -> None:
    assert science.outcome.status == "done", science.outcome
    truth = science.processed.truth
    exposures = sorted(
        (e for e in truth["exposures"] if e["kind"] == "science"), key=lambda e: e["arcfile"]
    )
    scales = np.array([e["fringe_scale"] for e in exposures])
    amplitude = truth["filters"][FILTER]["fringe_amplitude"]
    omegacam = load_instrument("OMEGACAM")
    geometry = omegacam.geometry["test"]
    # Each pixel of the fringe frame is a median over five frames whose noise is larger
    # than their fringes' differences: it follows the mean of their scales.
    expected = amplitude * float(np.mean(scales))
    assert len(exposures) == 5
    for ccd in geometry.detectors:
        pattern = fringe_pattern(omegacam, geometry, ccd)
        with science.hdul() as hdul:
            fringes = hdul[ccd].data
            rms = hdul[ccd].header["HIERARCH ESO QC FRINGE RMS"]
        measured = fringes != 0
        f, p = fringes[measured], pattern[measured]
        correlation = float(np.corrcoef(f, p)[0, 1])
        slope = float(np.sum(f * p) / np.sum(p * p))
        print(
            f"{ccd}: fringe frame correlation {correlation:.4f}, amplitude {slope:.5f} vs "
            f"{expected:.5f} ({measured.mean():.1%} of the CCD); QC.FRINGE.RMS {rms:.5f}"
        )
        assert measured.mean() > 0.95
        assert correlation >= 0.95
        assert slope == pytest.approx(expected, rel=0.05)
        assert rms == pytest.approx(expected * float(np.sqrt(np.mean(p * p))), rel=0.1)


def test_the_report_shows_each_ccd_s_fringe_frame(science: ProcessedScience) -> None:
    from qclib.workflow.reports import render_reports

    database = science.processed.workspace.open_database()
    try:
        (report,) = render_reports(science.processed.workspace, database, [science.ab_id])
    finally:
        database.close()
    assert report.status == "written", report.reason
    html = report.html.read_text()
    assert "fringe frames (a fraction of the sky" in html
    assert "sky flats from the exposures" in html
