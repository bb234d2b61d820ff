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
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
from collections.abc import Iterator

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


def _release(generation: int) -> None:
    """glibc's own settings again, the heap's free memory handed back: unless a use
    began since the last one ended (``generation`` is then stale)."""
    with _lock:
        if _holders or generation != _generation or _LIBC is None:
            return
        _LIBC.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        _LIBC.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        _LIBC.malloc_trim(0)


@contextlib.contextmanager
def retained_memory(*, linger_s: float = 0.0) -> Iterator[None]:
    """Freed memory stays in the process for the duration, and ``linger_s`` seconds
    after it for a use that begins by then (nested and concurrent uses from several
    threads share one setting; the last to leave releases it, at once or from a timer
    thread)."""
    global _holders, _generation
    if _LIBC is None:
        yield
        return
    with _lock:
        _holders += 1
        if _holders == 1:
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
