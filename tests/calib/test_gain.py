"""Photon transfer: gain and read noise against known truth, also where a bias's data
region sits above its overscan (an electronic offset, not dark signal)."""

from __future__ import annotations

import numpy as np
import pytest

from qclib.calib.gain import measure_photon_transfer
from qclib.instruments import load_instrument

GEOMETRY = load_instrument("OMEGACAM").geometry["test"]
GAIN, RON_ADU, LEVEL = 2.5, 2.2, 500.0


def _frame(rng: np.random.Generator, *, offset: float, electrons: float) -> np.ndarray:
    """A raw CCD readout: overscan at LEVEL, the data region ``offset`` above it plus
    ``electrons`` of light (Poisson as Gaussian), read noise, whole ADU."""
    frame = LEVEL + rng.normal(0.0, RON_ADU, (GEOMETRY.naxis2, GEOMETRY.naxis1))
    rows, cols = slice(0, 512), slice(8, 264)
    shot = rng.normal(0.0, np.sqrt(electrons), (512, 256)) if electrons else 0.0
    frame[rows, cols] += offset + (electrons + shot) / GAIN
    return np.rint(frame).astype(np.float32)


@pytest.mark.parametrize("offset", [0.0, 4.0])
def test_a_bias_offset_is_no_dark_signal(offset: float) -> None:
    rng = np.random.default_rng(5)
    flats = (
        _frame(rng, offset=offset, electrons=20000.0),
        _frame(rng, offset=offset, electrons=20000.0),
    )
    biases = (_frame(rng, offset=offset, electrons=0.0), _frame(rng, offset=offset, electrons=0.0))
    transfer = measure_photon_transfer(flats, biases, GEOMETRY, dark_signal_adu=0.0)
    # 131,072 pixels: the read noise is known to 0.2 %, the gain to about 0.5 %.
    assert transfer.read_noise_adu == pytest.approx(RON_ADU, rel=0.01)
    assert transfer.gain_e_per_adu == pytest.approx(GAIN, rel=0.02)
    # Taking the 4-ADU offset for dark signal would remove 4/2.5 ADU^2 of "shot
    # noise": the read noise would read 18 % low.
    if offset:
        taken = measure_photon_transfer(flats, biases, GEOMETRY)
        assert taken.read_noise_adu < 0.85 * RON_ADU
