"""Ingest: validate raw files from their headers, store good ones, quarantine the rest.

For each source file:
  1. a source already seen with the same size and modification time is skipped
     (re-ingesting is a no-op and costs one ``stat``);
  2. its FITS structure and headers are checked (no pixels are read);
  3. its SHA-256 is compared with the index: the same content from another file
     is a duplicate, another content under a known ARCFILE is a conflict;
  4. it is copied atomically to ``data/raw/<night>/<ARCFILE>``, read-only, and
     the copy is verified to be the bytes that were hashed;
  5. the frame is indexed in one transaction.
A file failing any step is copied to ``data/quarantine/`` with a one-line reason
(in the database and in a ``.reason.txt`` beside it). Sources are never modified;
with ``move=True`` (an inbox) they are removed once safely stored: a good file on
the same file system is renamed into ``data/raw`` rather than copied (no second
write of the data), under a write-ahead record so that a pass killed between the
rename and the index entry is completed by the next one. A file still being
written is quarantined as ``incomplete``; when it is complete, the next pass
ingests it and marks that quarantine entry resolved.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from stat import S_IRGRP, S_IROTH, S_IRUSR
from typing import Any, Literal

from tqdm import tqdm

from qclib.atomicfile import (
    atomic_path,
    copy_atomic,
    sweep_stale_temporaries,
    write_text_atomic,
)
from qclib.classify import classify_header
from qclib.db import Database
from qclib.db import ingest_log as log
from qclib.errors import QuarantineError
from qclib.fitsio import copy_hashing, scan_fits, sha256_file
from qclib.frames import FrameInfo, frame_info_from_scan
from qclib.instruments import load_rules
from qclib.workspace import Workspace

FITS_SUFFIXES = (".fits", ".fit", ".fts")

Status = Literal["ingested", "already-ingested", "quarantined", "already-quarantined", "unreadable"]


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one source file."""

    source: str
    status: Status
    arcfile: str | None = None
    night: str | None = None
    instrument: str | None = None
    code: str | None = None
    reason: str | None = None
    stored: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


@dataclass(frozen=True)
class _Stat:
    size: int
    mtime_ns: int


def expand_sources(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Files to ingest: named files as given; folders walked for FITS-named files.

    Hidden files (a leading dot: temporary files of a writer) are left alone.
    """
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and name.lower().endswith(FITS_SUFFIXES):
                        yield Path(root) / name
        else:
            yield path


class _AlreadyIngested(Exception):  # noqa: N818 - a signal, not an error
    def __init__(self, arcfile: str, frame_id: int) -> None:
        super().__init__(arcfile)
        self.arcfile = arcfile
        self.frame_id = frame_id


def _remember(session: Any, source: str, stat: _Stat, sha256: str, **outcome: Any) -> None:
    """Record what ingest concluded about a source (frame, quarantine or pending move)."""
    log.record_source(
        session, source, size_bytes=stat.size, mtime_ns=stat.mtime_ns, sha256=sha256, **outcome
    )


def _check_unchanged(src: Path, before: _Stat) -> None:
    """Raise if the source changed while it was read (a writer is still at it)."""
    after = src.stat()
    if (after.st_size, after.st_mtime_ns) != (before.size, before.mtime_ns):
        raise QuarantineError(
            f"{src.name}: changed while it was being ingested: still being written; "
            "it will be ingested once complete",
            code="incomplete",
        )


def _readonly(path: Path) -> None:
    path.chmod(S_IRUSR | S_IRGRP | S_IROTH)


def _stat_and_hash(path: Path) -> tuple[_Stat, str]:
    """A file's size and mtime before it was hashed, and its SHA-256; a file changed
    meanwhile is hashed again when it is ingested (the stat no longer matches)."""
    before = path.stat()
    sha = sha256_file(path)
    after = path.stat()
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        return _Stat(-1, -1), sha
    return _Stat(before.st_size, before.st_mtime_ns), sha


class Ingester:
    """Ingests files into one workspace; see the module docstring for the steps."""

    def __init__(self, workspace: Workspace, database: Database, *, move: bool = False) -> None:
        self.workspace = workspace
        self.db = database
        self.move = move
        self.instruments = workspace.instruments()
        self.settle_seconds = workspace.config.ingest.settle_seconds
        self._hashed: dict[Path, concurrent.futures.Future[tuple[_Stat, str]]] = {}

    def ingest(
        self, paths: Iterable[str | os.PathLike[str]], *, progress: bool = False
    ) -> list[IngestOutcome]:
        sources = list(expand_sources(paths))
        for folder in (self.workspace.raw_dir, self.workspace.quarantine_dir):
            sweep_stale_temporaries(folder, record=self.workspace.sweep_record(folder.name))
        outcomes = self.finish_pending_moves()
        # Moved files are only hashed (no copy): hash them ahead, one file per core,
        # while files are validated and indexed here in order. SHA-256 runs at about
        # 1.7 GB/s on one core here, the disk reads faster (bench/bench_night.py:
        # ingest of an 18.4 GB night 50.9 s hashing in line).
        threads = (os.cpu_count() or 1) if self.move else 0
        with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool:
            if threads:
                self._hashed = {s.resolve(): pool.submit(_stat_and_hash, s) for s in sources}
            for source in tqdm(sources, desc="ingest", unit="file", disable=not progress):
                outcome = self.ingest_one(source)
                outcomes.append(outcome)
                if self.move and outcome.status in ("ingested", "quarantined", "already-ingested"):
                    source.unlink(missing_ok=True)  # already gone when it was renamed
            for future in self._hashed.values():
                future.cancel()
            self._hashed = {}
        return outcomes

    def _sha256(self, src: Path, stat: _Stat) -> str:
        """The source's SHA-256: hashed ahead when its size and mtime still match."""
        ahead = self._hashed.pop(src, None)
        if ahead is not None:
            try:
                hashed_stat, sha = ahead.result()
            except OSError:
                pass
            else:
                if hashed_stat == stat:
                    return sha
        return sha256_file(src)

    def ingest_one(self, source: Path) -> IngestOutcome:
        src = source.resolve()
        name = str(src)
        try:
            st = src.stat()
        except OSError as err:
            return IngestOutcome(name, "unreadable", reason=f"{src}: cannot read: {err.strerror}")
        stat = _Stat(st.st_size, st.st_mtime_ns)
        with self.db.transaction() as session:
            seen = log.seen_source(session, name)
        if seen is not None and (seen.size_bytes, seen.mtime_ns) == (stat.size, stat.mtime_ns):
            if seen.frame_id is not None:
                return IngestOutcome(name, "already-ingested")
            return IngestOutcome(name, "already-quarantined")
        try:
            return self._ingest_valid(src, stat)
        except QuarantineError as err:
            if err.code == "truncated" and time.time() - st.st_mtime < self.settle_seconds:
                err = QuarantineError(
                    f"{src.name}: still being written (modified {time.time() - st.st_mtime:.1f} s "
                    f"ago, FITS structure incomplete); it will be ingested once complete",
                    code="incomplete",
                )
            return self._quarantine(src, stat, err)
        except OSError as err:
            return IngestOutcome(name, "unreadable", reason=f"{src}: cannot read: {err.strerror}")

    def finish_pending_moves(self) -> list[IngestOutcome]:
        """Index files a killed pass renamed into data/raw but did not record."""
        outcomes = []
        with self.db.transaction() as session:
            pending = log.pending_moves(session)
        for move in pending:
            assert move.pending_dest is not None
            dest = self.workspace.confine(move.pending_dest)
            if dest.exists() and sha256_file(dest) == move.sha256:
                info = frame_info_from_scan(scan_fits(dest), self.instruments)
                outcomes.append(
                    self._index(
                        Path(move.source_path),
                        dest,
                        info,
                        move.sha256,
                        _Stat(move.size_bytes, move.mtime_ns),
                    )
                )
            else:  # the rename never happened: the source is where it was
                with self.db.transaction() as session:
                    log.record_source(
                        session, move.source_path, size_bytes=0, mtime_ns=0, sha256=move.sha256
                    )
        return outcomes

    def _index(
        self, src: Path, dest: Path, info: FrameInfo, sha: str, stat: _Stat
    ) -> IngestOutcome:
        name = str(src)
        classified = classify_header(load_rules(info.instrument), info.keywords)
        with self.db.transaction() as session:
            frame_id = log.add_frame(
                session,
                info,
                path=self.workspace.relative(dest),
                sha256=sha,
                size_bytes=stat.size,
                source_path=name,
                do_catg=classified.do_catg,
                classification=classified.as_dict(),
            )
            _remember(session, name, stat, sha, frame_id=frame_id)
            log.resolve_quarantine_of_source(session, name, f"ingested later as {info.arcfile}")
        return IngestOutcome(
            name,
            "ingested",
            arcfile=info.arcfile,
            night=info.night.isoformat(),
            instrument=info.instrument,
            stored=self.workspace.relative(dest),
        )

    def _move_valid(self, src: Path, dest: Path, info: FrameInfo, stat: _Stat) -> IngestOutcome:
        """Rename a validated source into data/raw (same file system): no data copied."""
        sha = self._sha256(src, stat)
        _check_unchanged(src, stat)
        try:
            self._check_duplicates(src, info.arcfile, sha, stat)
        except _AlreadyIngested as known:
            return IngestOutcome(str(src), "already-ingested", arcfile=known.arcfile)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self.db.transaction() as session:  # write-ahead: the move is about to happen
            _remember(session, str(src), stat, sha, pending_dest=self.workspace.relative(dest))
        os.replace(src, dest)
        _readonly(dest)
        return self._index(src, dest, info, sha, stat)

    def _ingest_valid(self, src: Path, stat: _Stat) -> IngestOutcome:
        name = str(src)
        info = frame_info_from_scan(scan_fits(src), self.instruments)
        dest = self.workspace.raw_dir / info.night.isoformat() / info.arcfile
        if self.move and src.stat().st_dev == self.workspace.raw_dir.stat().st_dev:
            return self._move_valid(src, dest, info, stat)
        try:
            # One read of the source: copy and hash together, check, then rename.
            with atomic_path(dest, readonly=True) as tmp:
                sha = copy_hashing(src, tmp)
                _check_unchanged(src, stat)
                scan_fits(tmp)
                self._check_duplicates(src, info.arcfile, sha, stat)
        except _AlreadyIngested as known:
            return IngestOutcome(name, "already-ingested", arcfile=known.arcfile)
        return self._index(src, dest, info, sha, stat)

    def _check_duplicates(self, src: Path, arcfile: str, sha: str, stat: _Stat) -> None:
        name = str(src)
        with self.db.transaction() as session:
            same = log.frame_by_sha256(session, sha)
            clash = log.frame_by_arcfile(session, arcfile)
            if same is not None and same.source_path == name:
                _remember(session, name, stat, sha, frame_id=same.id)
                raise _AlreadyIngested(same.arcfile, same.id)
        if same is not None:
            raise QuarantineError(
                f"{src.name}: duplicate of {same.arcfile} (same content, ingested "
                f"{same.ingested_at:%Y-%m-%d %H:%M} UTC from {same.source_path})",
                code="duplicate",
            )
        if clash is not None:
            raise QuarantineError(
                f"{src.name}: ARCFILE {arcfile} was already ingested with different content "
                f"(from {clash.source_path}): conflicting copies; keep the right one",
                code="duplicate",
            )

    def _quarantine(self, src: Path, stat: _Stat, err: QuarantineError) -> IngestOutcome:
        name = str(src)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        sha = sha256_file(src)
        with self.db.transaction() as session:
            for entry in log.list_quarantine(session):
                if entry.source_path == name and entry.sha256 == sha:
                    _remember(session, name, stat, sha, quarantine_id=entry.id)
                    return IngestOutcome(
                        name,
                        "already-quarantined",
                        code=entry.reason_code,
                        reason=entry.reason,
                        stored=entry.stored_path,
                    )
        dest = self.workspace.quarantine_dir / f"{stamp}-{sha[:8]}-{src.name.lstrip('.') or 'file'}"
        copied_sha = copy_atomic(src, dest, readonly=True)
        write_text_atomic(dest.with_name(dest.name + ".reason.txt"), f"{err.code}: {err.reason}\n")
        stored = self.workspace.relative(dest)
        with self.db.transaction() as session:
            entry_id = log.add_quarantine(
                session,
                source_path=name,
                stored_path=stored,
                sha256=copied_sha,
                size_bytes=dest.stat().st_size,
                reason_code=err.code,
                reason=err.reason,
            )
            _remember(session, name, stat, copied_sha, quarantine_id=entry_id)
        return IngestOutcome(name, "quarantined", code=err.code, reason=err.reason, stored=stored)


def ingest_paths(
    workspace: Workspace,
    database: Database,
    paths: Iterable[str | os.PathLike[str]],
    *,
    move: bool = False,
    progress: bool = False,
) -> list[IngestOutcome]:
    """Ingest files and folders into a workspace; one outcome per source file.

    Reference catalogues of standard fields shipped beside the raws
    (``catalogues/*.csv`` in or below a folder, as ``qc simulate`` writes them) are
    copied to the workspace's ``data/catalogues/`` too: the zeropoint recipes read them
    there.
    """
    paths = list(paths)
    outcomes = Ingester(workspace, database, move=move).ingest(paths, progress=progress)
    copy_catalogues(workspace, paths)
    return outcomes


def copy_catalogues(workspace: Workspace, paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Copy ``catalogues/*.csv`` found in (or below) the given folders; returns what changed."""
    copied = []
    for raw in paths:
        folder = Path(raw).expanduser()
        if not folder.is_dir():
            continue
        for source in sorted(folder.rglob("catalogues/*.csv")):
            dest = workspace.catalogues_dir / source.name
            if dest.exists() and dest.read_bytes() == source.read_bytes():
                continue
            copy_atomic(source, dest, readonly=False)
            copied.append(dest)
    return copied
