"""Hot pixels are found against the local level: structure at every scale (column
pattern, gradients, edge ramps whose height changes along the column, compact bumps)
is not a hot pixel, and every defect well above the threshold is found."""

from __future__ import annotations

import numpy as np

from qclib.calib.defects import find_hot_pixels, remove_local_level


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
