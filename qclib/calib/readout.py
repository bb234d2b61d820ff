"""Facts about raw readouts that every calibration needs: per-frame bias levels and
checks that frames are usable. Pure.

A CCD readout carries its bias level in the overscan; an IR array in its reference
pixels (the border outside the data section, blind to light). Either way the level
moves from frame to frame, so each frame's own level is removed before combining.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qclib.calib.stats import clipped_stats
from qclib.config.instrument import Geometry, parse_section
from qclib.errors import UnprocessableDataError

#: A frame with more than this fraction of its data pixels at saturation is unusable.
SATURATED_FRACTION = 0.01


def frame_level(frame: np.ndarray, geometry: Geometry) -> float:
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


def frame_levels(stack: np.ndarray | Sequence[np.ndarray], geometry: Geometry) -> np.ndarray:
    """``frame_level`` of every frame of a stack."""
    return np.array([frame_level(frame, geometry) for frame in stack])


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
        step = max(1, frame.shape[0] // 512)
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


#: Variance of rounding to whole ADU (one ADC step), in ADU^2.
QUANTISATION_VARIANCE_ADU2 = 1.0 / 12.0


def is_integer_valued(frame: np.ndarray) -> bool:
    """True for raws holding whole ADU (CCD digitisation), judged on a sparse sample."""
    return bool(np.all(np.equal(np.mod(frame[::97, ::13], 1.0), 0.0)))


def read_noise_from_pair(
    first: np.ndarray,
    second: np.ndarray,
    *,
    ndit: int = 1,
) -> float:
    """Read noise (ADU, one read) from two frames of the same scene.

    The clipped standard deviation of their difference (a constant level difference
    changes nothing), divided by sqrt(2); integer raws lose the quantisation variance
    (1/12 ADU^2 each), averaged IR raws (NDIT reads) are scaled back to one read.
    A clipped standard deviation, not the MAD: on ~2-ADU integer noise the MAD reads
    several per cent high (shared/peers/hawki_esorex.md).
    """
    spread = clipped_stats(first, minus=second, sigma=5).std
    variance = spread**2 / 2 - (QUANTISATION_VARIANCE_ADU2 if is_integer_valued(first) else 0.0)
    return float(np.sqrt(max(variance, 0.0) * ndit))
