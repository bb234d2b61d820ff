"""Completeness of defect finding near the detection limit: recall per strength bin
and the false-positive rate, on realistic simulated frames (test-size OmegaCAM CCDs:
read noise, column pattern, gradients, an edge ramp, a bias offset, PRNU, bad columns)
into which hot pixels and partly cold pixels of graded strength are put.

Strength is in units of the threshold the recipe applies: for hot pixels in a master
bias, ``hot_sigma`` (5) x the robust rms of the master's residual about its local
level (measured here as the recipe measures it); for cold pixels in a master dome
flat, a response deficit of the larger of ``cold_sigma`` (6) x the robust rms of
the flat's response and 1 - ``cold_max_response`` (10 %). Run with ``-s`` for the
curves (quoted in docs/calibration.md).
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import numpy as np
import pytest

from qclib.calib.bias import make_master_bias
from qclib.calib.defects import (
    remove_local_level,
    remove_row_column_pattern,
    smooth_large_scale,
)
from qclib.calib.dq import DQ_COLD, DQ_HOT
from qclib.calib.flat import make_master_flat
from qclib.calib.parameters import BiasConfig, FlatConfig
from qclib.calib.stats import clipped_stats
from qclib.fitsio import read_image, scan_fits
from qclib.instruments import load_instrument
from qclib.simulate.night import simulate_night
from qclib.simulate.truth import draw_detector_truth
from tests.conftest import load_truth

INSTRUMENT = load_instrument("OMEGACAM")
GEOMETRY = INSTRUMENT.geometry["test"]
#: #65 has a 5.4-ADU edge ramp, #74 its data region 3.3 ADU above the overscan.
DETECTORS = ("ESO_CCD_#65", "ESO_CCD_#74")
SEED = 7
PER_DETECTOR = 1000
HOT_BINS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 6.0)
COLD_BINS = (0.03, 0.05, 0.075, 0.10, 0.125, 0.15, 0.20, 0.30, 0.50, 0.95)


def _injected(index: int, extname: str) -> dict[str, list]:
    """Hot pixels log-uniform over 0.3-6 x the expected bias threshold, and cold pixels
    of response deficits uniform over each COLD_BINS bin, at distinct positions."""
    truth = draw_detector_truth(INSTRUMENT, GEOMETRY, index, SEED)
    rng = np.random.default_rng([SEED, 99, index])
    ny, nx = GEOMETRY.data_shape
    # Expected threshold: 5 x the rms of a median of 5 frames (1.2 x the mean's).
    threshold_adu = 5 * 1.2 * truth.read_noise_adu / np.sqrt(5)
    readout_s = INSTRUMENT.readout_time_s
    n_cold_per_bin = PER_DETECTOR // (len(COLD_BINS) - 1)
    n_cold = n_cold_per_bin * (len(COLD_BINS) - 1)
    columns = {x for x, *_ in truth.bad_columns}
    free = [p for p in rng.permutation(ny * nx) if p % nx not in columns and p % nx > 0]
    spots = np.array(free[: PER_DETECTOR + n_cold])
    ys, xs = np.unravel_index(spots, (ny, nx))
    strength = np.exp(rng.uniform(np.log(0.3), np.log(6.0), PER_DETECTOR))
    rates = strength * threshold_adu * truth.gain_e_per_adu / readout_s
    deficits = np.concatenate(
        [rng.uniform(lo, hi, n_cold_per_bin) for lo, hi in itertools.pairwise(COLD_BINS)]
    )
    hot = [(int(x), int(y), float(r)) for x, y, r in zip(xs, ys, rates, strict=False)]
    cold = [
        (int(x), int(y), float(1 - d))
        for x, y, d in zip(xs[PER_DETECTOR:], ys[PER_DETECTOR:], deficits, strict=True)
    ]
    return {"hot_pixels": hot, "cold_pixels": cold}


@pytest.fixture(scope="module")
def graded_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("graded-defects")
    degrade = {
        extname: _injected(
            next(i for i, d in enumerate(INSTRUMENT.detectors) if d.extname == extname), extname
        )
        for extname in DETECTORS
    }
    simulate_night(
        "OMEGACAM",
        dt.date(2026, 11, 23),
        out,
        seed=SEED,
        scale="test",
        workers=1,
        progress=False,
        only={"bias", "dome_flat"},
        detectors=list(DETECTORS),
        degrade=degrade,  # type: ignore[arg-type]
    )
    return out


def _stack(night: Path, truth: dict, kind: str, extname: str) -> tuple[np.ndarray, list[float]]:
    exposures = [e for e in truth["exposures"] if e["kind"] == kind]
    frames = []
    for e in exposures:
        scan = scan_fits(night / e["arcfile"])
        frames.append(
            read_image(
                night / e["arcfile"], next(h for h in scan.extensions if h.extname == extname)
            )
        )
    return np.stack(frames), [e["exptime_s"] for e in exposures]


def _recall(
    strengths: np.ndarray, found: np.ndarray, bins: tuple[float, ...]
) -> list[tuple[float, float, int, float]]:
    rows = []
    for lo, hi in itertools.pairwise(bins):
        inside = (strengths >= lo) & (strengths < hi)
        rows.append(
            (
                lo,
                hi,
                int(inside.sum()),
                float(found[inside].mean()) if inside.any() else float("nan"),
            )
        )
    return rows


def _print(title: str, rows: list[tuple[float, float, int, float]], false: int, clean: int) -> None:
    print(f"\n{title}")
    for lo, hi, n, recall in rows:
        print(f"  {lo:g}-{hi:g}: n = {n}, recall = {recall:.3f}")
    print(f"  false positives: {false} of {clean} clean pixels ({false / clean:.1e})")


def test_hot_pixel_recall_per_strength(graded_night: Path) -> None:
    truth = load_truth(graded_night)
    strengths, found_all = [], []
    false = clean = 0
    for extname in DETECTORS:
        det = truth["detectors"][extname]
        raws, _ = _stack(graded_night, truth, "bias", extname)
        master = make_master_bias(raws, GEOMETRY)
        # The threshold the recipe applied, in ADU (find_hot_pixels' own statistics).
        residual = remove_local_level(remove_row_column_pattern(master.data))
        threshold = BiasConfig().hot_sigma * clipped_stats(residual, sigma=4).std
        signal_adu = np.array(
            [r * INSTRUMENT.readout_time_s / det["gain_e_per_adu"] for *_, r in det["hot_pixels"]]
        )
        xs = np.array([x for x, *_ in det["hot_pixels"]])
        ys = np.array([y for _, y, _ in det["hot_pixels"]])
        hot = (master.dq & DQ_HOT) > 0
        strengths.append(signal_adu / threshold)
        found_all.append(hot[ys, xs])
        injected = np.zeros(hot.shape, bool)
        injected[ys, xs] = True
        false += int((hot & ~injected).sum())
        clean += int((~injected).sum())
    rows = _recall(np.concatenate(strengths), np.concatenate(found_all), HOT_BINS)
    _print("hot pixels in the master bias (strength / threshold)", rows, false, clean)
    for lo, _, n, recall in rows:
        assert n >= 80, (lo, n)  # enough pixels per bin for the recall to mean something
        if lo >= 1.5:
            assert recall >= 0.9, (lo, recall)
    assert rows[0][3] < 0.2  # half the threshold: mostly not found (the threshold holds)
    # 5 sigma one-sided: 3e-7 of Gaussian noise; allowed 1e-4 (13 of 131,000 pixels).
    assert false / clean <= 1e-4


def test_cold_pixel_recall_per_deficit(graded_night: Path) -> None:
    truth = load_truth(graded_night)
    deficits, found_all = [], []
    false = clean = 0
    config = FlatConfig()
    for extname in DETECTORS:
        det = truth["detectors"][extname]
        biases, _ = _stack(graded_night, truth, "bias", extname)
        master_bias = make_master_bias(biases, GEOMETRY)
        flats, exptimes = _stack(graded_night, truth, "dome_flat", extname)
        flat = make_master_flat(
            flats, GEOMETRY, exptimes, background=master_bias.data, config=config
        )
        cold = (flat.dq & DQ_COLD) > 0
        xs = np.array([x for x, *_ in det["cold_pixels"]])
        ys = np.array([y for _, y, _ in det["cold_pixels"]])
        deficits.append(1 - np.array([r for *_, r in det["cold_pixels"]]))
        found_all.append(cold[ys, xs])
        known = np.zeros(cold.shape, bool)
        known[ys, xs] = True
        for x, start, stop, _ in det["bad_columns"]:
            known[start:stop, x] = True
        false += int((cold & ~known).sum())
        clean += int((~known).sum())
        # The threshold the recipe applied: a deficit of max(6 sigma, 10 %).
        relative = flat.data / smooth_large_scale(flat.data, box=config.smooth_box_px)
        spread = clipped_stats(relative, sigma=4).std
        assert config.cold_sigma * spread < 1 - config.cold_max_response
    rows = _recall(np.concatenate(deficits), np.concatenate(found_all), COLD_BINS)
    _print("cold pixels in the master dome flat (response deficit)", rows, false, clean)
    for lo, _, n, recall in rows:
        assert n >= 80, (lo, n)
        if lo >= 1.5 * (1 - config.cold_max_response):
            assert recall >= 0.9, (lo, recall)
        if lo < 0.075:
            assert recall < 0.05  # well inside the threshold: not called cold
    assert false / clean <= 1e-4
