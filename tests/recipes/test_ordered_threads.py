"""Detectors made on several threads come back in order, fail where they are due,
and stop cleanly."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from qclib.calib import networks
from qclib.recipes.ordered_threads import detector_threads, in_order


def test_results_keep_the_items_order_whatever_finishes_first() -> None:
    def make(i: int) -> int:
        time.sleep(0.02 if i % 2 == 0 else 0.0)  # the even ones finish last
        return i * i

    assert list(in_order(make, range(9), threads=3)) == [i * i for i in range(9)]


def test_no_more_than_threads_plus_one_items_are_made_ahead_of_the_consumer() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def make(i: int) -> int:
        with lock:
            started.append(i)
        return i

    results = in_order(make, range(10), threads=2)
    assert next(results) == 0
    time.sleep(0.05)
    with lock:
        # While the consumer holds item 0, the threads go on to 1, 2 and 3, no further.
        assert max(started) == 3
    assert list(results) == list(range(1, 10))


def test_a_failure_is_raised_where_its_result_is_due_and_nothing_more_starts() -> None:
    started: list[int] = []

    def make(i: int) -> int:
        started.append(i)
        if i == 3:
            raise ValueError("detector 3 is broken")
        return i

    got = []
    with pytest.raises(ValueError, match="detector 3"):
        for value in in_order(make, range(20), threads=2):
            got.append(value)
    assert got == [0, 1, 2]
    assert max(started) <= 5


def test_closing_early_waits_for_the_calls_under_way() -> None:
    running = threading.Event()
    finished: list[int] = []

    def make(i: int) -> int:
        running.set()
        time.sleep(0.05)
        finished.append(i)
        return i

    results = in_order(make, range(10), threads=2)
    assert next(results) == 0
    results.close()
    count = len(finished)
    time.sleep(0.1)
    assert len(finished) == count <= 3  # nothing ran on after the close


def test_one_thread_is_a_plain_loop_on_the_callers_thread() -> None:
    callers = set()

    def make(i: int) -> int:
        callers.add(threading.get_ident())
        return i

    assert list(in_order(make, range(4), threads=1)) == [0, 1, 2, 3]
    assert callers == {threading.get_ident()}


def test_detector_threads_is_at_least_one() -> None:
    assert detector_threads() >= 1


def test_a_generated_kernel_is_imported_once_when_threads_race_for_it(
    tmp_path, monkeypatch
) -> None:
    """Two detector threads asking for the same new kernel module: the second must not
    find it half-imported (a race seen in the 32-CCD master bias)."""
    monkeypatch.setenv("QC_KERNEL_CACHE", str(tmp_path))
    source = "import time\ntime.sleep(0.2)\n\ndef kernel(x):\n    return x + 1\n"
    results: list[object] = []

    def load(delay: float) -> None:
        time.sleep(delay)  # the later ones ask while the first is still importing
        results.append(networks.compiled_module("race_test", source).kernel(np.int64(1)))

    threads = [threading.Thread(target=load, args=(0.05 * i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [2, 2, 2, 2]
