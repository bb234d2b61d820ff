"""Atomic file writes: a temporary file in the destination folder, then a rename.

A reader (or a process killed half-way) never sees a half-written file under its
final name: either the old content, or the complete new one. What a killed writer
leaves is removed by ``sweep_stale_temporaries``; in a tree it sweeps with a record,
every writer first names its folder in the tree's journal (``note_writing``), so that a
sweep lists the folders written into since the last one, not the whole history. Work
folders (``temporary_dir``) follow the same rules.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
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
    note_writing(dest.parent)
    tmp = dest.with_name(f"{TEMP_PREFIX}{os.getpid()}-{dest.name}")
    try:
        yield tmp
        commit_file(tmp, dest, readonly=readonly, durable=durable)
    finally:
        # Unlinked as it is: a read-only file can be removed (the folder is writable),
        # and a chmod would change the file it may be a hard link to.
        tmp.unlink(missing_ok=True)


def temporary_dir(dest: str | os.PathLike[str]) -> Path:
    """A new empty folder beside ``dest`` (``.tmp-<pid>-<name>-<random>``), for work
    that becomes ``dest`` by one rename, or is dropped; a sweep removes it whole once
    its process is gone (``sweep_stale_temporaries``)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    note_writing(dest.parent)
    return Path(
        tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-{dest.name}-", dir=dest.parent)
    )


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

    ``record``: a file where the sweep keeps the folders the next sweep must list,
    which makes ``folder`` a journaled tree (``note_writing``): the sweep then lists
    only the folders written into since the last sweep, those of the sweep before
    (a writer journals its folder just before it makes its temporary, so that may
    appear after this sweep listed the folder) and those holding a temporary whose
    process still ran, not every folder of the history. Without a valid record (the
    first sweep, or another folder's) or without the journal, every folder is listed.
    """
    root = Path(folder)
    if record is None or not root.parent.is_dir():
        return _remove_stale(_walk(root), also, live=set())
    journal = journal_of(root)
    existed = journal.exists()
    journal.touch()
    listed = _read_record(record, root)
    with open(journal, "r+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        written = {root / d for d in _journal_lines(handle.read())}
        if listed is not None and existed:
            # Kept before the journal is emptied: a sweep killed after this still
            # finds these folders in its record next time.
            _write_record(record, root, listed | written)
        handle.truncate(0)
    folders = _walk(root) if listed is None or not existed else sorted(listed | written)
    live: set[Path] = set()
    removed = _remove_stale(folders, also, live=live)
    _write_record(record, root, written | live)
    return removed


def journal_of(folder: str | os.PathLike[str]) -> Path:
    """The journal of a swept tree: ``.writing-<folder>`` beside it, one JSON string per
    line, each a folder (relative to the tree) that a writer made a temporary in."""
    folder = Path(folder)
    return folder.parent / f"{JOURNAL_PREFIX}{folder.name}"


def note_writing(directory: str | os.PathLike[str]) -> None:
    """Journal ``directory`` in the tree it lies in (its nearest ancestor, itself
    included, that has a journal: ``journal_of``) before a temporary is made in it,
    so that the tree's next sweep lists it. Outside a journaled tree, nothing."""
    directory = Path(directory).absolute()
    for tree in (directory, *directory.parents):
        try:
            fd = os.open(journal_of(tree), os.O_WRONLY | os.O_APPEND)
        except (FileNotFoundError, NotADirectoryError):
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            os.write(fd, (json.dumps(str(directory.relative_to(tree))) + "\n").encode())
        finally:
            os.close(fd)
        return


#: Name prefix of a swept tree's journal (``journal_of``).
JOURNAL_PREFIX = ".writing-"


def _journal_lines(data: bytes) -> set[str]:
    """The folders a journal names (a line that is not a JSON string is skipped)."""
    out = set()
    for line in data.splitlines():
        with contextlib.suppress(ValueError):
            name = json.loads(line)
            if isinstance(name, str):
                out.add(name)
    return out


def _walk(root: Path) -> list[Path]:
    """``root`` and every folder below it (symbolic links not followed)."""
    if not root.is_dir():
        return []
    folders = [root]
    for directory in folders:
        with contextlib.suppress(FileNotFoundError), os.scandir(directory) as entries:
            folders.extend(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))
    return folders


def _remove_stale(folders: list[Path], also: tuple[str, ...], *, live: set[Path]) -> list[Path]:
    """Remove the dead processes' temporaries (and ``also`` leftovers) found directly in
    ``folders``; adds to ``live`` each folder where a running process's temporary is."""
    removed: list[Path] = []
    for directory in folders:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(TEMP_PREFIX):
                continue
            if also and entry.name.startswith(also):
                path.unlink(missing_ok=True)
                removed.append(path)
            elif entry.name.startswith(TEMP_PREFIX):
                pid = entry.name[len(TEMP_PREFIX) :].split("-", 1)[0]
                if not pid.isdigit():
                    continue
                if int(pid) != os.getpid() and not _process_alive(int(pid)):
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(path, ignore_errors=True)  # temporary_dir's
                    else:
                        path.unlink(missing_ok=True)  # no chmod: it may be a hard link
                    removed.append(path)
                else:  # its process runs: look again next time
                    live.add(directory)
    return removed


def _read_record(record: str | os.PathLike[str], root: Path) -> set[Path] | None:
    """The folders the last sweep of ``root`` left to list; None without a record of
    that folder."""
    try:
        state = json.loads(Path(record).read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("folder") != str(root.resolve()):
        return None
    listed = state.get("list")
    if not isinstance(listed, list):
        return None  # an older record's layout
    return {root / d for d in listed if isinstance(d, str)}


def _write_record(record: str | os.PathLike[str], root: Path, folders: set[Path]) -> None:
    state = {
        "folder": str(root.resolve()),
        "list": sorted(str(d.relative_to(root)) for d in folders),
    }
    with atomic_path(record, durable=False) as tmp:
        tmp.write_text(json.dumps(state))
