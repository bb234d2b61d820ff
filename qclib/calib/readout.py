"""Facts about raw readouts that every calibration needs: per-frame bias levels and
checks that frames are usable. Pure.

A CCD readout carries its bias level in the overscan; an IR array in its reference
pixels (the border outside the data section, blind to light). Either way the level
moves from frame to frame, so each frame's own level is removed before combining.

An IR array read out in vertical channels (``Geometry.readout_channel_px``: HAWK-I's
Hawaii-2RG has 32 of 64 columns) has a level per channel, and per even and odd column
of a channel, that changes from frame to frame and that the channel's reference rows
(above and below the data section) share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np

from qclib.calib.selection import median_in_place
from qclib.calib.stats import clipped_stats, row_step
from qclib.compile_once import call_compiled_once, parallel_kernel
from qclib.config.instrument import Geometry, parse_section
from qclib.errors import UnprocessableDataError
from qclib.stored_pixels import Frame, StoredStack

#: A frame with more than this fraction of its data pixels at saturation is unusable.
SATURATED_FRACTION = 0.01


def frame_level(frame: Frame, geometry: Geometry) -> float:
    """The bias level of one raw readout: clipped mean of its overscan, or of its
    reference pixels (every pixel outside the data section) where it has no overscan.
    0 when the readout has neither.

    >>> from qclib.config.instrument import Geometry
    >>> g = Geometry(naxis1=6, naxis2=6, bitpix=-32, data_section="[2:5,2:5]",
    ...              gap_x_px=0, gap_y_px=0)
    >>> frame = np.full((6, 6), 7.0, np.float32)
    >>> frame[1:5, 1:5] = 100.0
    >>> frame_level(frame, g)
    7.0
    """
    if geometry.overscan_section is not None:
        rows, cols = parse_section(geometry.overscan_section)
        return clipped_stats(frame[rows, cols], sigma=4).mean
    rows, cols = parse_section(geometry.data_section)
    border = np.concatenate(
        [
            frame[: rows.start].ravel(),
            frame[rows.stop :].ravel(),
            frame[rows, : cols.start].ravel(),
            frame[rows, cols.stop :].ravel(),
        ]
    )
    if border.size == 0:
        return 0.0
    return clipped_stats(border, sigma=4).mean


def frame_levels(
    stack: np.ndarray | Sequence[np.ndarray] | StoredStack, geometry: Geometry
) -> np.ndarray:
    """``frame_level`` of every frame of a stack (of a stored one: only the pixels
    outside its data section are converted)."""
    return np.array([frame_level(frame, geometry) for frame in stack])


def channel_columns(geometry: Geometry, section: slice | None = None) -> list[slice] | None:
    """The columns of each readout channel's even and of its odd columns, as strided
    slices relative to ``section`` (columns of the frame; default all), leaving out
    those with no column in it; None for a detector without readout channels.

    >>> from qclib.config.instrument import Geometry
    >>> g = Geometry(naxis1=8, naxis2=8, bitpix=-32, data_section="[2:7,2:7]",
    ...              gap_x_px=0, gap_y_px=0, readout_channel_px=4)
    >>> channel_columns(g, slice(1, 7))
    [slice(1, 3, 2), slice(0, 3, 2), slice(3, 6, 2), slice(4, 6, 2)]
    """
    width = geometry.readout_channel_px
    if width is None:
        return None
    section = section or slice(0, geometry.naxis1)
    out = []
    for first in range(0, geometry.naxis1, width):
        for parity in (0, 1):
            start = first + parity
            if start < section.start:
                start += -(-(section.start - start) // 2) * 2
            stop = min(first + width, section.stop)
            if start < stop:
                out.append(slice(start - section.start, stop - section.start, 2))
    return out


def clipped_means(
    values: np.ndarray,
    groups: Sequence[slice],
    *,
    sigma: float = 4.0,
    maxiters: int = 10,
    minus: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sigma-clipped mean of each group of columns of a 2D array (``groups``: column
    slices, any step), and how many values each kept: the finite values, then those
    more than ``sigma`` standard deviations from the mean dropped until none is (or
    ``maxiters``). ``minus``: a level per column taken off first (float32, as numpy
    would); ``exclude``: pixels left out (True), as NaNs would be. For the many small
    groups of a channel-by-channel statistic, one compiled call for all of a
    detector's readout channels: 64 groups of a HAWK-I array took 96 ms as a Python
    loop of numpy calls, 12 ms here; with ``minus`` and ``exclude`` read in place, a
    raw dark's signal takes 8 ms, where subtracting and masking copies first took 25.

    >>> column = np.r_[np.zeros(50), np.ones(50), 1e6]
    >>> means, kept = clipped_means(np.c_[column, column + 2], [slice(0, 1), slice(1, 2)])
    >>> means.round(6).tolist(), kept.tolist()
    ([0.5, 2.5], [100, 100])
    """
    ny, nx = values.shape
    levels = np.zeros(nx, np.float32) if minus is None else np.asarray(minus, np.float32)
    if levels.shape != (nx,):
        raise ValueError(f"minus has shape {levels.shape}, not one level per column ({nx})")
    if exclude is None:
        exclude = np.broadcast_to(np.zeros((1, 1), np.bool_), (ny, nx))
    elif exclude.shape != (ny, nx):
        raise ValueError(f"exclude has shape {exclude.shape}, not that of the values")
    return call_compiled_once(
        _clipped_means_kernel,
        values,
        levels,
        exclude,
        _bounds(values, groups),
        float(sigma),
        int(maxiters),
    )


def group_medians(values: np.ndarray, groups: Sequence[slice]) -> np.ndarray:
    """Median of the finite values of each group of columns of a 2D array (``groups``:
    column slices, any step); NaN for a group without one. One compiled call for
    all of a detector's readout channels: 128 groups of a HAWK-I difference image
    took 83 ms as numpy ``nanmedian`` calls (strided columns are copied first).

    >>> column = np.r_[np.zeros(50), np.ones(51), np.nan]
    >>> group_medians(np.c_[column, column + 2], [slice(0, 1), slice(1, 2)]).tolist()
    [1.0, 3.0]
    """
    return call_compiled_once(_group_medians_kernel, values, _bounds(values, groups))


def _bounds(values: np.ndarray, groups: Sequence[slice]) -> np.ndarray:
    """(start, stop, step) of each column slice, for the compiled kernels."""
    nx = values.shape[1]
    return np.array([g.indices(nx) for g in groups], dtype=np.int64).reshape(-1, 3)


@parallel_kernel
def _group_medians_kernel(values, bounds):  # type: ignore[no-untyped-def]
    ny = values.shape[0]
    medians = np.empty(bounds.shape[0])
    for g in numba.prange(bounds.shape[0]):
        start, stop, step = bounds[g, 0], bounds[g, 1], bounds[g, 2]
        width = max(0, (stop - start + step - 1) // step) if step > 0 else 0
        kept = np.empty(ny * width, dtype=np.float64)
        n = 0
        for y in range(ny):
            for x in range(start, stop, step):
                v = values[y, x]
                if math.isfinite(v):
                    kept[n] = v
                    n += 1
        medians[g] = median_in_place(kept, n) if n else math.nan
    return medians


@parallel_kernel
def _clipped_means_kernel(values, minus, exclude, bounds, sigma, maxiters):  # type: ignore[no-untyped-def]
    """One pass over a group's kept values per clipping round: the sums that give
    the next round's mean and spread are taken while the kept values are compacted
    (about the group's first value, so that float64 loses nothing to cancellation).
    Three passes per round took 12 ms per full HAWK-I chip, 60 times per dark block."""
    ny = values.shape[0]
    means = np.empty(bounds.shape[0])
    counts = np.zeros(bounds.shape[0], dtype=np.int64)
    for g in numba.prange(bounds.shape[0]):
        start, stop, step = bounds[g, 0], bounds[g, 1], bounds[g, 2]
        width = max(0, (stop - start + step - 1) // step) if step > 0 else 0
        kept = np.empty(ny * width, dtype=values.dtype)  # what v is: no rounding
        n = 0
        pivot = math.nan
        s1 = 0.0
        s2 = 0.0
        for y in range(ny):
            for x in range(start, stop, step):
                v = values[y, x] - minus[x]
                if math.isfinite(v) and not exclude[y, x]:
                    if n == 0:
                        pivot = v
                    kept[n] = v
                    d = v - pivot
                    s1 += d
                    s2 += d * d
                    n += 1
        for _ in range(maxiters):
            if n < 2:
                break
            offset = s1 / n
            centre = pivot + offset
            limit = sigma * math.sqrt(max(s2 / n - offset * offset, 0.0))
            m = 0
            s1 = 0.0
            s2 = 0.0
            for i in range(n):
                v = kept[i]
                if abs(v - centre) <= limit:
                    kept[m] = v
                    d = v - pivot
                    s1 += d
                    s2 += d * d
                    m += 1
            if m == n:
                break
            n = m
        means[g] = pivot + s1 / n if n else math.nan
        counts[g] = n
    return means, counts


def reference_levels(frame: Frame, geometry: Geometry) -> np.ndarray:
    """The level of every column of the data section of one raw readout (NAXIS2, NAXIS1).

    For an IR array with readout channels: per channel and column parity, the clipped
    mean (4 sigma) of that channel's reference rows, above and below the data section
    (the reference columns left and right see only the outer two channels). Otherwise
    one level for the whole frame (``frame_level``).

    >>> from qclib.config.instrument import Geometry
    >>> g = Geometry(naxis1=8, naxis2=8, bitpix=-32, data_section="[2:7,2:7]",
    ...              gap_x_px=0, gap_y_px=0, readout_channel_px=4)
    >>> frame = np.tile(np.float32([1, 2, 1, 2, 5, 6, 5, 6]), (8, 1))
    >>> reference_levels(frame, g).tolist()
    [2.0, 1.0, 2.0, 5.0, 6.0, 5.0]
    """
    rows, cols = parse_section(geometry.data_section)
    groups = channel_columns(geometry)
    reference_rows = np.concatenate([frame[: rows.start], frame[rows.stop :]])
    if groups is None or reference_rows.shape[0] == 0:
        return np.full(cols.stop - cols.start, frame_level(frame, geometry), np.float32)
    levels = np.empty(geometry.naxis1, np.float32)
    for group, level in zip(groups, clipped_means(reference_rows, groups)[0], strict=True):
        levels[group] = level
    return levels[cols]


def subtract_reference_levels(
    stack: np.ndarray | Sequence[np.ndarray], geometry: Geometry
) -> np.ndarray:
    """Data sections of a stack of raw readouts (frames, NAXIS2, NAXIS1) less each
    frame's ``reference_levels``: a new float32 array (frames, ny, nx)."""
    rows, cols = parse_section(geometry.data_section)
    out = np.empty((len(stack), rows.stop - rows.start, cols.stop - cols.start), np.float32)
    for i, frame in enumerate(stack):
        np.subtract(frame[rows, cols], reference_levels(frame, geometry)[None, :], out=out[i])
    return out


#: Rows of each frame (evenly spaced, at least this many) that ``check_frames`` reads.
CHECKED_ROWS = 512


def check_frames(
    data: np.ndarray | Sequence[np.ndarray],
    *,
    names: Sequence[str],
    min_frames: int,
    what: str,
    saturation_adu: float | None = None,
) -> None:
    """Refuse a stack no product can come from, naming the frame at fault.

    ``data``: the data sections (frames, ny, nx) in raw ADU.

    Raises
    ------
    UnprocessableDataError
        Fewer than ``min_frames`` frames; a frame with no finite pixel; a frame more
        than 1 % saturated.
    """
    if len(data) < min_frames:
        raise UnprocessableDataError(
            f"{len(data)} {what} frame(s); at least {min_frames} are needed"
        )
    for name, frame in zip(names, data, strict=True):
        step = max(1, frame.shape[0] // CHECKED_ROWS)
        sample = frame[::step]
        if not np.isfinite(sample).any():
            raise UnprocessableDataError(f"{what} frame {name} has no finite pixel (all NaN)")
        if saturation_adu is not None:
            saturated = float(np.mean(sample >= saturation_adu))
            if saturated > SATURATED_FRACTION:
                raise UnprocessableDataError(
                    f"{what} frame {name} is saturated ({saturated:.0%} of its pixels at "
                    f">= {saturation_adu:g} ADU); remove it from the block or retake it"
                )


#: Pixels of a pair's difference the read noise takes (evenly spaced rows; all of a
#: smaller detector): 2 million, every second row of a 2048x2048 array.
RON_PIXELS = 2_000_000

#: Rows between those a pair's channel offsets are taken from.
_SAMPLE_STEP = 4

#: Variance of rounding to whole ADU (one ADC step), in ADU^2.
QUANTISATION_VARIANCE_ADU2 = 1.0 / 12.0


def is_integer_valued(frame: Frame) -> bool:
    """True for raws holding whole ADU (CCD digitisation), judged on a sparse sample (of
    a mapped raw only the sample is converted)."""
    return bool(np.all(np.equal(np.mod(frame[::97, ::13], 1.0), 0.0)))


def read_noise_from_pair(
    first: np.ndarray,
    second: np.ndarray,
    *,
    ndit: int = 1,
    columns: list[slice] | None = None,
    dark_signal_adu: float = 0.0,
    gain_e_per_adu: float | None = None,
) -> float:
    """Read noise (ADU, one read) from two frames of the same scene.

    The clipped standard deviation of their difference (a constant level difference
    changes nothing), divided by sqrt(2); integer raws lose the quantisation variance
    (1/12 ADU^2 each), averaged IR raws (NDIT reads) are scaled back to one read.
    A clipped standard deviation, not the MAD: on ~2-ADU integer noise the MAD reads
    several per cent high (shared/peers/hawki_esorex.md).

    ``columns``: each readout channel's even and odd columns (``channel_columns`` of
    the columns given): the difference loses its median in each first, so channel
    and even/odd offsets that change between the frames change nothing either.
    ``dark_signal_adu`` (per frame, as the frames' one DIT holds it) with
    ``gain_e_per_adu``: its shot noise (signal / gain, ADU^2 of one read) is removed.
    A frame larger than ``RON_PIXELS`` gives evenly spaced rows holding about that many.
    """
    # Rows up to RON_PIXELS: a spread to 0.05 % (1/sqrt(2n)); all rows of a HAWK-I
    # array cost 27 ms a pair, 9 pairs a detector in a stack of 10 darks.
    step = row_step(first, RON_PIXELS)
    if columns is None:
        spread = clipped_stats(first[::step], minus=second[::step], sigma=5).std
    else:
        # Medians of every 4th row (8,000 values per HAWK-I channel and parity): an
        # offset off by 1.25 sigma / sqrt(n) adds 1.6 / n to the variance (2e-4).
        # Those rows are rows of the difference when its step divides 4 (HAWK-I: 2).
        difference = np.subtract(first[::step], second[::step], dtype=np.float32)
        if _SAMPLE_STEP % step == 0:
            sample = difference[:: _SAMPLE_STEP // step]
        else:
            sample = np.subtract(first[::_SAMPLE_STEP], second[::_SAMPLE_STEP], dtype=np.float32)
        offsets = np.zeros(first.shape[1], np.float32)
        for group, median in zip(columns, group_medians(sample, columns), strict=True):
            offsets[group] = median
        difference -= offsets  # one pass; a strided pass per group took 11 ms a chip
        spread = clipped_stats(difference, sigma=5).std
    variance = spread**2 / 2 - (QUANTISATION_VARIANCE_ADU2 if is_integer_valued(first) else 0.0)
    variance *= ndit
    if gain_e_per_adu is not None:
        variance -= max(dark_signal_adu, 0.0) / gain_e_per_adu
    return float(np.sqrt(max(variance, 0.0)))
