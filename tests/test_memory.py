"""retained_memory: freed blocks stay in the process while a recipe runs, then go."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from qclib import memory
from qclib.memory import retained_memory
from tests.conftest import missing_dependency


def _resident_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGESIZE") / 1e6


def test_retained_memory_keeps_freed_blocks_until_the_last_user_leaves() -> None:
    if memory._LIBC is None:
        missing_dependency("MEMORY TEST SKIPPED: glibc's malloc (mallopt, malloc_trim) not found")
    with retained_memory():
        with retained_memory():
            before = _resident_mb()
            block = np.ones(50_000_000, np.float32)  # 200 MB, touched
            del block
            assert _resident_mb() - before > 150  # kept for the next detector
        assert _resident_mb() - before > 150  # an outer user still runs
    assert _resident_mb() - before < 50  # handed back when the last one left
    block = np.ones(50_000_000, np.float32)
    del block
    assert _resident_mb() - before < 50  # glibc's own behaviour again
