"""The processes the simulator runs detectors and nights on.

A simulation makes a pool of its own unless it is handed one: a caller that runs
several (the demo: two histories and a night) shares one ``simulator_pool`` among
them, and so starts its workers (their imports and compiled kernels, about 3 s of CPU
each) once.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import numba

from qclib.processes import die_with_parent

T = TypeVar("T")
R = TypeVar("R")


def simulator_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes that end with this one, their kernels on
    their share of the cores, all started before it is returned. (Spawned, not forked:
    numba's OpenMP threads do not survive a fork.)

    Started here because a worker ends with the *thread* that started it
    (``die_with_parent``), and a pool starts its workers as tasks are submitted, from
    the submitting thread: a pool shared by simulations submitting from threads that
    come and go lost its workers with the first thread that ended."""
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=start_simulator_worker,
        initargs=(workers, os.getpid()),
    )
    # Each submission with no worker idle starts one.
    concurrent.futures.wait([pool.submit(os.getpid) for _ in range(workers)])
    return pool


def start_simulator_worker(workers: int, parent: int) -> None:
    """A simulator pool's worker: it ends with ``parent``, and its kernels take their
    share of the cores (``share_cores``)."""
    die_with_parent(parent)
    share_cores(workers)


def share_cores(workers: int) -> None:
    """Give a pool worker's compiled kernels its share of the cores (one of
    ``workers`` processes), so that processes times threads match the cores."""
    numba.set_num_threads(
        max(1, min(numba.config.NUMBA_NUM_THREADS, (os.cpu_count() or 1) // workers))
    )


def each_as_done(
    pool: concurrent.futures.Executor, fn: Callable[[T], R], items: Sequence[T]
) -> Iterator[tuple[T, R]]:
    """``fn(item)`` of every item on ``pool``, yielded with its item as each finishes.
    When one fails, or the caller stops early, those not started are cancelled and
    those running awaited before the error goes on: a shared pool writes nothing more
    for this caller, and goes on with other work."""
    futures = {pool.submit(fn, item): item for item in items}
    try:
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future.result()
    finally:
        for future in futures:
            future.cancel()
        concurrent.futures.wait(futures)
