"""Sequential file writes that bypass the page cache, hashed on the way.

A product of a full OmegaCAM night is gigabytes written once and read perhaps once
later. Written through the page cache, every byte needs a fresh page, and on this kind
of virtual machine (which hands idle memory back to its host) touching fresh pages
costs about 2.2 s per GiB: 5 s for a 2.4 GB master bias. ``O_DIRECT`` writes go from
the process's own buffers to the disk (about 2.15 GB/s, ../shared/STACK_NOTES.md) and
need no pages at all.

``DirectFile`` stages the stream in two page-aligned buffers. A background thread
hashes the bytes as they are staged (SHA-256, in stream order); when a buffer fills,
another writes its whole 4096-byte blocks with ``O_DIRECT``; the main thread goes on
filling the other buffer, so hashing and writing overlap each other and the
computation of the next detector. A partial block at either end of the stream goes
through an ordinary descriptor, so a stream may start at any offset of an existing
file and end anywhere: several writers fill disjoint byte ranges of one file (a
product's detectors written in place by several tasks) without touching each other's
bytes. Where the file system refuses ``O_DIRECT`` (tmpfs), the same path uses the
ordinary descriptor. ``sha256_of`` hashes a whole file the same way round: read with
``O_DIRECT`` a buffer ahead of the hashing.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import queue
import threading
from pathlib import Path
from typing import Any

#: Alignment of ``O_DIRECT`` offsets, lengths and buffer addresses (the disk's
#: physical block; its logical block is 512).
ALIGN = 4096
#: Size of each of the two staging buffers.
CHUNK = 16 << 20


class DirectFile:
    """A write-only binary stream with ``write``, ``tell`` and ``close``; ``hexdigest()``
    is the SHA-256 of everything written, once closed.

    ``offset``: the stream starts there in a file shared with other writers (created
    if missing, never truncated), and writes no byte before it; None (default): the
    file is truncated, the stream starts at 0.
    ``hashed=False``: no SHA-256 (``hexdigest()`` refuses).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        offset: int | None = None,
        hashed: bool = True,
        chunk: int = CHUNK,
    ) -> None:
        self.path = Path(path)
        flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if offset is None else 0)
        self._fd = os.open(self.path, flags, 0o644)
        offset = offset or 0
        self._direct = _open_direct(self.path)
        self._digest = hashlib.sha256() if hashed else None
        self._floor = offset  # no byte below this one is ours
        size = -(-chunk // ALIGN) * ALIGN
        self._buffers = [mmap.mmap(-1, size), mmap.mmap(-1, size)]
        self._free = [threading.Event(), threading.Event()]
        for event in self._free:
            event.set()
        self._current = 0
        self._view = memoryview(self._buffers[0])
        self._base = offset - offset % ALIGN  # file offset of the buffer's first byte
        self._fill = offset - self._base  # bytes staged (or, below the floor, not ours)
        self._jobs: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._writes: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        # Hashing and writing overlap each other (and the caller): one thread each. A
        # 2.4 GB product is 1.2 s of SHA-256 and 1.1 s of O_DIRECT writes.
        self._thread = threading.Thread(target=self._work, name="direct-file-hash", daemon=True)
        self._writer = threading.Thread(target=self._write, name="direct-file-write", daemon=True)
        self._thread.start()
        self._writer.start()
        self._closed = False

    # -- the stream -------------------------------------------------------------
    def write(self, data: Any) -> int:
        """Append ``data`` (bytes or any C-contiguous buffer)."""
        self._raise_failure()
        source = memoryview(data).cast("B")
        done = 0
        while done < len(source):
            n = min(len(source) - done, len(self._view) - self._fill)
            self._view[self._fill : self._fill + n] = source[done : done + n]
            if self._digest is not None:
                self._jobs.put(("hash", self._view[self._fill : self._fill + n]))
            self._fill += n
            done += n
            if self._fill == len(self._view):
                self._hand_over()
        return len(source)

    def tell(self) -> int:
        return self._base + self._fill

    def close(self) -> None:
        """Write what is staged, wait for the writer thread, close the descriptors;
        raises the writer's failure, if any."""
        if self._closed:
            self._raise_failure()
            return
        try:
            if self._error is None:
                self._drain_and_write_tail()
        finally:
            self._shut_down()
        self._raise_failure()

    def _shut_down(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._thread.join()
        self._writer.join()
        os.close(self._fd)
        if self._direct is not None:
            os.close(self._direct)
        # The staging buffers go with the last views on them (an mmap with views
        # exported cannot be closed explicitly).
        self._view = memoryview(b"")
        self._buffers = []

    def hexdigest(self) -> str:
        if self._digest is None:
            raise ValueError(f"{self.path.name}: written without hashing")
        return self._digest.hexdigest()

    def __enter__(self) -> DirectFile:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # the file is abandoned: nothing more to write
            self._shut_down()

    # -- staging ---------------------------------------------------------------
    def _hand_over(self) -> None:
        """Give the current buffer's whole blocks to the writer; carry its partial
        last block into the other buffer."""
        whole = self._fill - self._fill % ALIGN
        other = 1 - self._current
        self._free[other].wait()
        self._raise_failure()
        tail = self._fill - whole
        target = memoryview(self._buffers[other])
        target[:tail] = self._view[whole : self._fill]
        self._free[self._current].clear()
        self._jobs.put(("write", self._current, whole, self._base, self._own_start()))
        self._current, self._view = other, target
        self._base += whole
        self._fill = tail

    def _drain_and_write_tail(self) -> None:
        """Everything staged on disk: whole blocks directly, the partial block through
        the ordinary descriptor (it stays staged: later writes complete it)."""
        if self._fill >= ALIGN:
            self._hand_over()
        done = threading.Event()
        self._jobs.put(("sync", done))
        done.wait()
        self._raise_failure()
        start = self._own_start()
        if self._fill > start:
            os.pwrite(self._fd, self._view[start : self._fill], self._base + start)

    def _own_start(self) -> int:
        """Where this stream's bytes start in the current buffer (above 0 only while
        the stream's first, partial block is staged)."""
        return max(0, self._floor - self._base)

    def _work(self) -> None:
        """The hashing thread: hashes in stream order and hands each write (and each
        sync) on to the writing thread once every byte before it is hashed, so that a
        buffer is free again only when both are done with it."""
        while (job := self._jobs.get()) is not None:
            if job[0] == "hash":
                if self._error is None:
                    try:
                        self._digest.update(job[1])  # type: ignore[union-attr]
                    except BaseException as error:  # handed to the main thread
                        self._error = error
            else:
                self._writes.put(job)
        self._writes.put(None)

    def _write(self) -> None:
        """The writing thread: whole blocks at their offsets, then the buffer is free."""
        while (job := self._writes.get()) is not None:
            if job[0] == "sync":
                job[1].set()
                continue
            _, index, length, offset, start = job
            try:
                if self._error is None:
                    view = memoryview(self._buffers[index])[:length]
                    if start:  # the first block is shared with bytes not ours
                        _write_all(self._fd, view[start:ALIGN], offset + start)
                        view, offset = view[ALIGN:], offset + ALIGN
                    _write_all(self._direct if self._direct is not None else self._fd, view, offset)
            except BaseException as error:  # handed to the main thread
                self._error = error
            finally:
                self._free[index].set()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise OSError(
                f"writing {self.path.name} failed: {self._error} (the file is not kept and "
                "nothing is recorded; free disk space, and the next pass writes it again)"
            ) from self._error


def _write_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def sha256_of(path: str | os.PathLike[str], *, chunk: int = CHUNK) -> str:
    """The SHA-256 of a whole file, read with ``O_DIRECT`` where it can be (no page
    cache: the file was written past it), one buffer read ahead of the hashing (a
    reading thread; hashlib releases the GIL while it hashes)."""
    path = Path(path)
    fd = _open_direct(path, os.O_RDONLY)
    if fd is None:
        fd = os.open(path, os.O_RDONLY)
    total = os.fstat(fd).st_size
    size = -(-chunk // ALIGN) * ALIGN
    buffers = [mmap.mmap(-1, size), mmap.mmap(-1, size)]
    filled: queue.Queue[tuple[int, int] | BaseException] = queue.Queue()
    free = [threading.Semaphore(1), threading.Semaphore(1)]
    stop = threading.Event()

    def read() -> None:
        offset, index = 0, 0
        try:
            while offset < total:
                free[index].acquire()
                if stop.is_set():
                    return
                n = os.preadv(fd, [buffers[index]], offset)
                if n == 0:
                    raise OSError(f"ends at byte {offset}, not {total}")
                filled.put((index, n))
                offset, index = offset + n, 1 - index
        except BaseException as error:  # handed to the hashing thread
            filled.put(error)

    digest = hashlib.sha256()
    reader = threading.Thread(target=read, name="sha256-read", daemon=True)
    reader.start()
    try:
        done = 0
        while done < total:
            item = filled.get()
            if isinstance(item, BaseException):
                raise OSError(f"reading {path.name}: {item}") from item
            index, n = item
            with memoryview(buffers[index]) as view:
                digest.update(view[:n])
            done += n
            free[index].release()
    finally:
        stop.set()
        for semaphore in free:
            semaphore.release()
        reader.join()
        os.close(fd)
    return digest.hexdigest()


def _open_direct(path: Path, mode: int = os.O_WRONLY) -> int | None:
    """A second descriptor on ``path`` with ``O_DIRECT``, or None where the platform
    or the file system has none."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        return os.open(path, mode | flag)
    except OSError:
        return None
