"""Fast robust statistics of whole detectors. Pure.

``clipped_stats`` is a sigma-clipped mean and standard deviation in one compiled pass
per iteration. astropy's ``sigma_clipped_stats`` takes 0.7 s on one 2048x4100 CCD
(it sorts for a median every iteration); this takes about 0.03 s (measured here),
which is what lets a 32-CCD master bias measure its QC parameters in seconds.

The start is robust (median and 1.4826 MAD of an evenly strided subsample of at most
50,000 values: only a start, the clipping passes use every value), then values beyond
``sigma`` standard deviations of the mean are dropped until the kept set stops
changing (or ``maxiters``). Passes run over rows in parallel. NaNs are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

_SUBSAMPLE = 50_000


@dataclass(frozen=True)
class ClippedStats:
    mean: float
    std: float
    count: int


@numba.njit(parallel=True, cache=True)
def _pass(a, b, use_b, centre, half_width):  # type: ignore[no-untyped-def]
    """One clipping pass over a 2D array (or a - b): count, mean, std of kept values.

    Rows in parallel, each into its own partial sum, added up in row order: the result
    does not depend on how threads were scheduled (a shared reduction did, by a last
    bit, which made products differ between runs on a busy machine).
    """
    ny, nx = a.shape
    counts = np.zeros(ny, dtype=np.int64)
    totals = np.zeros(ny, dtype=np.float64)
    for y in numba.prange(ny):
        n = 0
        total = 0.0
        for x in range(nx):
            v = a[y, x] - b[y, x] if use_b else a[y, x]
            if not math.isnan(v) and abs(v - centre) <= half_width:
                total += v
                n += 1
        counts[y] = n
        totals[y] = total
    n = 0
    total = 0.0
    for y in range(ny):
        n += counts[y]
        total += totals[y]
    if n == 0:
        return 0, math.nan, math.nan
    mean = total / n
    squares = np.zeros(ny, dtype=np.float64)
    for y in numba.prange(ny):
        var = 0.0
        for x in range(nx):
            v = a[y, x] - b[y, x] if use_b else a[y, x]
            if not math.isnan(v) and abs(v - centre) <= half_width:
                d = v - mean
                var += d * d
        squares[y] = var
    var = 0.0
    for y in range(ny):
        var += squares[y]
    return n, mean, math.sqrt(var / (n - 1)) if n > 1 else math.nan


def clipped_stats(
    values: np.ndarray,
    *,
    minus: np.ndarray | None = None,
    sigma: float = 3.0,
    maxiters: int = 10,
) -> ClippedStats:
    """Sigma-clipped mean, standard deviation and number of values kept.

    ``minus``: statistics of ``values - minus`` without allocating the difference.
    Views (trimmed sections) are read in place.

    >>> data = np.r_[np.zeros(1000), 1.0 + np.zeros(1000), 1e6]
    >>> round(clipped_stats(data).mean, 6)
    0.5
    """
    a = values if values.ndim == 2 else values.reshape(1, -1)
    b = a if minus is None else (minus if minus.ndim == 2 else minus.reshape(1, -1))
    if b.shape != a.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    step_y = max(1, a.shape[0] // 1000)
    step_x = max(1, a.size // _SUBSAMPLE // step_y)
    sample = np.asarray(a[::step_y, ::step_x], dtype=np.float64)
    if minus is not None:
        sample = sample - b[::step_y, ::step_x]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return ClippedStats(math.nan, math.nan, 0)
    centre = float(np.median(sample))
    scale = 1.482602218505602 * float(np.median(np.abs(sample - centre)))
    if scale == 0.0:
        scale = float(np.std(sample)) or 1.0
    count = -1
    mean, std = centre, scale
    for _ in range(maxiters):
        n, mean_new, std_new = _pass(a, b, minus is not None, centre, sigma * scale)
        if n == 0 or not math.isfinite(std_new):
            break
        mean, std = mean_new, std_new
        if n == count:
            break
        count = n
        centre, scale = mean, std
    return ClippedStats(float(mean), float(std), int(max(count, 0)))
