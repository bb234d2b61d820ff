"""The compiled medians (selection in place) give exactly what numpy and bottleneck
give, on noise, on integer values with many ties, on constant and sorted buffers,
with NaNs, and in float32, where the mean of the two middle values rounds."""

from __future__ import annotations

import math
import warnings

import bottleneck as bn
import numba
import numpy as np
import pytest

from qclib.calib import defects
from qclib.calib.readout import group_medians
from qclib.calib.selection import median_in_place


@numba.njit(cache=False)
def _median_of(values):  # type: ignore[no-untyped-def]
    return median_in_place(values.copy(), values.size)


def _buffers(rng: np.random.Generator) -> list[np.ndarray]:
    buffers = []
    for n in (1, 2, 3, 4, 5, 10, 11, 512, 513, 4096):
        buffers += [
            rng.normal(100.0, 2.0, n),
            np.round(rng.normal(0.0, 1.5, n)),  # many ties
            np.full(n, 7.0),
            np.arange(n, dtype=np.float64),
            np.arange(n, dtype=np.float64)[::-1].copy(),
            rng.normal(1.0, 0.01, n).astype(np.float32),
        ]
    return buffers


def test_median_in_place_is_numpys_median() -> None:
    rng = np.random.default_rng(21)
    for values in _buffers(rng):
        expected = np.median(values)  # float32 in, the middle two summed in float32
        got = _median_of(values)
        assert got == expected, (values.dtype, values.size)


@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<f8", "<i2"])
def test_block_medians_are_bottlenecks(dtype: str) -> None:
    rng = np.random.default_rng(22)
    image = rng.normal(1.0, 0.01, (300, 257))
    if dtype == "<i2":
        image = rng.integers(-4, 5, image.shape)
    image = image.astype(dtype)
    if image.dtype.kind == "f":
        image[rng.random(image.shape) < 0.02] = np.nan
        image[:64, :64] = np.nan  # a block with no value: NaN
    for box in (64, 16, 5):
        ny, nx = image.shape
        by, bx = max(1, ny // box), max(1, nx // box)
        sy, sx = ny // by, nx // bx
        blocks = image[: by * sy, : bx * sx].reshape(by, sy, bx, sx).transpose(0, 2, 1, 3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = bn.nanmedian(blocks.reshape(by, bx, sy * sx), axis=2).astype(np.float64)
        got = defects.block_medians(image, box=box)
        assert got.dtype == np.float64
        assert np.array_equal(got, expected, equal_nan=True), box


def test_column_and_row_medians_are_numpys_nanmedians() -> None:
    rng = np.random.default_rng(23)
    image = (rng.normal(200.0, 2.0, (1100, 600)) + np.linspace(0, 5, 600)).astype(np.float32)
    image[rng.random(image.shape) < 0.05] = np.nan
    image[:, 7] = np.nan  # a column with no value
    for values in (image, np.round(image)):
        columns, rows = defects._column_and_row_medians.run_serial(values, 3, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected_columns = np.nanmedian(values[::3].astype(np.float64), axis=0)
            expected_rows = np.nanmedian(values[:, ::2] - expected_columns[::2], axis=1)
        assert np.array_equal(columns, expected_columns, equal_nan=True)
        assert np.array_equal(rows, expected_rows, equal_nan=True)


def test_group_medians_are_numpys() -> None:
    rng = np.random.default_rng(24)
    sample = np.round(rng.normal(0.0, 3.0, (256, 512))).astype(np.float32)
    sample[rng.random(sample.shape) < 0.01] = np.nan
    sample[rng.random(sample.shape) < 0.01] = np.inf  # not finite: left out too
    groups = [slice(c * 64 + p, (c + 1) * 64, 2) for c in range(8) for p in (0, 1)]
    expected = []
    for group in groups:
        values = sample[:, group].astype(np.float64)
        expected.append(np.median(values[np.isfinite(values)]))
    assert group_medians(sample, groups).tolist() == expected


def _samples(dtype: str, seed: int):  # type: ignore[no-untyped-def]
    """Values of 1 to 50,000 of ``dtype``: noise, ties; for floats, NaNs with both
    infinities among them, and values whose float32 sums overflow."""
    rng = np.random.default_rng(seed)
    floats = np.dtype(dtype).kind == "f"
    for size in (1, 2, 3, 10, 1001, 50_000):
        for trial in range(8):
            values = rng.normal(100.0, 10.0, size)
            if trial % 2:
                values = np.round(values)  # ties
            if trial % 4 == 0 and size > 3 and floats:
                values[rng.random(size) < 0.1] = np.nan
                values[0], values[-1] = np.inf, -np.inf
            if trial == 3 and floats:
                values *= 2.2e36  # two middle values whose float32 sum overflows
            yield size, values.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, ">f4"])
def test_percentile_is_numpys_percentile_of_the_finite_values(dtype: str) -> None:
    """The same float as np.percentile over the finite values, for every rank numpy
    may interpolate between: the ends, ties, a single value, NaN and inf left out."""
    from qclib.calib.selection import percentile

    compared = 0
    for size, values in _samples(dtype, 3):
        finite = values[np.isfinite(values)]
        for q in (0.0, 0.5, 1.0, 33.3, 50.0, 99.0, 99.9, 100.0):
            assert percentile(values, q) == float(np.percentile(finite, q)), (size, q)
            compared += 1
    assert compared == 6 * 8 * 8
    assert np.isnan(percentile(np.full(5, np.nan, dtype=dtype), 99.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, ">f4", np.int16])
def test_nanmedian_is_numpys(dtype: str) -> None:
    """The same float as np.nanmedian: odd and even counts (the two middle values'
    mean summed in the values' type), ties, infinities kept and NaNs left out, sums
    that overflow float32, a 2D view, all NaN; integers go through numpy."""
    from qclib.calib.selection import nanmedian

    compared = 0
    for size, values in _samples(dtype, 4):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "overflow", RuntimeWarning)  # numpy's own
            expected = float(np.nanmedian(values))
        assert nanmedian(values) == expected, size
        compared += 1
    assert compared == 6 * 8
    image = np.random.default_rng(5).normal(0, 1, (40, 60)).astype(dtype)
    assert nanmedian(image[3:-2, ::3]) == float(np.nanmedian(image[3:-2, ::3]))
    if np.dtype(dtype).kind == "f":
        assert np.isnan(nanmedian(np.full((3, 4), np.nan, dtype=dtype)))


def test_percentiles_in_place_are_numpys_for_several_ranks_at_once() -> None:
    """Ranks selected one above the other give numpy's floats whatever the order of
    the percentiles asked for, repeated ones and the ends included."""
    from qclib.calib.selection import finite_values, percentiles_in_place

    qs = [99.9, 0.1, 50.0, 50.0, 0.0, 100.0, 33.3]
    for dtype in (np.float32, np.float64):
        for size, values in _samples(dtype, 5):
            finite = values[np.isfinite(values)]
            if not finite.size:
                continue
            got = percentiles_in_place(finite_values(values), qs)
            assert got == [float(v) for v in np.percentile(finite, qs)], (size, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, ">f4", np.int16])
def test_nanpercentiles_are_numpys(dtype: str) -> None:
    """The same floats as np.nanpercentile with a list of percentiles: NaN left out,
    infinities kept, ties, a 2D strided view, all NaN; integers go through numpy."""
    from qclib.calib.selection import nanpercentiles

    qs = [25, 50, 75, 0.1, 99.9]
    compared = 0
    for size, values in _samples(dtype, 9):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all NaN
            expected = [float(v) for v in np.nanpercentile(values, qs)]
        got = nanpercentiles(values, qs)
        np.testing.assert_array_equal(got, expected, err_msg=f"{size} {dtype}")
        compared += 1
    assert compared == 6 * 8
    image = np.arange(64 * 40, dtype=np.float32).reshape(64, 40)
    image[3, 5] = np.nan
    strided = image[::16, 2:30]
    assert nanpercentiles(strided, qs) == [float(v) for v in np.nanpercentile(strided, qs)]
    assert all(math.isnan(v) for v in nanpercentiles(np.full(4, np.nan, np.float32), qs))
