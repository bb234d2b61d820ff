"""Coadding reduced detector images onto one celestial grid. Pure.

The grid is reproject's ``find_optimal_celestial_wcs`` over the frames' footprints (TAN,
north up, the inputs' finest pixel scale), grown by a margin for what the astrometric
solutions move. Each frame's weighted image ``w x`` and its weights ``w`` (inverse
background variance, 0 where bad) are reprojected together (reproject's
``reproject_interp``, bilinear) onto the part of the grid the frame covers and summed:
the coadd is ``sum R(w x) / sum R(w)``, its error ``1 / sqrt(sum R(w))`` (background
noise; interpolation correlates neighbouring pixels, which the limiting magnitude's
empty apertures see and this error does not). Interpolating ``w x`` and ``w`` rather
than ``x`` lets a bad pixel's neighbours keep their own weight instead of turning NaN.

Where a grid pixel falls in a frame is computed exactly (astropy's ``pixel_to_pixel``)
on nodes every ``_NODE_STEP_PX`` grid pixels and between them by a bicubic spline, as
SWarp does: two celestial projections map onto each other smoothly (TAN onto TAN is a
projective map), and the exact transform at every pixel was 8.4 of the 11.2 s
``reproject_interp`` took for one full OmegaCAM CCD (one core). ``input_coordinates``
checks the spline against the exact transform at the cells' centres and refuses more
than ``_MAX_NODE_ERROR_PX``. The resampling itself is bilinear (scipy's
``map_coordinates``, order 1), a pixel's value at its centre, as ``reproject_interp``.

Frames are added one at a time, in the order given, so that the sums are
reproducible and a whole OB (a full OmegaCAM OB is 160 detector images, 11 GB with
their weights) is never in memory at once; ``reproject_and_coadd`` takes every input
at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS

#: Points sampled along each edge of a frame to find the part of the grid it covers.
_EDGE_POINTS = 16
#: Grid pixels between the nodes where a frame's pixel coordinates are computed exactly.
_NODE_STEP_PX = 32
#: Largest tolerated error of the interpolated coordinates (frame pixels).
_MAX_NODE_ERROR_PX = 1e-3


@dataclass(frozen=True)
class CoaddGrid:
    """The coadd's pixels: a celestial WCS (0-based pixels) and the shape (ny, nx)."""

    wcs: WCS
    shape: tuple[int, int]


@dataclass(frozen=True)
class Coadd:
    """A coadded image (NaN where no frame reaches), its background error, how many
    frames cover each pixel, and the summed weight."""

    image: np.ndarray
    error: np.ndarray
    coverage: np.ndarray  # uint8: frames with weight at the pixel
    weight: np.ndarray
    grid: CoaddGrid


def coadd_grid(frames: Sequence[tuple[tuple[int, int], WCS]], margin_px: int) -> CoaddGrid:
    """The grid that holds every frame (shape (ny, nx) and WCS of each), grown by
    ``margin_px`` on every side."""
    from reproject.mosaicking import find_optimal_celestial_wcs

    wcs, (ny, nx) = find_optimal_celestial_wcs(list(frames), projection="TAN")
    wcs.wcs.crpix = [wcs.wcs.crpix[0] + margin_px, wcs.wcs.crpix[1] + margin_px]
    return CoaddGrid(wcs, (int(ny) + 2 * margin_px, int(nx) + 2 * margin_px))


class CoaddSum:
    """The running sums of a coadd (float32 planes of the grid's shape)."""

    def __init__(self, grid: CoaddGrid) -> None:
        self.grid = grid
        self.weighted = np.zeros(grid.shape, np.float32)
        self.weight = np.zeros(grid.shape, np.float32)
        self.coverage = np.zeros(grid.shape, np.uint8)

    def add(self, data: np.ndarray, variance: np.ndarray, wcs: WCS) -> None:
        """Add one frame: ``data`` (NaN where bad), its ``variance`` (inf where bad) and
        the WCS of its 0-based pixels."""
        box = self._box(data.shape, wcs)
        if box is None:
            return
        rows, cols = box
        good = np.isfinite(data) & np.isfinite(variance) & (variance > 0)
        weight = np.where(good, 1.0 / np.where(good, variance, 1.0), 0.0).astype(np.float32)
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        coords = input_coordinates(self.grid.wcs[rows, cols], wcs, shape)
        inside = _clip_to_frame(coords, data.shape)
        weighted = _resample(np.where(good, data, 0.0).astype(np.float32) * weight, coords)
        resampled = _resample(weight, coords)
        self.weighted[rows, cols] += np.where(inside, weighted, np.float32(0))
        self.weight[rows, cols] += np.where(inside, resampled, np.float32(0))
        # A pixel counts as covered where it gets at least half a full pixel's weight.
        typical = float(np.median(weight[good])) if good.any() else 0.0
        self.coverage[rows, cols] += (inside & (resampled > 0.5 * typical)).astype(np.uint8)

    def _box(self, shape: tuple[int, int], wcs: WCS) -> tuple[slice, slice] | None:
        """The rows and columns of the grid a frame reaches (None: none)."""
        ny, nx = shape
        t = np.linspace(0, 1, _EDGE_POINTS)
        x = np.concatenate([t * (nx - 1), t * (nx - 1), np.zeros_like(t), np.full_like(t, nx - 1)])
        y = np.concatenate([np.zeros_like(t), np.full_like(t, ny - 1), t * (ny - 1), t * (ny - 1)])
        gx, gy = self.grid.wcs.world_to_pixel(wcs.pixel_to_world(x, y))
        height, width = self.grid.shape
        x0, x1 = max(int(np.floor(gx.min())) - 2, 0), min(int(np.ceil(gx.max())) + 3, width)
        y0, y1 = max(int(np.floor(gy.min())) - 2, 0), min(int(np.ceil(gy.max())) + 3, height)
        if x0 >= x1 or y0 >= y1:
            return None
        return slice(y0, y1), slice(x0, x1)

    def finish(self) -> Coadd:
        """The coadd of the frames added."""
        covered = self.weight > 0
        safe = np.where(covered, self.weight, 1.0)
        image = np.where(covered, self.weighted / safe, np.nan).astype(np.float32)
        error = np.where(covered, 1.0 / np.sqrt(safe), np.nan).astype(np.float32)
        return Coadd(image, error, self.coverage, self.weight, self.grid)


def input_coordinates(grid_wcs: WCS, frame_wcs: WCS, shape: tuple[int, int]) -> np.ndarray:
    """Where each pixel of a grid of ``shape`` (its WCS ``grid_wcs``) falls in a frame
    (``frame_wcs``): an array (2, ny, nx) of the frame's 0-based (row, column), exact
    on nodes ``_NODE_STEP_PX`` apart and a bicubic spline between them.

    Raises
    ------
    ValueError
        The spline misses the exact transform by more than ``_MAX_NODE_ERROR_PX`` at a
        cell's centre (a distortion too strong for the nodes' spacing).
    """
    from astropy.wcs.utils import pixel_to_pixel
    from scipy.interpolate import RectBivariateSpline

    ny, nx = shape
    ys, xs = _nodes(ny), _nodes(nx)
    gx, gy = np.meshgrid(xs, ys)
    fx, fy = pixel_to_pixel(grid_wcs, frame_wcs, gx, gy)
    degree = (min(3, ys.size - 1), min(3, xs.size - 1))
    splines = [RectBivariateSpline(ys, xs, f, kx=degree[0], ky=degree[1]) for f in (fy, fx)]
    # The check: the cells' centres, where a spline strays furthest from its nodes.
    cy, cx = (ys[:-1] + ys[1:]) / 2, (xs[:-1] + xs[1:]) / 2
    if cy.size and cx.size:
        mx, my = np.meshgrid(cx, cy)
        ex, ey = pixel_to_pixel(grid_wcs, frame_wcs, mx, my)
        error = max(
            float(np.max(np.abs(splines[0](cy, cx) - ey))),
            float(np.max(np.abs(splines[1](cy, cx) - ex))),
        )
        if error > _MAX_NODE_ERROR_PX:
            raise ValueError(
                f"the frame's WCS bends by {error:.2g} px between nodes "
                f"{_NODE_STEP_PX} px apart (at most {_MAX_NODE_ERROR_PX} allowed)"
            )
    rows, cols = np.arange(ny, dtype=float), np.arange(nx, dtype=float)
    return np.stack([spline(rows, cols) for spline in splines])


def _nodes(n: int) -> np.ndarray:
    """Node positions along an axis of ``n`` pixels: every ``_NODE_STEP_PX``, both ends in."""
    return np.unique(np.r_[np.arange(0, n, _NODE_STEP_PX), n - 1]).astype(float)


def _clip_to_frame(coords: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Grid pixels inside the frame (within half a pixel of its outer pixels' centres);
    their coordinates in the outer half of a border pixel are moved, in place, onto its
    centre (a pixel's value holds over the whole pixel there, as in reproject)."""
    inside = np.ones(coords.shape[1:], bool)
    for axis, n in enumerate(shape):
        c = coords[axis]
        inside &= (c >= -0.5) & (c <= n - 0.5)
        np.clip(c, 0, n - 1, out=c)
    return inside


def _resample(plane: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """``plane`` bilinearly interpolated at ``coords`` (float32)."""
    from scipy.ndimage import map_coordinates

    return map_coordinates(plane, coords, order=1, mode="nearest", output=np.float32)
