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

A kernel with ``numba.prange`` loops is a ``ParallelKernel``: two builds of one
function, serial and parallel, of which a call takes the parallel one only where
the calling thread may use more than one of numba's threads. In the flow that is
never: a pool worker gets its share of the cores and a recipe makes its detectors on
threads of their own, one of numba's threads each (qclib.recipes.ordered_threads).
numba's parallel transformation makes a compile two to three times longer (cold
cache, one process: the defect search's column and row medians 1.9 s serial, 4.7 s
parallel): a test-scale demo in a new clone spent 68 s compiling with parallel
builds only, 18 s with the serial builds it runs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import numba
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
    if isinstance(kernel, ParallelKernel):
        kernel = kernel.build()
    key = (kernel.py_func.__module__, kernel.py_func.__qualname__, _signature(args))
    with _CALLED_LOCK:
        called = key in _CALLED
    if not called:
        with _compile_lock(f"{key[0]}.{key[1]}"):
            kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))
        with _CALLED_LOCK:
            _CALLED.add(key)
    return kernel(*args)


class ParallelKernel:
    """A kernel compiled from one function in two builds: ``serial``, and
    ``parallel`` over its ``numba.prange`` loops (both ``cache=True, nogil=True``).
    Calling it runs the parallel build where the calling thread may use more than one
    of numba's threads (``numba.get_num_threads``, a per-thread setting), else the
    serial one, through ``call_compiled_once``: a build compiles only where it runs.

    Each ``prange`` iteration must write only its own outputs, so that both builds
    give the same bytes. The serial build is made from a copy of the function named
    ``<name>_serial``: numba's cache keys a function by its module, name, line and
    bytecode, not by its flags, so the two builds would otherwise overwrite each
    other's cached machine code.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.py_func = fn
        self.parallel = numba.njit(parallel=True, cache=True, nogil=True)(fn)
        self.serial = numba.njit(cache=True, nogil=True)(_renamed(fn, "_serial"))
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.__qualname__ = fn.__qualname__
        self.__module__ = fn.__module__

    def build(self) -> Any:
        """The build a call from this thread runs."""
        return self.parallel if numba.get_num_threads() > 1 else self.serial

    def __call__(self, *args: Any) -> Any:
        return call_compiled_once(self.build(), *args)

    def run_serial(self, *args: Any) -> Any:
        """The serial build's call, whatever this thread's numba threads (for inputs
        too small to be worth waking the thread pool)."""
        return call_compiled_once(self.serial, *args)


def ready_numba() -> None:
    """numba's typing and target contexts made ready in this process: what its first
    kernel call (compiled or loaded from the cache) would otherwise spend on them,
    about 0.3 s here, once per process."""
    from numba.core.registry import cpu_target

    cpu_target.typing_context.refresh()
    cpu_target.target_context.refresh()


def parallel_kernel(fn: Callable[..., Any]) -> ParallelKernel:
    """Decorator: ``fn`` as a ``ParallelKernel``."""
    return ParallelKernel(fn)


def _renamed(fn: Callable[..., Any], suffix: str) -> Callable[..., Any]:
    """A copy of ``fn`` (same code, globals, defaults and closure) whose name ends in
    ``suffix``."""
    copy = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__, fn.__closure__
    )
    copy.__qualname__ = fn.__qualname__ + suffix
    copy.__module__ = fn.__module__
    copy.__doc__ = fn.__doc__
    copy.__kwdefaults__ = fn.__kwdefaults__
    return copy
