"""Atomic file writes: a temporary file in the destination folder, then a rename.

A reader (or a process killed half-way) never sees a half-written file under its
final name: either the old content, or the complete new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
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
        if durable:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        if readonly:
            tmp.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.chmod(stat.S_IRUSR | stat.S_IWUSR)
            tmp.unlink()


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


def sweep_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove temporaries left in ``folder`` (recursively) by processes that are gone.

    A process killed mid-write leaves ``.tmp-<pid>-<name>``; the final file was never
    renamed into place, so the temporary holds nothing worth keeping.
    """
    removed = []
    for path in Path(folder).rglob(f"{TEMP_PREFIX}*"):
        pid = path.name[len(TEMP_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            path.chmod(stat.S_IRUSR | stat.S_IWUSR)
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
