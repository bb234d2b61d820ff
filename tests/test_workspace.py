"""Workspaces: init creates the layout and database; bad settings fail fast with file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from qclib.errors import ConfigError
from qclib.workspace import init_workspace, load_workspace


def test_init_creates_the_layout_and_is_idempotent(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("QC_DB_URL", raising=False)
    ws = init_workspace(tmp_path / "ws")
    for sub in (
        "inbox",
        "data/raw",
        "data/quarantine",
        "data/products",
        "data/archive",
        "parameterized_runs",
    ):
        assert (ws.root / sub).is_dir(), sub
    assert (ws.root / "data" / "qc.sqlite").exists()
    (ws.root / "qc.toml").write_text(
        (ws.root / "qc.toml").read_text().replace('inbox = "inbox"', 'inbox = "incoming"')
    )
    again = init_workspace(tmp_path / "ws")  # keeps the user's settings
    assert again.inbox == ws.root / "incoming"


def test_missing_workspace_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run 'qc init"):
        load_workspace(tmp_path)


@pytest.mark.parametrize(
    ("old", "new", "phrase"),
    [
        (
            "instruments = [",
            'instruments = ["NOPE", ',
            "unknown instrument",
        ),
        ("settle_seconds = 10.0", "settle_seconds = -1", "ingest.settle_seconds"),
        ("[database]", "[databse]", "databse"),
    ],
)
def test_bad_settings_name_file_and_key(tmp_path: Path, old: str, new: str, phrase: str) -> None:
    ws = init_workspace(tmp_path / "ws")
    config = ws.root / "qc.toml"
    assert old in config.read_text()  # what the test edits is there to edit
    config.write_text(config.read_text().replace(old, new))
    with pytest.raises(ConfigError, match=phrase) as info:
        load_workspace(ws.root)
    assert "qc.toml" in str(info.value)


def test_confine_refuses_paths_outside_the_workspace(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    assert ws.confine("data/raw/x.fits") == ws.root / "data" / "raw" / "x.fits"
    with pytest.raises(ConfigError, match="leaves the workspace"):
        ws.confine("../../etc/passwd")
