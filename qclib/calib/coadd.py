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
        from reproject import reproject_interp

        box = self._box(data.shape, wcs)
        if box is None:
            return
        rows, cols = box
        good = np.isfinite(data) & np.isfinite(variance) & (variance > 0)
        weight = np.where(good, 1.0 / np.where(good, variance, 1.0), 0.0).astype(np.float32)
        planes = np.stack([np.where(good, data, 0.0).astype(np.float32) * weight, weight])
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        out, _ = reproject_interp(
            (planes, wcs), self.grid.wcs[rows, cols], shape_out=shape, roundtrip_coords=False
        )
        out = np.nan_to_num(out)
        self.weighted[rows, cols] += out[0].astype(np.float32)
        self.weight[rows, cols] += out[1].astype(np.float32)
        # A pixel counts as covered where it gets at least half a full pixel's weight.
        typical = float(np.median(weight[good])) if good.any() else 0.0
        self.coverage[rows, cols] += (out[1] > 0.5 * typical).astype(np.uint8)

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
