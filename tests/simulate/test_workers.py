"""The simulator's shared pool: its workers outlive the threads that submit to it."""

from __future__ import annotations

import concurrent.futures
import os
import time

from qclib.simulate.workers import simulator_pool


def _pids(pool: concurrent.futures.Executor) -> set[int]:
    return {pool.submit(os.getpid).result() for _ in range(4)}


def test_a_shared_pool_outlives_the_threads_that_submit_to_it() -> None:
    """A worker ends with the thread that started it (PR_SET_PDEATHSIG): a pool whose
    workers a short-lived thread started broke once that thread ended."""
    with simulator_pool(2) as pool:
        with concurrent.futures.ThreadPoolExecutor(1) as thread:
            first = thread.submit(_pids, pool).result()
        time.sleep(1.0)  # the thread has ended; a worker killed with it would be gone
        again = _pids(pool)
    assert len(first | again) <= 2  # the same two workers, none started again
