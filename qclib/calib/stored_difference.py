"""Sigma-clipped statistics of the difference of two raw frames as FITS stores them:
big-endian int16, the same BZERO, BSCALE 1. Pure.

Such a difference holds whole ADU, so one compiled sweep counts each value (a
histogram of one integer per bin, read from the two maps, nothing converted) and
``stats.iterate_clipping`` runs ``clipped_stats``' rounds on the counts: the kept set
is exactly the one ``clipped_stats`` defines (same start, window and stopping rule),
where that function's histogram takes a bin the window cuts through by its mean. The
count and the mean are exact; the variance is summed value by value. Photon transfer
takes two such differences per detector (a flat pair, a bias pair). A 2048x4100
OmegaCAM CCD pair on one thread: 8.3 ms to convert each frame and 28.8 ms for
``clipped_stats``; here 12.6 ms from the maps.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from qclib.calib.stats import ClippedStats, clipped_stats, iterate_clipping, robust_start
from qclib.compile_once import call_compiled_once, parallel_kernel
from qclib.stored_pixels import StoredImage

#: The histogram spans +- this many clipping windows of the start, as in ``stats``.
_SPAN = 3.0
#: Every difference of two int16 values: the histogram a window outgrowing the first
#: one falls back to (1 MB of counts per block).
_ALL = (-65535, 2 * 65535 + 1)
_BLOCKS = 16
_BLOCK_PIXELS = 262_144


def differences_are_whole(a: StoredImage, b: StoredImage) -> bool:
    """True where ``a - b`` in physical values is the difference of the stored integers:
    BSCALE 1 and one whole BZERO (float32 holds both frames' values exactly)."""
    return (
        a.bscale == 1.0
        and b.bscale == 1.0
        and a.bzero == b.bzero
        and float(a.bzero).is_integer()
        and abs(a.bzero) <= 1 << 22
    )


@numba.njit(cache=True, nogil=True)
def _count_rows(a, b, first, stop, low, counts):  # type: ignore[no-untyped-def]
    """Add to ``counts[i]`` how many of ``a - b`` in rows ``[first, stop)`` equal
    ``low + i`` (``a``, ``b``: big-endian int16 seen as uint16)."""
    nbins = counts.size
    for y in range(first, stop):
        for x in range(a.shape[1]):
            u = a[y, x]
            w = b[y, x]
            va = np.int32(np.int16(np.uint16((u >> np.uint16(8)) | (u << np.uint16(8)))))
            vb = np.int32(np.int16(np.uint16((w >> np.uint16(8)) | (w << np.uint16(8)))))
            i = va - vb - low
            if i >= 0 and i < nbins:
                counts[i] += 1


@parallel_kernel
def _difference_counts(a, b, low, nbins, blocks):  # type: ignore[no-untyped-def]
    """How many of ``a - b`` equal ``low + i``, for ``i`` in ``[0, nbins)``, counted by
    blocks of rows. A block's rows are a function of their own: with the rows' loop
    inside the blocks' one, the serial build took 17 ms per 2048x4100 pair, here 10."""
    ny = a.shape[0]
    counts = np.zeros((blocks, nbins), dtype=np.int64)
    for k in numba.prange(blocks):
        _count_rows(a, b, k * ny // blocks, (k + 1) * ny // blocks, low, counts[k])
    out = np.zeros(nbins, dtype=np.int64)
    for k in range(blocks):
        for i in range(nbins):
            out[i] += counts[k, i]
    return out


@numba.njit(cache=True, nogil=True)
def _clip_counts(counts, low, centre, half_width):  # type: ignore[no-untyped-def]
    """Count, mean and standard deviation of the counted values ``low + i`` within
    ``half_width`` of ``centre``."""
    first = max(0, math.ceil(centre - half_width) - low)
    last = min(counts.size - 1, math.floor(centre + half_width) - low)
    n = 0
    total = 0.0
    for i in range(first, last + 1):
        v = float(low + i)
        if abs(v - centre) <= half_width:
            n += counts[i]
            total += counts[i] * v
    if n == 0:
        return 0, math.nan, math.nan
    mean = total / n
    var = 0.0
    for i in range(first, last + 1):
        v = float(low + i)
        if abs(v - centre) <= half_width:
            d = v - mean
            var += counts[i] * d * d
    return n, mean, math.sqrt(var / (n - 1)) if n > 1 else math.nan


class _OutgrownError(Exception):
    """A clipping window reached beyond the counted values while others lay there."""


def _clipped_counts(
    histogram: np.ndarray,
    low: int,
    total: int,
    start: tuple[float, float],
    sigma: float,
    maxiters: int,
) -> ClippedStats | None:
    """``iterate_clipping`` on the counts of values ``low + i`` of ``total`` values; None
    once a window reaches beyond the counted values while some of the total lie there."""
    complete = int(histogram.sum()) == total
    top = low + histogram.size - 1

    def clip(centre: float, half_width: float) -> tuple[int, float, float]:
        if not complete and (centre - half_width < low or centre + half_width > top):
            raise _OutgrownError
        return call_compiled_once(_clip_counts, histogram, low, centre, half_width)  # type: ignore[no-any-return]

    try:
        return iterate_clipping(clip, *start, sigma, maxiters)
    except _OutgrownError:
        return None


def clipped_difference_stats(
    a: StoredImage, b: StoredImage, *, sigma: float = 3.0, maxiters: int = 10
) -> ClippedStats:
    """``clipped_stats(a, minus=b)`` of two stored frames whose difference is whole
    (``differences_are_whole``; otherwise, or for differences too wide to count, the
    frames are converted and ``clipped_stats`` takes them), with the exact kept set.

    >>> a = StoredImage(np.array([[3, 5, 7, 900]], ">i2").view(np.uint16), 1.0, 32768.0)
    >>> b = StoredImage(np.array([[1, 1, 1, 1]], ">i2").view(np.uint16), 1.0, 32768.0)
    >>> clipped_difference_stats(a, b, sigma=2.0).count
    3
    """
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    if not differences_are_whole(a, b) or a.raw.ndim != 2:
        return clipped_stats(a[...], minus=b[...], sigma=sigma, maxiters=maxiters)
    start = robust_start(a, b)
    if start is None:
        return ClippedStats(math.nan, math.nan, 0)
    centre, scale = start
    ny, nx = a.shape
    blocks = max(1, min(_BLOCKS, ny, (ny * nx) // _BLOCK_PIXELS))
    counts = (
        _difference_counts if blocks > 1 else _difference_counts.run_serial  # type: ignore[attr-defined]
    )
    reach = _SPAN * sigma * scale
    first = max(_ALL[0], math.floor(centre - reach))
    span = (first, min(_ALL[0] + _ALL[1], math.ceil(centre + reach) + 1) - first)
    for low, nbins in (span, _ALL):
        histogram = counts(a.raw, b.raw, np.int32(low), nbins, blocks)
        stats = _clipped_counts(histogram, low, ny * nx, start, sigma, maxiters)
        if stats is not None:
            return stats
    raise AssertionError("every int16 difference is counted")
