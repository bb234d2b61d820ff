"""Master flats (dome, twilight, combined), cold pixels and flat QC, per detector. Pure.

Each raw flat loses its bias level (overscan or reference pixels) and a master bias
or dark, is divided by its own median level, and the stack is median-combined and
normalised to a median of 1. The master flat of a CCD takes its pixel-to-pixel
response from the dome flat (high signal, no stars) and its illumination from the
twilight flat (the sky, as science frames see it): twilight / dome in 8-pixel blocks,
fine enough for a dome screen's ripple, interpolated back to every pixel.

QC parameters:
  QC.FLAT.MED        median level of the raw flats (bias removed)            ADU
  QC.FLAT.FLUXRATE   mean level per second of exposure                       ADU/s
  QC.FLAT.RATIO      highest / lowest level per second among the frames      -
  QC.FLAT.STRUCT     rms of the large-scale structure of the master          -
  QC.FLAT.PRNU       rms of the small-scale response (noise removed)         -
  QC.NCOLDPIX        pixels > cold_sigma below the local response and < 0.9  count
  QC.FLAT.NBADPIX    cold, hot (from the calibrations' DQ) or empty pixels   count
  QC.FLAT.ILLUM.RMS  rms of the twilight/dome illumination over 64-px blocks  -
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qclib.calib.combine import median_combine, median_combine_stored
from qclib.calib.defects import (
    block_medians,
    cold_in_response,
    expand_blocks,
    smooth_large_scale,
)
from qclib.calib.dq import DQ_COLD, DQ_NO_DATA
from qclib.calib.parameters import FlatConfig
from qclib.calib.readout import CHECKED_ROWS, check_frames, frame_levels
from qclib.calib.selection import nanmedian, nanpercentiles
from qclib.calib.stats import ClippedStats, clipped_stats
from qclib.config.instrument import Geometry, parse_section
from qclib.errors import UnprocessableDataError
from qclib.stored_pixels import StoredStack


@dataclass(frozen=True)
class MasterFlat:
    data: np.ndarray  # normalised: median 1
    error: np.ndarray
    dq: np.ndarray
    qc: dict[str, float]


#: Rows a flat's median level is taken from (at least this many, evenly spaced).
_LEVEL_ROWS = 128


def _median_level(image: np.ndarray) -> float:
    """Median of every (NAXIS2 // 128)-th row: about 260,000 values of a 2k-wide
    detector, the level to 0.005 % of a flat's (a 1.7 % pixel spread), in 4 ms
    instead of the 15 ms of every 4th row (13 levels per HAWK-I chip)."""
    step = max(1, image.shape[0] // _LEVEL_ROWS)
    return nanmedian(image[::step])


#: A flat frame whose level above bias is under this many times its pixels' spread
#: has no light.
NO_LIGHT_NOISES = 3.0


def _level_and_noise(image: np.ndarray, *, sampled: bool = False) -> tuple[float, float]:
    """``_median_level`` and the pixels' spread (interquartile range / 1.349, the
    standard deviation of Gaussian values) from the same rows, in one selection.
    ``sampled``: ``image`` holds those rows only (``_sampled``)."""
    step = 1 if sampled else max(1, image.shape[0] // _LEVEL_ROWS)
    low, median, high = nanpercentiles(image[::step], [25, 50, 75])
    return median, (high - low) / 1.349


def _sampled(
    raws: np.ndarray | StoredStack, rows: slice, cols: slice, step: int
) -> list[np.ndarray]:
    """Every ``step``-th row of each frame's data section (of a stored stack: only
    those converted)."""
    taken = slice(rows.start, rows.stop, step)
    if isinstance(raws, StoredStack):
        return [image[taken, cols] for image in raws]
    return list(raws[:, taken, cols])


def make_master_flat(
    raws: np.ndarray | StoredStack,
    geometry: Geometry,
    exptimes_s: Sequence[float],
    *,
    background: np.ndarray | None = None,
    saturation_adu: float | None = None,
    names: Sequence[str] | None = None,
    config: FlatConfig | None = None,
    min_frames: int = 3,
) -> MasterFlat:
    """Combine raw flats (frames, NAXIS2, NAXIS1) of one detector. Read only.

    ``raws``: a stack, or the frames as FITS stores them (``StoredStack``: read in
    place, the same result bit for bit). ``background``: master bias (CCD) or master
    dark of the flats' DIT (IR), over the data section, subtracted from every frame
    before it is scaled.

    Raises
    ------
    UnprocessableDataError
        Too few frames, a frame without finite pixels, saturated, or without light.
    """
    config = config or FlatConfig()
    rows, cols = parse_section(geometry.data_section)
    names = list(names or [str(i + 1) for i in range(len(raws))])
    ny = len(range(geometry.naxis2)[rows])
    check_frames(
        _sampled(raws, rows, cols, max(1, ny // CHECKED_ROWS)),
        names=names,
        min_frames=min_frames,
        what="flat",
        saturation_adu=saturation_adu,
    )
    levels = frame_levels(raws, geometry)
    under = 0.0 if background is None else _median_level(background)
    scales = np.empty(len(raws))
    sampled = _sampled(raws, rows, cols, max(1, ny // _LEVEL_ROWS))
    for i, (name, frame, level) in enumerate(zip(names, sampled, levels, strict=True)):
        median, noise = _level_and_noise(frame, sampled=True)
        scales[i] = median - level - under
        # A flat's level stands far above its pixels' spread (10,000 ADU against
        # about 100); a frame of bias and noise has a level of 0 within a few
        # thousandths of it, either side.
        if not scales[i] > NO_LIGHT_NOISES * noise:
            raise UnprocessableDataError(
                f"flat frame {name} has no light (median level {scales[i]:.1f} ADU above "
                f"bias, not {NO_LIGHT_NOISES:g} times its pixels' spread of {noise:.1f} ADU)"
            )
    if isinstance(raws, StoredStack):
        combined, error, count = median_combine_stored(
            raws, rows, cols, offsets=levels, background=background, scales=scales
        )
    else:
        combined, error, count = median_combine(
            raws[:, rows, cols], offsets=levels, background=background, scales=scales
        )
    norm = _median_level(combined)
    # Normalised in place, in the combination's own arrays: a new 2048x2048 float32
    # array took 34 ms where the VM had to back its pages afresh, against 0.5 ms.
    master = combined
    master /= np.float32(norm)
    error /= np.float32(norm)
    dq = np.zeros(master.shape, np.uint8)
    dq[count == 0] |= DQ_NO_DATA
    # One large-scale map, response and its statistics for the cold pixels and the
    # structure QC (each made twice, they took 0.15 s and then 25 ms more per chip).
    smooth = smooth_large_scale(master, box=config.smooth_box_px)
    relative = master / smooth
    response = clipped_stats(relative, sigma=4)
    cold = cold_in_response(
        relative, response, sigma=config.cold_sigma, max_response=config.cold_max_response
    )
    dq[cold] |= DQ_COLD
    qc = {
        **measure_flat_structure(master, error, smooth=smooth, response=response),
        "QC.FLAT.MED": float(np.median(scales)),
        **measure_flux_rates(list(scales), exptimes_s),
        "QC.NCOLDPIX": float(cold.sum()),
    }
    return MasterFlat(master, error, dq, qc)


def measure_flux_rates(levels: Sequence[float], exptimes_s: Sequence[float]) -> dict[str, float]:
    """Mean level per second, and the ratio of the highest to the lowest.

    >>> measure_flux_rates([100.0, 200.0], [1.0, 4.0])
    {'QC.FLAT.FLUXRATE': 75.0, 'QC.FLAT.RATIO': 2.0}
    """
    rates = np.asarray(levels, float) / np.asarray(exptimes_s, float)
    return {
        "QC.FLAT.FLUXRATE": float(rates.mean()),
        "QC.FLAT.RATIO": float(rates.max() / rates.min()),
    }


def measure_flat_structure(
    flat: np.ndarray,
    error: np.ndarray,
    *,
    smooth: np.ndarray,
    response: ClippedStats | None = None,
) -> dict[str, float]:
    """Large-scale rms and small-scale response rms (noise removed) of a normalised flat
    whose large-scale structure is ``smooth`` (``smooth_large_scale``). ``response``:
    the 4-sigma clipped statistics of ``flat / smooth``, when known."""
    small = clipped_stats(flat / smooth, sigma=4) if response is None else response
    noise = _median_level(error)
    return {
        "QC.FLAT.STRUCT": clipped_stats(smooth, sigma=5).std,
        "QC.FLAT.PRNU": float(np.sqrt(max(small.std**2 - noise**2, 0.0))),
    }


def illumination_correction(dome: np.ndarray, twilight: np.ndarray, *, box: int = 8) -> np.ndarray:
    """How the sky illuminates the detector relative to the dome lamp: medians of
    ``box`` x ``box`` blocks of twilight / dome, normalised to a median of 1 (the
    pixel response, cold pixels included, divides out of the ratio)."""
    medians = block_medians(twilight / dome, box=box)
    return medians / np.nanmedian(medians)


def measure_illumination_rms(correction: np.ndarray, *, box: int, scale_px: int = 64) -> float:
    """QC.FLAT.ILLUM.RMS: rms of the illumination correction (blocks of ``box``
    pixels) over ``scale_px`` blocks, the scale where its noise no longer counts
    (0.01 % against corrections of 0.3-1 %).

    >>> round(measure_illumination_rms(np.array([[0.99, 0.99, 1.01, 1.01]] * 2), box=32), 6)
    0.01
    """
    coarse = block_medians(correction, box=max(1, scale_px // box))
    return float(np.std(coarse / np.nanmedian(coarse)))


def apply_illumination(
    dome: np.ndarray, dome_error: np.ndarray, correction: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The master flat: the dome flat's pixel response times the twilight's
    illumination relative to the dome (``correction``'s blocks, bilinear), normalised
    to median 1; and its uncertainty."""
    smooth = expand_blocks(correction, dome.shape)
    master = dome * smooth
    norm = np.float32(_median_level(master))
    return master / norm, dome_error * smooth / norm
