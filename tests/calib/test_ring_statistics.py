"""ring_statistics: photutils' ApertureStats mean and unmasked area of a ring, the
same floats without ApertureStats."""

from __future__ import annotations

import warnings

import numpy as np
from astropy.stats import SigmaClip
from photutils.aperture import ApertureStats, CircularAnnulus

from qclib.calib.photometry import ring_statistics


def _field() -> tuple[np.ndarray, np.ndarray]:
    """Background-free data as the curve of growth sees it: noise with particle hits,
    NaN where the sky was not removed, a mask of other stars."""
    rng = np.random.default_rng(0)
    data = rng.normal(0.0, 5.0, (600, 500)).astype(np.float32)
    data[rng.random(data.shape) < 0.01] = 300.0
    data[:, :40] = np.nan
    mask = rng.random(data.shape) < 0.02
    mask[300:360, 200:260] = True
    return data, mask


def _rings() -> list[CircularAnnulus]:
    rng = np.random.default_rng(1)
    rings = []
    for _ in range(150):
        centre = (rng.uniform(-20.0, 520.0), rng.uniform(-20.0, 620.0))
        fwhm, k = rng.uniform(2.5, 6.0), rng.integers(4, 10)
        rings.append(CircularAnnulus(centre, r_in=k * fwhm, r_out=(k + 1) * fwhm))
    rings.append(CircularAnnulus((12.3, 100.7), r_in=3.0, r_out=6.0))  # all NaN
    rings.append(CircularAnnulus((230.1, 330.4), r_in=3.0, r_out=6.0))  # all masked
    rings.append(CircularAnnulus((-100.5, 70.2), r_in=3.0, r_out=6.0))  # off the image
    return rings


def test_ring_statistics_are_aperture_stats_own() -> None:
    data, mask = _field()
    clip = SigmaClip(sigma=3.0, maxiters=5)
    expected, ours = [], []
    for ring in _rings():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # all-masked rings: means of nothing
            stats = ApertureStats(data, ring, mask=mask, sigma_clip=clip)
            expected.append((float(stats.mean), float(stats.sum_aper_area.value)))
        ours.append(ring_statistics(data, mask, ring, clip))
    np.testing.assert_array_equal(np.array(ours), np.array(expected))
    areas = np.array([a for _, a in expected])
    full = np.array([ring.area for ring in _rings()])
    assert np.isnan(areas[-3:]).all()  # no pixel left, or none on the image
    partly = (areas > 0) & (areas < 0.9 * full)
    assert partly.sum() > 20 and (areas > 0.97 * full).sum() > 20  # masked, and clipped
