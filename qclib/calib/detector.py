"""Per-detector pixel steps of CCD and IR raws: scaling, overscan, trimming, noise. Pure.

Raw CCD values arrive as big-endian int16 with BZERO=32768 (``fits.open(...,
do_not_scale_image_data=True)``, the fastest read); everything here works on native
float32, and never modifies its inputs.
"""

from __future__ import annotations

import numpy as np
from astropy.stats import sigma_clipped_stats

from qclib.config.instrument import Geometry, parse_section


def to_float(raw: np.ndarray, bzero: float = 0.0, bscale: float = 1.0) -> np.ndarray:
    """Raw stored values -> native-order float32 physical values (a new array)."""
    out = raw.astype(np.float32)  # astype converts byte order too
    if bscale != 1.0:
        out *= np.float32(bscale)
    if bzero:
        out += np.float32(bzero)
    return out


def overscan_level(image: np.ndarray, geometry: Geometry) -> float:
    """The frame's bias level from its serial overscan (sigma-clipped mean, ADU).

    Raises
    ------
    ValueError
        The geometry has no overscan (IR arrays).
    """
    if geometry.overscan_section is None:
        raise ValueError("this readout has no overscan region")
    rows, cols = parse_section(geometry.overscan_section)
    mean, _median, _std = sigma_clipped_stats(image[rows, cols], sigma=4, maxiters=5)
    return float(mean)


def trim(image: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The light-sensitive data region (a copy, float32)."""
    rows, cols = parse_section(geometry.data_section)
    return np.array(image[rows, cols], dtype=np.float32)


def overscan_corrected(image: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, float]:
    """Trimmed data minus the frame's overscan level; returns (data, level)."""
    level = overscan_level(image, geometry) if geometry.overscan_section else 0.0
    data = trim(image, geometry)
    data -= np.float32(level)
    return data, level


def robust_std(values: np.ndarray, *, sigma: float = 5.0) -> float:
    """Clipped standard deviation: unlike 1.4826*MAD, unbiased on integer-valued data.

    ESO's pipelines estimate noise with the MAD, which on integer data with a noise of
    ~2 ADU reads 3-7 % high (shared/peers/hawki_esorex.md); a 5-sigma clipped standard
    deviation does not.
    """
    finite = values[np.isfinite(values)]
    return float(sigma_clipped_stats(finite, sigma=sigma, maxiters=10)[2])


def read_noise_from_pair(a: np.ndarray, b: np.ndarray) -> float:
    """Read noise (same units as the frames) from two frames of equal signal."""
    if a.shape != b.shape:
        raise ValueError(f"frame shapes differ: {a.shape} vs {b.shape}")
    return robust_std(a.astype(np.float64) - b.astype(np.float64)) / np.sqrt(2.0)
