"""Hot pixels are found against the local level: structure at every scale (column
pattern, gradients, edge ramps whose height changes along the column, compact bumps)
is not a hot pixel, and every defect well above the threshold is found."""

from __future__ import annotations

import numpy as np
import pytest

from qclib.calib.defects import count_events, find_hot_pixels, remove_local_level


def _structured_bias(rng: np.random.Generator, *, noise: float = 1.0) -> np.ndarray:
    """Noise (unit by default) on the kinds of structure a real CCD's master bias shows."""
    ny, nx = 512, 256
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float32)
    image = rng.normal(0.0, noise, (ny, nx)).astype(np.float32)
    image += rng.normal(0.0, 0.6, nx).astype(np.float32)[None, :]  # column pattern
    image += 3.0 * x / nx + 2.0 * y / ny  # gradient
    # An edge ramp next to the prescan whose height changes between 2 and 16 sigma
    # along the column: column medians alone leave up to 7 sigma of it.
    image += (9.0 + 7.0 * np.sin(2 * np.pi * y / 128)) * np.exp(-x / 8.0)
    # A compact bump (amplifier glow, a warm region): 10 sigma, 6 pixels wide.
    image += 10.0 * np.exp(-((x - 180) ** 2 + (y - 300) ** 2) / (2 * 6.0**2))
    return image


def test_structure_at_every_scale_makes_no_hot_pixel() -> None:
    rng = np.random.default_rng(11)
    image = _structured_bias(rng)
    ys = rng.integers(0, image.shape[0], 60)
    xs = rng.integers(0, image.shape[1], 60)
    image[ys, xs] += rng.uniform(8.0, 40.0, 60).astype(np.float32)  # all > 1.5 x 5 sigma
    found = find_hot_pixels(image, sigma=5.0)
    truth = np.zeros(image.shape, bool)
    truth[ys, xs] = True
    assert found[truth].all()
    assert int((found & ~truth).sum()) <= 1  # 131,072 pixels at 5 sigma: 0.04 expected


def test_the_local_level_removes_what_column_medians_leave() -> None:
    """The edge ramp's change along the column (up to 7 sigma at the first column,
    which column medians leave) is gone beyond the first few columns."""
    rng = np.random.default_rng(3)
    image = _structured_bias(rng, noise=0.0)
    residual = remove_local_level(image - np.median(image, axis=0)[None, :])
    assert float(np.abs(residual[:, 8:40]).max()) < 1.0
    assert residual.dtype == image.dtype and residual.shape == image.shape


def _definition(image: np.ndarray, sigma: float) -> np.ndarray:
    """The hot-pixel rule written out with full-image passes (what the sweep does)."""
    from qclib.calib.defects import remove_row_column_pattern
    from qclib.calib.stats import clipped_stats

    residual = remove_local_level(remove_row_column_pattern(image))
    spread = clipped_stats(residual, sigma=4)
    return residual > spread.mean + sigma * spread.std


def test_the_sweep_is_the_rule_at_test_size() -> None:
    # Every row and column used: the same pixels, NaNs (no data) left out.
    rng = np.random.default_rng(21)
    image = _structured_bias(rng)
    hot = rng.integers(0, image.size, 300)
    image.ravel()[hot] += rng.uniform(2.0, 30.0, hot.size).astype(np.float32)
    image[7, :] = np.nan
    image[:, 100] = np.nan
    for sigma in (4.0, 5.0, 7.0):
        assert np.array_equal(find_hot_pixels(image, sigma=sigma), _definition(image, sigma))


def test_the_sweep_agrees_with_the_rule_on_a_full_ccd() -> None:
    # 4100 x 2048: column medians from every 4th row, the spread from every 16th row.
    rng = np.random.default_rng(22)
    ny, nx = 4100, 2048
    image = rng.normal(0.0, 1.0, (ny, nx)).astype(np.float32)
    image += rng.normal(0.0, 0.6, nx).astype(np.float32)[None, :]
    image += (9.0 * np.exp(-np.arange(nx) / 8.0)).astype(np.float32)[None, :]
    hot = rng.integers(0, image.size, 4000)
    image.ravel()[hot] += rng.uniform(2.0, 30.0, hot.size).astype(np.float32)
    found, rule = find_hot_pixels(image, sigma=5.0), _definition(image, 5.0)
    # Column medians of 1,025 rows carry 0.04 sigma of noise: injected pixels within
    # that of the threshold may differ, about 9 of the 4,000 (uniform over 28 sigma).
    assert (found ^ rule).sum() <= 0.01 * rule.sum()
    assert rule.sum() > 2000


@pytest.mark.parametrize("density", [0.001, 0.05, 0.3, 0.7])
def test_count_events_equals_scipy_label(density: float) -> None:
    """Connected groups (8-connected) counted over the flagged pixels only, as scipy
    labels the whole image: dense and sparse, touching every edge."""
    from scipy import ndimage

    rng = np.random.default_rng(int(density * 1000))
    for shape in ((1, 1), (1, 40), (40, 1), (97, 131)):
        hits = rng.random(shape) < density
        expected = ndimage.label(hits, structure=np.ones((3, 3), bool))[1]
        assert count_events(hits) == expected, shape
