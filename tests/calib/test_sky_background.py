"""SkyBackground: photutils' full-resolution Background2D map, evaluated in windows."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import SigmaClip
from photutils.background import Background2D, MedianBackground

from qclib.calib.sky_background import sky_background


def _image(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    sky = 1000 + 40 * np.sin(xx / 90.0) + 25 * (yy / ny) ** 2 + 0.02 * xx  # gradients, a wave
    image = (sky + rng.normal(0, 8, shape)).astype(np.float32)
    mask = np.zeros(shape, bool)
    mask[100:140, 30:90] = True  # a masked bright star
    image[mask] += 3000
    return image, mask


@pytest.mark.parametrize("shape", [(410, 333), (256, 256)])
def test_windows_hold_the_full_map(shape: tuple[int, int]) -> None:
    image, mask = _image(shape)
    full = Background2D(
        image,
        64,
        mask=mask,
        filter_size=3,
        sigma_clip=SigmaClip(sigma=3.0, maxiters=5),
        bkg_estimator=MedianBackground(),
        exclude_percentile=90.0,
    ).background
    sky = sky_background(image, mask, 64, row_step=1)
    ny, nx = shape
    for rows, cols in [
        (slice(0, ny), slice(0, nx)),  # everything, edges and corners included
        (slice(17, 61), slice(200, 251)),
        (slice(ny - 9, ny), slice(0, 5)),
    ]:
        np.testing.assert_allclose(sky.at(rows, cols), full[rows, cols], rtol=0, atol=1e-3)
    assert float(np.ptp(full)) > 20  # a map with structure, not a constant


def test_subtracted_near_leaves_nan_beyond_the_windows() -> None:
    image, mask = _image((300, 300))
    sky = sky_background(image, mask, 64)
    data = sky.subtracted_near(image, [(10.0, 20.0), (250.5, 280.2)], reach=6)
    assert np.isfinite(data[20 - 6 : 20 + 7, 10 - 6 : 10 + 7]).all()
    assert np.isnan(data[20, 10 - 7])
    assert np.isfinite(data[280 - 6 : 280 + 7, 250 - 6 : 250 + 7]).all()
    assert np.isnan(data[150, 150]) and np.isnan(data[20, 30])
    window = (slice(14, 27), slice(4, 17))
    np.testing.assert_allclose(data[window], image[window] - sky.at(*window), atol=1e-3)


def test_every_second_row_gives_the_sky_within_its_noise() -> None:
    image, mask = _image((1024, 768))
    rows, cols = slice(0, 1024), slice(0, 768)
    every_row = sky_background(image, mask, 64, row_step=1).at(rows, cols)
    halved = sky_background(image, mask, 64).at(rows, cols)
    # A box's clipped median of 2,048 pixels of 8-ADU noise: 0.22 ADU of noise.
    difference = halved - every_row
    assert float(np.sqrt(np.mean(difference**2))) < 0.3
    assert float(np.abs(difference).max()) < 1.0
    assert float(np.abs(difference).max()) > 0  # the rows taken do differ


def test_a_field_masked_everywhere_is_refused_with_the_reason() -> None:
    from qclib.errors import UnprocessableDataError

    image, mask = _image((256, 256))
    mask[:, :] = True
    mask[::20, ::20] = False  # a pixel free here and there: under a tenth of every box
    with pytest.raises(UnprocessableDataError, match=r"no sky to measure: 100% of the 256x256"):
        sky_background(image, mask, 64)
