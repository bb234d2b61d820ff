"""Master dark and its QC parameters, one detector at a time. Pure.

CCD darks (OmegaCAM) have their overscan level and the master bias removed; IR darks
(HAWK-I) their reference-pixel levels, per readout channel and column parity
(``qclib.calib.readout.reference_levels``): what remains is dark current, plus, for
IR arrays, the pedestal structure a frame of the same DIT also carries. Five frames
or more are combined with a clipped mean, fewer with a median (a clipped mean cannot
clip among fewer than three values).

QC parameters:
  QC.DARK.MED         median of the master dark                              ADU
  QC.DARK.MEAN        clipped mean of the master dark                        ADU
  QC.DARK.STDEV       clipped standard deviation of the master dark          ADU
  QC.DARK.CURRENT     dark signal per hour of integration: the slope of each
                      frame's dark signal against DIT over this block's darks
                      and darks of other DITs where given (a pedestal the DITs
                      share drops out), else the master's signal / DIT; dark
                      signal: hot pixels out, the clipped mean of each readout
                      channel and column parity, averaged                    ADU/hr
  QC.RON              read noise of one read from consecutive frame pairs,
                      less the shot noise of the dark signal (given a gain)  ADU
  QC.NHOTPIX          pixels > hot_sigma above their local level             count
  QC.PARTICLE_RATE    particle events (8-connected groups of pixels > k sigma
                      above the master in one frame) per cm2 and second      1/cm2/s
ESO's own QC.PARTICLE_RATE (hawki_dark_combine) counts *pixels* rejected during the
combination, noise included: many times the true rate, and tens per second on frames
without particles (shared/peers/hawki_esorex.md). Events above a 5-sigma threshold in
the difference to the master are what a particle is.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np

from qclib.calib.combine import clipped_mean_combine, median_combine
from qclib.calib.defects import count_groups, find_hot_pixels
from qclib.calib.dq import DQ_HOT, DQ_NO_DATA
from qclib.calib.parameters import DarkConfig
from qclib.calib.readout import (
    channel_columns,
    check_frames,
    clipped_means,
    frame_level,
    frame_levels,
    read_noise_from_pair,
    reference_levels,
)
from qclib.calib.selection import nanmedian
from qclib.calib.stats import clipped_stats, median_grid, qc_rows
from qclib.compile_once import call_compiled_once, parallel_kernel
from qclib.config.instrument import Geometry, parse_section
from qclib.errors import UnprocessableDataError
from qclib.stored_pixels import Frame, MappedImage

#: Frames from which on a clipped mean replaces the median.
CLIPPED_MEAN_FROM = 5


#: Raw frames of one detector: a stack (frames, NAXIS2, NAXIS1), or each on its own.
Frames = np.ndarray | Sequence[Frame]


@dataclass(frozen=True)
class Exposure:
    """Timing of the dark frames (all equal within a block)."""

    integration_s: float  # what one frame's dark signal accumulates over (DIT for IR)
    particle_s: float  # what one frame's particle hits accumulate over (DIT x NDIT for IR)
    ndit: int = 1


@dataclass(frozen=True)
class MasterDark:
    data: np.ndarray
    error: np.ndarray
    dq: np.ndarray
    qc: dict[str, float]


def make_master_dark(
    raws: np.ndarray,
    geometry: Geometry,
    exposure: Exposure,
    *,
    pixel_size_um: float,
    master_bias: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    config: DarkConfig | None = None,
    min_frames: int = 2,
    gain_e_per_adu: float | None = None,
    other_dits: Sequence[tuple[Frames, Exposure]] = (),
) -> MasterDark:
    """Combine raw darks (frames, NAXIS2, NAXIS1) of one detector, in ADU. Read only.

    ``gain_e_per_adu`` (the detector's nominal conversion factor will do: it scales a
    1-3 % correction) removes the dark signal's shot noise from the read noise; None
    leaves it in. ``other_dits``: raw darks of other DITs with their timing, for the
    dark current's slope against DIT (each frame (NAXIS2, NAXIS1) an array, or mapped
    where it is stored: ``fitsio.map_image``).

    Raises
    ------
    UnprocessableDataError
        Too few frames, or a frame without finite pixels.
    """
    config = config or DarkConfig()
    rows, cols = parse_section(geometry.data_section)
    sections = raws[:, rows, cols]
    names = list(names or [str(i + 1) for i in range(len(raws))])
    check_frames(sections, names=names, min_frames=min_frames, what="dark")
    groups = channel_columns(geometry, cols)
    # Each frame's level, subtracted as the combination reads it: one per frame (CCD
    # overscan), or per column (IR reference pixels, float32: the values are those of
    # ``readout.subtract_reference_levels``, whose stack is not made).
    if groups is None:
        levels = frame_levels(raws, geometry)
        column_levels = np.broadcast_to(
            levels.astype(np.float32)[:, None], (len(raws), sections.shape[2])
        )
        by_column = None
    else:
        levels = np.zeros(len(raws))
        column_levels = by_column = np.stack([reference_levels(frame, geometry) for frame in raws])
    if len(raws) >= CLIPPED_MEAN_FROM:
        combined, error, count = clipped_mean_combine(
            sections, offsets=levels, sigma=config.clip_sigma, levels=by_column
        )
    else:
        combined, error, count = median_combine(sections, offsets=levels, levels=by_column)
    master = combined if master_bias is None else combined - master_bias
    dq = np.zeros(master.shape, np.uint8)
    dq[count == 0] |= DQ_NO_DATA
    hot = find_hot_pixels(master, sigma=config.hot_sigma)
    dq[hot] |= DQ_HOT

    # Particle events: what stands out of each frame against the combined image, in
    # units of one frame's noise (from the difference to the next frame: the
    # residual to a median of three is exactly 0 at a third of the pixels, so its
    # own spread would understate the noise).
    # Every 4th row: a million differences give the noise to 0.07 %.
    sampled = [
        frame[::4] if by_column is None else np.subtract(frame[::4], level)
        for frame, level in zip(sections, column_levels, strict=True)
    ]
    events = 0
    n = len(sections)
    for i, frame in enumerate(sections):
        difference = clipped_stats(sampled[i], minus=sampled[(i + 1) % n], sigma=4)
        threshold = config.particle_sigma * difference.std / np.sqrt(2)
        hits = call_compiled_once(
            _hits_above, frame, column_levels[i], combined, np.float32(threshold), hot
        )
        events += count_groups(hits, frame.shape[1])
    area_cm2 = master.size * (pixel_size_um * 1e-4) ** 2
    spread = clipped_stats(qc_rows(master), sigma=4)  # sampled as the master bias's
    signal = dark_signal(master, hot, groups)
    if other_dits:
        series: list[tuple[Frames, Exposure]] = [(raws, exposure), *other_dits]
        current = dark_current_from_dits(series, geometry, hot=hot, groups=groups)
    else:
        current = signal / exposure.integration_s
    # Every consecutive pair, combined in quadrature (as esorex's QC.RON1..N), from the
    # raw sections, each pair's channel levels taken from its own difference.
    ron = [
        read_noise_from_pair(
            a,
            b,
            ndit=exposure.ndit,
            columns=groups,
            dark_signal_adu=signal,
            gain_e_per_adu=gain_e_per_adu,
        )
        for a, b in itertools.pairwise(sections)
    ]
    qc = {
        "QC.DARK.MED": nanmedian(median_grid(master)),
        "QC.DARK.MEAN": spread.mean,
        "QC.DARK.STDEV": spread.std,
        "QC.DARK.CURRENT": current * 3600.0,
        "QC.RON": float(np.sqrt(np.mean(np.square(ron)))),
        "QC.NHOTPIX": float(hot.sum()),
        "QC.PARTICLE_RATE": events / (area_cm2 * exposure.particle_s * len(sections)),
    }
    return MasterDark(master, error, dq, qc)


def dark_signal(
    master: np.ndarray,
    hot: np.ndarray,
    groups: list[slice] | None,
    *,
    minus: np.ndarray | None = None,
) -> float:
    """Mean dark signal of a master dark (ADU): hot pixels left out, the clipped mean
    (4 sigma) of each readout channel's even and odd columns (``groups``, from
    ``channel_columns``; the whole image where None), averaged over them weighted by
    the pixels kept. Per channel, so that clipping the tails of the whole image's
    channel pattern cannot bias it. ``minus``: a level per column taken off first."""
    if groups is None:
        image = master if minus is None else master - minus[None, :]
        return clipped_stats(np.where(hot, np.float32(np.nan), image), sigma=4).mean
    means, kept = clipped_means(master, groups, minus=minus, exclude=hot)
    return float(np.sum(means * kept) / kept.sum())


#: Of each readout channel's even and odd columns, the share one raw dark's signal
#: is taken from (``frame_dark_signal``): a HAWK-I block's dark current reads 14 raw
#: darks per chip, which took 38 % of the recipe from every second column.
FRAME_COLUMN_STEP = 4


def frame_dark_signal(
    frame: Frame,
    geometry: Geometry,
    *,
    hot: np.ndarray,
    groups: list[slice] | None,
) -> float:
    """``dark_signal`` of one raw dark (NAXIS2, NAXIS1) less its own reference levels
    (or overscan level), from every second row of its data section and, where it
    has readout channels, every ``FRAME_COLUMN_STEP``-th column of each channel's
    even and odd columns; its particle hits fall to the clipping. ``frame``: an array,
    or a raw as FITS stores it (``fitsio.map_image``), of which only the pixels taken
    are read.

    On a HAWK-I chip that is half a million pixels of about 6 ADU noise: the mean to
    0.009 ADU, 0.4 % of the 2.4 ADU a 60 s dark gathers, and the slope over a series
    of DITs averages that down further. Every second row still, so that noise common
    to a row (which no column sample averages down) is averaged over 1024 rows."""
    return _FrameSample(geometry, hot, groups).signal(frame)


class _FrameSample:
    """What ``frame_dark_signal`` takes of every frame of one detector, worked out
    once: the rows and columns, and the hot pixels among them. (Per frame, the
    columns and the hot pixels' sample took a fifth of a HAWK-I block's dark current.)"""

    def __init__(self, geometry: Geometry, hot: np.ndarray, groups: list[slice] | None) -> None:
        self.geometry = geometry
        rows, self.cols = parse_section(geometry.data_section)
        self.rows = slice(rows.start, rows.stop, 2)
        self.groups = groups
        self.hot = hot[::2]
        if groups is not None:
            sampled = [slice(g.start, g.stop, g.step * FRAME_COLUMN_STEP) for g in groups]
            self.taken, self.compact = _taken_columns(sampled, self.cols.stop - self.cols.start)
            self.columns = self.cols.start + self.taken
            self.hot = self.hot[:, self.taken]

    def signal(self, frame: Frame) -> float:
        if self.groups is None:
            level = frame_level(frame, self.geometry)
            return dark_signal(frame[self.rows, self.cols] - np.float32(level), self.hot, None)
        return dark_signal(
            _take(frame, self.rows, self.columns),
            self.hot,
            self.compact,
            minus=reference_levels(frame, self.geometry)[self.taken],
        )


def _take(frame: Frame, rows: slice, columns: np.ndarray) -> np.ndarray:
    """``frame[rows, columns]`` (``columns``: indices), the same values: ``np.take``
    of the rows' view copies a mixed index in about half numpy's time (2.0 against
    3.5 ms for a HAWK-I chip's sample from a map)."""
    if isinstance(frame, np.ndarray):
        return np.take(frame[rows], columns, axis=1)
    if isinstance(frame, MappedImage):
        return frame.take(rows, columns)
    return frame[rows, columns]


def _taken_columns(groups: list[slice], width: int) -> tuple[np.ndarray, list[slice]]:
    """The columns (of ``width``) that any of ``groups`` holds, in order, and each group
    as a slice of those: a channel's sampled even and odd columns interleave, so each
    is every second one of the columns taken. All columns and the groups themselves
    where a group is not evenly spaced among them."""
    columns = [np.arange(*group.indices(width)) for group in groups]
    taken = np.unique(np.concatenate(columns)) if columns else np.arange(0)
    compact = []
    for held in columns:
        where = np.searchsorted(taken, held)
        step = int(where[1] - where[0]) if where.size > 1 else 1
        if where.size == 0 or not np.array_equal(where, where[0] + step * np.arange(where.size)):
            return np.arange(width), groups
        compact.append(slice(int(where[0]), int(where[-1]) + 1, step))
    return taken, compact


def dark_current_from_dits(
    series: Sequence[tuple[Frames, Exposure]],
    geometry: Geometry,
    *,
    hot: np.ndarray,
    groups: list[slice] | None,
) -> float:
    """Dark current (ADU/s): the weighted least-squares slope of every frame's dark
    signal against its integration time, over stacks of darks of different DITs.

    A level the frames share whatever their DIT (a pedestal between the data and
    the reference pixels) is the intercept and changes nothing. Weights NDIT: an
    average of NDIT reads has 1/NDIT of the variance of its level.

    Raises
    ------
    UnprocessableDataError
        All frames have one integration time.
    """
    sample = _FrameSample(geometry, hot, groups)
    times, signals, weights = [], [], []
    for raws, exposure in series:
        for frame in raws:
            times.append(exposure.integration_s)
            signals.append(sample.signal(frame))
            weights.append(float(exposure.ndit))
    if len(set(times)) < 2:
        raise UnprocessableDataError(
            f"the dark current needs darks of two integration times; all have {times[0]:g} s"
        )
    slope, _ = np.polyfit(times, signals, 1, w=np.sqrt(weights))
    return float(slope)


@parallel_kernel
def _hits_above(frame, levels, combined, threshold, hot):  # type: ignore[no-untyped-def]
    """Sorted flat indices of the pixels where ``frame - levels - combined`` (float32;
    ``levels``: one per column) exceeds ``threshold`` and ``hot`` is False: one pass
    to count per row, one to fill, without the residual image (8 ms of numpy passes
    per frame before)."""
    ny, nx = frame.shape
    counts = np.zeros(ny + 1, dtype=np.int64)
    for y in numba.prange(ny):
        above = 0  # hot pixels counted too: a loop without branches
        for x in range(nx):
            above += np.int64(frame[y, x] - levels[x] - combined[y, x] > threshold)
        if above:
            for x in range(nx):
                if hot[y, x] and frame[y, x] - levels[x] - combined[y, x] > threshold:
                    above -= 1
        counts[y + 1] = above
    starts = np.cumsum(counts)
    out = np.empty(starts[ny], dtype=np.int64)
    for y in numba.prange(ny):
        k = starts[y]
        if k == starts[y + 1]:
            continue
        for x in range(nx):
            if frame[y, x] - levels[x] - combined[y, x] > threshold and not hot[y, x]:
                out[k] = y * nx + x
                k += 1
    return out
