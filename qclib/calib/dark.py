"""Master dark and its QC parameters, one detector at a time. Pure.

CCD darks (OmegaCAM) have their overscan level and the master bias removed; IR darks
(HAWK-I) their reference-pixel level: what remains is dark current, plus, for IR
arrays, the pedestal structure a frame of the same DIT also carries. Five frames or
more are combined with a clipped mean, fewer with a median (a clipped mean cannot
clip among fewer than three values).

QC parameters:
  QC.DARK.MED         median of the master dark                              ADU
  QC.DARK.MEAN        clipped mean of the master dark                        ADU
  QC.DARK.STDEV       clipped standard deviation of the master dark          ADU
  QC.DARK.CURRENT     clipped mean / integration time                        ADU/hr
  QC.RON              read noise of one read from consecutive frame pairs   ADU
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

import numpy as np

from qclib.calib.combine import clipped_mean_combine, median_combine
from qclib.calib.defects import count_events, find_hot_pixels
from qclib.calib.dq import DQ_HOT, DQ_NO_DATA
from qclib.calib.readout import check_frames, frame_levels, read_noise_from_pair
from qclib.calib.stats import clipped_stats
from qclib.config.instrument import Geometry, parse_section

#: Frames from which on a clipped mean replaces the median.
CLIPPED_MEAN_FROM = 5


@dataclass(frozen=True)
class DarkConfig:
    """Parameters of the master dark recipe."""

    hot_sigma: float = 6.0
    particle_sigma: float = 7.0
    clip_sigma: float = 3.0
    min_frames: int = 2


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
) -> MasterDark:
    """Combine raw darks (frames, NAXIS2, NAXIS1) of one detector, in ADU. Read only.

    Raises
    ------
    UnprocessableDataError
        Too few frames, or a frame without finite pixels.
    """
    config = config or DarkConfig()
    rows, cols = parse_section(geometry.data_section)
    data = raws[:, rows, cols]
    names = list(names or [str(i + 1) for i in range(len(raws))])
    check_frames(data, names=names, min_frames=config.min_frames, what="dark")
    levels = frame_levels(raws, geometry)
    if len(raws) >= CLIPPED_MEAN_FROM:
        combined, error, count = clipped_mean_combine(data, offsets=levels, sigma=config.clip_sigma)
    else:
        combined, error, count = median_combine(data, offsets=levels)
    master = combined if master_bias is None else combined - master_bias
    dq = np.zeros(master.shape, np.uint8)
    dq[count == 0] |= DQ_NO_DATA
    hot = find_hot_pixels(master, sigma=config.hot_sigma)
    dq[hot] |= DQ_HOT

    # Particle events: what stands out of each frame against the combined image, in
    # units of one frame's noise (from the difference to the next frame: the
    # residual to a median of three is exactly 0 at a third of the pixels, so its
    # own spread would understate the noise).
    events = 0
    n = len(data)
    for i, (frame, level) in enumerate(zip(data, levels, strict=True)):
        noise = clipped_stats(frame, minus=data[(i + 1) % n], sigma=4).std / np.sqrt(2)
        residual = frame - np.float32(level) - combined
        hits = (residual > config.particle_sigma * noise) & ~hot
        events += count_events(hits)
    area_cm2 = master.size * (pixel_size_um * 1e-4) ** 2
    spread = clipped_stats(master, sigma=4)
    qc = {
        "QC.DARK.MED": float(np.nanmedian(master)),
        "QC.DARK.MEAN": spread.mean,
        "QC.DARK.STDEV": spread.std,
        "QC.DARK.CURRENT": spread.mean / exposure.integration_s * 3600.0,
        # Every consecutive pair, combined in quadrature (as esorex's QC.RON1..N).
        "QC.RON": float(
            np.sqrt(
                np.mean(
                    [
                        read_noise_from_pair(a, b, ndit=exposure.ndit) ** 2
                        for a, b in itertools.pairwise(data)
                    ]
                )
            )
        ),
        "QC.NHOTPIX": float(hot.sum()),
        "QC.PARTICLE_RATE": events / (area_cm2 * exposure.particle_s * len(data)),
    }
    return MasterDark(master, error, dq, qc)
