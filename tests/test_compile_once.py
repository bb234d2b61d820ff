"""A kernel's first call in a process waits for another process making it (so one
compiles and the others load its cache); later calls take no lock."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time

import numpy as np

from qclib import compile_once
from qclib.compile_once import call_compiled_once
from qclib.simulate import noise

_CHILD = """
import numpy as np
from qclib.simulate.noise import standard_normal
standard_normal(np.array([1, 2], np.uint32), (3, 8))
print("done")
"""
_LOCK = "qclib.simulate.noise._fill_normal.lock"
_TABLES = (noise._ZIG_K, noise._ZIG_W, noise._ZIG_F, noise._ZIG_R)


def test_a_first_call_waits_for_the_lock_and_a_later_one_does_not(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("QC_KERNEL_CACHE", str(tmp_path))
    env = {**os.environ, "QC_KERNEL_CACHE": str(tmp_path)}
    # numba's cache warm first: the child then needs about a second, so not being done
    # after three is the lock's doing, not a compilation's.
    subprocess.run([sys.executable, "-c", _CHILD], env=env, check=True, capture_output=True)
    with open(tmp_path / "locks" / _LOCK, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        time.sleep(3.0)
        assert child.poll() is None, "the first call did not wait for the lock"
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0 and out.strip() == "done"

    out_array = np.empty((3, 8), np.float32)
    args = (out_array, np.uint32(1), np.uint32(2), noise._ZIG_K, noise._ZIG_W, noise._ZIG_F)
    call_compiled_once(noise._fill_normal, *args, noise._ZIG_R)  # this process's first
    with open(tmp_path / "locks" / _LOCK, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        again = threading.Thread(
            target=call_compiled_once, args=(noise._fill_normal, *args, noise._ZIG_R)
        )
        again.start()
        again.join(timeout=30)
        assert not again.is_alive(), "a later call waited for the lock"


def test_without_a_place_for_locks_the_kernel_still_runs(tmp_path, monkeypatch) -> None:
    """A kernel cache that cannot hold lock files (here a path under a regular file)
    leaves the first call unlocked, not failed."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("QC_KERNEL_CACHE", str(blocker / "kernels"))
    monkeypatch.setattr(compile_once, "_CALLED", set())
    key = np.array([1, 2], np.uint32)
    expected = noise.standard_normal(key, (3, 8))
    out = np.empty((3, 8), np.float32)
    call_compiled_once(noise._fill_normal, out, np.uint32(1), np.uint32(2), *_TABLES)
    assert np.array_equal(out, expected)
    assert compile_once._CALLED


_BUILDS_CHILD = """
import sys
import numba
import numpy as np
from qclib.calib.defects import _interpolate_columns as kernel
numba.set_num_threads(int(sys.argv[1]))
rows = np.arange(12, dtype=np.float32).reshape(3, 4)
kernel(rows, np.array([0, 1, 2], np.int64), np.full(3, 0.25, np.float32))
built = {b: getattr(kernel, b).stats for b in ("serial", "parallel")}
print(*(f"{b}:{len(s.cache_hits)}:{len(s.cache_misses)}" for b, s in built.items()))
"""


def _builds_run(threads: int, cache: str) -> dict[str, tuple[int, int]]:
    """(cache hits, compilations) of each build of a kernel called once in a new
    process whose thread has ``threads`` of numba's threads."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache, "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", _BUILDS_CHILD, str(threads)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {
        build: (int(hits), int(misses))
        for build, hits, misses in (field.split(":") for field in out.split())
    }


def test_a_thread_with_one_numba_thread_compiles_only_the_serial_build(tmp_path) -> None:
    """In the flow every kernel runs on one of numba's threads: the parallel build
    (2-3x the compile time) is never made there. And the serial build's cached machine
    code is not the parallel build's: a later process with threads to spare compiles
    the parallel build rather than loading the serial one under its name."""
    cache = str(tmp_path / "numba")
    assert _builds_run(1, cache) == {"serial": (0, 1), "parallel": (0, 0)}
    assert _builds_run(2, cache) == {"serial": (0, 0), "parallel": (0, 1)}
    assert _builds_run(1, cache) == {"serial": (1, 0), "parallel": (0, 0)}
    assert _builds_run(2, cache) == {"serial": (0, 0), "parallel": (1, 0)}


def test_both_builds_give_the_same_bytes() -> None:
    """A prange iteration writes only its own outputs, so the builds agree bit for bit
    (the sigma-clipped statistics' histogram over 16 blocks, the defect search's
    column and row medians, a flat's block medians)."""
    from qclib.calib import defects, stats

    rng = np.random.default_rng(5)
    image = rng.normal(100.0, 7.0, (301, 257)).astype(np.float32)
    image[rng.random(image.shape) < 0.01] = np.nan
    cases = [
        (stats._histogram, (image, image, False, 60.0, 0.1, 800, 16)),
        (defects._column_and_row_medians, (image, 3, 2)),
        (defects._block_medians, (image, 18, 16, 16, 16)),
    ]
    for kernel, args in cases:
        serial = call_compiled_once(kernel.serial, *args)
        parallel = call_compiled_once(kernel.parallel, *args)
        for s, p in zip(serial, parallel, strict=True):
            assert s.tobytes() == p.tobytes(), kernel.__name__


_READY_CHILD = """
import numba.np.ufunc.parallel as threading_layer
from numba.core.registry import cpu_target
from qclib.compile_once import ready_numba
before = len(cpu_target.typing_context._functions)
ready_numba()
print(before, len(cpu_target.typing_context._functions), threading_layer._is_initialized)
"""


def test_readying_numba_loads_its_typing_registries_without_starting_threads() -> None:
    """What a block-cost child (or a worker) readies before its first kernel: numba's
    typing registries loaded, and no thread pool started (a forked process would
    inherit a dead one)."""
    out = subprocess.run(
        [sys.executable, "-c", _READY_CHILD], check=True, capture_output=True, text=True
    ).stdout.split()
    before, after, threads_started = int(out[0]), int(out[1]), out[2]
    assert after > before + 100, (before, after)
    assert threads_started == "False"
