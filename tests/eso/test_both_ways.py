"""``qc eso both-ways`` from the command line, on a small HAWK-I night (darks only, test
scale): both workspaces, each block measured, the report, and what it says when the
quantities cannot be compared. The full-size comparison against the truth is
tests/test_esorex_peer.py; the one-way rule of a workspace is checked here too."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qclib.errors import ConfigError
from qclib.peers import esorex
from qclib.simulate.night import simulate_night
from qclib.workspace import init_workspace
from tests.conftest import missing_dependency

NIGHT = dt.date(2026, 11, 23)


def _qc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("qc")), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={k: v for k, v in os.environ.items() if k != "QC_DB_URL"},
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.fixture(scope="module")
def darks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if esorex.available("hawki"):
        missing_dependency(f"BOTH-WAYS TESTS SKIPPED: {esorex.available('hawki')}")
    out = tmp_path_factory.mktemp("hawki-darks")
    simulate_night("HAWKI", NIGHT, out, seed=5, scale="test", progress=False, only={"dark"})
    return out


@pytest.fixture(scope="module")
def both(darks: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("both") / "out"
    done = _qc("eso", "both-ways", str(darks), "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    return out, json.loads(done.stdout)


def test_every_dark_is_made_both_ways_and_measured(both: tuple[Path, dict]) -> None:
    out, result = both
    alone = [p["native"] for p in result["blocks"] if p["eso"] is None]
    pairs = [p for p in result["blocks"] if p["eso"] is not None]
    assert len(pairs) == 4  # the night's four templates of darks
    # The native detector noise needs twilight flats, which this night lacks.
    (noise,) = alone
    assert noise["action"] == "DETECTOR_NOISE" and noise["status"] == "incomplete"
    assert "FLAT_TWILIGHT" in noise["reason"] and noise["wall_s"] is None
    for pair in pairs:
        assert pair["native"]["action"] == "MASTER_DARK"
        assert pair["eso"]["action"] == "DARKS"
        for side in ("native", "eso"):
            assert pair[side]["status"] == "done"
            assert pair[side]["wall_s"] > 0 and pair[side]["peak_mb"] > 0
            assert pair[side]["rest_mb"] > 50  # an interpreter with numpy and astropy
        assert pair["eso"]["recipe_s"] > 0
    assert (out / "native" / "qc.toml").read_text().count('"HAWKI"') == 1
    assert '"HAWKI_ESO"' in (out / "eso" / "qc.toml").read_text()


def test_without_a_detector_noise_block_it_says_why_nothing_is_compared(
    both: tuple[Path, dict],
) -> None:
    out, result = both
    assert result["quantities"] is None
    assert "MASTER_READGAIN" in result["not_compared"]
    html = Path(result["report"]).read_text()
    assert Path(result["report"]) == out / "hawki_both_ways.html"
    assert "MASTER_READGAIN" in html and "hawki_dark_combine" in html
    assert html.count("Plotly.newPlot") == 2  # wall time and memory


def test_it_refuses_a_folder_that_holds_a_comparison(both: tuple[Path, dict], darks: Path) -> None:
    out, _ = both
    done = _qc("eso", "both-ways", str(darks), "--out", str(out))
    assert done.returncode != 0
    assert "already holds a workspace" in done.stderr + done.stdout


def test_a_workspace_processes_hawki_one_way(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HAWKI and HAWKI_ESO both take frames"):
        init_workspace(tmp_path / "ws", ["HAWKI", "HAWKI_ESO"])
