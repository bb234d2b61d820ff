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
