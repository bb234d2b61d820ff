"""Classification + association in a workspace, stored in the database (both backends),
and the CLI verbs that show them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from qclib.cli import main
from qclib.db import blocks as block_store
from qclib.db import ingest_log
from qclib.workflow.association import associate_workspace
from qclib.workflow.ingest import ingest_paths


def test_associate_stores_blocks_and_is_idempotent(
    workspace, omegacam_night: Path, hawki_night: Path
) -> None:
    db = workspace.open_database()
    ingest_paths(workspace, db, [omegacam_night, hawki_night])
    with db.transaction() as session:
        frames = ingest_log.list_frames(session)
    assert all(f.do_catg and f.do_catg != "UNCLASSIFIED" for f in frames)  # at ingest
    first = associate_workspace(workspace, db)
    assert first.blocks["OMEGACAM"] == 8 and first.blocks["HAWKI"] == 10
    assert first.changes["OMEGACAM"] == (8, 0, 0)
    assert first.unclassified == []
    again = associate_workspace(workspace, db)
    assert again.changes == {"OMEGACAM": (0, 0, 0), "HAWKI": (0, 0, 0), "VIRCAM": (0, 0, 0)}
    with db.transaction() as session:
        stored = block_store.list_blocks(session, instrument="OMEGACAM")
        one = block_store.get_block(session, stored[0].id)
    assert len(stored) == 8 and one == stored[0]
    assert stored[0].completeness == "complete"
    db.close()


def test_unclassified_frames_are_listed_with_reasons(
    workspace, omegacam_night: Path, tmp_path: Path
) -> None:
    source = sorted(omegacam_night.glob("*.fits"))[0]
    odd = tmp_path / "odd.fits"
    data = source.read_bytes().replace(
        b"HIERARCH ESO DPR TYPE = 'BIAS    '", b"HIERARCH ESO DPR TYPE = 'BAIS    '"
    )
    odd.write_bytes(data)
    db = workspace.open_database()
    ingest_paths(workspace, db, [odd])
    summary = associate_workspace(workspace, db)
    ((arcfile, misses),) = summary.unclassified
    assert arcfile == source.name and "DPR.TYPE is 'BAIS'" in misses[0]
    with db.transaction() as session:
        (frame,) = ingest_log.list_frames(session)
    assert frame.do_catg == "UNCLASSIFIED"
    assert frame.classification["near_misses"] == misses
    db.close()


def test_cli_abs_show_and_calchecker(tmp_path: Path, omegacam_night: Path, monkeypatch) -> None:
    monkeypatch.delenv("QC_DB_URL", raising=False)
    runner = CliRunner()
    ws = str(tmp_path / "ws")
    runner.invoke(main, ["init", ws])
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for path in omegacam_night.glob("*.fits"):
        if "FLAT,SKY" not in path.read_bytes()[:20000].decode("ascii", "replace"):
            shutil.copy(path, inbox)
    assert runner.invoke(main, ["-w", ws, "ingest", str(inbox)]).exit_code == 0
    result = runner.invoke(main, ["-w", ws, "associate"])
    assert result.exit_code == 0 and "OMEGACAM" in result.output
    blocks = json.loads(
        runner.invoke(main, ["-w", ws, "abs", "--night", "2026-11-23", "--json"]).output
    )
    science = next(b for b in blocks if b["action"] == "SCIENCE_REDUCED")
    assert science["completeness"] == "incomplete"
    shown = runner.invoke(main, ["-w", ws, "abs", "show", science["id"]])
    assert "missing" in shown.output and "MASTER_FLAT" in shown.output
    table = runner.invoke(main, ["-w", ws, "abs"])
    assert "MASTER_FLAT:MISSING" in table.output
    checked = json.loads(runner.invoke(main, ["-w", ws, "calchecker", "--json"]).output)
    (setup,) = checked["setups"]
    assert setup["verdict"] == "MISS"
    assert any("FLAT_SKY (INS.FILT1.NAME=r_SDSS)" in a for a in setup["actions_required"])
    text = runner.invoke(main, ["-w", ws, "calchecker", "--nights", "3"]).output
    assert "MISS" in text and "take 3 x FLAT_SKY" in text
    missing = runner.invoke(main, ["-w", ws, "abs", "show", "NOPE"])
    assert missing.exit_code == 2


def test_cli_rules_check_and_classify(tmp_path: Path, realdata: Path, hawki_night: Path) -> None:
    runner = CliRunner()
    uves = realdata / "debian_cpl_plugins/uves-6.1.8/gasgano/config/uves.oca"
    out = json.loads(runner.invoke(main, ["rules", "check", str(uves), "--json"]).output)
    assert (out["classification"], out["organisation"], out["association"]) == (394, 49, 269)
    bad = tmp_path / "bad.oca"
    bad.write_text('if DPR.CATG == "X" then\n{\n  DO.CATG = "Y"\n}\n')
    result = runner.invoke(main, ["rules", "check", str(bad)])
    assert result.exit_code == 2 and f"{bad}:4:1:" in result.output
    frame = sorted(hawki_night.glob("*.fits"))[0]
    header_dump = realdata / "oimodeler_vlti/GRAVI.2020-01-27.hdr"
    rules = tmp_path / "mine.oca"
    rules.write_text("if PRO.CATG is string then { DO.CATG = PRO.CATG; }")
    got = json.loads(runner.invoke(main, ["classify", str(frame), "--json"]).output)
    assert got[0]["do_catg"] == "DARK" and got[0]["rule_line"] > 0
    got = json.loads(
        runner.invoke(main, ["classify", str(header_dump), "--rules", str(rules), "--json"]).output
    )
    assert got[0]["do_catg"] == "SINGLE_SCI_VIS_CALIBRATED"
    got = json.loads(runner.invoke(main, ["classify", str(header_dump), "--json"]).output)
    assert "pass --rules" in got[0]["error"]


def _without_card(source: Path, target: Path, keyword: bytes) -> None:
    """A copy of ``source`` whose header card ``keyword`` is blanked (80 spaces)."""
    data = bytearray(source.read_bytes())
    at = data.find(keyword)
    assert at >= 0 and at % 80 == 0, (source, keyword)
    data[at : at + 80] = b" " * 80
    target.write_bytes(bytes(data))


def test_a_setup_keyword_absent_everywhere_does_not_stall_the_cascade(
    workspace, omegacam_night: Path, tmp_path: Path
) -> None:
    """Frames without DET.READ.CLOCK (matched between every block and its MASTER_BIAS)
    form the same cascade as with it: absent on both sides is the same setup."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for path in sorted(omegacam_night.glob("*.fits")):
        _without_card(path, inbox / path.name, b"HIERARCH ESO DET READ CLOCK")
    db = workspace.open_database()
    ingest_paths(workspace, db, [inbox])
    summary = associate_workspace(workspace, db)
    with db.transaction() as session:
        frames = ingest_log.list_frames(session)
        stored = block_store.list_blocks(session, instrument="OMEGACAM")
    db.close()
    assert len(frames) == len(list(omegacam_night.glob("*.fits")))
    assert all("DET.READ.CLOCK" not in f.keywords for f in frames)
    assert summary.blocks["OMEGACAM"] == 8 and summary.incomplete["OMEGACAM"] == 0
    assert {b.completeness for b in stored} == {"complete"}, [b.reason for b in stored]
    dark = next(b for b in stored if b.action == "MASTER_DARK")
    (tag,) = dark.tags
    assert tag.chosen[0].ref.endswith("_MASTER_BIAS:MASTER_BIAS")


def test_a_setup_keyword_absent_on_one_side_is_named_in_the_reason(
    workspace, omegacam_night: Path, tmp_path: Path
) -> None:
    """Darks without DET.READ.CLOCK, biases with it: the dark block waits, and its
    reason says that its frames lack the keyword (never a bare ``=None``)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for path in sorted(omegacam_night.glob("*.fits")):
        header = path.read_bytes()[:20000]
        if b"'DARK    '" in header or b"DPR TYPE = 'BIAS" in header:
            target = inbox / path.name
            if b"'DARK    '" in header:
                _without_card(path, target, b"HIERARCH ESO DET READ CLOCK")
            else:
                shutil.copy(path, target)
    db = workspace.open_database()
    ingest_paths(workspace, db, [inbox])
    associate_workspace(workspace, db)
    with db.transaction() as session:
        stored = block_store.list_blocks(session, instrument="OMEGACAM")
    db.close()
    dark = next(b for b in stored if b.action == "MASTER_DARK")
    assert dark.completeness == "incomplete" and dark.reason is not None
    assert "DET.READ.CLOCK absent from this block's frames" in dark.reason
    assert "None" not in dark.reason
