"""Master reset QC (QC.RESETMED, QC.RESETRMS, QC.RESETDIFF_*) against known truth.

A synthetic master reset of 1024 x 1024 pixels: a reset level of 9,000 ADU, pixel
spread of 40 ADU (Gaussian), 1 % hot and dead pixels far out. Tolerances: the median
of n = 1,048,576 Gaussian values has a standard error of 1.2533 x 40 / sqrt(n) =
0.049 ADU and 1.4826 MAD one of 1.166 x 40 / sqrt(n) = 0.046 ADU; the tests allow
5 of those plus the shift the 1 % outliers cause (they sit on both sides: a median
moves by at most ~0.013 sigma, 0.5 ADU; the MAD rises by at most ~1.3 %).
"""

from __future__ import annotations

import numpy as np
import pytest

from qclib.calib.reset import ResetStatistics, measure_reset, median_and_spread
from qclib.errors import UnprocessableDataError

SIZE, LEVEL_ADU, SPREAD_ADU = 1024, 9000.0, 40.0


def master(seed: int, level: float = LEVEL_ADU, spread: float = SPREAD_ADU) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.normal(level, spread, (SIZE, SIZE))
    bad = rng.random(image.shape) < 0.01
    image[bad] = np.where(rng.random(bad.sum()) < 0.5, 0.0, 60000.0)
    return image.astype(np.float32)


def test_level_and_spread() -> None:
    stats = measure_reset(master(21))
    assert stats.median_adu == pytest.approx(LEVEL_ADU, abs=5 * 0.049 + 0.5)
    assert stats.rms_adu == pytest.approx(SPREAD_ADU, rel=0.013 + 5 * 0.046 / SPREAD_ADU)
    assert stats.qc() == {"QC.RESETMED": stats.median_adu, "QC.RESETRMS": stats.rms_adu}


def test_difference_to_a_reference() -> None:
    # The reset rose by 25 ADU since the reference; both have their own pixel noise,
    # so the difference spreads by sqrt(2) x 40 ADU.
    now, reference = master(22, level=LEVEL_ADU + 25.0), master(23)
    mask = (now < 1000) | (now > 50000) | (reference < 1000) | (reference > 50000)
    stats = measure_reset(now, reference=reference, mask=mask)
    assert isinstance(stats, ResetStatistics)
    assert stats.difference_median_adu == pytest.approx(25.0, abs=5 * 0.049 * np.sqrt(2))
    assert stats.difference_rms_adu == pytest.approx(
        SPREAD_ADU * np.sqrt(2), rel=5 * 0.046 / SPREAD_ADU
    )
    qc = stats.qc()
    assert qc["QC.RESETDIFF_MED"] == stats.difference_median_adu
    assert qc["QC.RESETDIFF_RMS"] == stats.difference_rms_adu
    # With the outliers masked, the master's own statistics are exact to the noise.
    assert stats.median_adu == pytest.approx(LEVEL_ADU + 25.0, abs=5 * 0.049)
    assert stats.rms_adu == pytest.approx(SPREAD_ADU, rel=5 * 0.046 / SPREAD_ADU)


def test_inputs_are_not_modified() -> None:
    image = master(24)
    before = image.copy()
    measure_reset(image, reference=master(25))
    assert np.array_equal(image, before)


def test_unusable_masters_are_refused() -> None:
    with pytest.raises(UnprocessableDataError, match="no usable pixel"):
        measure_reset(np.full((8, 8), np.nan, np.float32))
    with pytest.raises(UnprocessableDataError, match="reference reset is 4x8 px, the master 8x8"):
        measure_reset(np.zeros((8, 8), np.float32), reference=np.zeros((8, 4), np.float32))


def test_masked_pixels_are_left_out() -> None:
    image = np.array([[1.0, 2.0, 3.0, 1000.0]], np.float32)
    assert median_and_spread(image, np.array([[False, False, False, True]])) == (
        2.0,
        pytest.approx(1.4826, rel=1e-4),
    )
