"""Linearity from a dome-flat sequence against known truth.

Frames are synthesised as a double-correlated IR readout does it: electrons arrive
(Poisson, as Gaussian) from the reset on; the first read sees those of the reset-read
time t_r, the second those of t_r + DIT; each read is distorted by the true f, the
frame is their difference plus a pedestal, read noise of both reads, and whole-ADU
rounding. The darks carry the same pedestal and noise. Gain, read noise, rates and
coefficients are test values typical of NIR arrays, not instrument facts.

Tolerances come from the noise: a channel level is the clipped mean of N pixels, so
its standard error is sqrt(var / N) with var = signal / gain + 4 ron^2 + 1/6
(flat and dark, two reads each, two roundings); propagated through the fit by its
Jacobian (finite differences) it gives sigma of QC.LINEARITY, and the tests allow
5 sigma (0.05-0.07 percentage points here, on a true 3.6-4.6 %; 40 simulated
sequences scattered by 0.7-0.9 of the sigma so derived).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.optimize import brentq

from qclib.calib.linearity import (
    LampMonitor,
    LinearityConfig,
    channel_levels,
    fit_channel,
    linearise,
    measure_lamp_monitor,
    measure_linearity,
    nonlinearity_at,
)
from qclib.errors import UnprocessableDataError

GAIN_E_PER_ADU = 4.0
RON_ADU = 15.0
PEDESTAL_ADU = 300.0
RESET_READ_S = 1.0011
ROWS, CHANNEL_PX, CHANNELS = 256, 128, 2
#: Each channel's linear rate (ADU/s): the lamp is brighter on the second.
RATES = np.array([1800.0, 2100.0])
DITS = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 14.0])
SATURATION_ADU = 20000.0
QUADRATIC = np.array([1.0, -3.0e-6])
CUBIC = np.array([1.0, -1.5e-6, -8.0e-11])


def f_true(linear_adu: np.ndarray, a: np.ndarray) -> np.ndarray:
    return sum(c * linear_adu ** (m + 1) for m, c in enumerate(a))


def measured_level(a: np.ndarray, rate: float, dit: float) -> float:
    """The noiseless level of one channel: f(r (t_r + DIT)) - f(r t_r)."""
    return float(f_true(rate * (RESET_READ_S + dit), a) - f_true(rate * RESET_READ_S, a))


def true_nonlinearity(a: np.ndarray, rate: float, level: float = 10000.0) -> float:
    dit = brentq(lambda t: measured_level(a, rate, t) - level, 1e-6, 20.0, xtol=1e-13)
    return 100.0 * (rate * dit / level - 1.0)


def frame(rng: np.random.Generator, a: np.ndarray, dit: float, scale: float = 1.0) -> np.ndarray:
    """One raw flat (data section) of the given DIT, the lamp at ``scale`` x RATES."""
    rate_e = np.repeat(RATES * scale * GAIN_E_PER_ADU, CHANNEL_PX)[None, :]
    shape = (ROWS, CHANNEL_PX * CHANNELS)
    first = rate_e * RESET_READ_S
    first = first + rng.normal(0.0, 1.0, shape) * np.sqrt(first)
    during = rate_e * dit
    second = first + during + rng.normal(0.0, 1.0, shape) * np.sqrt(during)
    signal = f_true(second / GAIN_E_PER_ADU, a) - f_true(first / GAIN_E_PER_ADU, a)
    noise = rng.normal(0.0, RON_ADU * np.sqrt(2.0), shape)
    return np.rint(PEDESTAL_ADU + signal + noise).astype(np.float32)


def dark(rng: np.random.Generator) -> np.ndarray:
    shape = (ROWS, CHANNEL_PX * CHANNELS)
    return np.rint(PEDESTAL_ADU + rng.normal(0.0, RON_ADU * np.sqrt(2.0), shape)).astype(np.float32)


@dataclass(frozen=True)
class Sequence:
    flats: list[np.ndarray]
    darks: list[np.ndarray]
    dits: np.ndarray
    times: np.ndarray
    scales: np.ndarray


def sequence(seed: int, a: np.ndarray, *, drift: float = 0.0) -> Sequence:
    """Flats in DIT order, each with its own dark; the lamp changing linearly in time
    by ``drift`` (fraction) from the first frame to the last."""
    rng = np.random.default_rng(seed)
    times = np.cumsum(DITS + 2.0)
    scales = 1.0 + drift * (times - times.mean()) / (times[-1] - times[0])
    flats = [frame(rng, a, d, s) for d, s in zip(DITS, scales, strict=True)]
    return Sequence(flats, [dark(rng) for _ in DITS], DITS, times, scales)


def level_sigma(a: np.ndarray, rate: float) -> np.ndarray:
    """Standard error of each channel level of the sequence (see the module docstring)."""
    levels = np.array([measured_level(a, rate, d) for d in DITS])
    variance = levels / GAIN_E_PER_ADU + 4 * RON_ADU**2 + 2 / 12
    return np.sqrt(variance / (ROWS * CHANNEL_PX))


def nonlinearity_sigma(a: np.ndarray, rate: float, order: int) -> float:
    """sigma of QC.LINEARITY from the level noise, by the fit's Jacobian."""
    levels = np.array([measured_level(a, rate, d) for d in DITS])
    keep = levels < SATURATION_ADU

    def nl(values: np.ndarray) -> float:
        coeffs, r = fit_channel(values, DITS[keep], order=order, reset_read_s=RESET_READ_S)
        return nonlinearity_at(10000.0, coeffs, r, reset_read_s=RESET_READ_S)

    base = nl(levels[keep])
    sigma = level_sigma(a, rate)[keep]
    jacobian = []
    for i in range(keep.sum()):
        step = np.zeros(keep.sum())
        step[i] = sigma[i]
        jacobian.append((nl(levels[keep] + step) - base) / sigma[i])
    return float(np.sqrt(np.sum((np.array(jacobian) * sigma) ** 2)))


CONFIG = LinearityConfig(
    saturation_adu=SATURATION_ADU, order=3, reset_read_s=RESET_READ_S, channel_width_px=CHANNEL_PX
)


@pytest.mark.parametrize(("a", "seed"), [(QUADRATIC, 1), (CUBIC, 2)], ids=["quadratic", "cubic"])
def test_nonlinearity_recovered_per_channel(a: np.ndarray, seed: int) -> None:
    seq = sequence(seed, a)
    result = measure_linearity(seq.flats, seq.darks, seq.dits, config=CONFIG)
    for channel, rate in enumerate(RATES):
        truth = true_nonlinearity(a, rate)
        sigma = nonlinearity_sigma(a, rate, CONFIG.order)
        assert 2.5 < truth < 7.0  # the range ESO's health check sees (median 3.6 %)
        assert result.nonlinearity_pct[channel] == pytest.approx(truth, abs=5 * sigma)
        assert 5 * sigma < 0.1  # a tolerance that means something against 2.5-7 %
        assert result.rates_adu_per_s[channel] == pytest.approx(rate, rel=5e-4)
        assert result.coefficients[channel, 0] == 1.0
        assert result.coefficients[channel, 1] == pytest.approx(a[1], rel=0.05)
    # Levels above saturation were left out of the fit.
    assert not result.used[:, -1].any()
    assert result.used[:, 0].all()
    qc = result.qc()
    assert qc["QC.LINEARITY"] == pytest.approx(
        np.median([true_nonlinearity(a, r) for r in RATES]), abs=0.05
    )
    # Residuals are noise: well under 0.05 % for levels known to ~1e-4.
    assert 0.0 < qc["QC.LINERROR"] < 0.05


@pytest.mark.parametrize(("a", "seed"), [(QUADRATIC, 3), (CUBIC, 4)], ids=["quadratic", "cubic"])
def test_linearised_frames_are_linear_within_0p1_percent(a: np.ndarray, seed: int) -> None:
    seq = sequence(seed, a)
    result = measure_linearity(seq.flats, seq.darks, seq.dits, config=CONFIG)
    for flat, dark_frame, dit, used in zip(
        seq.flats, seq.darks, seq.dits, result.used.T, strict=True
    ):
        before = flat.copy()
        corrected = linearise(flat - dark_frame, result, float(dit))
        assert np.array_equal(flat, before)  # inputs are not modified
        assert corrected.dtype == np.float32
        for channel, rate in enumerate(RATES):
            columns = slice(channel * CHANNEL_PX, (channel + 1) * CHANNEL_PX)
            level = float(np.median(corrected[:, columns]))
            measured = float(np.median((flat - dark_frame)[:, columns]))
            if used[channel]:
                assert level / (rate * dit) - 1.0 == pytest.approx(0.0, abs=1e-3)
                # ... where the raw level was up to 6 % short of linear.
                assert measured / (rate * dit) < 0.995 or dit <= 3.0


def test_order_two_fits_a_quadratic_detector() -> None:
    seq = sequence(5, QUADRATIC)
    config = LinearityConfig(
        saturation_adu=SATURATION_ADU, order=2, reset_read_s=RESET_READ_S, channel_width_px=None
    )
    result = measure_linearity(seq.flats, seq.darks, seq.dits, config=config)
    # One channel of both halves: the median level follows the mix of the two rates.
    assert result.coefficients.shape == (1, 2)
    assert result.coefficients[0, 1] == pytest.approx(QUADRATIC[1], rel=0.02)


def test_lamp_drift_is_taken_out_by_monitor_flats() -> None:
    drift = 0.04  # 4 % over the sequence, brightening as the DITs lengthen
    seq = sequence(6, CUBIC, drift=drift)
    rng = np.random.default_rng(60)
    monitor_times = np.concatenate([[seq.times[0] - 3.0], seq.times + 1.0])
    scale_at = 1.0 + drift * (monitor_times - seq.times.mean()) / (seq.times[-1] - seq.times[0])
    monitor_dark = dark(rng)
    monitor = measure_lamp_monitor(
        [frame(rng, CUBIC, 5.0, s) for s in scale_at],
        monitor_dark,
        monitor_times,
        5.0,
        channel_width_px=CHANNEL_PX,
    )
    assert isinstance(monitor, LampMonitor)
    assert monitor.levels_adu.shape == (CHANNELS, monitor_times.size)
    steady = measure_linearity(seq.flats, seq.darks, seq.dits, config=CONFIG)
    corrected = measure_linearity(
        seq.flats, seq.darks, seq.dits, config=CONFIG, times_s=seq.times, monitor=monitor
    )
    for channel, rate in enumerate(RATES):
        # The truth is the detector's at the lamp's mean rate over the monitor frames.
        mean_rate = rate * float(np.mean(scale_at))
        truth = true_nonlinearity(CUBIC, mean_rate)
        # Monitor levels are as noisy as the flats' own: sqrt(2) x the flats' sigma.
        sigma = np.sqrt(2.0) * nonlinearity_sigma(CUBIC, mean_rate, CONFIG.order)
        assert corrected.nonlinearity_pct[channel] == pytest.approx(truth, abs=5 * sigma)
        # Unmonitored, the drift reads as non-linearity far outside the noise.
        assert abs(steady.nonlinearity_pct[channel] - truth) > 20 * sigma


def test_too_few_dits_names_what_is_missing() -> None:
    seq = sequence(7, QUADRATIC)
    with pytest.raises(UnprocessableDataError, match=r"channel 1: 4 distinct DIT\(s\).*needs 5"):
        measure_linearity(seq.flats[:4], seq.darks[:4], seq.dits[:4], config=CONFIG)


def test_saturated_levels_do_not_count_towards_the_minimum() -> None:
    seq = sequence(8, QUADRATIC)
    low = LinearityConfig(
        saturation_adu=8000.0, order=3, reset_read_s=RESET_READ_S, channel_width_px=CHANNEL_PX
    )
    with pytest.raises(UnprocessableDataError, match=r"saturation level 8000 ADU \(\d+ of 13"):
        measure_linearity(seq.flats, seq.darks, seq.dits, config=low)


def test_a_flat_without_its_dark_is_refused() -> None:
    seq = sequence(9, QUADRATIC)
    with pytest.raises(UnprocessableDataError, match="a dark for every flat: 13 flats, 12 darks"):
        measure_linearity(seq.flats, seq.darks[:-1], seq.dits, config=CONFIG)


def test_nonlinearity_is_nan_where_the_sequence_never_reaches_the_level() -> None:
    # f turns over at 1 / (2 x 2e-4) = 2,500 ADU: 10,000 ADU is never measured.
    value = nonlinearity_at(10000.0, np.array([1.0, -2e-4]), 1000.0, reset_read_s=RESET_READ_S)
    assert np.isnan(value)


def test_channel_levels_leave_masked_pixels_out() -> None:
    flat = np.full((8, 8), 1000.0, np.float32)
    flat[:, :4] += np.arange(8, dtype=np.float32)[:, None]  # rows 0-7: 1000-1007
    flat[0:2, 4:] = 5000.0  # a bright patch in channel 2, masked
    mask = np.zeros(flat.shape, bool)
    mask[0:2, 4:] = True
    levels = channel_levels(flat, np.full((8, 8), 100.0, np.float32), channel_width_px=4, mask=mask)
    assert levels.tolist() == [903.5, 900.0]
