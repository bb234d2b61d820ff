"""Where the catalogue's stars really are on a detector: the offset of the raw's WCS. Pure.

A telescope's pointing, and so the WCS a raw carries, is off by a few arcseconds:
more than a star's re-centring box. The offset is found by voting: every pair of a
detected peak (photutils ``find_peaks``) and a bright catalogue source within the
search radius votes for its (dx, dy) in a histogram; the bin with most votes holds
the true shift (chance pairs spread over the whole search disc), and the median of
the pairs in and next to it refines it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from photutils.detection import find_peaks

from qclib.calib.stats import clipped_stats
from qclib.errors import UnprocessableDataError


@dataclass(frozen=True)
class CatalogueOffset:
    """Shift (pixels) to add to WCS-predicted positions, and the pairs that agree."""

    dx_px: float
    dy_px: float
    n_matched: int


def find_catalogue_offset(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    mag: np.ndarray,
    *,
    fwhm_px: float,
    max_offset_px: float,
    n_brightest: int = 60,
    min_matched: int = 3,
) -> CatalogueOffset:
    """The shift between catalogue positions predicted by the WCS (``x``, ``y``, in
    the image's pixels) and where the sources are on ``image`` (sky included).

    Raises
    ------
    UnprocessableDataError
        Fewer than ``min_matched`` sources agree on one shift within ``max_offset_px``.
    """
    # The sky's level and noise, for a 5-sigma detection threshold: the clipped mean in
    # one histogram sweep (0.03 s for a 2144x4200 CCD; astropy's clipped median 0.6 s).
    sky = clipped_stats(image, sigma=3.0, maxiters=5)
    box = max(3, round(fwhm_px) | 1)
    peaks = find_peaks(image - sky.mean, threshold=5.0 * sky.std, box_size=box)
    if peaks is None or len(peaks) == 0:
        raise UnprocessableDataError("no source stands 5 sigma above the sky")
    peaks.sort("peak_value", reverse=True)
    px = np.asarray(peaks["x_peak"][:n_brightest], float)
    py = np.asarray(peaks["y_peak"][:n_brightest], float)
    ny, nx = image.shape
    margin = max_offset_px
    near = (x > -margin) & (x < nx + margin) & (y > -margin) & (y < ny + margin)
    order = np.flatnonzero(near)[np.argsort(mag[near])][: 2 * n_brightest]
    dx = (px[:, None] - x[order][None, :]).ravel()
    dy = (py[:, None] - y[order][None, :]).ravel()
    within = dx**2 + dy**2 <= max_offset_px**2
    dx, dy = dx[within], dy[within]
    step = max(1.0, fwhm_px / 2)
    edges = np.arange(-max_offset_px, max_offset_px + step, step)
    votes, _, _ = np.histogram2d(dx, dy, bins=[edges, edges])
    i, j = np.unravel_index(np.argmax(votes), votes.shape)
    cx, cy = (edges[i] + edges[i + 1]) / 2, (edges[j] + edges[j + 1]) / 2
    agree = (np.abs(dx - cx) <= 1.5 * step) & (np.abs(dy - cy) <= 1.5 * step)
    if agree.sum() < min_matched:
        raise UnprocessableDataError(
            f"only {int(agree.sum())} catalogue source(s) agree on one shift within "
            f"{max_offset_px:.0f} px of the WCS (need {min_matched}): is the WCS off by "
            "more, or is this another field?"
        )
    return CatalogueOffset(
        float(np.median(dx[agree])), float(np.median(dy[agree])), int(agree.sum())
    )
