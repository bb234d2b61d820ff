"""IR readout structure: what the simulator adds to a frame (channel offsets shared by the
reference pixels, even/odd columns, 1/f noise) and what ``reference_levels`` takes away."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from pydantic import ValidationError

from qclib.calib.dark import Exposure, make_master_dark
from qclib.calib.parameters import DarkConfig
from qclib.calib.readout import channel_columns, read_noise_from_pair, reference_levels
from qclib.config.instrument import Geometry, parse_section
from qclib.instruments import load_instrument
from qclib.simulate.pixels import correlated_noise, ir_readout_pattern
from qclib.simulate.truth import draw_detector_truth

INSTRUMENT = load_instrument("HAWKI")
GEOMETRY = INSTRUMENT.geometry["full"]
ROWS, COLS = parse_section(GEOMETRY.data_section)


def _truth(**changes: float):
    truth = draw_detector_truth(INSTRUMENT, GEOMETRY, 0, seed=3)
    return dataclasses.replace(truth, **changes)


def test_channel_offsets_are_shared_by_the_reference_rows_and_recovered() -> None:
    """No 1/f, no read noise: the reference rows give every channel's even and odd
    level exactly, and those levels do not average to zero over the frame."""
    truth = _truth(channel_offset_rms_adu=3.0, even_odd_rms_adu=0.8, correlated_noise_rms_adu=0.0)
    pattern = ir_readout_pattern(GEOMETRY, truth, np.random.default_rng(1), ndit=1)
    levels = reference_levels(pattern, GEOMETRY)
    np.testing.assert_allclose(levels, pattern[ROWS.start, COLS], atol=1e-5)
    np.testing.assert_allclose(pattern[ROWS, COLS] - levels[None, :], 0.0, atol=1e-5)
    per_channel = pattern[0].reshape(32, 64)
    assert np.ptp(per_channel.mean(axis=1)) > 3.0  # channels differ by several ADU
    assert np.std(per_channel[:, 0::2] - per_channel[:, 1::2]) == pytest.approx(0.8, rel=0.3)
    assert abs(pattern.mean()) > 0.05  # not zero on average: one draw of 32 channels


def test_correlated_noise_has_a_one_over_f_spectrum() -> None:
    series = correlated_noise(2**17, np.random.default_rng(2))
    assert series.std() == pytest.approx(1.0)
    power = np.abs(np.fft.rfft(series)) ** 2
    frequency = np.fft.rfftfreq(series.size)
    bands = np.logspace(-4, -0.5, 8)
    mean_power = [
        power[(frequency >= lo) & (frequency < hi)].mean() for lo, hi in itertools.pairwise(bands)
    ]
    slope = np.polyfit(np.log(bands[:-1] * np.sqrt(bands[1] / bands[0])), np.log(mean_power), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.1)


def test_read_noise_of_a_pair_ignores_channel_offsets_that_change() -> None:
    truth = _truth(channel_offset_rms_adu=3.0, even_odd_rms_adu=0.8, correlated_noise_rms_adu=0.0)
    rng = np.random.default_rng(4)
    first, second = (
        rng.normal(0, 6.0, GEOMETRY.data_shape).astype(np.float32)
        + ir_readout_pattern(GEOMETRY, truth, rng, ndit=1)[ROWS, COLS]
        for _ in range(2)
    )
    columns = channel_columns(GEOMETRY, COLS)
    assert read_noise_from_pair(first, second, columns=columns) == pytest.approx(6.0, rel=0.005)
    assert read_noise_from_pair(first, second) > 6.5  # the offsets' differences stay in


@pytest.mark.parametrize("rows", [1024, 4096, 6144])  # every row, every 2nd, every 3rd
def test_the_channel_offsets_come_from_every_fourth_row(rows: int) -> None:
    """Where its rows include them, the pair's difference gives the rows the channel
    offsets are taken from: the read noise is that of their own subtraction."""
    from qclib.calib.readout import RON_PIXELS, group_medians
    from qclib.calib.stats import clipped_stats, row_step

    rng = np.random.default_rng(6)
    first, second = (rng.normal(300, 6.0, (rows, 1024)).astype(np.float32) for _ in "ab")
    second[:, 64:128] += 5.0  # a channel's offset that changes
    columns = [slice(c * 64 + p, (c + 1) * 64, 2) for c in range(16) for p in (0, 1)]
    step = row_step(first, RON_PIXELS)
    assert step == rows // 2048 or rows == 1024
    sample = np.subtract(first[::4], second[::4], dtype=np.float32)
    offsets = np.zeros(first.shape[1], np.float32)
    for group, median in zip(columns, group_medians(sample, columns), strict=True):
        offsets[group] = median
    difference = np.subtract(first[::step], second[::step], dtype=np.float32) - offsets
    expected = np.sqrt(clipped_stats(difference, sigma=5).std ** 2 / 2)
    assert read_noise_from_pair(first, second, columns=columns) == expected


def test_dark_shot_noise_is_removed_from_the_read_noise() -> None:
    rng = np.random.default_rng(5)
    gain, signal_adu, read_noise_adu = 1.7, 20.0, 6.0
    sigma = np.sqrt(read_noise_adu**2 + signal_adu / gain)
    first, second = (rng.normal(signal_adu, sigma, (1024, 1024)) for _ in range(2))
    ron = read_noise_from_pair(first, second, dark_signal_adu=signal_adu, gain_e_per_adu=gain)
    assert ron == pytest.approx(read_noise_adu, rel=0.005)


def test_channels_must_split_the_columns() -> None:
    with pytest.raises(ValidationError, match="readout_channel_px = 60"):
        Geometry(
            naxis1=2048,
            naxis2=2048,
            bitpix=-32,
            data_section="[5:2044,5:2044]",
            gap_x_px=0,
            gap_y_px=0,
            readout_channel_px=60,
        )


def test_dark_current_slope_ignores_a_pedestal_the_reference_pixels_do_not_see() -> None:
    """Darks of two DITs with a level in the data region that the reference pixels do
    not share (the same at every DIT): the slope is the truth, one DIT's level is not."""
    geometry = INSTRUMENT.geometry["test"]
    rows, cols = parse_section(geometry.data_section)
    rng = np.random.default_rng(6)
    rate_adu_per_s, pedestal_adu = 0.05, 1.5
    series = []
    for dit in (10.0, 150.0):
        frames = rng.normal(0.0, 0.5, (3, geometry.naxis2, geometry.naxis1)).astype(np.float32)
        frames[:, rows, cols] += np.float32(rate_adu_per_s * dit + pedestal_adu)
        series.append((frames, Exposure(dit, dit, 1)))
    (short, timing), long_darks = series[0], series[1]
    kwargs = {"pixel_size_um": 18.0, "config": DarkConfig(), "min_frames": 3}
    qc = make_master_dark(short, geometry, timing, other_dits=[long_darks], **kwargs).qc
    alone = make_master_dark(short, geometry, timing, **kwargs).qc
    assert qc["QC.DARK.CURRENT"] == pytest.approx(rate_adu_per_s * 3600, rel=0.01)
    assert alone["QC.DARK.CURRENT"] == pytest.approx((rate_adu_per_s + 0.15) * 3600, rel=0.02)
