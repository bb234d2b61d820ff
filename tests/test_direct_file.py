"""DirectFile: the bytes and SHA-256 of an ordinary write, whatever the write sizes;
writers at unaligned offsets of one file never touch each other's bytes."""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path

import numpy as np
import pytest

from qclib import direct_file
from qclib.direct_file import ALIGN, DirectFile


def _pieces(seed: int, total: int) -> list[bytes]:
    """Random bytes cut at random sizes: headers of 2880, odd lengths, pieces larger
    than a staging buffer."""
    rng = np.random.default_rng(seed)
    out, left = [], total
    while left:
        n = min(left, int(rng.choice([1, 7, 2880, 4096, 5000, 70_000, 300_000])))
        out.append(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        left -= n
    return out


@pytest.mark.parametrize("total", [0, 100, ALIGN, 3 * 65536 + 2880 * 3 + 17, 1_000_003])
def test_stream_matches_an_ordinary_write(tmp_path: Path, total: int) -> None:
    pieces = _pieces(total, total)
    with DirectFile(tmp_path / "out", chunk=65536) as handle:
        for piece in pieces:
            handle.write(piece)
        assert handle.tell() == total
    expected = b"".join(pieces)
    assert (tmp_path / "out").read_bytes() == expected
    assert handle.hexdigest() == hashlib.sha256(expected).hexdigest()


@pytest.mark.parametrize("cuts", [(0, 2881, 70_001, 250_003), (0, 1, ALIGN, ALIGN + 1, 9000)])
def test_writers_at_offsets_fill_one_file(tmp_path: Path, cuts: tuple[int, ...]) -> None:
    """Each writer its own byte range, unaligned starts and ends sharing blocks with
    the neighbours; written in reverse order, so no range is written after its
    neighbour's block was already on disk by chance."""
    expected = np.random.default_rng(1).integers(0, 256, cuts[-1], dtype=np.uint8).tobytes()
    path = tmp_path / "out"
    ranges = list(itertools.pairwise(cuts))
    for start, stop in reversed(ranges):
        with DirectFile(path, offset=start, hashed=False, chunk=8192) as handle:
            handle.write(expected[start:stop])
            assert handle.tell() == stop
    assert path.read_bytes() == expected
    with pytest.raises(ValueError, match="without hashing"):
        handle.hexdigest()


@pytest.mark.parametrize("size", [0, 17, ALIGN, 3 * 8192 + 5])
def test_sha256_of_a_file_read_past_the_page_cache(tmp_path: Path, size: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    (tmp_path / "f").write_bytes(data)
    assert direct_file.sha256_of(tmp_path / "f", chunk=8192) == hashlib.sha256(data).hexdigest()


def test_a_file_system_without_o_direct_gets_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(direct_file, "_open_direct", lambda path, mode=0: None)
    pieces = _pieces(5, 200_000)
    with DirectFile(tmp_path / "out", chunk=8192) as handle:
        for piece in pieces:
            handle.write(piece)
    assert (tmp_path / "out").read_bytes() == b"".join(pieces)


def test_a_failed_write_reaches_the_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(fd: int, data: object, offset: int) -> int:
        raise OSError(28, "No space left on device")

    handle = DirectFile(tmp_path / "out", chunk=8192)
    monkeypatch.setattr(os, "pwrite", refuse)
    with pytest.raises(OSError, match=r"writing out failed: .*No space left"):
        for _ in range(10):
            handle.write(b"x" * 8192)
    with pytest.raises(OSError, match=r"writing out failed"):
        handle.close()  # and the descriptors and thread are released
    assert not handle._thread.is_alive()
