"""Master bias and its QC parameters, one detector at a time. Pure.

The master bias is the pixel-wise median of the overscan-corrected, trimmed raw
biases: what remains is the bias *structure* (gradients, column pattern), which a
later frame needs after its own overscan level is removed.

QC parameters (names as in ESO's OmegaCAM QC1 tables where ESO has one):
  QC.BIAS.LEVEL          mean of the frames' overscan levels                 ADU
  QC.RAW.BIAS1.MEAN      clipped mean of the first raw bias (data region)    ADU
  QC.RAW.BIAS2.MEAN      same, second raw bias                               ADU
  QC.MASTER.BIAS.MEDIAN  median of the master bias (overscan-corrected)      ADU
  QC.MASTER.BIAS.STDEV   clipped standard deviation of the master bias       ADU
  QC.RON                 read noise from the first two biases                ADU
  QC.BIAS.GRADIENT       peak-to-peak of a plane fitted to the master        ADU
  QC.BIAS.FPN            rms of the detrended column pattern                 ADU
  QC.NHOTPIX             pixels > k sigma above their local level            count
QC.RON removes the quantisation noise of integer raws (1/12 ADU^2, one ADC step),
and is measured with a clipped standard deviation, not the MAD: on ~2-ADU noise the
MAD reads several per cent high (shared/peers/hawki_esorex.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qclib.calib.combine import median_combine
from qclib.calib.defects import find_hot_pixels
from qclib.calib.dq import DQ_HOT, DQ_NO_DATA
from qclib.calib.readout import check_frames, frame_levels, read_noise_from_pair
from qclib.calib.stats import clipped_stats
from qclib.config.instrument import Geometry, parse_section
from qclib.errors import UnprocessableDataError


@dataclass(frozen=True)
class BiasConfig:
    """Parameters of the master bias recipe."""

    hot_sigma: float = 5.0
    min_frames: int = 3


@dataclass(frozen=True)
class MasterBias:
    data: np.ndarray
    error: np.ndarray
    dq: np.ndarray
    qc: dict[str, float]


def _plane_ptp(image: np.ndarray, bin_size: int = 32) -> float:
    """Peak-to-peak over the detector of a plane fitted to block medians (of every
    second pixel of every second row: the plane does not need more)."""
    image = image[::2, ::2]
    bin_size //= 2
    ny, nx = image.shape
    by, bx = max(ny // bin_size, 1), max(nx // bin_size, 1)
    cropped = image[: by * (ny // by), : bx * (nx // bx)]
    blocks = cropped.reshape(by, ny // by, bx, nx // bx)
    medians = np.median(blocks, axis=(1, 3))
    yy, xx = np.mgrid[0:by, 0:bx]
    design = np.column_stack([np.ones(medians.size), xx.ravel(), yy.ravel()])
    coef, *_ = np.linalg.lstsq(design, medians.ravel(), rcond=None)
    corners = np.array([[1, 0, 0], [1, bx - 1, 0], [1, 0, by - 1], [1, bx - 1, by - 1]]) @ coef
    return float(corners.max() - corners.min())


def make_master_bias(
    raws: np.ndarray | Sequence[np.ndarray],
    geometry: Geometry,
    config: BiasConfig | None = None,
) -> MasterBias:
    """Combine raw bias readouts of one detector.

    ``raws``: a stack (frames, NAXIS2, NAXIS1) of full raw images in ADU, float32, or a
    list of them. Read, never modified: overscan levels are subtracted inside the
    combination, trimming is a view.

    Raises
    ------
    UnprocessableDataError
        Too few frames, frames of different shapes, or frames with no valid pixels.
    """
    config = config or BiasConfig()
    if len(raws) >= 1 and not isinstance(raws, np.ndarray):
        shapes = {r.shape for r in raws}
        if len(shapes) != 1:
            raise UnprocessableDataError(f"bias frames of different shapes: {sorted(shapes)}")
        raws = np.stack(raws)
    raws = np.asarray(raws)
    if raws.ndim != 3 or raws.shape[1:] != (geometry.naxis2, geometry.naxis1):
        raise UnprocessableDataError(
            f"bias frames of shape {raws.shape[1:]}, not the "
            f"{geometry.naxis1}x{geometry.naxis2} of this readout"
        )
    rows, cols = parse_section(geometry.data_section)
    data = raws[:, rows, cols]
    check_frames(
        data,
        names=[str(i + 1) for i in range(len(data))],
        min_frames=config.min_frames,
        what="bias",
    )
    levels = frame_levels(raws, geometry)
    master, error, count = median_combine(data, offsets=levels)
    dq = np.zeros(master.shape, np.uint8)
    dq[count == 0] |= DQ_NO_DATA

    spread = clipped_stats(master, sigma=5)
    median = float(np.nanmedian(master[::3, ::3]))  # 1/9 of the pixels: +-0.005 ADU
    # Against the local level: edge ramps and column patterns are not hot pixels.
    hot = find_hot_pixels(master, sigma=config.hot_sigma)
    dq[hot] |= DQ_HOT
    # Fixed-pattern noise: the column medians, less their large-scale (linear) trend,
    # which QC.BIAS.GRADIENT already reports.
    # (Every fourth row: 0.03 ADU of noise per column against a 0.5-ADU pattern.)
    column_pattern = np.median(master[::4], axis=0).astype(np.float64)
    columns = np.arange(column_pattern.size)
    column_pattern -= np.polyval(np.polyfit(columns, column_pattern, 1), columns)
    qc = {
        "QC.BIAS.LEVEL": float(np.mean(levels)),
        "QC.RAW.BIAS1.MEAN": clipped_stats(data[0], sigma=5).mean,
        "QC.RAW.BIAS2.MEAN": clipped_stats(data[1], sigma=5).mean,
        "QC.MASTER.BIAS.MEDIAN": median,
        "QC.MASTER.BIAS.STDEV": spread.std,
        "QC.RON": read_noise_from_pair(data[0], data[1]),
        "QC.BIAS.GRADIENT": _plane_ptp(master),
        "QC.BIAS.FPN": clipped_stats(column_pattern, sigma=5).std,
        "QC.NHOTPIX": float(hot.sum()),
    }
    return MasterBias(master, error, dq, qc)
