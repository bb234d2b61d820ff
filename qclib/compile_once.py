"""The first call of a compiled kernel, one process at a time: one compiles, the
others load its machine code from numba's cache.

Every process of a pool that meets a ``cache=True`` kernel before any has cached it
compiles it, all at once: on a new machine the simulator's pixel-noise kernels took
79 s of CPU across the processes of one test-scale demo (about 10 s per process and
kernel), while the history's recipes waited for the cores. ``call_compiled_once``
holds a file lock (``flock``, beside the generated kernels) around a process's first
call of a kernel with each argument signature; whoever comes second finds the
machine code cached and loads it in milliseconds. Later calls take no lock.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from qclib.calib.networks import kernel_cache

_CALLED: set[tuple[Any, ...]] = set()
_CALLED_LOCK = threading.Lock()


def _signature(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """What numba's choice of a compiled version depends on, per argument."""
    return tuple(
        (a.dtype.str, a.ndim, a.flags.c_contiguous, a.flags.f_contiguous, a.flags.writeable)
        if isinstance(a, np.ndarray)
        else type(a)
        for a in args
    )


def call_compiled_once(kernel: Callable[..., Any], *args: Any) -> Any:
    """``kernel(*args)``; the first call in this process with these argument types
    waits for any other process making the same first call (see the module)."""
    function = getattr(kernel, "py_func", kernel)  # a numba dispatcher's Python function
    name = f"{function.__module__}.{function.__qualname__}"
    key = (name, _signature(args))
    with _CALLED_LOCK:
        called = key in _CALLED
    if called:
        return kernel(*args)
    folder = kernel_cache() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        result = kernel(*args)
    with _CALLED_LOCK:
        _CALLED.add(key)
    return result
