"""Keeping freed memory in the process while a recipe runs.

glibc's ``malloc`` gives every block over 32 MiB its own ``mmap`` and returns it to
the system on ``free``: a detector image of a full OmegaCAM CCD (34 MB) is such a
block, so each of a recipe's temporaries comes back as fresh pages, which on this kind
of virtual machine (it hands idle memory back to its host) cost about 2.2 s per GiB
to touch. A 32-CCD master bias spent 2.3 s of system time that way.

``retained_memory()`` makes glibc serve every block from its heap and keep what is
freed there while any recipe of the process runs, then hands the heap's free memory
back (``malloc_trim``) when the last one ends: a recipe reuses its own pages, and an
idle worker holds no more than before. Elsewhere than glibc it does nothing.
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


@contextlib.contextmanager
def retained_memory() -> Iterator[None]:
    """Freed memory stays in the process for the duration (nested and concurrent uses
    from several threads share one setting; the last to leave restores glibc's)."""
    global _holders
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
            if _holders == 0:
                _LIBC.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                _LIBC.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
                _LIBC.malloc_trim(0)
