"""SkyBackground: photutils' full-resolution Background2D map, evaluated in windows."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.stats import SigmaClip
from photutils.background import Background2D, MedianBackground

from qclib.calib.sky_background import ClippedMedian, sky_background


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


def _boxes(seed: int) -> np.ndarray:
    """Rows of box pixels as a sky gives them: integer counts (ties), stars' wings
    (outliers), masked pixels (NaN), a saturated inf; a row masked whole, a row of one
    value, a row whose bounds fall on two of its values, a box from a real sky."""
    rng = np.random.default_rng(seed)
    rows = np.round(rng.normal(780.0, 4.0, (2000, 2048)))
    rows[:, ::37] += np.abs(rng.normal(0.0, 300.0, (2000, 56)))
    rows[rng.random(rows.shape) < 0.1] = np.nan
    rows[5, 3] = np.inf
    rows[7] = np.nan
    rows[8, :] = 781.0
    rows[9, :] = np.nan
    rows[9, :4] = [1.0, 2.0, 3.0, 1e6]
    rows[10, :] = np.nan
    rows[10, :18] = [3.0, -3.0] + [0.0] * 16  # bounds exactly +-3 (std 1): both kept
    # A 32x64 box of a simulated OmegaCAM standard field (counts: how many pixels have
    # each value). The first round clips both 771s; the second's bounds take them back.
    counts = [1, 2, 4, 8, 16, 20, 36, 59, 91, 120, 132, 166, 162, 153, 170, 124, 99, 88, 68]
    counts += [49, 29, 18, 11, 4, 1, 5]
    box = rng.permutation(np.repeat(np.arange(770.0, 796.0), counts))
    rows[11, :] = np.nan
    rows[11, : box.size] = box
    return rows


@pytest.mark.parametrize("maxiters", [5, 1])
def test_clipped_median_is_astropys_clipping_then_the_median(maxiters: int) -> None:
    """ClippedMedian clips each box as astropy's SigmaClip(axis=-1) does, to the same
    pixels (a pixel an early round clipped and the last bounds take back is kept, as
    astropy keeps it), and gives the median of what is kept, as photutils'
    MedianBackground does after it."""
    rows = _boxes(2)
    clipped = SigmaClip(sigma=3.0, maxiters=maxiters)(rows, axis=-1, masked=False, copy=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the row masked whole
        expected = np.nanmedian(clipped, axis=-1)
    ours = rows.copy()
    medians = ClippedMedian(sigma=3.0, maxiters=maxiters)(ours, axis=-1)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(clipped))
    np.testing.assert_array_equal(medians, expected)
    assert np.isnan(medians[7]) and medians[8] == 781.0 and np.isfinite(ours[10, :18]).all()
    if maxiters > 1:
        assert (ours[11] == 771.0).sum() == 2 and medians[11] == 782.0
    assert np.isnan(clipped).sum() > np.isnan(rows).sum()  # astropy did clip


def test_clipped_median_clips_boxes_it_had_to_copy() -> None:
    """Boxes not laid out as rows (a copy is clipped) get their clipped pixels NaN all
    the same, and axis None takes every pixel as one box."""
    rows = _boxes(4)[:50]
    strided = np.asfortranarray(rows)
    medians = ClippedMedian()(strided, axis=-1)
    reference = rows.copy()
    np.testing.assert_array_equal(medians, ClippedMedian()(reference, axis=-1))
    np.testing.assert_array_equal(np.isnan(strided), np.isnan(reference))


def test_a_corner_box_is_clipped_as_astropy_clips_a_whole_array() -> None:
    """Over a whole array (photutils' corner box) astropy keeps what survived every
    round, and returns it; ClippedMedian keeps the same pixels and their median."""
    rows = _boxes(4)
    for k, box in enumerate((rows[11].reshape(32, 64), rows[20:22], rows[9:10], rows[7:8])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            kept = SigmaClip(sigma=3.0, maxiters=5)(box, masked=False)
            expected = np.nanmedian(kept) if kept.size else np.nan
        ours = box.copy()
        median = ClippedMedian()(ours)
        np.testing.assert_array_equal(np.sort(ours[np.isfinite(ours)]), np.sort(kept))
        np.testing.assert_array_equal(median, expected)
        if k == 0:  # the real box: its 771s stay out, where the first round put them
            assert not (ours == 771.0).any() and median == 782.5


def test_the_mesh_is_photutils_clipped_median_mesh() -> None:
    """Background2D with ClippedMedian makes, bit for bit, the mesh it makes with
    astropy's SigmaClip and photutils' MedianBackground (boxes more than 90 % masked
    filled, the 3 x 3 median filter), on a star field's integer counts."""
    image, mask = _image((1100, 700))
    image = np.round(image).astype(np.float64)
    kwargs = {"mask": mask, "filter_size": 3, "exclude_percentile": 90.0}
    reference = Background2D(
        image,
        (32, 64),
        sigma_clip=SigmaClip(sigma=3.0, maxiters=5),
        bkg_estimator=MedianBackground(),
        **kwargs,
    ).background_mesh
    ours = Background2D(
        image, (32, 64), sigma_clip=None, bkg_estimator=ClippedMedian(), **kwargs
    ).background_mesh
    np.testing.assert_array_equal(ours, reference)
