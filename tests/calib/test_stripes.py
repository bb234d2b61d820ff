"""Stripe pattern (QC.STRIPERMS) and destriping against known truth.

A synthetic dark, 2048 rows (a VIRCAM detector's height) x 512 columns: a level,
Gaussian read noise of sigma = 10 ADU, a row pattern of known rms (3 ADU, Gaussian,
one value per row) and 0.5 % hot pixels at thousands of ADU.

Stated tolerances: a row median of n = 512 pixels has noise 1.2533 sigma / sqrt(n)
= 0.554 ADU (the floor); the recovered profile must match the injected pattern to
within that floor (its rms within 10 %: the standard deviation of 2048 rows is
known to 1/sqrt(2 x 2048) = 1.6 %, so 10 % is 6 sigma), and QC.STRIPERMS must equal
sqrt(3^2 + floor^2) ADU within 4 x 2.6 % (1.4826 MAD of 2048 Gaussian values
estimates their sigma to 1.166 / sqrt(2048) = 2.6 %).
"""

from __future__ import annotations

import numpy as np
import pytest

from qclib.calib.stripes import MAD_TO_SIGMA, StripePattern, destripe, measure_stripes

ROWS, COLUMNS = 2048, 512
NOISE_ADU, STRIPE_RMS_ADU, LEVEL_ADU = 10.0, 3.0, 1500.0
FLOOR_ADU = 1.2533 * NOISE_ADU / np.sqrt(COLUMNS)


def dark(
    seed: int, stripe_rms: float = STRIPE_RMS_ADU
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image, injected row pattern, hot-pixel mask."""
    rng = np.random.default_rng(seed)
    pattern = rng.normal(0.0, stripe_rms, ROWS)
    image = LEVEL_ADU + pattern[:, None] + rng.normal(0.0, NOISE_ADU, (ROWS, COLUMNS))
    hot = rng.random((ROWS, COLUMNS)) < 0.005
    image[hot] += rng.uniform(2000.0, 20000.0, hot.sum())
    return image.astype(np.float32), pattern, hot


def mad_rms(values: np.ndarray) -> float:
    return MAD_TO_SIGMA * float(np.median(np.abs(values - np.median(values))))


@pytest.mark.parametrize("masked", [True, False], ids=["hot-masked", "hot-unmasked"])
def test_profile_and_rms_match_the_injected_pattern(masked: bool) -> None:
    image, pattern, hot = dark(11)
    result = measure_stripes(image, mask=hot if masked else None)
    residual = result.profile_adu - (pattern - np.median(pattern))
    residual -= np.median(residual)
    # Unmasked hot pixels (0.5 %) push a row median up by ~0.006 sigma: inside the 10 %.
    assert np.std(residual) == pytest.approx(FLOOR_ADU, rel=0.10)
    # 1.4826 MAD of 2048 Gaussian rows estimates their sigma, sqrt(3^2 + floor^2),
    # to 1.166 / sqrt(2048) = 2.6 %: allowed 4 x that.
    expected = np.hypot(STRIPE_RMS_ADU, FLOOR_ADU)
    assert result.rms_adu == pytest.approx(expected, rel=4 * 1.166 / np.sqrt(ROWS))
    assert mad_rms(pattern) == pytest.approx(STRIPE_RMS_ADU, rel=4 * 1.166 / np.sqrt(ROWS))
    assert result.qc() == {"QC.STRIPERMS": result.rms_adu}


def test_a_stripe_free_dark_reads_the_noise_floor() -> None:
    image, _, hot = dark(12, stripe_rms=0.0)
    assert measure_stripes(image, mask=hot).rms_adu == pytest.approx(FLOOR_ADU, rel=0.10)


def test_destriping_leaves_only_the_noise_floor() -> None:
    image, pattern, hot = dark(13)
    before = image.copy()
    result = measure_stripes(image, mask=hot)
    clean = destripe(image, result)
    assert np.array_equal(image, before)  # the input is untouched
    assert clean.dtype == np.float32
    # What destriping left of the injected pattern: per row, the floor and no more.
    left = (clean - (image - pattern[:, None].astype(np.float32)))[:, 0]
    assert np.std(left) == pytest.approx(FLOOR_ADU, rel=0.10)
    assert np.std(left) < STRIPE_RMS_ADU / 5
    # A second pass finds no pattern (each row's median is now the image's), and the
    # level is kept.
    assert measure_stripes(clean, mask=hot).rms_adu < 0.05 * FLOOR_ADU
    assert float(np.median(clean[~hot])) == pytest.approx(float(np.median(image[~hot])), abs=0.1)
    rows = np.nonzero(hot)[0]
    # Hot pixels move with their row, no more (float32 rounding at 20,000 ADU: 2e-3).
    np.testing.assert_allclose(clean[hot] - image[hot], -result.profile_adu[rows], atol=4e-3)


def test_masked_and_empty_rows() -> None:
    image, _, _ = dark(14)
    image[100] = np.nan
    mask = np.zeros(image.shape, bool)
    mask[200] = True
    result = measure_stripes(image, mask=mask)
    assert np.isnan(result.profile_adu[100]) and np.isnan(result.profile_adu[200])
    assert np.isfinite(result.rms_adu)
    clean = destripe(image, result)
    assert np.array_equal(clean[200], image[200])  # no estimate: row left as it was
    assert np.isnan(clean[100]).all()
    everything = measure_stripes(image, mask=np.ones(image.shape, bool))
    assert np.isnan(everything.rms_adu)


def test_destripe_refuses_a_profile_of_another_height() -> None:
    with pytest.raises(ValueError, match="a profile of 3 rows for an image of 4"):
        destripe(np.zeros((4, 4), np.float32), StripePattern(np.zeros(3), 0.0))
