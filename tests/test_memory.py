"""retained_memory: freed blocks stay in the process while a recipe runs, then go."""

from __future__ import annotations

import subprocess
import sys

from qclib import memory
from tests.conftest import missing_dependency

#: Run in a fresh interpreter: malloc's settings and the heap are the process's, and a
#: suite's earlier tests leave threads and allocations that move both (in a full run
#: the check failed twice, each time differently; alone it passed).
_PRELUDE = """
import os
import resource
import time
from pathlib import Path

import numpy as np

from qclib.memory import retained_memory


def resident_mb():
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGESIZE") / 1e6


def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
"""


def _run(script: str) -> list[float]:
    """The numbers ``script`` prints, run after ``_PRELUDE`` in a fresh interpreter."""
    if memory._LIBC is None:
        missing_dependency("MEMORY TEST SKIPPED: glibc's malloc (mallopt, malloc_trim) not found")
    result = subprocess.run(
        [sys.executable, "-c", _PRELUDE + script], capture_output=True, text=True, check=True
    )
    return [float(v) for v in result.stdout.split()]


_SCRIPT = """

with retained_memory():
    with retained_memory():
        before = resident_mb()
        block = np.ones(50_000_000, np.float32)  # 200 MB, touched
        del block
        kept = resident_mb() - before
    still = resident_mb() - before
back = resident_mb() - before
block = np.ones(50_000_000, np.float32)
del block
again = resident_mb() - before
print(f"{kept:.0f} {still:.0f} {back:.0f} {again:.0f}")
"""


def test_retained_memory_keeps_freed_blocks_until_the_last_user_leaves() -> None:
    kept, still, back, again = _run(_SCRIPT)
    print(f"MB above the start: {kept} kept, {still} still, {back} back, {again} again")
    assert kept > 150  # kept for the next detector
    assert still > 150  # an outer user still runs
    assert back < 50  # handed back when the last one left
    assert again < 50  # glibc's own behaviour again


_LINGER_SCRIPT = """

before = resident_mb()
with retained_memory(linger_s=1.0):
    block = np.ones(50_000_000, np.float32)
    del block
lingering = resident_mb() - before
start = faults()
with retained_memory(linger_s=1.0):  # the next task, within the linger
    block = np.ones(50_000_000, np.float32)
    del block
reused = faults() - start
time.sleep(2.0)
back = resident_mb() - before
start = faults()
block = np.ones(50_000_000, np.float32)
del block
fresh = faults() - start
print(f"{lingering:.0f} {back:.0f} {reused} {fresh}")
"""


def test_retained_memory_lingers_for_the_next_use_then_goes() -> None:
    lingering, back, reused, fresh = _run(_LINGER_SCRIPT)
    print(f"MB above the start: {lingering} lingering, {back} back; faults {reused} vs {fresh}")
    assert lingering > 150  # still there after the last use left
    # The next use takes the same pages: (nearly) no page faults, where fresh memory
    # faults once per page (or per huge page: 200 MB are 100 of them).
    assert reused < 20 < fresh
    assert back < 50  # handed back once the linger passed with no use


_HUGEPAGE_SCRIPT = """
from qclib import memory

def advised():
    was = memory._HUGEPAGE_SWITCH(True)
    memory._HUGEPAGE_SWITCH(was)
    return int(was)

start = advised()
with retained_memory():
    with retained_memory():
        inside = advised()
    still = advised()
after = advised()
with retained_memory(linger_s=0.5):
    pass
with retained_memory():  # within the linger: what is restored is still the start's
    again = advised()
time.sleep(1.0)
print(start, inside, still, after, again, advised())
"""


def test_numpy_advises_no_huge_pages_while_memory_is_retained() -> None:
    if memory._HUGEPAGE_SWITCH is None:
        missing_dependency("HUGE PAGE TEST SKIPPED: this numpy has no _set_madvise_hugepage")
    start, inside, still, after, again, end = _run(_HUGEPAGE_SCRIPT)
    assert start == 1  # numpy's default on Linux 4.6 and later
    assert (inside, still, again) == (0, 0, 0)
    assert (after, end) == (1, 1)  # numpy's own setting back when the last user left
