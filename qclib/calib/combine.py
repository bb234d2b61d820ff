"""Combining stacks of frames pixel by pixel: median and sigma-clipped mean. Pure.

Compiled with numba (parallel over rows): for ten 2048x4100 frames numpy's
``np.median(axis=0)`` takes 1.3-2.0 s per CCD and astropy's sigma_clip + mean 2.0 s,
against about 0.1 s here (measured: bench/bench_master_bias.py); a full OmegaCAM
master bias (32 CCDs) would otherwise spend most of a minute here.

Both combiners take a stack ``(n_frames, ny, nx)`` of float32, an optional boolean
mask of the same shape (True = bad, excluded) and optional per-frame scale factors
(each frame is divided by its scale first: flats are normalised this way). An
infrared array's reference levels, one per frame and column, are taken off each value
as it is read (``levels``): the values are those of the level-subtracted float32
stack, which is never made (for three HAWK-I darks, 48 MB of fresh memory per chip,
0.1 s of a 0.45 s chip where this VM backed it afresh). They
return the combined image, its 1-sigma uncertainty, and the number of frames used
per pixel (0 where every frame was masked: the result there is NaN).

The uncertainty of a median is sqrt(pi/2) * std / sqrt(n) (its efficiency for
Gaussian noise); of a mean, std / sqrt(n); std is the sample standard deviation of
the values kept.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from qclib.calib.networks import (
    clipped_mean_kernel,
    clipped_rounds_kernel,
    contiguous_window,
    median_kernel,
)
from qclib.compile_once import call_compiled_once, parallel_kernel
from qclib.stored_pixels import StoredStack

_MEDIAN_EFFICIENCY = math.sqrt(math.pi / 2)
#: Stacks up to this many frames take the sorting-network path (the network grows as
#: n log^2 n comparators).
_NETWORK_MAX_FRAMES = 64
#: Stacks up to this many frames finish their clipping rounds in a kernel compiled for
#: their frame count (``networks.clipped_rounds_kernel``). Five 2048x2048 frames of
#: noise, 1.1 million pixels past the first round, on one thread: 160 ms one by one,
#: 95 ms there; the whole combination 205 -> 128 ms. Its compilation (once per
#: machine) grows with the count: 2.7 s for 5 frames, 4.7 s for 8, 9 s for 12.
_ROUNDS_MAX_FRAMES = 8


@numba.njit(cache=True, inline="always")
def _sort_small(values: np.ndarray, n: int) -> None:
    """Insertion sort of the first n values (stacks are short: tens of frames)."""
    for i in range(1, n):
        key = values[i]
        j = i - 1
        while j >= 0 and values[j] > key:
            values[j + 1] = values[j]
            j -= 1
        values[j + 1] = key


@numba.njit(cache=True, inline="always")
def _median_sorted(values: np.ndarray, n: int) -> float:
    half = n // 2
    if n % 2 == 1:
        return values[half]
    return 0.5 * (values[half - 1] + values[half])


@numba.njit(cache=True, inline="always")
def _gather(stack, levels, mask, offsets, background, scales, y, x, values):  # type: ignore[no-untyped-def]
    """Copy pixel (y, x) of every unmasked frame, less its column level (in float32)
    and offsets, scaled, into values."""
    n = 0
    b = background[y, x]
    for f in range(stack.shape[0]):
        if not mask[f, y, x]:
            v = (np.float32(stack[f, y, x] - levels[f, x]) - offsets[f] - b) / scales[f]
            if not math.isnan(v):
                values[n] = v
                n += 1
    return n


@numba.njit(cache=True, inline="always")
def _median_row(stack, levels, mask, offsets, background, inverse, y, values, out, err, count):  # type: ignore[no-untyped-def]
    """General median of one row: masks and NaNs allowed."""
    nf, _, nx = stack.shape
    for x in range(nx):
        # Insert each value at its sorted place as it is read (stacks are short),
        # summing for the standard deviation on the way: one pass per pixel.
        n = 0
        total = 0.0
        squares = 0.0
        b = background[y, x]
        for f in range(nf):
            if mask[f, y, x]:
                continue
            v = (np.float32(stack[f, y, x] - levels[f, x]) - offsets[f] - b) * inverse[f]
            if math.isnan(v):
                continue
            j = n - 1
            while j >= 0 and values[j] > v:
                values[j + 1] = values[j]
                j -= 1
            values[j + 1] = v
            n += 1
            total += v
            squares += v * v
        count[y, x] = n
        if n == 0:
            out[y, x] = math.nan
            err[y, x] = math.nan
            continue
        out[y, x] = _median_sorted(values, n)
        if n > 1:
            variance = max((squares - total * total / n) / (n - 1), 0.0)
            err[y, x] = _MEDIAN_EFFICIENCY * math.sqrt(variance / n)
        else:
            err[y, x] = math.nan


@parallel_kernel
def _median_kernel(stack, levels, mask, offsets, background, inverse, rows, out, err, count):  # type: ignore[no-untyped-def]
    """The general median, on the given rows."""
    nf = stack.shape[0]
    for r in numba.prange(rows.shape[0]):
        values = np.empty(nf, dtype=np.float64)
        _median_row(
            stack, levels, mask, offsets, background, inverse, rows[r], values, out, err, count
        )


@numba.njit(cache=True, inline="always")
def _deviation_median(ordered: np.ndarray, first: int, m: int, centre: float) -> float:
    """Median of ``|v - centre|`` over the sorted run ``ordered[first:first + m]`` whose
    median is ``centre``: the deviations below and above the middle, each already in
    order, merged outwards until the middle of them is reached (no sort)."""
    low = first + (m - 1) // 2
    high = low + 1
    stop = first + m
    previous = 0.0
    current = 0.0
    for _ in range(m // 2 + 1):
        below = centre - ordered[low] if low >= first else math.inf
        above = ordered[high] - centre if high < stop else math.inf
        previous = current
        if below <= above:
            current = below
            low -= 1
        else:
            current = above
            high += 1
    return current if m % 2 == 1 else 0.5 * (previous + current)


@numba.njit(cache=True, inline="always")
def _within(values: np.ndarray, n: int, lo: float, hi: float) -> tuple[float, float, int]:
    """Sum and sum of squared deviations from their mean (in frame order) of the
    values in ``[lo, hi]``, and how many."""
    total = 0.0
    m = 0
    for f in range(n):
        if lo <= values[f] <= hi:
            total += values[f]
            m += 1
    mean = total / m
    squares = 0.0
    for f in range(n):
        if lo <= values[f] <= hi:
            d = values[f] - mean
            squares += d * d
    return total, squares, m


@numba.njit(cache=True, inline="always")
def _clipped_mean_pixel(
    stack,
    levels,
    mask,
    offsets,
    background,
    scales,
    sigma,
    maxiters,
    y,
    x,
    values,
    ordered,
    out,
    err,
    count,
):  # type: ignore[no-untyped-def]
    """The clipped mean of pixel (y, x), masks and NaNs allowed.

    Clip around the median with a robust scale (1.4826 MAD; the standard deviation
    where the MAD is 0, as on quantised data), until nothing changes (or maxiters).
    With the plain standard deviation one outlier among n frames can never lie
    beyond (n-1)/sqrt(n) sigma: 2.7 for ten frames. What a round keeps lies in an
    interval, so it is a run of the values sorted once: each round takes its median
    by index and its MAD by a merge. The mean and spread of what is kept are summed
    in frame order. The 1.2 million pixels of a HAWK-I chip's five darks that a first
    round clips took 180 ms on 2 threads with a sort per round, this way 120 ms."""
    n = _gather(stack, levels, mask, offsets, background, scales, y, x, values)
    if n == 0:
        out[y, x] = math.nan
        err[y, x] = math.nan
        count[y, x] = 0
        return
    for f in range(n):
        ordered[f] = values[f]
    _sort_small(ordered, n)
    first = 0
    stop = n
    for _ in range(maxiters):
        m = stop - first
        if m < 3:
            break
        centre = _median_sorted(ordered[first:], m)
        sd = 1.482602218505602 * _deviation_median(ordered, first, m, centre)
        if sd == 0.0:
            _, squares, _ = _within(values, n, ordered[first], ordered[stop - 1])
            sd = math.sqrt(squares / (m - 1))
        lo = centre - sigma * sd
        hi = centre + sigma * sd
        low = first
        while low < stop and not ordered[low] >= lo:
            low += 1
        high = stop
        while high > low and not ordered[high - 1] <= hi:
            high -= 1
        if (low == first and high == stop) or low == high:
            break
        first = low
        stop = high
    total, squares, m = _within(values, n, ordered[first], ordered[stop - 1])
    out[y, x] = total / m
    err[y, x] = math.sqrt(squares / (m - 1)) / math.sqrt(m) if m > 1 else math.nan
    count[y, x] = m


@parallel_kernel
def _clipped_mean_flagged(
    stack, levels, mask, offsets, background, scales, sigma, maxiters, out, err, count
):  # type: ignore[no-untyped-def]
    """``_clipped_mean_pixel`` of the pixels whose count is negative."""
    nf, ny, nx = stack.shape
    for y in numba.prange(ny):
        values = np.empty(nf, dtype=np.float64)
        ordered = np.empty(nf, dtype=np.float64)
        for x in range(nx):
            if count[y, x] < 0:
                _clipped_mean_pixel(
                    stack, levels, mask, offsets, background, scales, sigma, maxiters, y, x,
                    values, ordered, out, err, count,
                )  # fmt: skip


def _prepare(
    stack: np.ndarray,
    mask: np.ndarray | None,
    scales: np.ndarray | None,
    offsets: np.ndarray | None,
    background: np.ndarray | None,
    levels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if stack.ndim != 3:
        raise ValueError(f"a stack is (frames, ny, nx); got shape {stack.shape}")
    # Native-order float32 is read in place, views (trimmed sections) included;
    # anything else is converted once.
    native = stack.dtype == np.float32 and stack.dtype.isnative
    data = stack if native else stack.astype(np.float32)
    if mask is None:
        bad = np.zeros((1, 1, 1), dtype=np.bool_)
        bad = np.broadcast_to(bad, data.shape)
    else:
        if mask.shape != data.shape:
            raise ValueError(f"mask shape {mask.shape} differs from stack shape {data.shape}")
        bad = np.asarray(mask, dtype=np.bool_)
    n = data.shape[0]
    factors = np.ones(n) if scales is None else np.asarray(scales, dtype=np.float64)
    if factors.shape != (n,) or not np.all(np.isfinite(factors)) or np.any(factors == 0):
        raise ValueError("scales must be one finite, non-zero factor per frame")
    shifts = np.zeros(n) if offsets is None else np.asarray(offsets, dtype=np.float64)
    if shifts.shape != (n,) or not np.all(np.isfinite(shifts)):
        raise ValueError("offsets must be one finite value per frame")
    if background is None:
        under = np.broadcast_to(np.zeros((1, 1), np.float32), data.shape[1:])
    else:
        if background.shape != data.shape[1:]:
            raise ValueError(
                f"background shape {background.shape} differs from a frame's {data.shape[1:]}"
            )
        under = background
    if levels is None:
        lev = np.broadcast_to(np.zeros((1, 1), np.float32), (n, data.shape[2]))
    else:
        lev = np.asarray(levels, dtype=np.float32)
        if lev.shape != (n, data.shape[2]):
            raise ValueError(
                f"levels have shape {lev.shape}, not one per frame and column {(n, data.shape[2])}"
            )
    return data, bad, factors, shifts, under, lev


def _window_arguments(
    data: np.ndarray, levels: np.ndarray | None, lev: np.ndarray
) -> tuple[np.ndarray | int, ...]:
    """A generated kernel's first arguments for ``data``: its contiguous window and,
    where levels were given, the levels (``networks._stack_arguments``)."""
    window = contiguous_window(data)
    return window if levels is None else (*window, lev)


def median_combine(
    stack: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    scales: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
    background: np.ndarray | None = None,
    levels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-wise median of ``(frame - offset - background) / scale``: (image,
    uncertainty, frames used). ``offset``: one value per frame (its overscan level);
    ``background``: one image for all frames (a master bias or dark); ``levels``: one
    per frame and column ``(frames, nx)``, taken off each frame first in float32.

    >>> stack = np.array([[[1.0]], [[5.0]], [[2.0]]])
    >>> median_combine(stack)[0]
    array([[2.]], dtype=float32)
    """
    data, bad, factors, shifts, under, lev = _prepare(
        stack, mask, scales, offsets, background, levels
    )
    ny, nx = data.shape[1:]
    out = np.empty((ny, nx), np.float32)
    err = np.empty((ny, nx), np.float32)
    count = np.empty((ny, nx), np.int16)
    inverse = 1.0 / factors
    if mask is None and data.shape[0] <= _NETWORK_MAX_FRAMES:
        # A sorting network compiled for this many frames (qclib.calib.networks);
        # rows holding a NaN go to the general kernel.
        call_compiled_once(
            median_kernel(
                data.shape[0], background=background is not None, levels=levels is not None
            ),
            *_window_arguments(data, levels, lev),
            shifts,
            under,
            inverse,
            np.float32(_MEDIAN_EFFICIENCY),
            out,
            err,
            count,
        )
        # The kernel marks a row with a NaN as -1 throughout: its first column tells
        # (scanning the whole count took 1 ms per 2048x4100 CCD, 24 ms where its 8 MB
        # temporary was fresh memory).
        rows = np.flatnonzero((count[:, :1] < 0).any(axis=1))
    else:
        rows = np.arange(ny)
    if rows.size:
        _median_kernel(data, lev, bad, shifts, under, inverse, rows, out, err, count)
    return out, err, count


def median_combine_stored(
    stack: StoredStack,
    rows: slice,
    cols: slice,
    *,
    offsets: np.ndarray,
    background: np.ndarray | None = None,
    scales: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``median_combine(stack.physical((rows, cols)), offsets=offsets, background=...,
    scales=...)``, bit for bit, reading the stored frames (int16, or unscaled float32:
    ``StoredStack.kind``) in place: no float32 stack is made. For ten 2048x4100
    OmegaCAM frames mapped from the page cache, on 2 cores with the recipe's retained
    memory: the conversion into a float32 stack took 23-28 ms and the median over it
    68-74 ms, the median over the maps 67-69 ms.

    ``rows``, ``cols``: the section combined (steps of 1). ``background``: an image of
    the section's shape (a row holding a NaN of it sends the whole section through
    the float32 stack).
    """
    if rows.step not in (None, 1) or cols.step not in (None, 1):
        raise ValueError("a section is a block of whole rows and columns")
    n = len(stack)
    shifts = np.asarray(offsets, dtype=np.float64)
    factors = np.ones(n) if scales is None else np.asarray(scales, dtype=np.float64)

    def through_a_stack() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return median_combine(
            stack.physical((rows, cols)), offsets=offsets, background=background, scales=scales
        )

    if (
        n == 0
        or n > _NETWORK_MAX_FRAMES
        or shifts.shape != (n,)
        or not np.isfinite(shifts).all()
        or factors.shape != (n,)
        or not np.isfinite(factors).all()
        or np.any(factors == 0)
    ):
        return through_a_stack()  # which refuses what it cannot combine
    y0, y1, _ = rows.indices(stack.shape[1])
    x0, x1, _ = cols.indices(stack.shape[2])
    ny, nx = max(0, y1 - y0), max(0, x1 - x0)
    if background is not None and background.shape != (ny, nx):
        raise ValueError(f"background shape {background.shape} differs from a frame's {(ny, nx)}")
    out = np.empty((ny, nx), np.float32)
    err = np.empty((ny, nx), np.float32)
    count = np.empty((ny, nx), np.int16)
    word = np.uint32 if stack.kind == "float32" else np.uint16  # the stored bytes, as words
    call_compiled_once(
        median_kernel(n, background=background is not None, stored=stack.kind),
        tuple(np.ascontiguousarray(image.raw).view(word) for image in stack),
        y0,
        x0,
        np.array([image.bscale for image in stack]),
        np.array([image.bzero for image in stack]),
        shifts,
        np.zeros((1, 1), np.float32) if background is None else background,
        1.0 / factors,
        np.float32(_MEDIAN_EFFICIENCY),
        out,
        err,
        count,
    )
    if ny and nx and (count[:, 0] < 0).any():
        return through_a_stack()
    return out, err, count


def clipped_mean_combine(
    stack: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    scales: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
    background: np.ndarray | None = None,
    sigma: float = 3.0,
    maxiters: int = 5,
    levels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-wise sigma-clipped mean of ``(frame - offset - background) / scale``: values beyond
    ``sigma`` robust standard deviations (1.4826 MAD) of the median are dropped,
    repeatedly (at most ``maxiters`` times, never below 3 values). ``levels``: as for
    ``median_combine``.

    >>> stack = np.array([[[1.0]], [[1.1]], [[0.9]], [[1.0]], [[50.0]]])
    >>> float(clipped_mean_combine(stack, sigma=1.5)[0][0, 0])
    1.0
    """
    if sigma <= 0 or maxiters < 0:
        raise ValueError("sigma must be > 0 and maxiters >= 0")
    data, bad, factors, shifts, under, lev = _prepare(
        stack, mask, scales, offsets, background, levels
    )
    ny, nx = data.shape[1:]
    out = np.empty((ny, nx), np.float32)
    err = np.empty((ny, nx), np.float32)
    count = np.empty((ny, nx), np.int16)
    n = data.shape[0]
    flags = {"background": background is not None, "levels": levels is not None}
    if mask is None and 3 <= n <= _NETWORK_MAX_FRAMES:
        # A kernel compiled for this many frames (qclib.calib.networks) takes every
        # pixel whose first clipping round keeps all its values (the round then ends
        # the clipping); another finishes the others' rounds, up to _ROUNDS_MAX_FRAMES;
        # the rest, and pixels with a value not finite, go one by one.
        window = _window_arguments(data, levels, lev)
        clipped_mean_kernel(n, **flags)(
            *window, shifts, under, factors, float(sigma), maxiters > 0, out, err, count
        )
        if n <= _ROUNDS_MAX_FRAMES:
            call_compiled_once(
                clipped_rounds_kernel(n, **flags),
                *(*window, shifts, under, factors, float(sigma), int(maxiters)),
                *(out, err, count),
            )
    else:
        count.fill(-1)  # every pixel one by one
    _clipped_mean_flagged(
        data, lev, bad, shifts, under, factors, float(sigma), int(maxiters), out, err, count
    )
    return out, err, count
