"""Sweeping leftovers: with a record, a sweep lists only the folders written into since
the last one (the tree's journal), and still removes every temporary of a dead process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qclib import atomicfile
from qclib.atomicfile import TEMP_PREFIX, atomic_path, sweep_stale_temporaries, write_text_atomic


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


def test_a_recorded_sweep_lists_only_the_folders_written_into(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, record = tmp_path / "products", tmp_path / ".sweep.json"
    nights = [root / f"2026-03-0{i}" for i in range(1, 6)]
    for night in nights:
        night.mkdir(parents=True)
        (night / "MASTER_BIAS.fits").write_bytes(b"x")
    listed = _listed(monkeypatch)
    assert sweep_stale_temporaries(root, record=record) == []
    assert set(listed) == {root, *nights}  # no record yet: every folder
    assert atomicfile.journal_of(root).exists()
    listed.clear()
    assert sweep_stale_temporaries(root, record=record) == []
    assert listed == []  # nothing written

    # A writer killed mid-write and one still writing, each through atomic_path.
    dead = _killed_writer(nights[1] / "MASTER_FLAT.fits")
    assert dead.exists()
    with atomic_path(nights[3] / "MASTER_DARK.fits") as live:
        live.write_bytes(b"being written")
        assert sweep_stale_temporaries(root, record=record) == [dead]
        assert not dead.exists() and live.exists()
        assert set(listed) == {nights[1], nights[3]}
        listed.clear()
        sweep_stale_temporaries(root, record=record)
        # nights[1] once more (the sweep after a write), nights[3] while its writer runs
        assert set(listed) == {nights[1], nights[3]}
        listed.clear()
        sweep_stale_temporaries(root, record=record)
        assert listed == [nights[3]]
    listed.clear()

    # A new folder is journaled by its first write.
    new = _killed_writer(root / "2026-03-09" / "SCIENCE.fits")
    assert sweep_stale_temporaries(root, record=record) == [new]
    assert root / "2026-03-09" in listed and root not in listed
    assert len(listed) <= 3


def test_a_killed_sweep_loses_no_journaled_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, record = tmp_path / "archive", tmp_path / ".sweep.json"
    root.mkdir()
    sweep_stale_temporaries(root, record=record)
    dead = _killed_writer(root / "2026" / "MASTER_BIAS.fits")

    def killed(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt("killed after the journal was emptied")

    monkeypatch.setattr(atomicfile, "_remove_stale", killed)
    with pytest.raises(KeyboardInterrupt):
        sweep_stale_temporaries(root, record=record)
    monkeypatch.undo()
    assert atomicfile.journal_of(root).read_bytes() == b""
    assert sweep_stale_temporaries(root, record=record) == [dead]


def test_writes_outside_a_journaled_tree_journal_nothing(tmp_path: Path) -> None:
    write_text_atomic(tmp_path / "a" / "b.txt", "x")
    assert not list(tmp_path.rglob(f"{atomicfile.JOURNAL_PREFIX}*"))


def _killed_writer(dest: Path) -> Path:
    """A process that dies inside ``atomic_path(dest)``; its temporary is returned."""
    script = (
        "import os, sys\n"
        "from qclib.atomicfile import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half')\n"
        "    print(tmp, flush=True)\n"
        "    os._exit(9)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(dest)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 9, done.stderr
    return Path(done.stdout.strip())


def test_a_record_of_another_folder_is_not_trusted(tmp_path: Path) -> None:
    record = tmp_path / ".sweep.json"
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "old").mkdir(parents=True)
    sweep_stale_temporaries(tmp_path / "b", record=record)  # b is journaled
    sweep_stale_temporaries(tmp_path / "a", record=record)  # the record is a's now
    dead = tmp_path / "b" / "old" / f"{TEMP_PREFIX}{_dead_pid()}-X.fits"  # not journaled
    dead.write_bytes(b"")
    assert sweep_stale_temporaries(tmp_path / "b", record=record) == [dead]


def test_a_dead_process_work_folder_is_swept_whole(tmp_path: Path) -> None:
    """temporary_dir's folders (an esorex job's work) go with their process: a dead
    one's is removed, contents and all; a running one's stays for the next sweep."""
    mine = atomicfile.temporary_dir(tmp_path / "night" / "block.esorex")
    (mine / "esorex.log").write_text("running")
    dead = tmp_path / "night" / f"{TEMP_PREFIX}{_dead_pid()}-other.esorex-x1y2"
    (dead / "sub").mkdir(parents=True)
    (dead / "sub" / "product.fits").write_bytes(b"half")
    removed = sweep_stale_temporaries(tmp_path)
    assert removed == [dead]
    assert not dead.exists() and (mine / "esorex.log").read_text() == "running"
