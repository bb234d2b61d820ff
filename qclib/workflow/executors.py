"""Where recipes run: here (serial), a local process pool, or a Dask cluster.

Every kind is a ``concurrent.futures.Executor`` to ``process_blocks``: a block is
started when its parents have finished, its detectors shared among as many tasks as
there are workers (then joined). Numba's threads are shared out so that workers x
threads matches the cores (no oversubscription).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from qclib.errors import ConfigError

ExecutorKind = Literal["serial", "local", "dask"]


@dataclass(frozen=True)
class Workers:
    """An executor (None: run here, serially) and how many tasks it runs at once."""

    executor: concurrent.futures.Executor | None
    count: int = 1


SERIAL = Workers(None, 1)


def _die_with_parent(parent: int) -> None:
    """A pool worker ends when its parent does (Linux): a ``qc run`` killed with SIGKILL
    must not leave workers that go on writing into the workspace while the next pass
    runs."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before that was set
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _start_local_worker(workers: int, parent: int) -> None:
    _die_with_parent(parent)
    _share_threads(workers)


def _share_threads(workers: int) -> None:
    import numba

    numba.set_num_threads(
        max(1, min(numba.config.NUMBA_NUM_THREADS, (os.cpu_count() or 1) // workers))
    )


@contextmanager
def open_executor(
    kind: ExecutorKind = "serial", *, workers: int | None = None, scheduler: str | None = None
) -> Iterator[Workers]:
    """Workers for ``run_pass`` (no executor for ``serial``), closed on exit.

    ``dask`` starts a LocalCluster of ``workers`` processes, or connects to
    ``scheduler`` (``tcp://HOST:PORT``) when given.

    Raises
    ------
    ConfigError
        An unknown kind, or a Dask scheduler that cannot be reached.
    """
    cores = os.cpu_count() or 1
    if kind == "serial":
        yield SERIAL
        return
    if kind == "local":
        n = workers or cores
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=n,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_local_worker,
            initargs=(n, os.getpid()),
        ) as pool:
            yield Workers(pool, n)
        return
    if kind == "dask":
        from distributed import Client, LocalCluster

        if scheduler:
            try:
                client = Client(scheduler, timeout=10)
            except OSError as err:
                raise ConfigError(f"cannot reach the Dask scheduler {scheduler}: {err}") from None
            n = len(client.scheduler_info()["workers"]) or 1
            with client:
                client.run(_share_threads, n)
                yield Workers(client.get_executor(), n)
            return
        n = workers or min(2, cores)
        with (
            LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(_share_threads, n)
            yield Workers(client.get_executor(), n)
        return
    raise ConfigError(f"unknown executor {kind!r}: choose serial, local or dask")
