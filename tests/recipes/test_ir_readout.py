"""Infrared master darks on arrays that do what Hawaii-2RG arrays do: per-frame offsets of
each readout channel (shared by its reference pixels), even/odd column offsets and 1/f
noise along the readout (qclib.simulate.pixels). Full-size HAWK-I darks of two chips,
four DITs: the dark current needs the full reference rows and the long DITs.

Noise budget. 1/f noise moves a frame's level between the reference rows (read first
and last) and the data: 0.33 ADU rms per frame of one read here (0.5 ADU of 1/f),
0.33/sqrt(NDIT) for NDIT reads, against which the reference rows' own noise (0.05 ADU)
is small. That limits a master's level (0.19 ADU for three 60-s darks) and a single
DIT's dark current (10-45 % for 2-s darks); the slope over the night's DITs is not
limited by it (0.4 % from the 150-s darks' lever arm).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from qclib.calib.dark import Exposure, make_master_dark
from qclib.fitsio import read_image, scan_fits
from qclib.instruments import load_instrument
from qclib.simulate.night import simulate_night
from tests.conftest import NIGHT, load_truth, scratch

pytestmark = pytest.mark.slow

INSTRUMENT = load_instrument("HAWKI")
GEOMETRY = INSTRUMENT.geometry["full"]
CHIPS = ["CHIP1.INT1", "CHIP3.INT1"]
#: Per-frame level noise of one read from 1/f noise (measured: 0.33 ADU rms over 48 frames).
LEVEL_NOISE_ONE_READ_ADU = 0.33


@pytest.fixture(scope="module")
def ir_darks(request: pytest.FixtureRequest) -> Iterator[Path]:
    with scratch(request, "hawki-full-darks") as out:
        simulate_night(
            "HAWKI",
            NIGHT,
            out,
            seed=5,
            scale="full",
            progress=False,
            only={"dark"},
            detectors=CHIPS,
        )
        yield out


def _stacks(night: Path, truth: dict, extname: str) -> dict[float, tuple[np.ndarray, Exposure]]:
    stacks: dict[float, tuple[np.ndarray, Exposure]] = {}
    for dit in sorted({e["dit_s"] for e in truth["exposures"] if e["kind"] == "dark"}):
        exposures = [e for e in truth["exposures"] if e["kind"] == "dark" and e["dit_s"] == dit]
        frames = []
        for e in exposures:
            hdu = next(
                h for h in scan_fits(night / e["arcfile"]).extensions if h.extname == extname
            )
            frames.append(read_image(night / e["arcfile"], hdu))
        ndit = exposures[0]["ndit"]
        stacks[dit] = (np.stack(frames), Exposure(dit, dit * ndit, ndit))
    return stacks


@pytest.fixture(scope="module")
def masters(ir_darks: Path) -> dict[tuple[str, float], dict[str, float]]:
    """QC of every chip's master dark at every DIT, as qc_ir_dark makes them."""
    truth = load_truth(ir_darks)
    qc = {}
    for extname in CHIPS:
        det = truth["detectors"][extname]
        stacks = _stacks(ir_darks, truth, extname)
        for dit, (raws, exposure) in stacks.items():
            master = make_master_dark(
                raws,
                GEOMETRY,
                exposure,
                pixel_size_um=INSTRUMENT.pixel_size_um,
                gain_e_per_adu=det["gain_e_per_adu"],
                other_dits=[v for k, v in stacks.items() if k != dit],
            )
            qc[extname, dit] = {**master.qc, "ndit": exposure.ndit, "frames": len(raws)}
    return qc


def test_simulated_arrays_have_the_readout_structure(ir_darks: Path) -> None:
    truth = load_truth(ir_darks)
    assert sorted({e["dit_s"] for e in truth["exposures"] if e["kind"] == "dark"}) == [
        2.0,
        10.0,
        60.0,
        150.0,
    ]
    for det in truth["detectors"].values():
        assert det["channel_offset_rms_adu"] == 3.0
        assert det["even_odd_rms_adu"] == 0.8
        assert det["correlated_noise_rms_adu"] == 0.5


def test_dark_current_within_five_per_cent_on_every_chip_and_block(
    ir_darks: Path, masters: dict
) -> None:
    truth = load_truth(ir_darks)
    for (extname, dit), qc in masters.items():
        det = truth["detectors"][extname]
        expected = det["dark_current_e_per_s"] / det["gain_e_per_adu"] * 3600
        assert qc["QC.DARK.CURRENT"] == pytest.approx(expected, rel=0.05), (extname, dit)


def test_master_dark_read_noise_is_one_read_without_dark_shot_noise(
    ir_darks: Path, masters: dict
) -> None:
    """The noise of one read is the white read noise and the 1/f noise together (both
    are in a frame difference); the dark signal's shot noise (+0.3 to +6 % on QC.RON
    at 2-150 s here) is not. 1 %: about four standard errors of a 150-s pair."""
    truth = load_truth(ir_darks)
    for (extname, dit), qc in masters.items():
        det = truth["detectors"][extname]
        expected = np.hypot(det["read_noise_adu"], det["correlated_noise_rms_adu"])
        assert qc["QC.RON"] == pytest.approx(expected, rel=0.01), (extname, dit)


def test_master_dark_level_is_the_dark_signal(ir_darks: Path, masters: dict) -> None:
    """Channel offsets and even/odd columns gone: the master's clipped mean is the dark
    signal within four times its level noise (1/f: 0.33 ADU / sqrt(NDIT x frames))."""
    truth = load_truth(ir_darks)
    for (extname, dit), qc in masters.items():
        det = truth["detectors"][extname]
        signal = det["dark_current_e_per_s"] * dit / det["gain_e_per_adu"]
        noise = LEVEL_NOISE_ONE_READ_ADU / np.sqrt(qc["ndit"] * qc["frames"])
        assert abs(qc["QC.DARK.MEAN"] - signal) <= 4 * noise, (extname, dit, qc["QC.DARK.MEAN"])
