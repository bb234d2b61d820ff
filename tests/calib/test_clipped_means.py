"""clipped_means: the sigma-clipped mean of each group of columns, as numpy computes it."""

from __future__ import annotations

import numpy as np
import pytest

from qclib.calib.readout import clipped_means


def _numpy_clipped_mean(values: np.ndarray, sigma: float, maxiters: int) -> tuple[float, int]:
    """The reference: finite values, then those beyond sigma standard deviations of the
    mean dropped until none is."""
    kept = values[np.isfinite(values)].astype(np.float64)
    for _ in range(maxiters):
        if kept.size < 2:
            break
        inside = np.abs(kept - kept.mean()) <= sigma * kept.std()
        if inside.all():
            break
        kept = kept[inside]
    return (float(kept.mean()) if kept.size else float("nan")), int(kept.size)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_group_as_numpy_clips_it(dtype: type) -> None:
    rng = np.random.default_rng(11)
    values = rng.normal(100, 3, (300, 128)).astype(dtype)
    values[rng.random(values.shape) < 0.01] = 1e4  # hits
    values[rng.random(values.shape) < 0.01] = np.nan
    values[:, 40:42] = np.nan  # a group with nothing finite
    values[:, 7] += np.arange(300, dtype=dtype) * 5  # a column ramp: several iterations
    groups = [slice(s, s + 32, 2) for s in range(0, 128, 32)]
    groups += [slice(s + 1, s + 32, 2) for s in range(0, 128, 32)]
    groups += [slice(40, 42), slice(127, 128), slice(3, 100, 7)]
    means, kept = clipped_means(values, groups, sigma=4.0)
    for group, mean, n in zip(groups, means, kept, strict=True):
        expected_mean, expected_n = _numpy_clipped_mean(values[:, group], 4.0, 10)
        assert n == expected_n
        np.testing.assert_allclose(mean, expected_mean, rtol=1e-12, equal_nan=True)
    assert np.isnan(means[groups.index(slice(40, 42))])
    assert (kept > 0).sum() == len(groups) - 1
