"""box_mesh: photutils' Background2D mesh of sigma-clipped box medians, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import SigmaClip
from photutils.background import Background2D, MedianBackground

from qclib.calib.sky_mesh import box_mesh

BOX = (32, 64)


def _boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` boxes' pixels (rows of 2048) as a sky gives them: integer counts (ties),
    stars' wings (outliers), masked pixels (NaN), a saturated inf; a box masked whole,
    a box of one value, a box whose bounds fall on two of its values, a box from a
    real sky whose last bounds take back what its first round clipped."""
    rows = np.round(rng.normal(780.0, 4.0, (n, 2048)))
    rows[:, ::37] += np.abs(rng.normal(0.0, 300.0, (n, 56)))
    rows[rng.random(rows.shape) < 0.1] = np.nan
    rows[5, 3] = np.inf
    rows[7] = np.nan
    rows[8] = 781.0
    rows[10] = np.nan  # mean 0, std 1: bounds exactly -3 and +3, on 226 of its values
    rows[10, :2034] = rng.permutation([3.0] * 113 + [-3.0] * 113 + [0.0] * 1808)
    # A 32x64 box of a simulated OmegaCAM standard field (how many pixels have each
    # value). Its first round clips both 771s; the second's bounds take them back.
    counts = [1, 2, 4, 8, 16, 20, 36, 59, 91, 120, 132, 166, 162, 153, 170, 124, 99, 88, 68]
    counts += [49, 29, 18, 11, 4, 1, 5]
    box = rng.permutation(np.repeat(np.arange(770.0, 796.0), counts))
    rows[11] = np.nan
    rows[11, : box.size] = box
    return rows


def _image(extra: tuple[int, int]) -> np.ndarray:
    """Boxes of ``_boxes`` tiled into an image of 8 x 6 boxes, with ``extra`` rows and
    columns beyond them (photutils' partial last row and column of boxes)."""
    rng = np.random.default_rng(2)
    rows, cols = 8, 6
    boxes = _boxes(rng, rows * cols).reshape(rows, cols, *BOX)
    image = boxes.transpose(0, 2, 1, 3).reshape(rows * BOX[0], cols * BOX[1])
    edge_rows = rng.normal(780.0, 4.0, (extra[0], image.shape[1]))
    image = np.vstack([image, np.round(edge_rows)])
    edge_cols = rng.normal(780.0, 4.0, (image.shape[0], extra[1]))
    return np.hstack([image, np.round(edge_cols)])


def _photutils(image: np.ndarray, mask: np.ndarray, filter_size: int) -> np.ndarray:
    return Background2D(
        image,
        BOX,
        mask=mask,
        filter_size=filter_size,
        sigma_clip=SigmaClip(sigma=3.0, maxiters=5),
        bkg_estimator=MedianBackground(),
        exclude_percentile=90.0,
    ).background_mesh


@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyUserWarning")
@pytest.mark.parametrize("extra", [(0, 0), (7, 0), (0, 40), (7, 40)])
@pytest.mark.parametrize("filter_size", [1, 3])
def test_the_mesh_is_background2d_mesh(extra: tuple[int, int], filter_size: int) -> None:
    """Every box, the partial ones and the corner box too, and boxes too masked to count
    (filled from their neighbours), as Background2D makes them, to the last bit."""
    image = _image(extra)
    mask = np.zeros(image.shape, bool)
    mask[40:100, 70:200] = True  # boxes mostly masked: left out, filled
    mask[::3, 300:] |= True
    expected = _photutils(image, mask, filter_size)
    ours = box_mesh(image, mask, BOX, filter_size=filter_size)
    assert ours is not None
    np.testing.assert_array_equal(ours, expected)
    assert ours.shape == (8 + (extra[0] > 0), 6 + (extra[1] > 0))


def test_clipping_keeps_what_the_last_bounds_take_back() -> None:
    """The real box (box 11) keeps its two 771s: its median is 782, not 782.5; the box
    whose bounds fall on its values keeps them (its median is 0)."""
    image = _image((0, 0))
    ours = box_mesh(image, np.zeros(image.shape, bool), BOX, filter_size=1)
    assert ours is not None
    assert ours[11 // 6, 11 % 6] == 782.0 and ours[10 // 6, 10 % 6] == 0.0


def test_a_strided_view_gives_the_mesh_of_its_rows() -> None:
    image = _image((7, 40))
    mask = np.zeros(image.shape, bool)
    ours = box_mesh(image[::2], mask[::2], (16, 64))
    expected = box_mesh(np.ascontiguousarray(image[::2]), mask[::2].copy(), (16, 64))
    assert ours is not None and expected is not None
    np.testing.assert_array_equal(ours, expected)


def test_no_box_with_a_tenth_of_its_pixels_gives_no_mesh() -> None:
    image = _image((0, 0))
    mask = np.ones(image.shape, bool)
    mask[::20, ::20] = False  # a pixel here and there: under a tenth of every box
    assert box_mesh(image, mask, BOX) is None
