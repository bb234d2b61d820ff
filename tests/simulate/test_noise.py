"""The simulator's counter-based generator (qclib.simulate.noise) against known truth.

Philox4x32-10 against Random123's published known answers; the Gaussian deviates
against N(0, 1) on millions of values (moments, Kolmogorov-Smirnov, tail
frequencies); neighbouring pixels and neighbouring streams uncorrelated; exact
Poisson counts against the Poisson law; the encoding of CCD values as FITS bytes.

The generator is deterministic, so each statistical check either always passes or
always fails for its fixed key. Bounds are stated as multiples of the statistic's
standard error: 5 sigma, or a KS distance whose chance of being exceeded by a true
N(0, 1) sample is 0.1 %.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from scipy import stats

from qclib.simulate import noise
from qclib.simulate.noise import (
    POISSON_EXACT_BELOW,
    philox4x32,
    readout_into,
    standard_normal,
    stream_key,
)

#: Random123 tests/kat_vectors (github.com/DEShawResearch/random123), "philox4x32 10":
#: counter (4 words), key (2 words), expected output (4 words).
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (
        (0xFFFFFFFF,) * 4,
        (0xFFFFFFFF,) * 2,
        (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD),
    ),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]

SHAPE = (1000, 2048)  # 2.05 million deviates
N = SHAPE[0] * SHAPE[1]


@pytest.fixture(scope="module")
def normals() -> np.ndarray:
    return standard_normal(stream_key(7, 2, 3, 1), SHAPE).astype(np.float64)


@pytest.mark.parametrize(("counter", "key", "expected"), KNOWN_ANSWERS)
def test_philox_known_answers(counter, key, expected) -> None:
    got = philox4x32(np.array(counter, dtype=np.uint32), np.array(key, dtype=np.uint32))
    assert [int(v) for v in got] == list(expected)


def test_stream_keys_follow_the_seed_tuple() -> None:
    assert np.array_equal(stream_key(0, 2, 5, 1), stream_key(0, 2, 5, 1))
    keys = {tuple(stream_key(0, 2, e, d)) for e in range(20) for d in range(32)}
    assert len(keys) == 20 * 32
    # Not the words numpy's own generator of the same tuple is seeded with.
    numpy_words = np.random.SeedSequence([0, 2, 5, 1]).generate_state(2, np.uint32)
    assert not np.array_equal(stream_key(0, 2, 5, 1), numpy_words)


def test_moments_of_the_gaussian_deviates(normals: np.ndarray) -> None:
    # Standard errors: mean 1/sqrt(N); variance sqrt(2/N); skewness sqrt(6/N);
    # excess kurtosis sqrt(24/N).
    assert abs(normals.mean()) < 5 / math.sqrt(N)
    assert abs(normals.var() - 1) < 5 * math.sqrt(2 / N)
    assert abs(stats.skew(normals, axis=None)) < 5 * math.sqrt(6 / N)
    assert abs(stats.kurtosis(normals, axis=None)) < 5 * math.sqrt(24 / N)


def test_gaussian_deviates_pass_kolmogorov_smirnov(normals: np.ndarray) -> None:
    result = stats.kstest(normals.ravel(), "norm")
    # Kolmogorov's distribution: P(sqrt(N) D > 1.949) = 0.001.
    assert result.statistic < 1.949 / math.sqrt(N)


def test_tails_have_their_gaussian_frequency() -> None:
    """The ziggurat's wedges and tail (its slow path, about 1 % of draws) give the
    right share of large values: checked beyond 2, 3, 4 and 4.5 sigma on 8.4 million."""
    z = standard_normal(stream_key(11, 2, 0, 0), (4096, 2048)).astype(np.float64).ravel()
    for k in (2.0, 3.0, 4.0, 4.5):
        p = 2 * stats.norm.sf(k)
        expected = p * z.size
        count = int(np.count_nonzero(np.abs(z) > k))
        assert abs(count - expected) < 5 * math.sqrt(expected * (1 - p)), k
    # Both signs: the sign bit is a word's own.
    positive = np.count_nonzero(z > 0)
    assert abs(positive - z.size / 2) < 5 * math.sqrt(z.size / 4)
    assert np.abs(z).max() > 5.0  # the tail beyond r = 3.654 is reached, and beyond


def test_neighbouring_pixels_and_streams_are_uncorrelated(normals: np.ndarray) -> None:
    """Adjacent columns (within and across the four-pixel blocks of one Philox call),
    adjacent rows, and the same pixel in streams whose tuples differ by one (next
    detector, next exposure): each |correlation| < 5 / sqrt(N)."""
    bound = 5 / math.sqrt(N)

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    for shift in (1, 2, 3, 4, 5):
        assert abs(corr(normals[:, :-shift], normals[:, shift:])) < bound, shift
    assert abs(corr(normals[:-1], normals[1:])) < bound
    blocks = normals.reshape(SHAPE[0], -1, 4)
    for j in range(1, 4):
        # N / 4 pairs: the standard error doubles.
        assert abs(corr(blocks[..., 0], blocks[..., j])) < 2 * bound, j
    for other in ((7, 2, 3, 2), (7, 2, 4, 1), (8, 2, 3, 1)):
        twin = standard_normal(stream_key(*other), SHAPE).astype(np.float64)
        assert abs(corr(normals, twin)) < bound, other
        assert not np.array_equal(normals, twin)


def test_a_pixel_depends_on_its_position_only() -> None:
    """Same value whatever the frame's size, the row order or the thread count."""
    key = stream_key(3, 2, 1, 0)
    small = standard_normal(key, (50, 70))
    large = standard_normal(key, (300, 2144))
    np.testing.assert_array_equal(small, large[:50, :70])
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = standard_normal(key, (300, 2144))
    finally:
        numba.set_num_threads(threads)
    assert one.tobytes() == large.tobytes()


def _ir_frame(charge: np.ndarray, *, reads: int, read_noise_e: float) -> np.ndarray:
    """A float32 frame that is all data region, gain 1, no bias: the electrons read."""
    ny, nx = charge.shape
    return readout_into(
        np.empty((ny, nx), dtype=np.float32),
        stream_key(5, 2, 0, 0),
        charge_e=charge.astype(np.float32),
        data_origin=(0, 0),
        reads=reads,
        read_noise_e=read_noise_e,
        gain_e_per_adu=1.0,
        nonlinearity=(0.0, 0.0),
        column_factor=np.ones(nx, dtype=np.float32),
        bias_structure_adu=np.zeros((ny, nx), dtype=np.float32),
        level_adu=0.0,
        sigma_outside_adu=0.0,
    )


@pytest.mark.parametrize("lam", [0.3, 3.5, 20.0, 63.0])
def test_low_counts_are_exact_poisson(lam: float) -> None:
    """Without read noise a low-count pixel reads an integer drawn from Poisson(lam):
    a chi-square test of the counts' histogram (cells with at least 5 expected)
    against the Poisson law, P < 0.1 % rejected; mean and variance within 5 sigma."""
    frame = _ir_frame(np.full((1000, 1024), lam), reads=1, read_noise_e=0.0).ravel()
    assert np.array_equal(frame, np.round(frame))
    n = frame.size
    assert abs(frame.mean() - lam) < 5 * math.sqrt(lam / n)
    assert abs(frame.var() - lam) < 5 * lam * math.sqrt((2 + 1 / lam) / n)
    counts = np.bincount(frame.astype(np.int64))
    k = np.arange(counts.size)
    expected = stats.poisson.pmf(k, lam) * n
    keep = expected >= 5
    observed = np.append(counts[keep], counts[~keep].sum())
    wanted = np.append(expected[keep], n - expected[keep].sum())
    chi2 = ((observed - wanted) ** 2 / wanted).sum()
    assert stats.chi2.sf(chi2, observed.size - 1) > 1e-3, chi2


@pytest.mark.parametrize("lam", [0.0, 0.5, 3.0, 17.25, 63.9])
def test_table_of_a_repeating_mean_gives_the_counts_of_term_by_term_inversion(
    lam: float,
) -> None:
    """The partial-sum table a repeating mean uses gives, word for word, the count the
    term-by-term inversion gives, the extreme words included (u next to 0 and 1)."""
    words = np.random.default_rng(7).integers(0, 2**32, 200_000, dtype=np.uint64)
    words = np.concatenate([words, [0, 1, 2**31, 2**32 - 2, 2**32 - 1]]).astype(np.uint32)
    p0 = math.exp(-lam)
    cdf = np.empty(noise._POISSON_STEPS + 1)
    state, sizes = np.empty(2), np.empty(2, dtype=np.int64)
    noise._start_table(lam, p0, cdf, state, sizes)
    table = [noise._poisson_table(lam, w, cdf, state, sizes) for w in words]
    direct = [noise._poisson(lam, p0, w) for w in words]
    assert table == direct


@pytest.mark.parametrize("reads", [1, 3])
def test_a_readout_switching_between_table_and_inversion_reads_the_inversion_counts(
    reads: int,
) -> None:
    """Rows of repeating means interrupted by others (a dark's level, hot pixels, hits:
    runs like A A B A A C), read without noise: every pixel is the count the
    term-by-term inversion gives for its own word of the Poisson lane."""
    pattern = np.array([2.5, 2.5, 17.0, 2.5, 2.5, 0.3, 0.3, 63.9, 63.9, 0.5, 0.0, 0.0])
    charge = np.resize(pattern, (64, 1024)) / reads
    charge[::7] = np.roll(charge[::7], 5, axis=1)  # runs starting elsewhere on some rows
    frame = _ir_frame(charge, reads=reads, read_noise_e=0.0)
    k0, k1 = (np.uint32(w) for w in stream_key(5, 2, 0, 0))
    words = np.empty(1024, dtype=np.uint32)
    lam = charge.astype(np.float32).astype(np.float64) * reads
    for row in range(charge.shape[0]):
        noise._row_words(words, row, noise._LANE_POISSON, k0, k1)
        counts = [noise._poisson(m, math.exp(-m), w) for m, w in zip(lam[row], words, strict=True)]
        assert np.array_equal(frame[row], (np.array(counts) / reads).astype(np.float32)), row


def test_reads_average_poisson_counts_of_all_reads() -> None:
    """An IR raw of NDIT reads holds their mean: Poisson(NDIT q) / NDIT, whose variance
    is q / NDIT, plus read noise / sqrt(NDIT)."""
    q, reads, ron = 5.0, 6, 4.0
    frame = _ir_frame(np.full((1000, 1024), q), reads=reads, read_noise_e=ron).astype(np.float64)
    n = frame.size
    variance = q / reads + ron**2 / reads
    assert abs(frame.mean() - q) < 5 * math.sqrt(variance / n)
    assert frame.var() == pytest.approx(variance, rel=5 * math.sqrt(2 / n))


def test_high_counts_keep_mean_and_variance() -> None:
    """Above POISSON_EXACT_BELOW the Gaussian of the same mean and variance."""
    q = 4 * POISSON_EXACT_BELOW
    frame = _ir_frame(np.full((1000, 1024), q), reads=1, read_noise_e=3.0).astype(np.float64)
    n = frame.size
    assert abs(frame.mean() - q) < 5 * math.sqrt((q + 9) / n)
    assert frame.var() == pytest.approx(q + 9.0, rel=5 * math.sqrt(2 / n))


def test_ccd_values_are_rounded_clipped_fits_int16() -> None:
    """A noiseless CCD frame: the bytes are those astropy writes for uint16 data
    (int16 with BZERO = 32768, big-endian), rounded, clipped to 0..saturation."""
    ny, nx = 6, 10
    structure = np.linspace(-2000.0, 70000.0, (ny - 2) * (nx - 4)).reshape(ny - 2, nx - 4)
    out = readout_into(
        np.empty((ny, nx), dtype=np.uint16),
        stream_key(1, 2, 0, 0),
        charge_e=np.zeros((ny - 2, nx - 4), dtype=np.float32),
        data_origin=(1, 2),
        reads=1,
        read_noise_e=0.0,
        gain_e_per_adu=2.0,
        nonlinearity=(0.0, 0.0),
        column_factor=np.ones(nx - 4, dtype=np.float32),
        bias_structure_adu=structure.astype(np.float32),
        level_adu=100.25,
        sigma_outside_adu=0.0,
        saturation_adu=60000.0,
    )
    expected = np.full((ny, nx), 100.0)
    expected[1:-1, 2:-2] = np.clip(np.rint(structure.astype(np.float32) + 100.25), 0, 60000)
    stored = (expected.astype(np.int32) - 32768).astype(">i2")
    assert out.tobytes() == stored.tobytes()


def test_structure_level_saturation_and_scale() -> None:
    """Noiseless (charge 0 reads 0 e-: Poisson(0) = 0; no read noise): the bias
    structure plus the level, clipped at saturation, times the IR scale."""
    ny, nx = 4, 8
    out = readout_into(
        np.empty((ny, nx), dtype=np.float32),
        stream_key(1, 2, 0, 1),
        charge_e=np.zeros((ny, nx), dtype=np.float32),
        data_origin=(0, 0),
        reads=4,
        read_noise_e=0.0,
        gain_e_per_adu=2.0,
        nonlinearity=(1e-5, 0.0),
        column_factor=np.ones(nx, dtype=np.float32),
        bias_structure_adu=np.arange(ny * nx, dtype=np.float32).reshape(ny, nx) * 1000,
        level_adu=10.0,
        sigma_outside_adu=0.0,
        saturation_adu=20_000.0,
        scale=4.0,
    )
    expected = np.minimum(np.arange(ny * nx).reshape(ny, nx) * 1000.0 + 10.0, 20_000.0) * 4
    np.testing.assert_array_equal(out, expected.astype(np.float32))


def test_gain_and_non_linearity_per_column() -> None:
    """ADU = e / gain made non-linear, ``adu (1 + f (c2 + c3 adu) adu)``: the mean of
    columns with factor f = 1 is m + c2 (m^2 + v) + c3 (m^3 + 3 m v), of columns with
    f = 0 is m (m, v: mean and variance of e / gain); within 5 standard errors."""
    ny, nx, q, gain, c2, c3 = 1000, 512, 20_000.0, 2.0, 2e-5, 1e-10
    factor = np.tile(np.array([1.0, 0.0], dtype=np.float32), nx // 2)
    out = readout_into(
        np.empty((ny, nx), dtype=np.float32),
        stream_key(2, 2, 0, 1),
        charge_e=np.full((ny, nx), q, dtype=np.float32),
        data_origin=(0, 0),
        reads=1,
        read_noise_e=0.0,
        gain_e_per_adu=gain,
        nonlinearity=(c2, c3),
        column_factor=factor,
        bias_structure_adu=np.zeros((ny, nx), dtype=np.float32),
        level_adu=0.0,
        sigma_outside_adu=0.0,
    ).astype(np.float64)
    m, v = q / gain, q / gain**2
    n = ny * nx // 2
    linear, curved = out[:, 1::2], out[:, 0::2]
    assert abs(linear.mean() - m) < 5 * math.sqrt(v / n)
    expected = m + c2 * (m * m + v) + c3 * (m**3 + 3 * m * v)
    slope = 1 + 2 * c2 * m + 3 * c3 * m * m
    assert abs(curved.mean() - expected) < 5 * slope * math.sqrt(v / n)


def test_unknown_output_type_is_refused() -> None:
    with pytest.raises(TypeError, match="uint16 \\(CCD\\) or float32 \\(IR\\)"):
        readout_into(
            np.empty((2, 2), dtype=np.float64),
            stream_key(0),
            charge_e=None,
            data_origin=(0, 0),
            reads=1,
            read_noise_e=0.0,
            gain_e_per_adu=1.0,
            nonlinearity=(0.0, 0.0),
            column_factor=np.ones(2, dtype=np.float32),
            bias_structure_adu=np.zeros((2, 2), dtype=np.float32),
            level_adu=0.0,
            sigma_outside_adu=0.0,
        )
