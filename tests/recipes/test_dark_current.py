"""Dark current within 5 % needs full-size CCDs: the overscan of a test-size CCD
(8 x 512 pixels) measures a frame's bias level to 0.03 ADU, a tenth of the 0.2-0.6 ADU
of dark signal a 900-s OmegaCAM dark holds. Two full CCDs of a full-size night."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from qclib.calib.bias import make_master_bias
from qclib.calib.dark import Exposure, make_master_dark
from qclib.fitsio import read_image, scan_fits
from qclib.instruments import load_instrument
from qclib.simulate.night import simulate_night
from tests.conftest import NIGHT, load_truth, scratch

pytestmark = pytest.mark.slow

INSTRUMENT = load_instrument("OMEGACAM")
GEOMETRY = INSTRUMENT.geometry["full"]


@pytest.fixture(scope="module")
def full_ccds(request: pytest.FixtureRequest) -> Iterator[Path]:
    with scratch(request, "omegacam-full-darks") as out:
        simulate_night(
            "OMEGACAM",
            NIGHT,
            out,
            seed=3,
            scale="full",
            progress=False,
            only={"bias", "dark"},
            detectors=["ESO_CCD_#65", "ESO_CCD_#90"],
        )
        yield out


def _stack(night: Path, truth: dict, kind: str, extname: str) -> tuple[np.ndarray, list[dict]]:
    exposures = [e for e in truth["exposures"] if e["kind"] == kind]
    frames = []
    for e in exposures:
        hdu = next(h for h in scan_fits(night / e["arcfile"]).extensions if h.extname == extname)
        frames.append(read_image(night / e["arcfile"], hdu))
    return np.stack(frames), exposures


def test_dark_current_within_five_per_cent(full_ccds: Path) -> None:
    truth = load_truth(full_ccds)
    assert sorted(truth["detectors"]) == ["ESO_CCD_#65", "ESO_CCD_#90"]
    for extname, det in truth["detectors"].items():
        biases, _ = _stack(full_ccds, truth, "bias", extname)
        bias = make_master_bias(biases, GEOMETRY)
        darks, exposures = _stack(full_ccds, truth, "dark", extname)
        exptime = exposures[0]["exptime_s"]
        dark = make_master_dark(
            darks,
            GEOMETRY,
            Exposure(exptime, exptime + INSTRUMENT.readout_time_s),
            pixel_size_um=INSTRUMENT.pixel_size_um,
            master_bias=bias.data,
        )
        # The master bias holds the dark current of its readout time: what is left is
        # the dark current over the exposure time.
        expected = det["dark_current_e_per_s"] / det["gain_e_per_adu"] * 3600
        assert dark.qc["QC.DARK.CURRENT"] == pytest.approx(expected, rel=0.05), extname
