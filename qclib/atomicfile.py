"""Atomic file writes: a temporary file in the destination folder, then a rename.

A reader (or a process killed half-way) never sees a half-written file under its
final name: either the old content, or the complete new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

_CHUNK = 8 * 1024 * 1024
TEMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(
    dest: str | os.PathLike[str], *, readonly: bool = False, durable: bool = True
) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` on success.

    The temporary file is fsync-ed before the rename (unless ``durable`` is False: an
    intermediate file that a crash may lose, because it would be made again); on an
    exception it is removed and ``dest`` is left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{TEMP_PREFIX}{os.getpid()}-{dest.name}")
    try:
        yield tmp
        commit_file(tmp, dest, readonly=readonly, durable=durable)
    finally:
        if tmp.exists():
            tmp.chmod(stat.S_IRUSR | stat.S_IWUSR)
            tmp.unlink()


def commit_file(
    written: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    readonly: bool = False,
    durable: bool = True,
) -> None:
    """Make a fully written file ``dest``: fsync-ed (``durable``), read-only if asked,
    renamed in one step. ``atomic_path`` ends with it; so do products written in place
    by several tasks (``qclib.products.finish_product``)."""
    written = Path(written)
    if durable:
        with open(written, "rb") as handle:
            os.fsync(handle.fileno())
    if readonly:
        written.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    os.replace(written, dest)


def write_bytes_atomic(dest: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(dest: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``dest`` atomically."""
    write_bytes_atomic(dest, text.encode("utf-8"))


def copy_atomic(
    src: str | os.PathLike[str], dest: str | os.PathLike[str], *, readonly: bool = True
) -> str:
    """Copy ``src`` to ``dest`` atomically and return the SHA-256 of what was copied.

    The hash is computed from the bytes written, in the same pass, so it describes
    exactly the stored copy even if ``src`` changes meanwhile.
    """
    digest = hashlib.sha256()
    with (
        atomic_path(dest, readonly=readonly) as tmp,
        open(src, "rb") as source,
        open(tmp, "wb") as target,
    ):
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            target.write(chunk)
    return digest.hexdigest()


def _process_alive(pid: int) -> bool:
    """True for a running process; False for none, or a zombie (killed, not yet
    reaped: a killed pass's workers can stay so for a while)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): a process that answers is alive
    return stat_line.rsplit(")", 1)[-1].split()[0] != "Z"


def sweep_stale_temporaries(
    folder: str | os.PathLike[str],
    *,
    also: tuple[str, ...] = (),
    record: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Remove temporaries left in ``folder`` (recursively) by processes that are gone.

    A process killed mid-write leaves ``.tmp-<pid>-<name>``; the final file was never
    renamed into place, so the temporary holds nothing worth keeping. ``also``: name
    prefixes of other leftovers, removed whichever process made them.

    ``record``: a file where the sweep keeps the folder's directories and when it
    began, so that the next sweep lists only the directories changed since (making
    or renaming a file in a directory changes the directory's time; a new directory
    changes its parent's) instead of every file below ``folder``. A temporary kept
    because its process still ran keeps its directory listed next time.
    """
    root = Path(folder)
    began = time.time()
    since, known, again = _sweep_record(record, root)
    removed: list[Path] = []
    live: set[Path] = set()  # folders holding a temporary whose process still runs
    seen: set[Path] = set()
    todo = [root, *known]
    while todo:
        directory = todo.pop()
        if directory in seen:
            continue
        try:
            changed = directory.stat().st_mtime
        except FileNotFoundError:
            continue
        seen.add(directory)
        if directory in known and directory not in again and changed < since - _SWEEP_SLACK_S:
            continue  # nothing made or renamed in it since the last sweep
        with os.scandir(directory) as entries:
            for entry in entries:
                path = Path(entry.path)
                if entry.is_dir(follow_symlinks=False):
                    todo.append(path)
                elif also and entry.name.startswith(also):
                    path.unlink(missing_ok=True)
                    removed.append(path)
                elif entry.name.startswith(TEMP_PREFIX):
                    pid = entry.name[len(TEMP_PREFIX) :].split("-", 1)[0]
                    if not pid.isdigit():
                        continue
                    if int(pid) != os.getpid() and not _process_alive(int(pid)):
                        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
                        path.unlink(missing_ok=True)
                        removed.append(path)
                    else:  # its process runs: look again next time
                        live.add(directory)
    if record is not None:
        state = json.dumps(
            {
                "folder": str(root.resolve()),
                "since": began,
                "dirs": sorted(str(d.relative_to(root)) for d in seen if d != root),
                "again": sorted(str(d.relative_to(root)) for d in live),
            }
        )
        with atomic_path(record, durable=False) as tmp:
            tmp.write_text(state)
    return removed


#: Slack on directory times (file systems that keep them to the second or coarser).
_SWEEP_SLACK_S = 2.0


def _sweep_record(
    record: str | os.PathLike[str] | None, root: Path
) -> tuple[float, set[Path], set[Path]]:
    """When the last sweep of ``root`` began, the directories it saw, and those where it
    left a live process's temporary; (0, none, none) without a record of that folder."""
    if record is None:
        return 0.0, set(), set()
    try:
        state = json.loads(Path(record).read_text())
    except (FileNotFoundError, ValueError):
        return 0.0, set(), set()
    if state.get("folder") != str(root.resolve()):
        return 0.0, set(), set()
    known = {root, *(root / d for d in state["dirs"])}
    return float(state["since"]), known, {root / d for d in state["again"]}
