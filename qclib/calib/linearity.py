"""Detector non-linearity from a dome-flat sequence at increasing DIT, per readout
channel, as ESO's VIRCAM pipeline (``vircam_linearity_analyse``) measures it. Pure.

The model is CASU's for double-correlated (reset-read-read) readouts, where a raw
frame is the second read less the first, both distorted (M. Irwin, "A brief note on
non-linearity correction", VDF-TRE-IOA-00008-0003, CASU,
https://people.ast.cam.ac.uk/~wfcam/docs/reports/nonlinearity/non-lin.tex):

    M = f(I2) - f(I1),   I1 = r t_r,   I2 = r (t_r + DIT),   f(I) = sum_m a_m I^m

with r the (linear) count rate, t_r the time between the reset and the first read
(VIRCAM's reset-read overhead, its minimum DIT of 1.0011 s: ESO's VIRCAM reset QC
page, http://www.eso.org/observing/dfo/quality/VIRCAM/qc/qc_VC_reset.html; the same
1.0011 s in smeingast/vircampype:vircampype/tools/mathtools.py ``linearity_fitfunc``)
and a_1 = 1. The polynomial has no constant term: the VIRCAM recipe's ``nord`` is
"the order of the polynomial ... there is no zeroth order coefficient" (CASU's
pipeline documentation, people.ast.cam.ac.uk/~wfcam/docs/vista/vircam_manual/
group__vircam__linearity__analyse.html). Over a sequence at one lamp level,

    M(DIT) = sum_m b_m [(DIT + t_r)^m - t_r^m],   b_m = a_m r^m,

is linear in b: a weighted least-squares fit of each channel's levels gives r = b_1
and a_m = b_m / b_1^m. A frame of integration time DIT is linearised by solving
sum_m a_m [(1 + k)^m - k^m] I^m = M for I, k = t_r / DIT (Irwin's note): I is what
the frame would hold were the detector linear, r DIT.

VIRCAM fits each data channel separately ("the linearity distortion for each data
channel", same CASU page); a channel's level in a frame is the clipped mean of its
pixels in the dark-subtracted flat. Levels at or above ``saturation_adu`` are left
out (the same cut: vircampype flat.py ``build_master_linearity``). A lamp that drifts through
the sequence is followed by monitor exposures at one DIT (VIRCAM's ``adjust``
option, same CASU page; ESO's qc_LINE page shows the 5-s monitor flats): each
frame's rate is the monitor's level at that time, linearised, over their mean.

QC parameters (per detector: the median over its channels):
  QC.LINEARITY   "% non-linearity at 10000 ADU" (ESO's VIRCAM linearity QC page,
                 www.eso.org/observing/dfo/quality/VIRCAM/qc/linearity_qc1.html;
                 its health check trends it in per cent, median 3.6 %, thresholds
                 2.65-4.65 % on the 16-detector mean: .../VIRCAM/reports/HEALTH/
                 trend_report_LINEARITY_AVG_HC.html): here the per cent by which the
                 linearised level exceeds the measured one at the DIT where the
                 fitted sequence measures 10,000 ADU (vircampype's NL10000 the same
                 way, flat.py ``build_master_linearity``)                    %
  QC.LINERROR    rms over the frames used of the linearised level's deviation
                 from r DIT. ESO's own definition of QC.LINERROR was not found
                 (no VIRCAM source code or dictionary entry reachable): this is
                 the fit's residual in the same per cent                     %

Raw VIRCAM frames of NDIT > 1 hold the sum of NDIT integrations (research notes:
vircampype divides by NDIT before linearising, flat.py; CASU's ``vircam_lincor``
takes ``ndit``): divide by NDIT before these functions see them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np

from qclib.calib.readout import clipped_means
from qclib.compile_once import parallel_kernel
from qclib.errors import UnprocessableDataError

#: Newton steps when linearising, starting from M: measured on a cubic f, five reach
#: float64 rounding where the frame is 34 % short of linear, six reach 1e-6 ADU at 67 %.
_NEWTON_STEPS = 6


@dataclass(frozen=True)
class LinearityConfig:
    """How a linearity sequence is analysed.

    saturation_adu: levels at or above this are left out of the fit (ADU).
    order: polynomial order of f (coefficients a_1..a_order, no constant term).
    reset_read_s: time between reset and first read (s).
    reference_adu: the measured level at which QC.LINEARITY is quoted (ADU).
    channel_width_px: columns per readout channel (None: the whole detector is one).
    """

    saturation_adu: float
    order: int = 3
    reset_read_s: float = 0.0
    reference_adu: float = 10000.0
    channel_width_px: int | None = None


@dataclass(frozen=True)
class LampMonitor:
    """Monitor exposures at one DIT taken through the sequence.

    times_s: when each was taken (s, any zero point shared with the sequence's times).
    levels_adu: each channel's level in each (n_channels, n_monitor), dark removed.
    dit_s: their integration time (s).
    """

    times_s: np.ndarray
    levels_adu: np.ndarray
    dit_s: float


@dataclass(frozen=True)
class LinearityCorrection:
    """What undoing a detector's non-linearity needs: ``coefficients`` a_1..a_order per
    readout channel (n_channels, order), the reset-read time and the channel width."""

    coefficients: np.ndarray
    reset_read_s: float
    channel_width_px: int | None


@dataclass(frozen=True)
class Linearity:
    """A detector's non-linearity, one row per readout channel.

    coefficients: a_1..a_order of f (a_1 = 1), mapping linear ADU to measured ADU of
        one read, (n_channels, order).
    rates_adu_per_s: each channel's linear count rate in the sequence.
    nonlinearity_pct: per cent non-linearity at ``reference_adu`` (NaN where the
        fitted sequence does not reach it).
    error_pct: rms deviation of the linearised levels from r DIT, per cent.
    levels_adu: each channel's measured level in each frame (n_channels, n_frames).
    used: which levels entered the fit (below saturation), same shape.
    """

    coefficients: np.ndarray
    rates_adu_per_s: np.ndarray
    nonlinearity_pct: np.ndarray
    error_pct: np.ndarray
    levels_adu: np.ndarray
    used: np.ndarray
    reset_read_s: float
    channel_width_px: int | None

    def qc(self) -> dict[str, float]:
        return {
            "QC.LINEARITY": float(np.nanmedian(self.nonlinearity_pct)),
            "QC.LINERROR": float(np.median(self.error_pct)),
        }


def channel_slices(width_px: int, channel_width_px: int | None) -> list[slice]:
    """Column ranges of the readout channels of a data section ``width_px`` wide.

    >>> channel_slices(256, 128)
    [slice(0, 128, None), slice(128, 256, None)]
    """
    if channel_width_px is None:
        return [slice(0, width_px)]
    if width_px % channel_width_px:
        raise ValueError(f"{width_px} columns are not whole channels of {channel_width_px}")
    return [slice(x, x + channel_width_px) for x in range(0, width_px, channel_width_px)]


def channel_levels(
    flat: np.ndarray,
    dark: np.ndarray,
    *,
    channel_width_px: int | None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Clipped mean (4 sigma) of each readout channel of ``flat - dark`` (ADU), masked
    pixels (True) left out: one value per channel.

    A clipped mean rather than a median: on whole-ADU raws the median moves in
    half-ADU steps, which added 40 % to the scatter of a 32,768-pixel channel's level
    at 10,000 ADU (measured in tests/calib/test_linearity.py's sequences), and a mean
    has 1/1.25 of a median's noise besides.
    """
    difference = np.subtract(flat, dark, dtype=np.float32)
    if mask is not None:
        difference[mask] = np.nan
    return clipped_means(
        difference, channel_slices(difference.shape[1], channel_width_px), sigma=4.0
    )[0]


def measure_lamp_monitor(
    flats: Sequence[np.ndarray],
    dark: np.ndarray,
    times_s: Sequence[float],
    dit_s: float,
    *,
    channel_width_px: int | None,
    mask: np.ndarray | None = None,
) -> LampMonitor:
    """The ``LampMonitor`` of monitor flats (data sections) of one DIT and their dark."""
    levels = np.array(
        [channel_levels(f, dark, channel_width_px=channel_width_px, mask=mask) for f in flats]
    ).T
    return LampMonitor(np.asarray(times_s, dtype=np.float64), levels, float(dit_s))


def _basis(dits_s: np.ndarray, order: int, reset_read_s: float) -> np.ndarray:
    """[(DIT + t_r)^m - t_r^m] for m = 1..order, one row per DIT."""
    m = np.arange(1, order + 1)
    return (dits_s[:, None] + reset_read_s) ** m - reset_read_s**m


def linearise_levels(
    measured_adu: np.ndarray,
    coefficients: np.ndarray,
    dit_s: float | np.ndarray,
    *,
    reset_read_s: float,
) -> np.ndarray:
    """Linear ADU of double-correlated levels: the I that solves
    sum_m a_m [(1 + k)^m - k^m] I^m = M with k = t_r / DIT (Newton's method from M).

    ``coefficients`` (order,) or broadcastable to (order, *measured.shape);
    ``dit_s`` a float or broadcastable to ``measured_adu``.

    >>> float(linearise_levels(np.array(9000.0), np.array([1.0, -1e-5]), 1e9,
    ...                        reset_read_s=0.0).round(3))
    10000.0
    """
    measured = np.asarray(measured_adu, dtype=np.float64)
    a = np.asarray(coefficients, dtype=np.float64)
    a = a.reshape(a.shape + (1,) * (measured.ndim + 1 - a.ndim))
    k = reset_read_s / np.asarray(dit_s, dtype=np.float64)
    m = np.arange(1, len(a) + 1).reshape((-1,) + (1,) * measured.ndim)
    c = a * ((1.0 + k) ** m - k**m)
    level = measured.copy()
    for _ in range(_NEWTON_STEPS):
        value = np.zeros_like(level)
        slope = np.zeros_like(level)
        for i in range(c.shape[0] - 1, -1, -1):  # Horner, value and derivative together
            slope = slope * level + value
            value = value * level + c[i]
        # f_k(I) = I P(I), f_k'(I) = P(I) + I P'(I).
        derivative = value + level * slope
        level = level - (level * value - measured) / np.where(derivative == 0, 1.0, derivative)
    return level


@parallel_kernel
def _linearise_kernel(image, c, out):  # type: ignore[no-untyped-def]
    """Newton's method per pixel for sum_m c[m, x] I^(m+1) = image[y, x]."""
    ny, nx = image.shape
    order = c.shape[0]
    for y in numba.prange(ny):
        for x in range(nx):
            measured = np.float64(image[y, x])
            level = measured
            for _ in range(_NEWTON_STEPS):
                value = 0.0
                slope = 0.0
                for i in range(order - 1, -1, -1):
                    slope = slope * level + value
                    value = value * level + c[i, x]
                derivative = value + level * slope
                if derivative == 0.0:
                    break
                step = (level * value - measured) / derivative
                level -= step
                if abs(step) < 1e-6:  # ADU: far below float32's resolution of the output
                    break
            out[y, x] = level


def linearise(
    image: np.ndarray,
    linearity: Linearity | LinearityCorrection,
    dit_s: float,
) -> np.ndarray:
    """A new float32 image (data section, dark removed) with each channel's
    non-linearity undone: every pixel at what a linear detector would have read in
    ``dit_s`` seconds (``linearise_levels`` pixel by pixel, compiled: a 2048x2048
    image of levels up to 22,000 ADU took 2.4 s with numpy's array passes, 0.14-0.22 s
    so, on this shared 2-core machine)."""
    slices = channel_slices(image.shape[1], linearity.channel_width_px)
    if len(slices) != linearity.coefficients.shape[0]:
        raise ValueError(
            f"{len(slices)} channels in the image, {linearity.coefficients.shape[0]} fitted"
        )
    order = linearity.coefficients.shape[1]
    k = linearity.reset_read_s / dit_s
    m = np.arange(1, order + 1)
    per_column = np.empty((order, image.shape[1]))
    for columns, a in zip(slices, linearity.coefficients, strict=True):
        per_column[:, columns] = (a * ((1.0 + k) ** m - k**m))[:, None]
    out = np.empty(image.shape, np.float32)
    _linearise_kernel(np.asarray(image, dtype=np.float32), per_column, out)
    return out


def _measured(coefficients: np.ndarray, rate: float, dit_s: float, reset_read_s: float) -> float:
    b = coefficients * rate ** np.arange(1, coefficients.size + 1)
    return float(_basis(np.array([dit_s]), coefficients.size, reset_read_s)[0] @ b)


def nonlinearity_at(
    level_adu: float, coefficients: np.ndarray, rate_adu_per_s: float, *, reset_read_s: float
) -> float:
    """Per cent by which the linear level exceeds ``level_adu`` where the fitted
    sequence (rate, coefficients) measures ``level_adu``: 100 (r DIT / level - 1) at
    the DIT where M(DIT) = level. NaN where the fitted curve turns over first."""
    low, high = 0.0, level_adu / rate_adu_per_s
    while _measured(coefficients, rate_adu_per_s, high, reset_read_s) < level_adu:
        # The curve must keep rising; give up once it turns over (no such DIT).
        if _measured(coefficients, rate_adu_per_s, 1.01 * high, reset_read_s) <= _measured(
            coefficients, rate_adu_per_s, high, reset_read_s
        ):
            return float("nan")
        low, high = high, 2.0 * high
    # Imported here: scipy.optimize takes 0.36 s to import, and the flats and darks that
    # import this module for ``undo_nonlinearity`` never call this.
    from scipy.optimize import brentq

    dit = brentq(
        lambda t: _measured(coefficients, rate_adu_per_s, t, reset_read_s) - level_adu,
        low,
        high,
        xtol=1e-12,
        rtol=1e-14,
    )
    return 100.0 * (rate_adu_per_s * dit / level_adu - 1.0)


def fit_channel(
    levels_adu: np.ndarray,
    dits_s: np.ndarray,
    *,
    order: int,
    reset_read_s: float,
    lamp_scale: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Coefficients a_1..a_order (a_1 = 1) and linear rate (ADU/s) of one channel's
    levels at the given DITs.

    ``lamp_scale``: the lamp's rate in each frame relative to the sequence's mean
    (1 when steady): term m of frame i scales as lamp_scale_i^m. Weights
    1/sqrt(level): photon noise dominates a flat's level.
    """
    design = _basis(dits_s, order, reset_read_s)
    if lamp_scale is not None:
        design = design * lamp_scale[:, None] ** np.arange(1, order + 1)
    weights = 1.0 / np.sqrt(np.maximum(levels_adu, 1.0))
    b, *_ = np.linalg.lstsq(design * weights[:, None], levels_adu * weights, rcond=None)
    rate = float(b[0])
    if not rate > 0:
        raise UnprocessableDataError(
            f"the linearity sequence has no rising signal (fitted rate {rate:.3g} ADU/s)"
        )
    return b / rate ** np.arange(1, order + 1), rate


def _lamp_scale(
    monitor: LampMonitor,
    channel: int,
    times_s: np.ndarray,
    coefficients: np.ndarray,
    reset_read_s: float,
) -> np.ndarray:
    """The lamp's rate at ``times_s`` over its mean: the monitor's linearised levels
    interpolated in time."""
    levels = linearise_levels(
        monitor.levels_adu[channel], coefficients, monitor.dit_s, reset_read_s=reset_read_s
    )
    order = np.argsort(monitor.times_s)
    at_frames = np.interp(times_s, monitor.times_s[order], levels[order])
    return at_frames / float(np.mean(levels))


def measure_linearity(
    flats: Sequence[np.ndarray],
    darks: Sequence[np.ndarray],
    dits_s: Sequence[float],
    *,
    config: LinearityConfig,
    mask: np.ndarray | None = None,
    times_s: Sequence[float] | None = None,
    monitor: LampMonitor | None = None,
) -> Linearity:
    """Non-linearity of one detector from dome flats at increasing DIT.

    ``flats``, ``darks``: data sections (ADU), ``darks[i]`` the dark of ``dits_s[i]``
    (s). ``mask``: True where a pixel is bad. ``monitor`` with ``times_s`` (when each
    flat was taken): the lamp's drift is taken out.

    Raises
    ------
    UnprocessableDataError
        Flats, darks and DITs differ in number; a channel keeps fewer than
        order + 2 levels below saturation at distinct DITs (order + 1 coefficients
        would leave no residual); no rising signal.
    """
    if not len(flats) == len(darks) == len(dits_s):
        raise UnprocessableDataError(
            f"linearity needs a dark for every flat: {len(flats)} flats, {len(darks)} "
            f"darks, {len(dits_s)} DITs"
        )
    if monitor is not None and times_s is None:
        raise ValueError("a lamp monitor needs the flats' times_s")
    dits = np.asarray(dits_s, dtype=np.float64)
    levels = np.array(
        [
            channel_levels(f, d, channel_width_px=config.channel_width_px, mask=mask)
            for f, d in zip(flats, darks, strict=True)
        ]
    ).T
    used = np.isfinite(levels) & (levels < config.saturation_adu)
    needed = config.order + 2
    coefficients, rates, nonlinearity, error = [], [], [], []
    for channel, (row, keep) in enumerate(zip(levels, used, strict=True)):
        distinct = np.unique(dits[keep]).size
        if distinct < needed:
            raise UnprocessableDataError(
                f"linearity channel {channel + 1}: {distinct} distinct DIT(s) below the "
                f"saturation level {config.saturation_adu:g} ADU ({int((~keep).sum())} of "
                f"{keep.size} frames at or above it); an order-{config.order} fit needs "
                f"{needed}: add shorter DITs or lower the lamp"
            )
        a, rate = fit_channel(
            row[keep], dits[keep], order=config.order, reset_read_s=config.reset_read_s
        )
        scale = None
        if monitor is not None:
            # The monitor's own levels are non-linear: linearised with the last fit,
            # they give the lamp's scale for the next (twice: the first fit saw drift).
            frame_times = np.asarray(times_s, dtype=np.float64)[keep]
            for _ in range(2):
                scale = _lamp_scale(monitor, channel, frame_times, a, config.reset_read_s)
                a, rate = fit_channel(
                    row[keep],
                    dits[keep],
                    order=config.order,
                    reset_read_s=config.reset_read_s,
                    lamp_scale=scale,
                )
        linear = linearise_levels(row[keep], a, dits[keep], reset_read_s=config.reset_read_s)
        ideal = rate * dits[keep] * (1.0 if scale is None else scale)
        coefficients.append(a)
        rates.append(rate)
        error.append(float(100.0 * np.sqrt(np.mean((linear / ideal - 1.0) ** 2))))
        nonlinearity.append(
            nonlinearity_at(config.reference_adu, a, rate, reset_read_s=config.reset_read_s)
        )
    return Linearity(
        coefficients=np.array(coefficients),
        rates_adu_per_s=np.array(rates),
        nonlinearity_pct=np.array(nonlinearity),
        error_pct=np.array(error),
        levels_adu=levels,
        used=used,
        reset_read_s=config.reset_read_s,
        channel_width_px=config.channel_width_px,
    )
