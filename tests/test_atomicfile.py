"""Sweeping leftovers: with a record, a sweep lists only the folders changed since the
last one, and still removes every temporary of a dead process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qclib import atomicfile
from qclib.atomicfile import TEMP_PREFIX, sweep_stale_temporaries


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _listed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    listed: list[Path] = []
    scandir = os.scandir

    def counted(path):  # type: ignore[no-untyped-def]
        listed.append(Path(path))
        return scandir(path)

    monkeypatch.setattr(atomicfile.os, "scandir", counted)
    return listed


def test_a_recorded_sweep_lists_only_changed_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, record = tmp_path / "products", tmp_path / ".sweep.json"
    nights = [root / f"2026-03-0{i}" for i in range(1, 6)]
    for night in nights:
        night.mkdir(parents=True)
        (night / "MASTER_BIAS.fits").write_bytes(b"x")
    past = time.time() - 100
    for folder in [*nights, root]:
        os.utime(folder, (past, past))
    listed = _listed(monkeypatch)
    assert sweep_stale_temporaries(root, record=record) == []
    assert set(listed) == {root, *nights}  # no record yet: every folder
    listed.clear()
    assert sweep_stale_temporaries(root, record=record) == []
    assert listed == []  # nothing changed
    dead = nights[1] / f"{TEMP_PREFIX}{_dead_pid()}-MASTER_FLAT.fits"
    dead.write_bytes(b"half")
    live = nights[3] / f"{TEMP_PREFIX}{os.getppid()}-MASTER_DARK.fits"
    live.write_bytes(b"being written")
    assert sweep_stale_temporaries(root, record=record) == [dead]
    assert not dead.exists() and live.exists()
    assert set(listed) == {nights[1], nights[3]}
    listed.clear()
    for folder in (nights[1], nights[3]):  # (the removal changed nights[1])
        os.utime(folder, (past, past))
    sweep_stale_temporaries(root, record=record)
    assert listed == [nights[3]]  # a live process's temporary: looked at again
    (root / "2026-03-09").mkdir()  # a new folder changes its parent
    new = root / "2026-03-09" / f"{TEMP_PREFIX}{_dead_pid()}-SCIENCE.fits"
    new.write_bytes(b"")
    listed.clear()
    assert sweep_stale_temporaries(root, record=record) == [new]
    assert set(listed) == {root, root / "2026-03-09", nights[3]}


def test_a_record_of_another_folder_is_not_trusted(tmp_path: Path) -> None:
    record = tmp_path / ".sweep.json"
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "old").mkdir(parents=True)
    sweep_stale_temporaries(tmp_path / "a", record=record)
    dead = tmp_path / "b" / "old" / f"{TEMP_PREFIX}{_dead_pid()}-X.fits"
    dead.write_bytes(b"")
    past = time.time() - 100
    os.utime(tmp_path / "b" / "old", (past, past))
    assert sweep_stale_temporaries(tmp_path / "b", record=record) == [dead]
