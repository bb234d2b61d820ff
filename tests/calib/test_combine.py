"""The compiled combiners equal a plain numpy reference to float precision."""

from __future__ import annotations

import warnings

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qclib.calib.combine import clipped_mean_combine, median_combine, median_combine_stored
from qclib.stored_pixels import MappedImage, StoredImage, StoredStack


def _reference_clipped(values: np.ndarray, sigma: float, maxiters: int) -> tuple[float, int]:
    kept = values.astype(np.float64)
    for _ in range(maxiters):
        if kept.size < 3:
            break
        centre = np.median(kept)
        sd = 1.482602218505602 * np.median(np.abs(kept - centre)) or np.std(kept, ddof=1)
        new = kept[(kept >= centre - sigma * sd) & (kept <= centre + sigma * sd)]
        if new.size == kept.size:
            break
        kept = new
    return float(kept.mean()), kept.size


@pytest.fixture
def stack() -> np.ndarray:
    rng = np.random.default_rng(1)
    data = rng.normal(100, 5, (9, 20, 30)).astype(np.float32)
    data[3, 5, 5] = 5000.0  # a particle hit
    data[:, 7, 8] = np.nan  # a pixel bad in every frame
    return data


def _nanmedian(values: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the all-NaN pixel
        return np.nanmedian(values, axis=0)


def test_median_equals_numpy(stack: np.ndarray) -> None:
    image, err, count = median_combine(stack)
    expected = _nanmedian(stack.astype(np.float64))
    np.testing.assert_allclose(image, expected, rtol=1e-6, equal_nan=True)
    assert count[7, 8] == 0 and np.isnan(image[7, 8])
    assert count[0, 0] == 9
    sd = np.std(stack.astype(np.float64), axis=0, ddof=1)
    np.testing.assert_allclose(err[0, 0], np.sqrt(np.pi / 2) * sd[0, 0] / 3, rtol=1e-5)


def test_median_respects_masks_and_scales(stack: np.ndarray) -> None:
    mask = np.zeros(stack.shape, bool)
    mask[0] = True
    scales = np.linspace(1, 2, stack.shape[0])
    image, _, count = median_combine(stack, mask=mask, scales=scales)
    scaled = stack[1:].astype(np.float64) / scales[1:, None, None]
    np.testing.assert_allclose(image, _nanmedian(scaled), rtol=1e-6, equal_nan=True)
    assert count[0, 0] == 8


def test_clipped_mean_equals_reference(stack: np.ndarray) -> None:
    image, _, count = clipped_mean_combine(stack, sigma=3.0, maxiters=5)
    for y in range(stack.shape[1]):
        for x in range(stack.shape[2]):
            values = stack[:, y, x]
            values = values[~np.isnan(values)]
            if values.size == 0:
                assert np.isnan(image[y, x])
                continue
            mean, n = _reference_clipped(values, 3.0, 5)
            assert image[y, x] == pytest.approx(mean, rel=1e-6)
            assert count[y, x] == n
    assert count[5, 5] == 8  # the hit was clipped


def test_inputs_are_not_mutated(stack: np.ndarray) -> None:
    before = stack.copy()
    median_combine(stack)
    clipped_mean_combine(stack)
    np.testing.assert_array_equal(stack, before)


def test_big_endian_input_is_handled() -> None:
    data = np.arange(24, dtype=">f4").reshape(3, 2, 4)
    image, _, _ = median_combine(data)
    np.testing.assert_array_equal(image, np.median(data.astype(np.float64), axis=0))


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [({"scales": [1, 0]}, "scales"), ({"mask": np.zeros((2, 1, 1), bool)}, "mask shape")],
)
def test_bad_arguments(kwargs, phrase) -> None:
    with pytest.raises(ValueError, match=phrase):
        median_combine(np.ones((2, 2, 2)), **kwargs)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 12),
    st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=12, max_size=12),
)
def test_median_property(n: int, values: list[float]) -> None:
    data = np.array(values[:n], dtype=np.float32).reshape(n, 1, 1)
    image, _, count = median_combine(data)
    assert image[0, 0] == pytest.approx(np.median(data.astype(np.float64)), rel=1e-6, abs=1e-3)
    assert count[0, 0] == n


def test_background_is_subtracted_before_scaling(stack: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    background = rng.normal(10, 3, stack.shape[1:]).astype(np.float32)
    offsets = np.arange(stack.shape[0], dtype=float)
    scales = np.linspace(1, 2, stack.shape[0])
    expected = (stack.astype(np.float64) - offsets[:, None, None] - background) / scales[
        :, None, None
    ]
    image, _, _ = median_combine(stack, offsets=offsets, background=background, scales=scales)
    np.testing.assert_allclose(image, _nanmedian(expected), rtol=1e-5, atol=1e-5, equal_nan=True)
    clipped, _, _ = clipped_mean_combine(
        stack, offsets=offsets, background=background, scales=scales, sigma=3
    )
    for y, x in np.ndindex(*stack.shape[1:]):
        values = expected[:, y, x]
        if np.isfinite(values).all():
            ref = _reference_clipped(values, 3, 5)[0]
            assert clipped[y, x] == pytest.approx(ref, rel=1e-5, abs=1e-4)
    with pytest.raises(ValueError, match="background shape"):
        median_combine(stack, background=background[:-1])


@pytest.mark.parametrize("n", range(1, 14))
def test_sorting_networks_sort_every_zero_one_input(n: int) -> None:
    """The 0-1 principle: a comparator network sorting all 2^n 0/1 inputs sorts all."""
    import itertools

    from qclib.calib.networks import sorting_network

    pairs = sorting_network(n)
    for bits in itertools.product([0, 1], repeat=n):
        values = list(bits)
        for a, b in pairs:
            if values[a] > values[b]:
                values[a], values[b] = values[b], values[a]
        assert values == sorted(values)


@pytest.mark.parametrize("n", range(1, 14))
def test_selection_networks_place_the_middle_of_every_zero_one_input(n: int) -> None:
    """The 0-1 principle holds for selection too: the pruned network puts the right
    values at the median's positions for every 0/1 input, hence for every input."""
    import itertools

    from qclib.calib.networks import selection_network

    middle = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
    pairs = selection_network(n, middle)
    for bits in itertools.product([0, 1], repeat=n):
        values = list(bits)
        for a, b in pairs:
            if values[a] > values[b]:
                values[a], values[b] = values[b], values[a]
        assert [values[i] for i in middle] == [sorted(bits)[i] for i in middle]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 16])
def test_generated_median_kernel_equals_the_general_one(n: int) -> None:
    """The kernel compiled for n frames against the general (masked) kernel, which an
    all-False mask selects and which works in float64: the same medians to float32
    rounding, the same uncertainties to 1e-4, and a row with a NaN handed over whole."""
    rng = np.random.default_rng(n)
    stack = rng.normal(100, 5, (n, 9, 37)).astype(np.float32)
    offsets = rng.normal(0, 2, n)
    scales = rng.uniform(0.5, 2, n)
    fast = median_combine(stack, offsets=offsets, scales=scales)
    unmasked = np.zeros(stack.shape, bool)
    general = median_combine(stack, offsets=offsets, scales=scales, mask=unmasked)
    np.testing.assert_allclose(fast[0], general[0], rtol=2e-7, atol=0)
    np.testing.assert_allclose(fast[1], general[1], rtol=1e-4, equal_nan=True)
    np.testing.assert_array_equal(fast[2], general[2])
    stack[n - 1, 4, 5] = np.nan
    _, _, count = median_combine(stack, offsets=offsets, scales=scales)
    assert count[4, 5] == n - 1 and (count[4, np.arange(37) != 5] == n).all()
    assert (count[np.arange(9) != 4] == n).all()


def test_network_median_equals_numpy_and_falls_back_on_nan() -> None:
    rng = np.random.default_rng(3)
    stack = rng.normal(0, 5, (10, 40, 64)).astype(np.float32)
    image, _, count = median_combine(stack)
    np.testing.assert_array_equal(image, np.median(stack, axis=0))  # bit-identical
    stack[4, 7, 9] = np.nan
    image, _, count = median_combine(stack)
    assert count[7, 9] == 9 and count[7, 10] == 10 and count.min() == 9
    assert image[7, 9] == np.float32(np.nanmedian(stack[:, 7, 9]))


@pytest.mark.parametrize("frames", [2, 3, 4, 5, 6, 9, 12])
def test_clipped_mean_by_network_is_bit_identical_to_pixel_by_pixel(frames: int) -> None:
    """The compiled network path (no mask: the first round's kernel, then, up to 8
    frames, the rounds' kernel) against the general kernel (an all-False mask takes
    it): every value, uncertainty and count the same, with particle hits (clipped),
    quantised values (MAD 0), NaNs and infinities, offsets, a background and scales,
    one to five rounds."""
    rng = np.random.default_rng(frames)
    stack = rng.normal(100, 5, (frames, 50, 70)).astype(np.float32)
    stack[:, :10] = np.round(stack[:, :10] / 10)  # integers: a MAD of 0 now and then
    hits = rng.random(stack.shape) < 0.02
    stack[hits] += 3000.0
    stack[frames // 2, 20, ::7] = np.nan
    stack[frames - 1, 30, ::9] = np.inf
    offsets = rng.normal(0, 3, frames)
    background = rng.normal(0, 1, stack.shape[1:]).astype(np.float32)
    scales = rng.uniform(0.5, 2.0, frames)
    every = {"offsets": offsets, "background": background, "scales": scales}
    trimmed = {**every, "background": background[2:-3, 1:-4]}
    for data, kwargs, maxiters in (
        (stack, {}, 5),
        (stack, every, 5),
        (stack[:, 2:-3, 1:-4], trimmed, 5),  # a trimmed view, read in its parent
        (stack, every, 0),  # no clipping: NaNs still left out
        (stack, every, 1),  # one round only, or two: where the rounds stop early
        (stack, every, 2),
    ):
        by_network = clipped_mean_combine(data, sigma=3.0, maxiters=maxiters, **kwargs)
        general = clipped_mean_combine(
            data, mask=np.zeros(data.shape, bool), sigma=3.0, maxiters=maxiters, **kwargs
        )
        for fast, slow in zip(by_network, general, strict=True):
            np.testing.assert_array_equal(fast, slow)
        if frames >= 3 and maxiters:
            assert (by_network[2] < frames).sum() > 50  # the clipping path was taken too


@pytest.mark.parametrize("frames", [2, 3, 5, 9, 70])
def test_column_levels_taken_off_as_read_equal_the_subtracted_stack(frames: int) -> None:
    """``levels`` (one per frame and column, an IR array's reference levels) against
    the level-subtracted float32 stack: medians and clipped means, every value,
    uncertainty and count bit for bit, on each path (the generated kernels, with and
    without a background; the general ones, which a mask, a NaN row or more than 64
    frames select), on a trimmed view, with offsets and scales. The levels are not
    whole numbers near the values' size, so that each subtraction rounds. On one numba
    thread, as in a recipe's detector threads (the serial builds: each build of a
    generated kernel compiles for seconds)."""
    rng = np.random.default_rng(100 + frames)
    raw = rng.normal(2000, 40, (frames, 30, 41)).astype(np.float32)
    raw[rng.random(raw.shape) < 0.02] += 3000.0
    raw[frames // 2, 11, ::5] = np.nan
    view = raw[:, 2:-3, 1:-4]
    levels = rng.normal(1900, 30, (frames, view.shape[2])).astype(np.float32)
    subtracted = view - levels[:, None, :]
    assert subtracted.dtype == np.float32
    scaled = {"offsets": rng.normal(0, 3, frames), "scales": rng.uniform(0.5, 2.0, frames)}
    cases = [{}, {**scaled, "mask": rng.random(view.shape) < 0.05}]
    if frames == 3:
        cases.append({**scaled, "background": rng.normal(0, 1, view.shape[1:]).astype(np.float32)})
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        for kwargs in cases:
            combiners = [median_combine] + ([clipped_mean_combine] if frames >= 3 else [])
            for combine in combiners:
                got = combine(view, levels=levels, **kwargs)
                for value, expected in zip(got, combine(subtracted, **kwargs), strict=True):
                    np.testing.assert_array_equal(value, expected)
    finally:
        numba.set_num_threads(threads)
    with pytest.raises(ValueError, match="one per frame and column"):
        median_combine(view, levels=levels[:, :-1])


def _stored(rng: np.random.Generator, n: int, shape: tuple[int, int], bscale: float) -> StoredStack:
    """n big-endian int16 frames as FITS stores them, BZERO 32768 (a raw CCD's)."""
    frames = rng.normal(0, 400, (n, *shape)).round().clip(-32768, 32767).astype(">i2")
    return StoredStack(tuple(StoredImage(f.view(np.uint16), bscale, 32768.0) for f in frames))


@pytest.mark.parametrize(("n", "bscale"), [(1, 1.0), (4, 1.0), (10, 1.0), (7, 0.5), (65, 1.0)])
def test_median_of_a_stored_stack_is_that_of_its_float32_stack(n: int, bscale: float) -> None:
    """Combined in place from the stored int16 (byte swap, BSCALE, BZERO as each value
    is read), bit for bit what the float32 stack of the same section gives; more
    frames than a network takes go through the float32 stack."""
    rng = np.random.default_rng(n)
    stack = _stored(rng, n, (23, 41), bscale)
    rows, cols = slice(2, 20), slice(5, 37)
    offsets = rng.normal(32768, 3, n)
    stored = median_combine_stored(stack, rows, cols, offsets=offsets)
    floats = median_combine(stack.physical((rows, cols)), offsets=offsets)
    assert stack.physical((rows, cols)).dtype == np.float32
    for mine, theirs in zip(stored, floats, strict=True):
        assert mine.dtype == theirs.dtype and mine.tobytes() == theirs.tobytes()
    with pytest.raises(ValueError, match="whole rows and columns"):
        median_combine_stored(stack, slice(0, 20, 2), cols, offsets=offsets)


@pytest.mark.parametrize("n", [3, 6, 65])
def test_a_stored_flat_stack_with_background_and_scales_is_its_float32_stacks(n: int) -> None:
    """A flat's combination (less a background image, divided by each frame's level)
    from the stored int16, bit for bit that of the float32 stack; a background holding
    a NaN sends the section through the float32 stack, which leaves that pixel out."""
    rng = np.random.default_rng(100 + n)
    stack = _stored(rng, n, (23, 41), 1.0)
    rows, cols = slice(2, 20), slice(5, 37)
    offsets = rng.normal(32768, 3, n)
    scales = rng.uniform(800.0, 1200.0, n)
    background = rng.normal(2.0, 0.5, (18, 32)).astype(np.float32)
    for under in (background, np.where(np.arange(32) == 7, np.float32(np.nan), background)):
        stored = median_combine_stored(
            stack, rows, cols, offsets=offsets, background=under, scales=scales
        )
        floats = median_combine(
            stack.physical((rows, cols)), offsets=offsets, background=under, scales=scales
        )
        for mine, theirs in zip(stored, floats, strict=True):
            assert mine.dtype == theirs.dtype and mine.tobytes() == theirs.tobytes()
    assert np.isnan(stored[0][:, 7]).all() and (stored[2][:, 7] == 0).all()


def _stored_floats(rng: np.random.Generator, n: int, shape: tuple[int, int]) -> StoredStack:
    """n big-endian float32 frames as FITS stores them, unscaled (a raw HAWK-I chip's),
    with NaNs, infinities, signed zeros and subnormals among ordinary values."""
    frames = rng.normal(12000, 150, (n, *shape)).astype(np.float32)
    frames[0, 3, 4], frames[-1, 5, 6], frames[n // 2, 7, 8] = np.nan, np.inf, -0.0
    frames[0, 9, 10] = np.float32(1e-40)
    return StoredStack(tuple(MappedImage(f.astype(">f4"), 1.0, 0.0) for f in frames))


@pytest.mark.parametrize("n", [1, 4, 9, 65])
def test_a_stored_float32_stack_combines_as_its_native_stack(n: int) -> None:
    """Unscaled float32 frames read in place (each word byte-swapped as it is read):
    bit for bit the combination of their native stack, plain and as a flat's (less a
    background, divided by each frame's level); more frames than a network takes go
    through the stack."""
    rng = np.random.default_rng(200 + n)
    stack = _stored_floats(rng, n, (23, 41))
    assert stack.kind == "float32"
    rows, cols = slice(2, 20), slice(3, 37)
    native = stack.physical((rows, cols))
    assert native.dtype == np.float32 and native.dtype.isnative
    offsets = rng.normal(0, 3, n)
    flat = {
        "background": rng.normal(2.0, 0.5, (18, 34)).astype(np.float32),
        "scales": rng.uniform(800.0, 1200.0, n),
    }
    for kwargs in ({}, flat):
        stored = median_combine_stored(stack, rows, cols, offsets=offsets, **kwargs)
        floats = median_combine(native, offsets=offsets, **kwargs)
        for mine, theirs in zip(stored, floats, strict=True):
            assert mine.dtype == theirs.dtype and mine.tobytes() == theirs.tobytes()


def test_a_stored_stack_holds_frames_stored_alike() -> None:
    ints = _stored(np.random.default_rng(0), 1, (4, 5), 1.0)[0]
    floats = MappedImage(np.zeros((4, 5), ">f4"), 1.0, 0.0)
    assert StoredStack((ints,)).kind == "int16" and StoredStack(()).kind == ""
    with pytest.raises(ValueError, match="stored alike"):
        StoredStack((ints, floats))
    for unreadable in (
        MappedImage(np.zeros((4, 5), ">f4"), 2.0, 0.0),  # scaled
        MappedImage(np.zeros((4, 5), ">f4"), 1.0, 0.0, 0.5),  # a mean of reads
        MappedImage(np.zeros((4, 5), ">f8"), 1.0, 0.0),
    ):
        with pytest.raises(ValueError, match="unscaled big-endian float32"):
            StoredStack((unreadable,))


def test_a_stored_image_converts_what_is_taken() -> None:
    raw = np.array([[-32768, -1, 0], [1, 2, 32767]], ">i2")
    image = StoredImage(raw.view(np.uint16), 2.0, 32768.0)
    expected = raw.astype(np.float32) * np.float32(2.0) + np.float32(32768.0)
    np.testing.assert_array_equal(image[:, 1:], expected[:, 1:])
    np.testing.assert_array_equal(image[1], expected[1])
    assert image.shape == (2, 3)
    with pytest.raises(ValueError, match="one shape"):
        StoredStack((image, StoredImage(raw[:, :2].copy().view(np.uint16), 1.0, 0.0)))
