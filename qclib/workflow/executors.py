"""Where recipes run: here (serial), a local process pool, or a Dask cluster.

Every kind is a ``concurrent.futures.Executor`` to ``process_blocks``: one block is
one task, started when its parents have finished. Numba's threads are shared out so
that workers x threads matches the cores (no oversubscription).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from qclib.errors import ConfigError

ExecutorKind = Literal["serial", "local", "dask"]


def _share_threads(workers: int) -> None:
    import numba

    numba.set_num_threads(
        max(1, min(numba.config.NUMBA_NUM_THREADS, (os.cpu_count() or 1) // workers))
    )


@contextmanager
def open_executor(
    kind: ExecutorKind = "serial", *, workers: int | None = None, scheduler: str | None = None
) -> Iterator[concurrent.futures.Executor | None]:
    """An executor for ``process_blocks`` (None for ``serial``), closed on exit.

    ``dask`` starts a LocalCluster of ``workers`` processes, or connects to
    ``scheduler`` (``tcp://HOST:PORT``) when given.

    Raises
    ------
    ConfigError
        An unknown kind, or a Dask scheduler that cannot be reached.
    """
    cores = os.cpu_count() or 1
    if kind == "serial":
        yield None
        return
    if kind == "local":
        n = workers or cores
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=n,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_share_threads,
            initargs=(n,),
        ) as pool:
            yield pool
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
                yield client.get_executor()
            return
        n = workers or min(2, cores)
        with (
            LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(_share_threads, n)
            yield client.get_executor()
        return
    raise ConfigError(f"unknown executor {kind!r}: choose serial, local or dask")
