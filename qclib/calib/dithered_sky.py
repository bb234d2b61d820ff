"""What a detector's dithered science exposures say about the sky they saw: a sky flat
and, in red filters, a fringe frame. Pure.

Both come from the frames themselves (flat-fielded, ``science.remove_signature``), each
with its sources masked: the dithers move the sources, so that at each pixel most
frames see empty sky. This is how Astro-WISE's FringeTask and ESO's
``vimos_ima_fringe`` build their fringe frames (the median of the object-masked
science frames); the sky flat is the large-scale part of the same median.

1. Each frame's sky level (the median of its background) and its sources: pixels more
   than ``source_sigma`` above a smooth background (boxes of ``sky_flat_box_px``),
   grown by ``source_grow_px``.
2. The median over the frames of each frame divided by its sky level, sources and bad
   pixels left out (a pixel where fewer than half the frames see sky stays empty).
3. Sky flat: that median's large-scale background (photutils ``Background2D``, boxes of
   ``sky_flat_box_px``), normalised to a mean of 1: the night sky's illumination as
   the master flat leaves it. Each frame is divided by it.
4. Fringe frame (``fringes``): the median divided by the sky flat, less 1, smoothed by
   a Gaussian of ``fringe_smooth_px`` (weighted by the pixels that have a value: the
   sky's noise per pixel is several times the fringes'), zero median: the fringes as
   a fraction of the sky. Each frame's own scale (the sky lines change during the
   night) is fitted by least squares to its residual from its sky level, sources
   left out, and that many times the fringe frame is subtracted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qclib.calib.parameters import ScienceConfig
from qclib.calib.sky_background import sky_background
from qclib.calib.stats import clipped_stats


@dataclass(frozen=True)
class DitheredSky:
    """A detector's sky flat (mean 1), its fringe frame (fraction of the sky; None
    without fringes), and each frame's fitted fringe scale (its fringes: that many
    times its sky level times the fringe frame)."""

    sky_flat: np.ndarray
    fringes: np.ndarray | None
    fringe_scales: tuple[float, ...]


def measure_dithered_sky(
    images: Sequence[np.ndarray],
    bads: Sequence[np.ndarray],
    *,
    fringes: bool,
    config: ScienceConfig,
) -> DitheredSky:
    """The sky flat and (``fringes``) fringe frame of a detector's dithered frames
    (see the module); ``images`` are corrected in place (divided by the sky flat, their
    fringes subtracted).

    Raises
    ------
    ValueError
        Fewer than three frames (a median of two keeps every source).
    """
    import bottleneck as bn

    if len(images) < 3:
        raise ValueError(f"a sky flat needs at least 3 dithered frames, not {len(images)}")
    ny, nx = images[0].shape
    whole = (slice(0, ny), slice(0, nx))
    normalised = np.empty((len(images), ny, nx), np.float32)
    levels, masks = [], []
    for k, (image, bad) in enumerate(zip(images, bads, strict=True)):
        smooth = sky_background(image, bad, config.sky_flat_box_px).at(*whole)
        residual = image - smooth
        noise = clipped_stats(np.where(bad, np.float32(np.nan), residual), sigma=3.0).std
        sources = _grow(residual > config.source_sigma * noise, config.source_grow_px)
        masked = bad | sources
        level = float(np.median(smooth))
        np.divide(image, np.float32(level), out=normalised[k])
        normalised[k][masked] = np.nan
        levels.append(level)
        masks.append(masked)
    seen = np.sum(~np.isnan(normalised), axis=0)
    median = bn.nanmedian(normalised, axis=0).astype(np.float32)
    median[seen < (len(images) + 1) // 2] = np.nan
    del normalised
    empty = ~np.isfinite(median)
    # The boxes' medians are of many frames' pixels: no median filter over boxes, which
    # would flatten the illumination towards the edges.
    sky_flat = sky_background(
        np.where(empty, np.float32(1), median), empty, config.sky_flat_box_px, filter_size=1
    )
    flat = sky_flat.at(*whole).astype(np.float32)
    flat /= np.float32(np.mean(flat))
    for image in images:
        image /= flat
    if not fringes:
        return DitheredSky(flat, None, ())
    pattern = _smoothed(median / flat - np.float32(1), config.fringe_smooth_px)
    pattern -= np.float32(np.median(pattern))
    scales = []
    energy = pattern * pattern
    for image, masked, level in zip(images, masks, levels, strict=True):
        good = ~masked
        amplitude = float(
            np.sum((image[good] - level) * pattern[good]) / max(np.sum(energy[good]), 1e-30)
        )
        image -= np.float32(amplitude) * pattern
        scales.append(amplitude / level)
    return DitheredSky(flat, pattern, tuple(scales))


def _grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=pixels)


def _smoothed(values: np.ndarray, sigma_px: float) -> np.ndarray:
    """A Gaussian smoothing that ignores NaN (normalised convolution); NaN stays 0."""
    from scipy import ndimage

    valid = np.isfinite(values)
    filled = np.where(valid, values, np.float32(0))
    num = ndimage.gaussian_filter(filled, sigma_px, mode="nearest")
    den = ndimage.gaussian_filter(valid.astype(np.float32), sigma_px, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0.05, num / den, np.float32(0))
    return out.astype(np.float32)
