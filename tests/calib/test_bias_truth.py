"""QC.BIAS.GRADIENT and QC.BIAS.FPN against the simulator's bias structure map, on two
full-size OmegaCAM CCDs (one whose bias rises towards the prescan) and on the four CCDs
of a test-size night.

The truth is the detector's static bias structure (``DetectorMaps.bias_structure_adu``:
gradient, column pattern, offset, edge ramp) measured as the QC parameters define it:
straight lines through the column and row means of its interior (64 pixels from each
edge, at most a quarter of the side); the gradient is the peak-to-peak of that plane
over the whole detector, the FPN the rms of the column means about their line. The
realised column pattern has a chance slope of its own (0.6 ADU x sqrt(12 / 1920) =
0.05 ADU on a full CCD): the nominal gradients of DetectorTruth are checked within it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from qclib.calib.bias import make_master_bias
from qclib.fitsio import read_image, scan_fits
from qclib.instruments import load_instrument
from qclib.simulate.night import simulate_night
from qclib.simulate.truth import build_detector_maps, draw_detector_truth
from tests.conftest import NIGHT, load_truth, scratch

pytestmark = pytest.mark.slow

INSTRUMENT = load_instrument("OMEGACAM")
SEED = 5
MARGIN_PX = 64
#: ESO_CCD_#74's bias rises by 5.9 ADU towards the prescan (e-folding 8 columns) with
#: seed 5; ESO_CCD_#65's does not.
FULL_CCDS = ["ESO_CCD_#65", "ESO_CCD_#74"]


def _simulate(out: Path, scale: str, detectors: list[str] | None) -> Path:
    simulate_night(
        "OMEGACAM",
        NIGHT,
        out,
        seed=SEED,
        scale=scale,
        progress=False,
        only={"bias"},
        detectors=detectors,
    )
    return out


@pytest.fixture(scope="module")
def full_night(request: pytest.FixtureRequest) -> Iterator[Path]:
    with scratch(request, "omegacam-full-biases") as out:
        yield _simulate(out, "full", FULL_CCDS)


@pytest.fixture(scope="module")
def test_night(tmp_path_factory) -> Path:
    return _simulate(tmp_path_factory.mktemp("omegacam-test-biases"), "test", None)


def _master(night: Path, extname: str, scale: str):
    truth = load_truth(night)
    frames = []
    for e in (e for e in truth["exposures"] if e["kind"] == "bias"):
        hdu = next(h for h in scan_fits(night / e["arcfile"]).extensions if h.extname == extname)
        frames.append(read_image(night / e["arcfile"], hdu))
    return make_master_bias(np.stack(frames), INSTRUMENT.geometry[scale]), len(frames)


def _true_structure(extname: str, scale: str) -> tuple[float, float, float]:
    """(gradient, FPN, nominal gradient) of the detector's true bias structure."""
    geometry = INSTRUMENT.geometry[scale]
    index = [d.extname for d in INSTRUMENT.detectors].index(extname)
    truth = draw_detector_truth(INSTRUMENT, geometry, index, SEED)
    structure = build_detector_maps(
        truth, geometry.data_shape, infrared=False, seed=SEED
    ).bias_structure_adu.astype(np.float64)
    ny, nx = structure.shape
    my, mx = min(MARGIN_PX, ny // 4), min(MARGIN_PX, nx // 4)
    interior = structure[my : ny - my, mx : nx - mx]
    columns, rows = interior.mean(axis=0), interior.mean(axis=1)
    x_line = np.polyfit(np.arange(columns.size), columns, 1)
    y_line = np.polyfit(np.arange(rows.size), rows, 1)
    gradient = abs(x_line[0]) * (nx - 1) + abs(y_line[0]) * (ny - 1)
    fpn = float(np.std(columns - np.polyval(x_line, np.arange(columns.size))))
    nominal = abs(truth.bias_gradient_x_adu) + abs(truth.bias_gradient_y_adu)
    return gradient, fpn, nominal


def _gradient_noise_adu(read_noise_adu: float, n_frames: int, shape: tuple[int, int]) -> float:
    """Standard deviation of QC.BIAS.GRADIENT from the master's pixel noise: the
    x slope from column means over ``rows`` rows (every k-th of the interior, about
    1000), the y slope from row means over about 500 columns, each a least-squares
    slope times the side (sigma * side * sqrt(12 / N^3) for N equally spaced values)."""
    # A median of n frames has (pi / 2) / n of one frame's variance (n large; 1.43 / 5
    # and 1.38 / 10 for 5 and 10 frames: pi / 2 = 1.57 is the safe side).
    pixel = read_noise_adu * np.sqrt(np.pi / 2 / n_frames)
    ny, nx = shape
    iy, ix = ny - 2 * min(MARGIN_PX, ny // 4), nx - 2 * min(MARGIN_PX, nx // 4)
    rows_used, columns_used = iy // max(1, iy // 1000), ix // max(1, ix // 500)
    x = pixel / np.sqrt(rows_used) * (nx - 1) * np.sqrt(12 / ix**3)
    y = pixel / np.sqrt(columns_used) * (ny - 1) * np.sqrt(12 / iy**3)
    return float(np.hypot(x, y))


@pytest.mark.parametrize("extname", FULL_CCDS)
def test_full_size_gradient_and_column_pattern(full_night: Path, extname: str) -> None:
    det = load_truth(full_night)["detectors"][extname]
    master, n_frames = _master(full_night, extname, "full")
    gradient, fpn, nominal = _true_structure(extname, "full")
    assert abs(det["bias_gradient_x_adu"]) + abs(det["bias_gradient_y_adu"]) == nominal
    noise = _gradient_noise_adu(det["read_noise_adu"], n_frames, master.data.shape)
    # 5 sigma of the master's noise (0.003 ADU: 10 biases of 2 ADU read noise).
    assert master.qc["QC.BIAS.GRADIENT"] == pytest.approx(gradient, abs=5 * noise)
    # The realised pattern's chance slope: 0.6 ADU * sqrt(12 / 1920) = 0.047 ADU, 4 sigma.
    assert master.qc["QC.BIAS.GRADIENT"] == pytest.approx(nominal, abs=0.19)
    # Column means of ~1000 rows carry 0.024 ADU of noise: +0.08 % on a 0.6-ADU pattern
    # in quadrature, and 0.1 % of scatter from its cross term with the pattern.
    assert master.qc["QC.BIAS.FPN"] == pytest.approx(fpn, rel=0.01)


def test_test_size_gradient_and_column_pattern(test_night: Path) -> None:
    truth = load_truth(test_night)
    for extname, det in truth["detectors"].items():
        master, n_frames = _master(test_night, extname, "test")
        gradient, fpn, _ = _true_structure(extname, "test")
        noise = _gradient_noise_adu(det["read_noise_adu"], n_frames, master.data.shape)
        # 4 sigma: 0.16-0.2 ADU for 5 biases of a 256 x 512 CCD (128 x 384 interior).
        assert master.qc["QC.BIAS.GRADIENT"] == pytest.approx(gradient, abs=4 * noise), extname
        # Column means of 384 rows: 0.06 ADU of noise on a 0.6-ADU pattern, +0.5 % in
        # quadrature, and its cross term with the pattern scatters the FPN by 0.8 %
        # (2 x 0.6 x 0.06 / sqrt(128) ADU^2 in variance): 5 % is 6 sigma.
        assert master.qc["QC.BIAS.FPN"] == pytest.approx(fpn, rel=0.05), extname
