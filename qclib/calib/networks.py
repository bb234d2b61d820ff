"""Sorting networks, and pixel-stack kernels compiled for one frame count. Pure.

A sorting network orders ``n`` values with a fixed list of compare-and-swap steps, so
a median over a stack of frames needs no branch. Written as a loop over comparators
on arrays (``combine._sort_columns``) the compiler cannot keep the values in
registers; written out for one ``n``, each value is a variable, the comparators are
``min``/``max`` of two variables, and the loop over a row's pixels vectorises: the
median of ten 2048x4100 frames takes 55 ms on one thread this way, against 211 ms
(bench/bench_master_bias.py has the whole recipe). The clipped mean's kernel takes
the median and the MAD the same way and settles every pixel whose first clipping
round keeps all its values (20 ms for five HAWK-I darks of 2040x2040); for the 29 %
of their pixels a round clips, a second kernel runs the rest of the rounds on values
held in variables (``clipped_rounds_kernel``), where they went one by one before.

numba compiles a function from its source file, so the kernel for ``n`` frames is
generated as a small Python module, written once into the kernel cache
(``QC_KERNEL_CACHE``, else ``$XDG_CACHE_HOME/qclib/kernels``, else
``~/.cache/qclib/kernels``) under a name that holds its source's SHA-256, and imported
from there; numba caches its machine code beside it. The source is made here from
integers (the frame count and the network's wire numbers), never from user input.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np


def sorting_network(n: int) -> np.ndarray:
    """Comparator pairs (i, j), i < j, of Batcher's odd-even merge sort for ``n``
    values: the network for the next power of two with every comparator that touches
    a padding slot dropped (padding is +inf, so those never swap).

    >>> sorting_network(3).tolist()
    [[0, 1], [0, 2], [1, 2]]
    """
    size = 1
    while size < n:
        size *= 2
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    a, b = i + j, i + j + k
                    if a // (2 * p) == b // (2 * p) and b < n:
                        pairs.append((a, b))
            k //= 2
        p *= 2
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def selection_network(n: int, outputs: Sequence[int]) -> np.ndarray:
    """The comparators of ``sorting_network(n)`` that decide the values at the sorted
    positions ``outputs``: walking back from the end, a comparator stays when it
    writes a wire still needed, and then both its wires are needed before it.

    >>> len(sorting_network(10)), len(selection_network(10, [4, 5]))
    (32, 29)
    """
    needed = set(outputs)
    kept = []
    for a, b in sorting_network(n)[::-1].tolist():
        if a in needed or b in needed:
            kept.append((a, b))
            needed.update((a, b))
    return np.array(kept[::-1], dtype=np.int64).reshape(-1, 2)


def kernel_cache() -> Path:
    """Where generated kernel modules (and numba's machine code for them) are kept."""
    if os.environ.get("QC_KERNEL_CACHE"):
        return Path(os.environ["QC_KERNEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qclib" / "kernels"


def compiled_module(stem: str, source: str) -> ModuleType:
    """Import ``source`` as a module kept in the kernel cache (written atomically the
    first time; the file name holds the source's hash, so a changed generator makes a
    new file). Imported once per process, by one thread at a time: another thread
    would find the module in ``sys.modules`` before its kernel is defined."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    name = f"qc_kernel_{stem}_{digest}"
    with _IMPORTING:
        if name in sys.modules:
            return sys.modules[name]
        return _import_generated(name, source)


_IMPORTING = threading.Lock()


def _import_generated(name: str, source: str) -> ModuleType:
    folder = kernel_cache()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    if not path.exists() or path.read_text() != source:
        handle, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(handle, "w") as stream:
            stream.write(source)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import the generated kernel {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _network_lines(pairs: np.ndarray, indent: str) -> list[str]:
    return [f"{indent}v{a}, v{b} = min(v{a}, v{b}), max(v{a}, v{b})" for a, b in pairs.tolist()]


def _value(f: int, levels: bool) -> str:
    """Frame ``f``'s value at the pixel: as the stack holds it, less its column's level
    (float32 less float32, in float32) in a kernel made with ``levels``."""
    value = f"stack[{f}, y0 + y, x0 + x]"
    return f"np.float32({value} - levels[{f}, x])" if levels else value


def _stack_arguments(levels: bool) -> str:
    """A float32 stack kernel's first arguments: the stack, the window's corner and,
    in a kernel made with ``levels``, the levels ``(frames, nx)``."""
    return "stack, y0, x0, levels" if levels else "stack, y0, x0"


#: What every generated kernel module starts with, after its docstring.
_PREAMBLE = (
    "import math",
    "import numba",
    "import numpy as np",
    "",
    "from qclib.compile_once import parallel_kernel",
    "",
    "",
    "@parallel_kernel",
)


def median_source(n: int, *, background: bool, stored: str = "", levels: bool = False) -> str:
    """Source of the median kernel for stacks of ``n`` frames (see ``median_kernel``)."""
    if n < 1:
        raise ValueError("a stack has at least one frame")
    if stored not in ("", "int16", "float32"):
        raise ValueError(f"frames stored as {stored!r}: int16 or float32 only")
    if stored and levels:
        raise ValueError("a kernel of stored frames takes no column levels")
    half = n // 2
    outputs = [half] if n % 2 else [half - 1, half]
    pad = " " * 12
    under = " - b" if background else ""
    if stored == "float32":
        # FITS float32 (no BSCALE, BZERO) as native float32: the word byte-swapped and
        # its bits taken as a float, then the same arithmetic as for a float32 stack.
        load = []
        for f in range(n):
            load += [
                f"{pad}u = stack[{f}][y0 + y, x0 + x]",
                f"{pad}p = np.uint32((u >> w24) | ((u >> w8) & m8) | ((u << w8) & m16)"
                " | ((u << w24) & m24)).view(np.float32)",
                f"{pad}v{f} = (p - s{f}{under}) * c{f}",
            ]
        arguments = "stack, y0, x0, bscale, bzero, offsets"
        constants = [
            "    w8 = np.uint32(8)",
            "    w24 = np.uint32(24)",
            "    m8 = np.uint32(0xFF00)",
            "    m16 = np.uint32(0xFF0000)",
            "    m24 = np.uint32(0xFF000000)",
        ]
    elif stored:
        # FITS int16 to physical float32 as qclib.stored_pixels converts it (byte swap,
        # * BSCALE, + BZERO), then the same arithmetic as for a float32 stack.
        load = []
        for f in range(n):
            load += [
                f"{pad}u = stack[{f}][y0 + y, x0 + x]",
                f"{pad}p = np.float32(np.int16(np.uint16((u >> eight) | (u << eight))))",
                f"{pad}v{f} = (p * k{f} + z{f} - s{f}{under}) * c{f}",
            ]
        arguments = "stack, y0, x0, bscale, bzero, offsets"
        constants = [
            "    eight = np.uint16(8)",
            *[f"    k{f} = np.float32(bscale[{f}])" for f in range(n)],
            *[f"    z{f} = np.float32(bzero[{f}])" for f in range(n)],
        ]
    else:
        load = [f"{pad}v{f} = ({_value(f, levels)} - s{f}{under}) * c{f}" for f in range(n)]
        arguments = f"{_stack_arguments(levels)}, offsets"
        constants = []
    sums = [f"{pad}t = np.float32(0.0)", f"{pad}q = np.float32(0.0)"]
    for f in range(1, n):
        sums += [f"{pad}d = v{f} - v0", f"{pad}t += d", f"{pad}q += d * d"]
    median = f"v{half}" if n % 2 else f"np.float32(0.5) * (v{half - 1} + v{half})"
    error = (
        [
            f"{pad}variance = (q - t * t / nf) / (nf - 1)",
            f"{pad}err[y, x] = efficiency * math.sqrt(max(variance, np.float32(0.0)) / nf)",
        ]
        if n > 1
        else [f"{pad}err[y, x] = math.nan"]
    )
    lines = [
        f'"""Generated by qclib.calib.networks.median_source: the median of {n} frames."""',
        *_PREAMBLE,
        f"def kernel({arguments}, background, inverse, efficiency, out, err, count):",
        f"    nf = {n}",
        "    ny, nx = out.shape",
        *constants,
        *[f"    s{f} = np.float32(offsets[{f}])" for f in range(n)],
        *[f"    c{f} = np.float32(inverse[{f}])" for f in range(n)],
        "    for y in numba.prange(ny):",
        "        bad = False",
        "        for x in range(nx):",
        *([f"{pad}b = background[y, x]"] if background else []),
        *load,
        *sums,
        f"{pad}bad |= math.isnan(t) or math.isnan(v0)",
        *_network_lines(selection_network(n, outputs), pad),
        f"{pad}out[y, x] = {median}",
        f"{pad}count[y, x] = nf",
        *error,
        "        if bad:",
        "            for x in range(nx):",
        "                count[y, x] = -1",
        "",
    ]
    return "\n".join(lines)


@functools.cache
def median_kernel(
    n: int, *, background: bool, stored: str = "", levels: bool = False
) -> Callable[..., Any]:
    """``kernel(stack, y0, x0, offsets, background, inverse, efficiency, out, err,
    count)``: for each pixel (y, x) of ``out``, the median over the ``n`` frames of
    ``(stack[f, y0 + y, x0 + x] - offsets[f] - background[y, x]) * inverse[f]`` in
    float32 (``background`` is not read when the kernel is made without one), with
    ``efficiency * std / sqrt(n)`` (std summed relative to the first frame) as its
    uncertainty and ``n`` as its count; a row holding a NaN gets count -1 everywhere
    (the caller combines it another way). Parallel over rows, without the GIL.

    ``stack`` should be C-contiguous, the window (y0, x0) of it giving a trimmed
    section: on a strided view the loop over pixels does not vectorise (270 ms
    instead of 45 ms for ten 2048x4100 frames, on one thread; ``contiguous_window``).

    ``stored`` "int16": ``kernel(stack, y0, x0, bscale, bzero, offsets, ...)`` where
    ``stack`` is a tuple of ``n`` 2D arrays of FITS int16 seen as native uint16 (maps
    of the raw files), each value converted as it is read with its frame's BSCALE and
    BZERO: the result is bit for bit that of the float32 stack
    ``int16_be_to_physical`` makes, without making it
    (qclib.calib.combine.median_combine_stored). "float32": the same for FITS float32
    without scaling (an infrared raw) seen as native uint32, each word byte-swapped
    (``bscale`` and ``bzero`` are not read).

    ``levels``: ``kernel(stack, y0, x0, levels, offsets, ...)``, each value first less
    its frame's level of its column, ``levels[f, x]`` (float32: the value is what
    ``stack[f] - levels[f]`` holds), as an infrared array's reference levels are
    taken off without a level-subtracted stack."""
    return compiled_module(
        f"median{n}{'b' if background else ''}{'l' if levels else ''}"
        f"{ {'': '', 'int16': 's', 'float32': 'f'}[stored] }",
        median_source(n, background=background, stored=stored, levels=levels),
    ).kernel


def clipped_mean_source(n: int, *, background: bool, levels: bool = False) -> str:
    """Source of the clipped-mean kernel for stacks of ``n`` frames (see
    ``clipped_mean_kernel``)."""
    if n < 3:
        raise ValueError("a clipped mean needs at least three frames")
    half = n // 2
    outputs = [half] if n % 2 else [half - 1, half]
    network = selection_network(n, outputs)
    pad = " " * 12
    under = " - b" if background else ""

    def middle(prefix: str) -> str:
        if n % 2:
            return f"{prefix}{half}"
        return f"0.5 * ({prefix}{half - 1} + {prefix}{half})"

    # Bitwise, without short cuts: the loop over a row's pixels stays free of branches.
    inside = " & ".join(f"(lo <= v{f}) & (v{f} <= hi)" for f in range(n))
    lines = [
        f'"""Generated by qclib.calib.networks.clipped_mean_source: {n} frames."""',
        *_PREAMBLE,
        f"def kernel({_stack_arguments(levels)}, offsets, background, scales, sigma, clip, "
        "out, err, count):",
        f"    nf = {n}",
        "    root_n = math.sqrt(nf)",
        "    unclipped = not clip",
        "    ny, nx = out.shape",
        *[f"    s{f} = offsets[{f}]" for f in range(n)],
        *[f"    c{f} = scales[{f}]" for f in range(n)],
        "    for y in numba.prange(ny):",
        "        for x in range(nx):",
        *([f"{pad}b = background[y, x]"] if background else []),
        *[f"{pad}v{f} = ({_value(f, levels)} - s{f}{under}) / c{f}" for f in range(n)],
        f"{pad}t = 0.0",
        *[f"{pad}t += v{f}" for f in range(n)],
        f"{pad}mean = t / nf",
        f"{pad}q = 0.0",
        *[f"{pad}q += (v{f} - mean) * (v{f} - mean)" for f in range(n)],
        *[f"{pad}w{f} = v{f}" for f in range(n)],
        *[line.replace("v", "w") for line in _network_lines(network, pad)],
        f"{pad}centre = {middle('w')}",
        *[f"{pad}w{f} = abs(v{f} - centre)" for f in range(n)],
        *[line.replace("v", "w") for line in _network_lines(network, pad)],
        f"{pad}sd = 1.482602218505602 * ({middle('w')})",
        f"{pad}spread = math.sqrt(q / (nf - 1))",
        f"{pad}sd = spread if sd == 0.0 else sd",
        f"{pad}lo = centre - sigma * sd",
        f"{pad}hi = centre + sigma * sd",
        f"{pad}kept = {inside} | unclipped",
        f"{pad}out[y, x] = mean",
        f"{pad}err[y, x] = spread / root_n",
        f"{pad}count[y, x] = nf if kept & (not math.isnan(t)) else -1",
        "",
    ]
    return "\n".join(lines)


def clipped_rounds_source(n: int, *, background: bool, levels: bool = False) -> str:
    """Source of the kernel that finishes the clipped mean of the pixels
    ``clipped_mean_kernel`` left (see ``clipped_rounds_kernel``)."""
    if n < 3:
        raise ValueError("a clipped mean needs at least three frames")
    pad = " " * 12
    inner = pad + "    "
    under = " - b" if background else ""

    def pick(index: str, prefix: str = "o") -> str:
        """The sorted value at a computed position: a chain of selects, no branch."""
        chain = f"{prefix}{n - 1}"
        for j in range(n - 2, -1, -1):
            chain = f"({prefix}{j} if {index} == {j} else {chain})"
        return chain

    def within(indent: str) -> list[str]:
        """``combine._within`` of the frame-order values: sum, squared deviations from
        their mean and count of those in the run's range (adding 0.0 for the others
        leaves a sum that starts at 0.0 bit for bit what skipping them gives)."""
        lo, hi = "bottom", "top"
        return [
            f"{indent}bottom = {pick('first')}",
            f"{indent}top = {pick('stop - 1')}",
            f"{indent}total = 0.0",
            f"{indent}kept = 0",
            *[f"{indent}total += v{f} if {lo} <= v{f} <= {hi} else 0.0" for f in range(n)],
            *[f"{indent}kept += 1 if {lo} <= v{f} <= {hi} else 0" for f in range(n)],
            f"{indent}mean = total / kept",
            f"{indent}squares = 0.0",
            *[
                f"{indent}squares += (v{f} - mean) * (v{f} - mean) if {lo} <= v{f} <= {hi} else 0.0"
                for f in range(n)
            ],
        ]

    network = sorting_network(n)
    lines = [
        f'"""Generated by qclib.calib.networks.clipped_rounds_source: {n} frames."""',
        *_PREAMBLE[:-1],
        "@numba.njit(cache=True, nogil=True)",
        f"def kernel({_stack_arguments(levels)}, offsets, background, scales, sigma, maxiters, "
        "out, err, count):",
        f"    nf = {n}",
        "    ny, nx = out.shape",
        *[f"    s{f} = offsets[{f}]" for f in range(n)],
        *[f"    c{f} = scales[{f}]" for f in range(n)],
        "    for y in range(ny):",
        "        for x in range(nx):",
        f"{pad}if count[y, x] >= 0:",
        f"{pad}    continue",
        *([f"{pad}b = background[y, x]"] if background else []),
        *[f"{pad}v{f} = ({_value(f, levels)} - s{f}{under}) / c{f}" for f in range(n)],
        f"{pad}if not ({' and '.join(f'math.isfinite(v{f})' for f in range(n))}):",
        f"{pad}    continue",
        *[f"{pad}o{f} = v{f}" for f in range(n)],
        *[line.replace("v", "o") for line in _network_lines(network, pad)],
        f"{pad}first = 0",
        f"{pad}stop = nf",
        f"{pad}for _ in range(maxiters):",
        f"{inner}m = stop - first",
        f"{inner}if m < 3:",
        f"{inner}    break",
        f"{inner}lower = {pick('first + (m - 1) // 2')}",
        f"{inner}upper = {pick('first + m // 2')}",
        f"{inner}centre = upper if m % 2 == 1 else 0.5 * (lower + upper)",
        *[
            f"{inner}w{j} = abs(o{j} - centre) if first <= {j} < stop else math.inf"
            for j in range(n)
        ],
        *[line.replace("v", "w") for line in _network_lines(network, inner)],
        f"{inner}lower = {pick('(m - 1) // 2', 'w')}",
        f"{inner}upper = {pick('m // 2', 'w')}",
        f"{inner}sd = 1.482602218505602 * (upper if m % 2 == 1 else 0.5 * (lower + upper))",
        f"{inner}if sd == 0.0:",
        *within(inner + "    "),
        f"{inner}    sd = math.sqrt(squares / (m - 1))",
        f"{inner}lo = centre - sigma * sd",
        f"{inner}hi = centre + sigma * sd",
        f"{inner}below = 0",
        f"{inner}above = 0",
        *[f"{inner}below += 1 if first <= {j} < stop and o{j} < lo else 0" for j in range(n)],
        *[f"{inner}above += 1 if first <= {j} < stop and o{j} > hi else 0" for j in range(n)],
        f"{inner}low = first + below",
        f"{inner}high = stop - above",
        f"{inner}if (low == first and high == stop) or low == high:",
        f"{inner}    break",
        f"{inner}first = low",
        f"{inner}stop = high",
        *within(pad),
        f"{pad}out[y, x] = mean",
        f"{pad}spread = math.sqrt(squares / (kept - 1)) if kept > 1 else math.nan",
        f"{pad}err[y, x] = spread / math.sqrt(kept) if kept > 1 else math.nan",
        f"{pad}count[y, x] = kept",
        "",
    ]
    return "\n".join(lines)


@functools.cache
def clipped_rounds_kernel(n: int, *, background: bool, levels: bool = False) -> Callable[..., Any]:
    """``kernel(stack, y0, x0, offsets, background, scales, sigma, maxiters, out, err,
    count)``: for each pixel whose count is negative and whose ``n`` values (as
    ``clipped_mean_kernel`` makes them) are all finite, the clipped mean, uncertainty
    and count of ``combine._clipped_mean_pixel``, bit for bit, with every value in a
    variable: a sorting network orders them once, and each round takes its median
    and MAD by index from sorted values (the run it keeps, and its deviations with
    those outside it set to infinity, sorted by the same network), counting what
    falls outside its window instead of searching for it. Pixels with a value that
    is not finite keep count -1. On one thread, without the GIL: a parallel build
    would compile for 2-3 times as long (per frame count, once per machine), and the
    flow's detector threads take one numba thread each anyway. ``levels`` as for
    ``clipped_mean_kernel``."""
    return compiled_module(
        f"clipped_rounds{n}{'b' if background else ''}{'l' if levels else ''}",
        clipped_rounds_source(n, background=background, levels=levels),
    ).kernel


@functools.cache
def clipped_mean_kernel(n: int, *, background: bool, levels: bool = False) -> Callable[..., Any]:
    """``kernel(stack, y0, x0, offsets, background, scales, sigma, clip, out, err,
    count)``: for each pixel (y, x) of ``out``, of the ``n`` values ``(stack[f, y0 + y,
    x0 + x] - offsets[f] - background[y, x]) / scales[f]`` in float64, their mean, its
    uncertainty (std / sqrt(n)) and ``n`` as the count, where clipping (``clip``) at
    ``sigma`` robust standard deviations (1.4826 MAD; the std where the MAD is 0)
    about their median keeps them all; count -1 where it would drop one or a value is
    NaN (the caller combines those pixels one by one). The median and the MAD come
    from selection networks. Parallel over rows, without the GIL; ``stack`` as for
    ``median_kernel``; ``levels``: ``kernel(stack, y0, x0, levels, offsets, ...)``, each
    value first less its frame's column level in float32, as ``median_kernel``'s."""
    return compiled_module(
        f"clipped_mean{n}{'b' if background else ''}{'l' if levels else ''}",
        clipped_mean_source(n, background=background, levels=levels),
    ).kernel


def contiguous_window(stack: np.ndarray) -> tuple[np.ndarray, int, int]:
    """``(parent, y0, x0)`` with ``stack == parent[:, y0:y0 + ny, x0:x0 + nx]`` and
    ``parent`` C-contiguous: the array a trimmed view was sliced from (rows and
    columns only), or a contiguous copy of anything else.

    >>> full = np.zeros((2, 5, 6), np.float32)
    >>> parent, y0, x0 = contiguous_window(full[:, 1:4, 2:5])
    >>> parent is full, y0, x0
    (True, 1, 2)
    """
    if stack.flags.c_contiguous:
        return stack, 0, 0
    parent = stack.base
    while isinstance(parent, np.ndarray) and not parent.flags.c_contiguous:
        parent = parent.base
    if (
        isinstance(parent, np.ndarray)
        and parent.ndim == 3
        and parent.dtype == stack.dtype
        and parent.shape[0] == stack.shape[0]
        and parent.strides == stack.strides
    ):
        offset = stack.__array_interface__["data"][0] - parent.__array_interface__["data"][0]
        y0, rest = divmod(offset, parent.strides[1])
        x0, extra = divmod(rest, parent.strides[2])
        if (
            extra == 0
            and 0 <= y0 <= parent.shape[1] - stack.shape[1]
            and 0 <= x0 <= parent.shape[2] - stack.shape[2]
        ):
            return parent, int(y0), int(x0)
    return np.ascontiguousarray(stack), 0, 0
