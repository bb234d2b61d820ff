"""Medians and percentiles by selection in place, for compiled kernels. Pure.

numba's ``np.median`` and ``np.nanmedian`` copy their input (twice for the NaN
variant) and select with branchy partitions; on noise the comparisons' branches are
mispredicted about half the time. ``median_in_place`` partitions three ways without
branches (the values below the pivot, then those equal to it, swapped forward by
adding the comparison to an index), so ties cost no more than distinct values and a
constant buffer is done in one round. On one thread, medians of the 2048 columns of a
2048x4100 image, every eighth row (513 values each), took 17.4 ms with ``np.nanmedian``
and 7.8 ms this way, of which 3.4 ms is gathering the values; with integer values
(many ties) 6.1 ms. The result is the same value: the median is a value of the
buffer, or the mean of two, ``(a + b) / 2`` with the sum in the buffer's type, as
numba's ``np.median`` and bottleneck's ``nanmedian`` compute it.

``percentiles_in_place`` selects the values numpy's linear method interpolates between
(each rank among what lies above the one before) and interpolates as numpy does:
``np.percentile``'s floats, without its copies.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def select_in_place(values: np.ndarray, lo: int, hi: int, k: int) -> float:
    """The value of rank ``k`` among ``values[lo : hi + 1]`` (no NaN), which are
    reordered: afterwards none before index ``k`` is greater than it."""
    while hi > lo:
        x, y, z = values[lo], values[(lo + hi) >> 1], values[hi]
        pivot = max(min(x, y), min(max(x, y), z))  # median of three
        less = lo
        for i in range(lo, hi + 1):
            v = values[i]
            values[i] = values[less]
            values[less] = v
            less += v < pivot
        same = less
        for i in range(less, hi + 1):
            v = values[i]
            values[i] = values[same]
            values[same] = v
            same += v == pivot
        if k < less:
            hi = less - 1
        elif k < same:
            return pivot
        else:
            lo = same
    return values[k]


@numba.njit(cache=True, inline="always")
def median_in_place(values: np.ndarray, n: int) -> float:
    """The median of ``values[:n]`` (n >= 1, no NaN), which are reordered."""
    k = n // 2
    upper = select_in_place(values, 0, n - 1, k)
    if n % 2:
        return upper
    lower = values[0]
    for i in range(1, k):
        lower = max(lower, values[i])
    return (lower + upper) / 2


def percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values[np.isfinite(values)], q)`` (numpy's default linear
    method, one percentile: interpolated in the values' type), the same float; NaN
    when no value is finite. On a 2048x4100 float32 CCD: 118 ms with numpy (the copy
    of the finite values, then partitions about four ranks), 34 ms here.
    """
    finite = finite_values(values)
    return _percentiles(finite, [q], weak=True)[0] if finite.size else math.nan


def finite_values(values: np.ndarray) -> np.ndarray:
    """The finite values of a float array (another type: as float64), in order, in a
    new array of native byte order."""
    flat = np.ascontiguousarray(values).reshape(-1)
    if flat.dtype.kind != "f":
        flat = flat.astype(np.float64)
    flat = flat.astype(flat.dtype.newbyteorder("="), copy=False)
    buffer = np.empty_like(flat)
    return buffer[: int(_gather_finite(flat, buffer))]


def percentiles_in_place(finite: np.ndarray, qs: Sequence[float]) -> list[float]:
    """``np.percentile(finite, qs)`` (numpy's default linear method, a sequence of
    percentiles: interpolated in float64) of a 1D float array without NaN
    (``finite_values``; infinities are values like any other, as numpy takes them),
    each the same float, by selection. ``finite`` is reordered; it may not be empty."""
    return _percentiles(finite, qs, weak=False)


def nanpercentiles(values: np.ndarray, qs: Sequence[float]) -> list[float]:
    """``np.nanpercentile(values, qs)`` of float32 or float64 values (a sequence of
    percentiles), each the same float; NaN for each where every value is NaN. The
    quartiles of 262,000 values (a HAWK-I flat's sampled rows): 5.5 ms with numpy,
    2.5 ms here. Other types go to numpy."""
    kept = _not_nan_values(values)
    if kept is None:
        return [float(v) for v in np.nanpercentile(values, qs)]
    return _percentiles(kept, qs, weak=False) if kept.size else [math.nan] * len(qs)


def _percentiles(finite: np.ndarray, qs: Sequence[float], *, weak: bool) -> list[float]:
    """The values of the ranks numpy interpolates between, selected, and numpy's own
    interpolation (``_lerp``): with ``weak`` (one percentile given as a number) its
    weight is a Python float taken in the values' type (NEP 50), else a float64 array
    that makes the products float64."""
    n = finite.size
    picks = []
    for q in qs:
        # numpy's virtual index (n - 1) q / 100 and its neighbours (numpy.lib's
        # _compute_virtual_index and _get_indexes for method "linear").
        virtual = (n - 1) * (q / 100)
        below = math.floor(virtual)
        if virtual >= n - 1:
            below = above = n - 1
        elif virtual < 0:
            below = above = 0
        else:
            above = below + 1
        picks.append((virtual - below, below, above))
    ranks = np.unique([rank for _, below, above in picks for rank in (below, above)])
    chosen = dict(zip(ranks.tolist(), _select_ranks(finite, ranks), strict=True))
    out = []
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: NaN, as numpy gives
        for gamma, below, above in picks:
            a, b = chosen[below], chosen[above]
            difference = b - a  # in the values' type either way
            if not weak:
                a, b, difference = np.float64(a), np.float64(b), np.float64(difference)
            out.append(
                float(b - difference * (1 - gamma) if gamma >= 0.5 else a + difference * gamma)
            )
    return out


def nanmedian(values: np.ndarray) -> float:
    """``float(np.nanmedian(values))``, the same float, by selection in place on a copy
    of the values that are not NaN (infinities included, as numpy includes them): for
    float32 and float64 values (any other type goes to numpy). NaN when every value is
    NaN. A 2048x2048 float32 map: 50 ms with numpy (its copy, then a partition about
    two ranks), 20 ms here.

    >>> nanmedian(np.array([[3.0, np.nan], [1.0, np.inf]], np.float32))
    3.0
    """
    kept = _not_nan_values(values)
    if kept is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all NaN: NaN, as below
            return float(np.nanmedian(values))
    return float(_median_of(kept, kept.size)) if kept.size else math.nan


def _not_nan_values(values: np.ndarray) -> np.ndarray | None:
    """The values of a float32 or float64 array that are not NaN, in order, in a new
    array of native byte order; None for any other type."""
    flat = np.ascontiguousarray(values).reshape(-1)
    native = flat.dtype.newbyteorder("=")
    if native not in (np.dtype(np.float32), np.dtype(np.float64)):
        return None
    flat = flat.astype(native, copy=False)
    buffer = np.empty_like(flat)
    return buffer[: int(_gather_not_nan(flat, buffer))]


@numba.njit(cache=True, nogil=True)
def _gather_not_nan(values: np.ndarray, out: np.ndarray) -> int:
    n = 0
    for v in values:
        out[n] = v
        n += not np.isnan(v)
    return n


@numba.njit(cache=True, nogil=True)
def _median_of(values: np.ndarray, n: int) -> float:
    """``median_in_place`` of ``values[:n]``: the mean of the two middle values summed
    in the values' type, as numpy's median takes it."""
    return median_in_place(values, n)


@numba.njit(cache=True, nogil=True)
def _gather_finite(values: np.ndarray, out: np.ndarray) -> int:
    n = 0
    for v in values:
        out[n] = v
        n += np.isfinite(v)
    return n


@numba.njit(cache=True, nogil=True)
def _select_ranks(values: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """The values of ``ranks`` (ascending, distinct) among ``values``, which are
    reordered: each selected among what lies above the rank before, or, right after
    it, the least of those (a pass without swaps: the rank numpy interpolates towards
    is most often the next one)."""
    out = np.empty(ranks.size, dtype=values.dtype)
    lo = 0  # values[lo:] are the values of rank lo and above
    for i in range(ranks.size):
        k = ranks[i]
        if i and k == lo and lo == ranks[i - 1] + 1:
            least = values[lo]
            for j in range(lo + 1, values.size):
                least = min(least, values[j])
            out[i] = least
        else:
            out[i] = select_in_place(values, lo, values.size - 1, k)
            lo = k + 1
    return out
