"""Keeping freed memory in the process while a recipe runs.

glibc's ``malloc`` gives every block over 32 MiB its own ``mmap`` and returns it to
the system on ``free``: a detector image of a full OmegaCAM CCD (34 MB) is such a
block, so each of a recipe's temporaries comes back as fresh pages, which on this kind
of virtual machine (it hands idle memory back to its host) cost about 2.2 s per GiB
to touch. A 32-CCD master bias spent 2.3 s of system time that way.

``retained_memory()`` makes glibc serve every block from its heap and keep what is
freed there while any recipe of the process runs, then hands the heap's free memory
back (``malloc_trim``) when the last one ends, or ``linger_s`` later if no other use
has begun by then: a recipe reuses its own pages, a worker's next task those of the
one before (a block shared among tasks of a few detectors each, one after another,
touched its buffers afresh in every task), and an idle worker holds no more than
before. Elsewhere than glibc it does nothing.

For as long, numpy does not ask the kernel for huge pages. It advises
``MADV_HUGEPAGE`` on every array of 4 MB or more, and with transparent huge pages'
``defrag`` set to ``madvise`` (the kernel's default) a first touch of such an array
compacts memory until a free 2 MB block turns up: with the page cache full of raws
that stalls. In a fresh process a 3-frame HAWK-I dark took 0.90 s with the advice
and 0.85 s without, a 4-frame twilight flat 0.99 s against 0.86 s (medians of 8
alternating runs; with it, the flat's slowest run took 2.3 s and the dark's system
time ranged over 0.19-0.67 s, without 0.24-0.28 s); one 32-CCD master bias of four took
11.1 s with it (5.5-6.1 s otherwise), and the OmegaCAM zeropoint, whose pages are
reused, was the same either way (9.6-10.4 s).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib
import threading
from collections.abc import Callable, Iterator

# mallopt parameters (malloc.h) and glibc's defaults.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
_KEEP_EVERYTHING = 2**31 - 1  # mallopt takes an int: a 2 GiB free top is trimmed

_lock = threading.Lock()
_holders = 0
_generation = 0  # counts the times the last holder left: a stale release does nothing


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (glibc only)
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


_LIBC = _glibc()


def _numpy_hugepage_switch() -> Callable[[bool], bool] | None:
    """numpy's switch of its huge-page advice (``_set_madvise_hugepage``: given whether
    to advise, returns whether it did), or None where this numpy has none."""
    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy 2, numpy 1
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        switch = getattr(module, "_set_madvise_hugepage", None)
        if switch is not None:
            return switch  # type: ignore[no-any-return]
    return None


_HUGEPAGE_SWITCH = _numpy_hugepage_switch()
_advised: bool | None = None  # numpy's advice before it was turned off; None: not off


def _release(generation: int) -> None:
    """glibc's own settings again, the heap's free memory handed back: unless a use
    began since the last one ended (``generation`` is then stale)."""
    global _advised
    with _lock:
        if _holders or generation != _generation or _LIBC is None:
            return
        if _HUGEPAGE_SWITCH is not None and _advised is not None:
            _HUGEPAGE_SWITCH(_advised)
            _advised = None
        _LIBC.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        _LIBC.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        _LIBC.malloc_trim(0)


@contextlib.contextmanager
def retained_memory(*, linger_s: float = 0.0) -> Iterator[None]:
    """Freed memory stays in the process for the duration, and ``linger_s`` seconds
    after it for a use that begins by then (nested and concurrent uses from several
    threads share one setting; the last to leave releases it, at once or from a timer
    thread); numpy advises no huge pages meanwhile."""
    global _holders, _generation, _advised
    if _LIBC is None:
        yield
        return
    with _lock:
        _holders += 1
        if _holders == 1:
            if _HUGEPAGE_SWITCH is not None and _advised is None:  # not off yet
                _advised = _HUGEPAGE_SWITCH(False)
            _LIBC.mallopt(_M_MMAP_MAX, 0)
            _LIBC.mallopt(_M_TRIM_THRESHOLD, _KEEP_EVERYTHING)
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            last = _holders == 0
            if last:
                _generation += 1
            generation = _generation
        if last and linger_s <= 0:
            _release(generation)
        elif last:
            timer = threading.Timer(linger_s, _release, (generation,))
            timer.daemon = True
            timer.start()
