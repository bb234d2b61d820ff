"""A simulation killed with SIGKILL leaves no worker behind writing the night."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil


def _workers(parent: psutil.Process) -> list[psutil.Process]:
    return [c for c in parent.children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]


def test_killed_simulation_leaves_no_worker(tmp_path: Path) -> None:
    out = tmp_path / "history"
    command = [
        str(Path(sys.executable).with_name("qc")),
        "simulate",
        "OMEGACAM",
        "--night",
        "2026-11-01",
        "--out",
        str(out),
        "--scale",
        "test",
        "--nights",
        "60",
        "--workers",
        "2",
    ]
    run = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    parent = psutil.Process(run.pid)
    deadline = time.monotonic() + 60
    workers: list[psutil.Process] = []
    # Both workers started and writing nights.
    while time.monotonic() < deadline and not (
        len(workers) == 2 and len(list(out.glob("*/*.fits"))) >= 4
    ):
        workers = _workers(parent) or workers
        time.sleep(0.1)
    assert len(workers) == 2, "the pool's workers never started"
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=10)
    _, alive = psutil.wait_procs(workers, timeout=10)
    for orphan in alive:  # not to go on writing while the next tests run
        orphan.kill()
    assert not alive, f"workers outlived the killed simulation: {[p.pid for p in alive]}"
    assert not (out / "history.json").exists()  # it was killed mid-way
