"""Counter-based random numbers for the simulator's pixels, compiled with numba.

Every pixel's random numbers are a function of a *key* (the stream: which seed,
exposure and detector) and a *counter* (which pixel, what for), computed by
Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as
1, 2, 3", SC'11; the known answers of Random123's ``tests/kat_vectors`` are checked by
tests/simulate/test_noise.py). Nothing is carried from one pixel to the next, so a
pixel's value does not depend on the number of threads, on the order rows are made
in, or on which other detectors or exposures are simulated.

Keys come from the seed tuples that name the simulator's numpy streams
(``np.random.default_rng([seed, 2, exposure, detector])``): the tuple's
``SeedSequence`` with its own spawn key (``_PHILOX_SPAWN``) gives the two key words,
so the pixel noise is a stream of its own beside the numpy stream of the same tuple.

Counters are ``(column // 4, row, lane, 0)``: one Philox block gives four 32-bit
words, one per pixel of four consecutive columns; lane ``_LANE_GAUSS`` for the
Gaussian deviate, ``_LANE_POISSON`` for the uniform of an exact Poisson count. The
rare draws that need more words (the ziggurat's wedges and tail) take whole blocks of
their own, counter ``(column, row, _LANE_GAUSS_EXTRA, attempt)``.

Gaussian deviates use the ziggurat method (Marsaglia and Tsang, "The Ziggurat Method
for Generating Random Variables", J. Stat. Softw. 5(8), 2000), 256 layers, from one
32-bit word: 8 bits choose the layer, 1 the sign, 23 the abscissa, as numpy's float32
``standard_normal`` does. It is exact: about 1 % of draws fall in a wedge or the tail
and are accepted or rejected against the density itself. Box-Muller on the same
words measured 0.18-0.23 s per 2144 x 4200 CCD on one core (libm's log, sin and cos
per pair), this ziggurat 0.05 s, numpy's own float32 generator 0.10-0.16 s.

Photon noise (``readout_into``) is Poisson, drawn exactly by inversion where the
expected count of a pixel (over all NDIT reads) is below ``POISSON_EXACT_BELOW``
electrons: dark and bias frames, faint sky, the wings of stars. Above it the Poisson
law is replaced by the Gaussian of the same mean and variance: its skewness there is
below 1/8 before read noise is added, the recipes measure means, variances and
medians of such pixels, whose Poisson and Gaussian values agree to well under 1 %
of the noise, and inversion would cost about one step per electron.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from qclib.compile_once import call_compiled_once, parallel_kernel

#: Spawn key that makes a pixel-noise key differ from the numpy stream of the same tuple.
_PHILOX_SPAWN = 0x51AE
#: Counter lanes: the four-pixel blocks of Gaussian words; a pixel's extra Gaussian
#: words (wedge, tail); a pixel's uniform for its Poisson count.
_LANE_GAUSS = 0
_LANE_GAUSS_EXTRA = 1
_LANE_POISSON = 2

#: Pixels expecting fewer electrons than this get an exact Poisson count.
POISSON_EXACT_BELOW = 64.0
#: The largest count an inversion reaches (far beyond any mean it is used for).
_POISSON_STEPS = 1000
#: Partial sums of a repeating mean compared without branches (``_poisson_table``).
_POISSON_WINDOW = 16
#: Below this mean the term-by-term inversion, which mostly stops at once, is faster.
_POISSON_TABLE_FROM = 0.5

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint32(0x9E3779B9)
_W1 = np.uint32(0xBB67AE85)
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_TWO_M32 = 2.0**-32


def stream_key(*words: int) -> np.ndarray:
    """The Philox key (two uint32) of the stream named by a seed tuple.

    >>> stream_key(0, 2, 5, 1).dtype, stream_key(0, 2, 5, 1).shape
    (dtype('uint32'), (2,))
    """
    sequence = np.random.SeedSequence(list(words), spawn_key=(_PHILOX_SPAWN,))
    return sequence.generate_state(2, np.uint32)


@numba.njit(cache=True, inline="always")
def _philox(c0, c1, c2, c3, k0, k1):  # type: ignore[no-untyped-def]
    """Philox4x32-10 of the counter (c0..c3) under the key (k0, k1): four uint32."""
    for _ in range(10):
        p0 = np.uint64(c0) * _M0
        p1 = np.uint64(c2) * _M1
        hi0 = np.uint32(p0 >> _SHIFT32)
        lo0 = np.uint32(p0 & _LOW32)
        hi1 = np.uint32(p1 >> _SHIFT32)
        lo1 = np.uint32(p1 & _LOW32)
        c0, c1, c2, c3 = (
            np.uint32(hi1 ^ c1 ^ k0),
            lo1,
            np.uint32(hi0 ^ c3 ^ k1),
            lo0,
        )
        k0 = np.uint32(k0 + _W0)
        k1 = np.uint32(k1 + _W1)
    return c0, c1, c2, c3


@numba.njit(cache=True)
def philox4x32(counter: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Philox4x32-10 of one counter (4 uint32) under one key (2 uint32)."""
    a0, a1, a2, a3 = _philox(
        np.uint32(counter[0]),
        np.uint32(counter[1]),
        np.uint32(counter[2]),
        np.uint32(counter[3]),
        np.uint32(key[0]),
        np.uint32(key[1]),
    )
    out = np.empty(4, dtype=np.uint32)
    out[0], out[1], out[2], out[3] = a0, a1, a2, a3
    return out


def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Marsaglia and Tsang's 256-layer tables for N(0, 1), 23-bit abscissae.

    ``k[i]``: below it a draw of layer ``i`` is inside the density (accepted at
    once); ``w[i]``: abscissa per unit of the 23-bit integer; ``f[i]``: the density
    exp(-x_i^2 / 2) at the layer's edge. Returns also r, where the tail starts.
    """
    r = 3.6541528853610088
    v = 4.92867323399e-3  # area of each layer (the base: its strip plus the tail)
    m = 2.0**23
    k = np.zeros(256, dtype=np.uint32)
    w = np.zeros(256)
    f = np.zeros(256)
    d = t = r
    q = v / math.exp(-0.5 * d * d)
    k[0] = int((d / q) * m)
    k[1] = 0
    w[0] = q / m
    w[255] = d / m
    f[0] = 1.0
    f[255] = math.exp(-0.5 * d * d)
    for i in range(254, 0, -1):
        d = math.sqrt(-2.0 * math.log(v / d + math.exp(-0.5 * d * d)))
        k[i + 1] = int((d / t) * m)
        t = d
        f[i] = math.exp(-0.5 * d * d)
        w[i] = d / m
    return k, w, f, r


_ZIG_K, _ZIG_W, _ZIG_F, _ZIG_R = _ziggurat_tables()


@numba.njit(cache=True, inline="always")
def _uniform(word):  # type: ignore[no-untyped-def]
    """A uint32 as a float64 uniform in (0, 1)."""
    return (np.float64(word) + 0.5) * _TWO_M32


@numba.njit(cache=True)
def _ziggurat_slow(word, col, row, k0, k1, zk, zw, zf, r):  # type: ignore[no-untyped-def]
    """The rare draw that leaves the ziggurat's rectangles: wedge test or tail, with
    new words from the pixel's own blocks (lane ``_LANE_GAUSS_EXTRA``)."""
    attempt = np.uint32(0)
    while True:
        idx = word & np.uint32(0xFF)
        negative = (word >> np.uint32(8)) & np.uint32(1)
        u = word >> np.uint32(9)
        x = np.float64(u) * zw[idx]
        if u < zk[idx]:
            return -x if negative else x
        a0, a1, a2, _a3 = _philox(
            np.uint32(col), np.uint32(row), np.uint32(_LANE_GAUSS_EXTRA), attempt, k0, k1
        )
        attempt += np.uint32(1)
        if idx == 0:
            # Tail beyond r (Marsaglia 1964): accept r + x with x ~ Exp(r) when
            # 2 y > x^2, y ~ Exp(1); on rejection try again with fresh words.
            while True:
                xt = -math.log(_uniform(a1)) / r
                yt = -math.log(_uniform(a2))
                if yt + yt > xt * xt:
                    return -(r + xt) if negative else r + xt
                a0, a1, a2, _a3 = _philox(
                    np.uint32(col), np.uint32(row), np.uint32(_LANE_GAUSS_EXTRA), attempt, k0, k1
                )
                attempt += np.uint32(1)
        if zf[idx] + _uniform(a1) * (zf[idx - 1] - zf[idx]) < math.exp(-0.5 * x * x):
            return -x if negative else x
        word = a0


@numba.njit(cache=True, inline="always")
def _gauss(word, col, row, k0, k1, zk, zw, zf, r):  # type: ignore[no-untyped-def]
    """N(0, 1) from one word: the ziggurat's fast path, else ``_ziggurat_slow``."""
    idx = word & np.uint32(0xFF)
    u = word >> np.uint32(9)
    if u < zk[idx]:
        x = np.float64(u) * zw[idx]
        return -x if (word >> np.uint32(8)) & np.uint32(1) else x
    return _ziggurat_slow(word, col, row, k0, k1, zk, zw, zf, r)


@numba.njit(cache=True, inline="always")
def _poisson(lam, p0, word):  # type: ignore[no-untyped-def]
    """Poisson count of mean ``lam`` (< ``POISSON_EXACT_BELOW``; ``p0`` its
    ``exp(-lam)``) by inversion of its distribution function at the uniform of
    ``word``."""
    u = _uniform(word)
    p = p0
    total = p
    n = 0
    # Stops where the probabilities left underflow (u within rounding of 1).
    while u > total and n < _POISSON_STEPS:
        n += 1
        p *= lam / n
        total += p
        if p == 0.0 and n > lam:
            break
    return n


@numba.njit(cache=True)
def _start_table(lam, p0, cdf, state, sizes):  # type: ignore[no-untyped-def]
    """Begin ``_poisson_table``'s table for ``lam`` with its first _POISSON_WINDOW
    partial sums."""
    cdf[0], state[0], state[1] = p0, p0, p0
    sizes[0], sizes[1] = 1, -1
    for n in range(1, _POISSON_WINDOW):
        term = state[0] * (lam / n)
        total = state[1] + term
        state[0], state[1] = term, total
        if sizes[1] >= 0:
            cdf[n] = 2.0  # beyond the last count: above every uniform
            continue
        sizes[0] = n + 1
        if term == 0.0 and n > lam:  # the last count: above every uniform
            sizes[1] = n
            cdf[n] = 2.0
        else:
            cdf[n] = total


@numba.njit(cache=True, inline="always")
def _poisson_table(lam, word, cdf, state, sizes):  # type: ignore[no-untyped-def]
    """``_poisson(lam, exp(-lam), word)`` from a table of its partial sums ``cdf``,
    made as far as draws have needed it (``sizes[0]`` entries; ``state``: the last
    term and sum; ``sizes[1]``: the count where ``_poisson`` stops, -1 while not
    reached). The sums are made by the same operations in the same order, so the
    count is the same."""
    u = _uniform(word)
    # The first _POISSON_WINDOW terms without a branch (the table holds them): the
    # count is the number of partial sums below u when it is below the window's end.
    n = 0
    for k in range(_POISSON_WINDOW):
        n += u > cdf[k]
    if n < _POISSON_WINDOW:
        return n
    while True:
        if n == sizes[0]:
            term = state[0] * (lam / n)
            total = state[1] + term
            cdf[n] = total
            state[0], state[1] = term, total
            sizes[0] = n + 1
            if n == _POISSON_STEPS or (term == 0.0 and n > lam):
                sizes[1] = n
        if u <= cdf[n] or n == sizes[1]:
            return n
        n += 1


@numba.njit(cache=True, inline="always")
def _row_words(words, row, lane, k0, k1):  # type: ignore[no-untyped-def]
    """The words of one row: block ``b`` (counter ``(b, row, lane, 0)``) gives the words
    of columns 4b..4b+3. A loop of its own, so that the compiler vectorises Philox
    (0.02 s per 2144 x 4200 CCD; inside the pixel loop it took three times longer)."""
    for block in range(words.shape[0] // 4):
        a0, a1, a2, a3 = _philox(
            np.uint32(block), np.uint32(row), np.uint32(lane), np.uint32(0), k0, k1
        )
        words[4 * block] = a0
        words[4 * block + 1] = a1
        words[4 * block + 2] = a2
        words[4 * block + 3] = a3


@numba.njit(cache=True, inline="always")
def _row_normals(z, words, row, k0, k1, zk, zw, zf, r):  # type: ignore[no-untyped-def]
    """N(0, 1) of each column of one row from its words: the ziggurat's rectangles
    first (a branch-free loop), then the few draws that need ``_ziggurat_slow``."""
    nx = z.shape[0]
    for col in range(nx):
        word = words[col]
        x = np.float64(word >> np.uint32(9)) * zw[word & np.uint32(0xFF)]
        z[col] = -x if (word >> np.uint32(8)) & np.uint32(1) else x
    for col in range(nx):
        word = words[col]
        if (word >> np.uint32(9)) >= zk[word & np.uint32(0xFF)]:
            z[col] = _ziggurat_slow(word, col, row, k0, k1, zk, zw, zf, r)


@parallel_kernel
def _fill_normal(out, k0, k1, zk, zw, zf, r):  # type: ignore[no-untyped-def]
    ny, nx = out.shape
    for row in numba.prange(ny):
        words = np.empty(4 * ((nx + 3) // 4), dtype=np.uint32)
        z = np.empty(nx, dtype=np.float64)
        _row_words(words, row, _LANE_GAUSS, k0, k1)
        _row_normals(z, words, row, k0, k1, zk, zw, zf, r)
        for col in range(nx):
            out[row, col] = z[col]


def standard_normal(key: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """N(0, 1) deviates, float32, of the stream ``key`` at pixels (row, column) of
    ``shape``: the value at a pixel depends only on the key and the pixel."""
    out = np.empty(shape, dtype=np.float32)
    call_compiled_once(
        _fill_normal, out, np.uint32(key[0]), np.uint32(key[1]), _ZIG_K, _ZIG_W, _ZIG_F, _ZIG_R
    )
    return out


@parallel_kernel
def _readout(  # type: ignore[no-untyped-def]
    out_f32,
    out_be16,
    k0,
    k1,
    zk,
    zw,
    zf,
    r,
    charge,
    row0,
    col0,
    reads,
    read_noise_e,
    gain,
    c2,
    c3,
    column_factor,
    bias_structure,
    level,
    sigma_outside_adu,
    additive,
    row_offsets,
    saturation,
    scale,
    ccd,
):
    ny, nx = out_f32.shape if not ccd else out_be16.shape
    dy, dx = bias_structure.shape
    has_charge = charge.shape[0] > 0
    has_additive = additive.shape[0] > 0
    has_rows = row_offsets.shape[0] > 0
    read_var = read_noise_e * read_noise_e
    read_sigma = read_noise_e / math.sqrt(reads)
    ccd_max = min(saturation, 65535.0)
    # Each step is a loop of its own over the row (measured: one loop with every
    # branch inside ran 4-6 times slower, as the compiler vectorises none of it).
    for row in numba.prange(ny):
        words = np.empty(4 * ((nx + 3) // 4), dtype=np.uint32)
        z = np.empty(nx, dtype=np.float64)
        value = np.empty(nx, dtype=np.float64)
        cdf = np.empty(_POISSON_STEPS + 1, dtype=np.float64)
        state = np.empty(2, dtype=np.float64)  # the table's last term and sum
        sizes = np.empty(2, dtype=np.int64)  # entries made, the last count (-1: not known)
        _row_words(words, row, _LANE_GAUSS, k0, k1)
        _row_normals(z, words, row, k0, k1, zk, zw, zf, r)
        for col in range(nx):
            value[col] = z[col] * sigma_outside_adu + level
        if row0 <= row < row0 + dy:
            y = row - row0
            if has_charge:
                low = False
                for x in range(dx):
                    q = np.float64(charge[y, x])
                    value[col0 + x] = q + z[col0 + x] * math.sqrt(max(q + read_var, 0.0) / reads)
                    low |= q * reads < POISSON_EXACT_BELOW
                if low:
                    _row_words(words, row, _LANE_POISSON, k0, k1)
                    # exp(-lam) kept while lam repeats (a dark's charge is one value
                    # but for its hot pixels and hits): 137 ms per OmegaCAM dark
                    # readout with an exp per pixel.
                    last, p0 = -1.0, 1.0
                    # The distribution function of the row's repeating mean, kept as a
                    # table (same sums, so the same counts as ``_poisson``): a dark
                    # readout took 300 ms on one core inverting term by term, 130 ms
                    # searching the table.
                    table_lam = -1.0
                    for x in range(dx):
                        lam = np.float64(charge[y, x]) * reads
                        if 0.0 <= lam < POISSON_EXACT_BELOW:
                            if lam != last:
                                last, p0 = lam, math.exp(-lam)
                            elif lam != table_lam and lam >= _POISSON_TABLE_FROM:
                                table_lam = lam
                                _start_table(lam, p0, cdf, state, sizes)
                            if lam == table_lam:
                                count = _poisson_table(lam, words[col0 + x], cdf, state, sizes)
                            else:
                                count = _poisson(lam, p0, words[col0 + x])
                            value[col0 + x] = count / reads + z[col0 + x] * read_sigma
                for x in range(dx):
                    adu = value[col0 + x] / gain
                    adu = adu * (1.0 + column_factor[x] * ((c2 + c3 * adu) * adu))
                    value[col0 + x] = adu + bias_structure[y, x] + level
            else:
                for x in range(dx):
                    value[col0 + x] += bias_structure[y, x]
        if has_additive:
            for col in range(nx):
                value[col] += additive[row, col]
        if has_rows:
            for col in range(nx):
                value[col] += row_offsets[row]
        if ccd:
            # Rounded, clipped to 16 bits, stored as FITS does with BZERO = 32768:
            # the int16 v - 32768 (v with its top bit flipped), big-endian.
            for col in range(nx):
                v = min(max(np.rint(value[col]), 0.0), ccd_max)
                stored = np.uint16(np.int64(v)) ^ np.uint16(0x8000)
                out_be16[row, col] = (stored >> np.uint16(8)) | (stored << np.uint16(8))
        else:
            for col in range(nx):
                out_f32[row, col] = np.float32(min(value[col], saturation) * scale)


_EMPTY_2D = np.zeros((0, 0), dtype=np.float32)
_EMPTY_1D = np.zeros(0, dtype=np.float32)


def readout_into(
    out: np.ndarray,
    key: np.ndarray,
    *,
    charge_e: np.ndarray | None,
    data_origin: tuple[int, int],
    reads: int,
    read_noise_e: float,
    gain_e_per_adu: float,
    nonlinearity: tuple[float, float],
    column_factor: np.ndarray,
    bias_structure_adu: np.ndarray,
    level_adu: float,
    sigma_outside_adu: float,
    additive_adu: np.ndarray | None = None,
    row_offsets_adu: np.ndarray | None = None,
    saturation_adu: float = math.inf,
    scale: float = 1.0,
) -> np.ndarray:
    """One raw frame, noise included, in one pass over its pixels.

    Over the data region (``bias_structure_adu``'s shape, from ``data_origin`` =
    (row, column) of the raw): ``e = Poisson(reads q) / reads + N * RON / sqrt(reads)``
    (``q`` = ``charge_e``, electrons per read; the Gaussian of the same variance where
    ``reads q >= POISSON_EXACT_BELOW``), ``adu = e / gain``, made non-linear
    ``adu (1 + f (c2 + c3 adu) adu)`` (``nonlinearity`` = (c2, c3), ``f`` =
    ``column_factor`` per data column), plus the bias structure and ``level_adu``.
    Without ``charge_e`` (a reset frame) the data region is ``N * sigma_outside_adu``
    plus the structure and the level, as are the other pixels without the structure.
    Then ``additive_adu`` (whole raw) and ``row_offsets_adu`` (per raw row) are added.

    ``out`` chooses the encoding: ``uint16`` (a CCD) holds the value rounded, clipped
    to 0..min(saturation, 65535) and stored as FITS int16 with BZERO = 32768,
    big-endian; ``float32`` (IR) holds ``min(value, saturation) * scale`` in native
    order. Returns ``out``.
    """
    k0, k1 = np.uint32(key[0]), np.uint32(key[1])
    ccd = out.dtype == np.uint16
    if not ccd and out.dtype != np.float32:
        raise TypeError(f"readout_into writes uint16 (CCD) or float32 (IR), not {out.dtype}")
    c2, c3 = nonlinearity
    call_compiled_once(
        _readout,
        _EMPTY_2D if ccd else out,
        out if ccd else np.zeros((0, 0), dtype=np.uint16),
        k0,
        k1,
        _ZIG_K,
        _ZIG_W,
        _ZIG_F,
        _ZIG_R,
        _EMPTY_2D if charge_e is None else charge_e,
        data_origin[0],
        data_origin[1],
        float(reads),
        float(read_noise_e),
        float(gain_e_per_adu),
        float(c2),
        float(c3),
        column_factor,
        bias_structure_adu,
        float(level_adu),
        float(sigma_outside_adu),
        _EMPTY_2D if additive_adu is None else additive_adu,
        _EMPTY_1D if row_offsets_adu is None else row_offsets_adu,
        float(saturation_adu),
        float(scale),
        ccd,
    )
    return out
