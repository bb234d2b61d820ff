"""What ``qc eso both-ways`` refuses, and the one-way rule of a workspace. The
comparison itself runs from the command line on a full-size night in
tests/test_esorex_peer.py (ESO's twilight flat needs full-size chips)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from qclib.cli import main
from qclib.errors import ConfigError
from qclib.workspace import init_workspace


def test_it_refuses_a_folder_that_holds_a_workspace(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "HAWKI.2026-11-23T17:00:00.000.fits").write_bytes(b"")
    init_workspace(tmp_path / "out" / "native", ["HAWKI"])
    done = CliRunner().invoke(main, ["eso", "both-ways", str(raw), "--out", str(tmp_path / "out")])
    assert done.exit_code != 0
    assert "already holds a workspace: give both-ways a new --out folder" in done.output


def test_a_workspace_processes_hawki_one_way(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HAWKI and HAWKI_ESO both take frames"):
        init_workspace(tmp_path / "ws", ["HAWKI", "HAWKI_ESO"])
