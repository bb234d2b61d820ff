"""The sky under a field's stars, evaluated only where it is measured. Pure.

photutils' ``Background2D`` measures the sky as sigma-clipped medians in boxes (every
catalogue source masked out to a radius growing with its brightness: unmasked, the
wings of bright stars bias a map high, 0.05-0.3 mag too faint here), median-filtered
(3 x 3 boxes). Its full-resolution map is that low-resolution mesh zoomed by a bicubic
spline (``scipy.ndimage.zoom``, ``grid_mode``: box centres are the samples), clipped to
the mesh's range. Photometry needs it only around the stars it measures: the same
spline, evaluated on those windows (``scipy.ndimage.map_coordinates``), gives the
same values (tests/calib/test_sky_background.py) without zooming 8.4 million pixels:
0.32 s per 2048x4100 CCD for the full map, 0.01-0.03 s for a standard field's windows.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
from astropy.utils.exceptions import AstropyUserWarning
from photutils.background import Background2D
from scipy import ndimage

from qclib.calib.selection import median_in_place
from qclib.compile_once import parallel_kernel
from qclib.errors import UnprocessableDataError

# Background2D makes its masked pixels NaN and silences astropy's warning about them
# with warnings.catch_warnings, which is not thread-safe: from the recipes' detector
# threads the warning escapes now and then (and fails a run where warnings are errors).
warnings.filterwarnings(
    "ignore", message="Input data contains invalid values", category=AstropyUserWarning
)


@dataclass(frozen=True)
class SkyBackground:
    """A ``Background2D`` mesh and its bicubic spline over the image."""

    coefficients: np.ndarray  # the mesh's spline coefficients (reflecting edges)
    box: tuple[int, int]  # pixels per mesh box (rows, columns)
    low: float  # the mesh's range, to which the map is clipped
    high: float

    def at(self, rows: slice, cols: slice) -> np.ndarray:
        """The map on ``image[rows, cols]`` (slices of the image, in bounds)."""
        if self.low == self.high:
            return np.full((rows.stop - rows.start, cols.stop - cols.start), self.low)
        # A tensor-product spline on a grid: the weights of each row's and each
        # column's four coefficients, then two small matrix products (0.1 ms for a
        # star's window, where map_coordinates took 0.6 ms).
        left = self._row_weights(rows) @ self.coefficients
        return np.clip(left @ self._column_weights(cols).T, self.low, self.high)

    def _row_weights(self, rows: slice) -> np.ndarray:
        y = (np.arange(rows.start, rows.stop) + 0.5) / self.box[0] - 0.5
        return _spline_weights(y, self.coefficients.shape[0])

    def _column_weights(self, cols: slice) -> np.ndarray:
        x = (np.arange(cols.start, cols.stop) + 0.5) / self.box[1] - 0.5
        return _spline_weights(x, self.coefficients.shape[1])

    def subtracted_near(
        self, image: np.ndarray, centres: Sequence[tuple[float, float]], reach: float
    ) -> np.ndarray:
        """``image`` less the sky within ``reach`` pixels (a square) of each ``(x, y)``
        centre; NaN elsewhere, so that nothing can use a pixel whose sky was not
        removed.

        The spline's weights of every row and column, and the rows' products with the
        coefficients, are worked out once for the image: a standard field's 300-odd
        windows took 53 ms per 2048x4100 CCD when each window worked out its own."""
        ny, nx = image.shape
        out = np.full(image.shape, np.nan, dtype=image.dtype)
        windows = []
        for x, y in centres:
            rows = slice(max(0, int(y - reach)), min(ny, int(y + reach) + 2))
            cols = slice(max(0, int(x - reach)), min(nx, int(x + reach) + 2))
            if rows.start < rows.stop and cols.start < cols.stop:
                windows.append((rows, cols))
        if not windows:
            return out
        if self.low == self.high:
            for rows, cols in windows:
                out[rows, cols] = image[rows, cols] - self.low
            return out
        left = self._row_weights(slice(0, ny)) @ self.coefficients
        columns = self._column_weights(slice(0, nx))
        for rows, cols in windows:
            sky = np.clip(left[rows] @ columns[cols].T, self.low, self.high)
            out[rows, cols] = image[rows, cols] - sky
        return out


#: Rows of the image the box statistics use: every second one. A 64 x 64 box's
#: clipped median then rests on 2,048 pixels instead of 4,096 (its noise 1.4x
#: larger: 0.5 ADU on a 20-ADU sky, a 0.05 % error on a 10^6-ADU star's aperture), and
#: ``Background2D`` costs half: its sigma clipping of every pixel was 0.22 s of the
#: 1.3 s per CCD of a standard field.
ROW_STEP = 2


def _spline_weights(coords: np.ndarray, n: int) -> np.ndarray:
    """(len(coords), n) weights of a cubic B-spline's coefficients at ``coords``, the
    coefficients extended beyond their ends by half-sample reflection (scipy's
    ``mode="reflect"``)."""
    weights = np.zeros((coords.size, n))
    base = np.floor(coords).astype(np.int64)
    rows = np.arange(coords.size)
    for k in range(-1, 3):
        index = base + k
        u = np.abs(coords - index)
        w = np.where(u < 1, 2 / 3 - u**2 + u**3 / 2, np.where(u < 2, (2 - u) ** 3 / 6, 0.0))
        folded = np.mod(index, 2 * n)
        folded = np.where(folded >= n, 2 * n - 1 - folded, folded)
        np.add.at(weights, (rows, folded), w)
    return weights


class ClippedMedian:
    """``Background2D``'s box estimator: each box's median after sigma clipping as
    astropy's ``SigmaClip(sigma, maxiters)`` clips (median centre, standard deviation,
    bounds inclusive, until nothing more is clipped), with the clipped pixels set to
    NaN in the boxes' array, as astropy's clipping leaves them there for photutils to
    count a box's good pixels.

    Along the boxes' last axis astropy keeps every value within the last round's
    bounds (an earlier round's clip can come back); over a whole array (``axis``
    None, photutils' corner box) it keeps what survived every round. Both are kept
    here.

    Given to ``Background2D`` with ``sigma_clip=None``. Astropy's clipping and then
    photutils' median took 0.16 s per 2048x4100 CCD of a standard field (every second
    row) on one thread, this kernel 0.03-0.07 s. The mesh is astropy's and photutils'
    (tests/calib/test_sky_background.py), unless a value lies within the last bits of
    a bound: the mean and the standard deviation sum the values in another order."""

    def __init__(self, sigma: float = 3.0, maxiters: int = 5) -> None:
        self.sigma, self.maxiters = sigma, maxiters

    def __call__(self, data: np.ndarray, axis: int | tuple[int, ...] | None = None) -> np.ndarray:
        boxes = np.asarray(data, dtype=np.float64)
        if axis is None:
            rows = boxes.reshape(1, -1)
        elif axis in (-1, boxes.ndim - 1, (-1,), (boxes.ndim - 1,)):
            rows = boxes.reshape(-1, boxes.shape[-1])
        else:
            raise ValueError(f"box statistics along axis {axis!r}: the last axis is expected")
        medians = _clipped_medians(rows, float(self.sigma), int(self.maxiters), axis is not None)
        if not np.may_share_memory(rows, data):  # a copy was clipped: clip the boxes too
            data[...] = rows.reshape(np.shape(data))
        return medians[0] if axis is None else medians.reshape(boxes.shape[:-1])


@parallel_kernel
def _clipped_medians(rows, sigma, maxiters, last_bounds):  # type: ignore[no-untyped-def]
    """Each row's sigma-clipped median (NaN and inf left out; NaN where nothing is
    left), its clipped values set to NaN in place. ``last_bounds``: a value is kept
    when within the last round's bounds, else when within every round's."""
    nrows, npix = rows.shape
    out = np.empty(nrows)
    for r in numba.prange(nrows):
        values = np.empty(npix)
        count = 0
        for i in range(npix):
            v = rows[r, i]
            if math.isfinite(v):
                values[count] = v
                count += 1
        lo, hi, median = math.inf, -math.inf, math.nan
        low, high = -math.inf, math.inf  # every round's bounds: those of what survived
        settled = -1  # the size of the set ``median`` is of, once it is the last set
        iteration = 0
        while count > 0:
            median = median_in_place(values, count)
            total = 0.0
            for i in range(count):
                total += values[i]
            mean = total / count
            spread = 0.0
            for i in range(count):
                spread += (values[i] - mean) * (values[i] - mean)
            std = math.sqrt(spread / count)
            lo, hi = median - sigma * std, median + sigma * std
            low, high = max(low, lo), min(high, hi)
            kept = 0
            for i in range(count):
                v = values[i]
                values[kept] = v
                kept += (v >= lo) & (v <= hi)
            if kept == count:
                settled = count
                break
            count = kept
            iteration += 1
            if count == 0 or iteration >= maxiters:
                break
        if not last_bounds and low <= high:  # a round was made: what survived them all
            lo, hi = low, high
        count = 0
        for i in range(npix):
            v = rows[r, i]
            if (v >= lo) & (v <= hi):
                values[count] = v
                count += 1
            else:
                rows[r, i] = math.nan
        if count != settled:
            median = median_in_place(values, count) if count else math.nan
        out[r] = median
    return out


def sky_background(
    image: np.ndarray,
    mask: np.ndarray,
    box_px: int,
    *,
    row_step: int = ROW_STEP,
    filter_size: int = 3,
) -> SkyBackground:
    """The sky of ``image`` with the pixels of ``mask`` left out: 3-sigma clipped
    medians (5 iterations) in boxes of ``box_px`` (of every ``row_step``-th row; a box
    more than 90 % masked is filled from its neighbours), median-filtered over
    ``filter_size`` x ``filter_size`` boxes (1: not filtered).

    Raises
    ------
    UnprocessableDataError
        Every box is more than 90 % masked (a field crowded with sources, or a bad-pixel
        mask covering it).
    """
    ny, nx = image.shape
    box_y, box_x = min(box_px, ny), min(box_px, nx)
    step = row_step if box_y % row_step == 0 and ny >= 2 * box_y else 1
    try:
        background = Background2D(
            # float64: photutils' box medians of float32 take numpy's slower path (0.21 s
            # for half a 2048x4100 CCD, 0.16 s in float64; the conversion costs 0.014 s).
            np.asarray(image[::step], dtype=np.float64),
            (box_y // step, box_x),
            mask=mask[::step],
            filter_size=filter_size,
            sigma_clip=None,  # ClippedMedian clips
            bkg_estimator=ClippedMedian(sigma=3.0, maxiters=5),
            exclude_percentile=90.0,
        )
    except ValueError as err:
        if "masked" not in str(err):
            raise
        raise UnprocessableDataError(
            f"no sky to measure: {mask.mean():.0%} of the {nx}x{ny} pixels are masked "
            f"(sources and bad pixels) and no {box_x}x{box_y} box has a tenth of its "
            "pixels free"
        ) from None
    mesh = np.asarray(background.background_mesh, dtype=np.float64)
    return SkyBackground(
        ndimage.spline_filter(mesh, order=3, mode="reflect", output=np.float64),
        (box_y, box_x),
        float(mesh.min()),
        float(mesh.max()),
    )
