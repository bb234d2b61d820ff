"""The first call of a compiled kernel: one process compiles it, the others load its
machine code from numba's cache.

Every process of a pool that meets a ``cache=True`` kernel before any has cached it
compiles it, all at once: on a new machine the simulator's pixel-noise kernels took
79 s of CPU across the processes of one test-scale demo (about 10 s per process and
kernel), while the history's recipes waited for the cores. ``call_compiled_once``
holds a file lock (``flock``, beside the generated kernels) while a process compiles
(or loads) a kernel for an argument signature it has not called before; whoever
comes second finds the machine code cached and loads it. The call itself runs
outside the lock, and later calls take none. Where no lock can be had (no writable
cache folder, a file system without ``flock``, a holder stopped for ``LOCK_WAIT_S``)
the kernel compiles as it would without one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from qclib.calib.networks import kernel_cache

#: How long a first call waits for another process's compilation before compiling
#: anyway (a cold compile of the largest kernel takes about 10 s).
LOCK_WAIT_S = 300.0

_CALLED: set[tuple[Any, ...]] = set()
_CALLED_LOCK = threading.Lock()


def _signature(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """What numba's choice of a compiled version depends on, per argument."""
    return tuple(
        (a.dtype.str, a.ndim, a.flags.c_contiguous, a.flags.f_contiguous, a.flags.writeable)
        if isinstance(a, np.ndarray)
        else _signature(a)
        if isinstance(a, tuple)
        else type(a)
        for a in args
    )


@contextlib.contextmanager
def _compile_lock(name: str) -> Iterator[None]:
    """The lock of kernel ``name``, or nothing where none can be had."""
    try:
        folder = kernel_cache() / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{name}.lock", os.O_RDONLY | os.O_CREAT, 0o666)
    except (OSError, RuntimeError):  # no home, a read-only cache: compile unlocked
        yield
        return
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    break  # no flock here, or a holder that does not finish: go on
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def call_compiled_once(kernel: Any, *args: Any) -> Any:
    """``kernel(*args)`` of a numba dispatcher; the first call in this process with
    these argument types compiles it once another process compiling it is done
    (see the module)."""
    key = (kernel.py_func.__module__, kernel.py_func.__qualname__, _signature(args))
    with _CALLED_LOCK:
        called = key in _CALLED
    if not called:
        with _compile_lock(f"{key[0]}.{key[1]}"):
            kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))
        with _CALLED_LOCK:
            _CALLED.add(key)
    return kernel(*args)
