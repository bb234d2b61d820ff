"""DirectFile: the bytes and SHA-256 of an ordinary write, whatever the write sizes."""

from __future__ import annotations

import hashlib
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


def test_copies_from_another_file_in_between(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.write_bytes(bytes(range(256)) * 1000)
    head, middle, tail = (b"h" * 2881), source.read_bytes()[1001:250_003], (b"t" * 70_001)
    with DirectFile(tmp_path / "out", chunk=65536) as handle:
        handle.write(head)
        handle.copy_from(source, 1001, 250_003)
        handle.write(tail)
        handle.copy_from(source, 0, 5)
    expected = head + middle + tail + source.read_bytes()[:5]
    assert (tmp_path / "out").read_bytes() == expected
    assert handle.hexdigest() == hashlib.sha256(expected).hexdigest()


def test_a_file_system_without_o_direct_gets_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(direct_file, "_open_direct", lambda path: None)
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
