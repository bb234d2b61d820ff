"""Pool workers that end with the process that started them."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Called first in a pool worker: it is killed when process ``parent`` ends
    (Linux; elsewhere nothing is set). A ``qc run``, ``qc simulate`` or ``qc demo``
    killed with SIGKILL must not leave workers that go on writing into the workspace
    or the simulated night. Linux sends the signal when the *thread* that started the
    worker ends: start pool workers from a thread that lives as long as the pool."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before that was set
        os._exit(1)
