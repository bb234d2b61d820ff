"""clipped_stats (one histogram sweep) against the plain algorithm it implements."""

from __future__ import annotations

import numpy as np
import pytest

from qclib.calib.stats import _SUBSAMPLE, clipped_stats


def _reference(values: np.ndarray, sigma: float, maxiters: int = 10) -> tuple[float, float, int]:
    """The definition, in plain numpy: start at the median and 1.4826 MAD of the same
    subsample, keep values within sigma std of the mean until the kept set is stable."""
    a = values if values.ndim == 2 else values.reshape(1, -1)
    step_y = max(1, a.shape[0] // 1000)
    step_x = max(1, a.size // _SUBSAMPLE // step_y)
    sample = np.asarray(a[::step_y, ::step_x], np.float64)
    sample = sample[np.isfinite(sample)]
    centre = float(np.median(sample))
    scale = 1.482602218505602 * float(np.median(np.abs(sample - centre))) or float(np.std(sample))
    flat = np.asarray(a, np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    count, mean, std = -1, centre, scale
    for _ in range(maxiters):
        kept = flat[np.abs(flat - centre) <= sigma * scale]
        mean, std = float(kept.mean()), float(kept.std(ddof=1))
        if kept.size == count:
            break
        count, centre, scale = kept.size, mean, std
    return mean, std, count


RNG = np.random.default_rng(11)
CONTINUOUS = {
    "gaussian": RNG.normal(100, 2.5, (1500, 1400)).astype(np.float32),
    "one per cent outliers": np.where(
        RNG.random((1000, 1000)) < 0.01, 1e4, RNG.normal(0, 1, (1000, 1000))
    ).astype(np.float32),
    "ten per cent NaN": np.where(
        RNG.random((400, 400)) < 0.1, np.nan, RNG.normal(5, 1, (400, 400))
    ),
}
INTEGER = {
    "integer noise of 2.5": RNG.normal(100, 2.5, (1500, 1400)).round().astype(np.float32),
    "integer noise of 0.7": RNG.normal(0, 0.7, (600, 600)).round().astype(np.float32),
}


@pytest.mark.parametrize("sigma", [3.0, 4.0, 5.0])
@pytest.mark.parametrize("name", sorted(CONTINUOUS))
def test_continuous_data_within_a_thousandth_of_a_per_cent(name: str, sigma: float) -> None:
    mean, std, count = _reference(CONTINUOUS[name], sigma)
    got = clipped_stats(CONTINUOUS[name], sigma=sigma)
    # A bin the window's edge cuts is taken or left whole: a few values of millions.
    assert got.std == pytest.approx(std, rel=1e-4)
    assert got.mean == pytest.approx(mean, abs=1e-4 * std)
    assert abs(got.count - count) <= 1e-5 * count + 2


@pytest.mark.parametrize("sigma", [3.0, 4.0, 5.0])
@pytest.mark.parametrize("name", sorted(INTEGER))
def test_integer_data_exactly(name: str, sigma: float) -> None:
    # One value per bin: no bin is cut, the result is the definition's.
    mean, std, count = _reference(INTEGER[name], sigma)
    got = clipped_stats(INTEGER[name], sigma=sigma)
    assert (got.count, got.mean, got.std) == (
        count,
        pytest.approx(mean, abs=1e-9),
        pytest.approx(std, rel=1e-9),
    )


def test_difference_without_allocating_it() -> None:
    a, b = INTEGER["integer noise of 2.5"], CONTINUOUS["gaussian"]
    mean, std, _ = _reference(a - b, 5.0)
    got = clipped_stats(a, minus=b, sigma=5)
    assert got.std == pytest.approx(std, rel=1e-4) and got.mean == pytest.approx(mean, abs=1e-4)


def test_a_window_beyond_the_histogram_falls_back_to_exact_sweeps(monkeypatch) -> None:
    # A core and a 30x wider component: clipping at 5 sigma widens the window step by
    # step, past the histogram's +-15 start scales; then sweeps are exact.
    import qclib.calib.stats as stats

    sweeps = []
    exact = stats._pass
    monkeypatch.setattr(stats, "_pass", lambda *args: sweeps.append(1) or exact(*args))
    rng = np.random.default_rng(3)
    values = np.r_[rng.normal(0, 1, 600_000), rng.normal(0, 30, 400_000)].reshape(1000, 1000)
    mean, std, count = _reference(values, 5.0)
    got = clipped_stats(values, sigma=5)
    assert sweeps  # the fallback ran
    assert got.count == count and got.std == pytest.approx(std, rel=1e-9)
    assert got.mean == pytest.approx(mean, abs=1e-9)


def test_same_result_whatever_the_thread_count() -> None:
    import numba

    before = numba.get_num_threads()
    try:
        results = set()
        for threads in range(1, min(2, numba.config.NUMBA_NUM_THREADS) + 1):
            numba.set_num_threads(threads)
            results.add(clipped_stats(CONTINUOUS["gaussian"], sigma=3))
        assert len(results) == 1
    finally:
        numba.set_num_threads(before)
