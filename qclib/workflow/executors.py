"""Where recipes run: here (serial), a local process pool, or a Dask cluster.

Every kind is a ``concurrent.futures.Executor`` to ``process_blocks``: a block is
started when its parents have finished, its detectors shared among as many tasks as
there are workers (then joined). Each worker runs one task at a time, and each task
runs numba's kernels on ``threads_per_worker`` threads: by default the cores shared
out among the workers (no oversubscription); 1 makes the worker count, not numba's
thread pool, what a comparison of worker counts measures.

The thread count is set in the thread that runs each task (numba's setting is per
thread: set once per worker from another thread, e.g. by ``Client.run``, it does not
reach the threads that run Dask's tasks).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from qclib.errors import ConfigError
from qclib.processes import die_with_parent

ExecutorKind = Literal["serial", "local", "dask"]


@dataclass(frozen=True)
class Workers:
    """An executor (None: run here, serially), how many tasks it runs at once,
    numba's threads per task (None: numba's own setting), and the memory its tasks
    share (None: not limited)."""

    executor: concurrent.futures.Executor | None
    count: int = 1
    threads: int | None = None
    memory_mb: int | None = None


def machine_memory_mb() -> int | None:
    """This machine's physical memory (None where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (ValueError, OSError):
        return None


def _cluster_memory_mb(client: Any) -> int | None:
    """The memory of a Dask cluster's workers together (None: not limited)."""
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
    return sum(limits) // 2**20 if limits and all(limits) else None


SERIAL = Workers(None, 1)


def run_in_threads(threads: int, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with numba's kernels on ``threads`` threads in this thread (a task
    wrapper for any executor: picklable)."""
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    return fn(*args)


@dataclass(frozen=True)
class _OnThreads:
    """``run_in_threads(threads, fn, ...)`` named after ``fn``: Dask names a task (its
    dashboard, its task stream) after the function submitted, which would otherwise
    be ``run_in_threads`` for every task."""

    threads: int
    fn: Callable[..., Any]

    @property
    def __name__(self) -> str:  # type: ignore[override]
        return getattr(self.fn, "__name__", type(self.fn).__name__)

    def __call__(self, *args: Any) -> Any:
        return run_in_threads(self.threads, self.fn, *args)


class ThreadLimitedExecutor(concurrent.futures.Executor):
    """An executor whose every task runs numba on ``threads`` threads (``run_in_threads``)."""

    def __init__(self, executor: concurrent.futures.Executor, threads: int) -> None:
        self.executor = executor
        self.threads = threads

    def submit(  # type: ignore[override]
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        if kwargs:
            raise TypeError("tasks take positional arguments only")
        return self.executor.submit(_OnThreads(self.threads, fn), *args)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            self.executor.shutdown(wait=wait, cancel_futures=True)
        else:  # Dask's ClientExecutor takes ``wait`` only
            self.executor.shutdown(wait=wait)


def share_threads(workers: int, threads: int | None = None) -> int:
    """numba's threads per worker: ``threads`` when given, else the cores shared out.

    >>> share_threads(4, 1)
    1
    """
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads per worker must be at least 1, not {threads}")
        return threads
    return max(1, (os.cpu_count() or 1) // workers)


def _start_local_worker(threads: int, parent: int) -> None:
    die_with_parent(parent)
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


@contextmanager
def open_executor(
    kind: ExecutorKind = "serial",
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    threads_per_worker: int | None = None,
) -> Iterator[Workers]:
    """Workers for ``run_pass`` (no executor for ``serial``), closed on exit.

    ``local`` starts a process pool of ``workers`` processes (default: one per core).
    ``dask`` starts a LocalCluster of ``workers`` processes (default: up to 2) with
    one task thread each, or connects to ``scheduler`` (``tcp://HOST:PORT``) when
    given. ``threads_per_worker``: numba's threads per worker (default: the cores shared out
    among the workers).

    Raises
    ------
    ConfigError
        An unknown kind, a thread count below 1, or a Dask scheduler that cannot be
        reached.
    """
    cores = os.cpu_count() or 1
    if kind == "serial":
        yield SERIAL
        return
    if kind == "local":
        n = workers or cores
        per_worker = share_threads(n, threads_per_worker)
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=n,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_local_worker,
            initargs=(per_worker, os.getpid()),
        ) as pool:
            yield Workers(pool, n, per_worker, machine_memory_mb())
        return
    if kind == "dask":
        from distributed import Client, LocalCluster

        if scheduler:
            try:
                client = Client(scheduler, timeout=10)
            except OSError as err:
                raise ConfigError(f"cannot reach the Dask scheduler {scheduler}: {err}") from None
            with client:
                n = len(client.scheduler_info()["workers"]) or 1
                per_worker = share_threads(n, threads_per_worker)
                executor = client.get_executor(pure=False)
                yield Workers(
                    ThreadLimitedExecutor(executor, per_worker),
                    n,
                    per_worker,
                    _cluster_memory_mb(client),
                )
            return
        n = workers or min(2, cores)
        per_worker = share_threads(n, threads_per_worker)
        with (
            LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            executor = client.get_executor(pure=False)
            yield Workers(
                ThreadLimitedExecutor(executor, per_worker),
                n,
                per_worker,
                _cluster_memory_mb(client),
            )
        return
    raise ConfigError(f"unknown executor {kind!r}: choose serial, local or dask")
