"""local_peaks finds what photutils' find_peaks finds, on skies with stars, ties,
edges and NaNs."""

from __future__ import annotations

import numpy as np
import pytest
from photutils.detection import find_peaks

from qclib.calib.astrometry import local_peaks


def _sky(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ny, nx = 300, 220
    image = rng.normal(1000.0, 10.0, (ny, nx)).astype(np.float32)
    yy, xx = np.mgrid[:ny, :nx]
    for _ in range(80):  # stars, some on the edges and corners
        x0, y0 = rng.uniform(-2, nx + 1), rng.uniform(-2, ny + 1)
        image += np.float32(rng.uniform(50, 5000)) * np.exp(
            -((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 1.8**2)
        ).astype(np.float32)
    image[50:53, 60:63] = 4000.0  # a flat-topped (saturated) star: nine tied pixels
    image[0, 0] = image[0, 1] = 3000.0  # tied at a corner
    image[120, 7] = np.nan
    image[121:124, 8] = np.nan  # NaNs beside a bright pixel
    image[122, 9] = 2500.0
    return image


@pytest.mark.parametrize("box", [3, 5, 7])
@pytest.mark.parametrize("seed", [1, 2])
def test_the_peaks_of_photutils(box: int, seed: int) -> None:
    image = _sky(seed)
    threshold = 1000.0 + 5 * 10.0
    ours = set(zip(*(a.tolist() for a in local_peaks(image, threshold, box)), strict=True))
    table = find_peaks(image, threshold, box_size=box)
    theirs = set(zip(table["y_peak"].tolist(), table["x_peak"].tolist(), strict=True))
    assert len(theirs) > 40
    assert ours == theirs


def test_nothing_above_the_threshold() -> None:
    rows, cols = local_peaks(np.zeros((20, 30), np.float32), 1.0, 5)
    assert rows.size == cols.size == 0
