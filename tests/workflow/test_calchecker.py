"""calChecker over a workspace judges the frames indexed now, not the stored blocks."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from qclib.cli import main
from qclib.db import blocks as block_store
from qclib.simulate.night import simulate_night
from qclib.workflow.calchecker import calibration_status, indexed_blocks
from qclib.workspace import load_workspace
from tests.conftest import NIGHT

#: Five days after the fixture night: its flats are at level 2 (3 d < |Δt| <= 7 d).
LATER = NIGHT + dt.timedelta(days=5)


def _qc(ws: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["-w", str(ws), *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def workspace(tmp_path: Path, omegacam_night: Path, monkeypatch) -> Path:
    """A workspace holding the fixture's full OmegaCAM night, ingested and associated."""
    monkeypatch.delenv("QC_DB_URL", raising=False)
    ws = tmp_path / "ws"
    _qc(ws.parent, "init", str(ws))
    inbox = tmp_path / "night1"
    shutil.copytree(omegacam_night, inbox)
    _qc(ws, "ingest", str(inbox))
    _qc(ws, "associate")
    return ws


def test_a_night_ingested_without_flats_is_judged_before_qc_associate(
    tmp_path: Path, workspace: Path
) -> None:
    first = json.loads(_qc(workspace, "calchecker", "--json"))
    (setup,) = first["setups"]
    assert setup["verdict"] == "OK" and first["until"] == NIGHT.isoformat()

    later = tmp_path / "night2"
    simulate_night(
        "OMEGACAM",
        LATER,
        later,
        seed=8,
        scale="test",
        workers=1,
        progress=False,
        only=frozenset({"bias", "science"}),
    )
    _qc(workspace, "ingest", str(later))  # no 'qc associate': the stored blocks are stale

    judged = json.loads(_qc(workspace, "calchecker", "--nights", "1", "--json"))
    assert judged["until"] == LATER.isoformat()
    (setup,) = judged["setups"]
    assert setup["nights"] == [LATER.isoformat()]
    assert setup["verdict"] == "NOK"
    verdicts = {c["tag"]: (c["verdict"], c["level"]) for c in setup["calibrations"]}
    assert verdicts["MASTER_BIAS"] == ("OK", 0)  # the new night's own biases
    assert verdicts["MASTER_FLAT"] == ("NOK", 2)  # the first night's, five days old
    text = _qc(workspace, "calchecker", "--nights", "1")
    assert "no science setups" not in text and "outdated: level 2" in text


def test_in_memory_blocks_are_what_qc_associate_stores(workspace: Path) -> None:
    ws = load_workspace(workspace)
    database = ws.open_database()
    try:
        with database.transaction() as session:
            stored = block_store.list_blocks(session, instrument="OMEGACAM")
        in_memory = indexed_blocks(database, "OMEGACAM")
        assert len(stored) >= 8
        assert in_memory == stored
        assert [json.loads(json.dumps(b.as_dict())) for b in in_memory] == [
            b.as_dict() for b in stored
        ]
        with pytest.raises(ValueError, match="1 night or more, not 0"):
            calibration_status(ws, database, nights=0)
    finally:
        database.close()
