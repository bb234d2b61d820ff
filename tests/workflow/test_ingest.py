"""Ingest: good frames are stored and indexed; every kind of bad input is quarantined with
a reason and nothing is lost; re-running changes nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import time
from pathlib import Path

from astropy.io import fits

from qclib.atomicfile import TEMP_PREFIX
from qclib.db import ingest_log
from qclib.workflow.ingest import ingest_paths
from tests.conftest import load_truth


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_night(night: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for path in night.glob("*.fits"):
        shutil.copy2(path, dest / path.name)
    return dest


def _age(path: Path, seconds: float = 3600) -> Path:
    old = time.time() - seconds
    os.utime(path, (old, old))
    return path


def _patch(src: Path, dest: Path, old: bytes, new: bytes) -> Path:
    assert len(old) == len(new)
    data = src.read_bytes()
    assert old in data, old
    dest.write_bytes(data.replace(old, new, 1))
    return _age(dest)


def test_good_night_is_ingested_and_indexed(
    workspace, omegacam_night: Path, tmp_path: Path
) -> None:
    inbox = _copy_night(omegacam_night, tmp_path / "inbox")
    db = workspace.open_database()
    outcomes = ingest_paths(workspace, db, [inbox])
    truth = load_truth(omegacam_night)
    assert [o.status for o in outcomes] == ["ingested"] * len(truth["exposures"])
    with db.transaction() as session:
        frames = ingest_log.list_frames(session)
    assert {f.arcfile for f in frames} == {e["arcfile"] for e in truth["exposures"]}
    for frame in frames:
        stored = workspace.root / frame.path
        assert stored == workspace.raw_dir / "2026-11-23" / frame.arcfile
        assert _sha(stored) == frame.sha256 == _sha(inbox / frame.arcfile)
        assert not stored.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        assert frame.keywords["DPR.CATG"] == frame.dpr_catg
        assert frame.night.isoformat() == "2026-11-23"  # evening and morning frames alike
        assert len(frame.detectors) == 4
    kinds = {(f.dpr_catg, f.dpr_type) for f in frames}
    assert ("CALIB", "BIAS") in kinds and ("SCIENCE", "OBJECT") in kinds

    # A second pass does nothing, and costs no copy.
    again = ingest_paths(workspace, db, [inbox])
    assert {o.status for o in again} == {"already-ingested"}
    with db.transaction() as session:
        assert len(ingest_log.list_frames(session)) == len(frames)
        assert ingest_log.list_quarantine(session) == []
    assert list(inbox.glob("*.fits"))  # sources untouched
    db.close()


def _bad_files(night: Path, bad: Path) -> dict[str, tuple[Path, str, str]]:
    """name -> (file, expected code, a phrase of the reason)."""
    bad.mkdir()
    good = sorted(night.glob("*.fits"))
    first, second = good[0], good[1]
    cases: dict[str, tuple[Path, str, str]] = {}
    empty = bad / "empty.fits"
    empty.touch()
    cases["empty"] = (_age(empty), "empty", "empty file")
    truncated = bad / "truncated.fits"
    truncated.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    cases["truncated"] = (_age(truncated), "truncated", "truncated")
    writing = bad / "being_written.fits"
    writing.write_bytes(second.read_bytes()[:20000])
    cases["writing"] = (writing, "incomplete", "still being written")
    text = bad / "notes.fits"
    text.write_text("not a fits file at all\n" * 200)
    cases["not-fits"] = (_age(text), "not-fits", "not a FITS file")
    cases["missing-keyword"] = (
        _patch(
            first,
            bad / "no_dpr.fits",
            b"HIERARCH ESO DPR CATG = 'CALIB   '",
            b"COMMENT  removed: DPR CATG        ",
        ),
        "missing-keyword",
        "DPR.CATG",
    )
    cases["wrong-instrument"] = (
        _patch(first, bad / "fors.fits", b"INSTRUME= 'OMEGACAM'", b"INSTRUME= 'FORS2   '"),
        "wrong-instrument",
        "'FORS2' is not configured",
    )
    arcfile = fits.getval(first, "ARCFILE")
    minute = arcfile[23:25]
    wrong_time = arcfile[:23] + ("59" if minute != "59" else "58") + arcfile[25:]
    cases["mislabelled-arcfile"] = (
        _patch(first, bad / "relabelled.fits", arcfile.encode(), wrong_time.encode()),
        "mislabelled",
        "does not match DATE-OBS",
    )
    cases["foreign-extension"] = (
        _patch(first, bad / "foreign.fits", b"EXTNAME = 'ESO_CCD_#65'", b"EXTNAME = 'ESO_CCD_#99'"),
        "mislabelled",
        "not a OMEGACAM detector",
    )
    with fits.open(first) as hdul:
        partial = bad / "three_ccds.fits"
        fits.HDUList([hdul[0], hdul[1], hdul[2], hdul[3]]).writeto(partial)
    cases["missing-ccd"] = (_age(partial), "mislabelled", "3 of 4 OMEGACAM detectors")
    duplicate = bad / "renamed_copy.fits"
    shutil.copy2(first, duplicate)
    cases["duplicate"] = (duplicate, "duplicate", "duplicate of")
    conflict = bad / "conflict.fits"
    data = bytearray(first.read_bytes())
    data[-100] ^= 0xFF
    conflict.write_bytes(bytes(data))
    cases["conflict"] = (_age(conflict), "duplicate", "already ingested with different content")
    return cases


def test_every_kind_of_bad_input_is_quarantined_with_its_reason(
    workspace, omegacam_night: Path, tmp_path: Path
) -> None:
    inbox = _copy_night(omegacam_night, tmp_path / "inbox")
    cases = _bad_files(inbox, tmp_path / "bad")
    before = {name: _sha(path) for name, (path, _, _) in cases.items()}
    db = workspace.open_database()
    good = ingest_paths(workspace, db, [inbox])
    assert {o.status for o in good} == {"ingested"}
    outcomes = {o.source: o for o in ingest_paths(workspace, db, [tmp_path / "bad"])}
    with db.transaction() as session:
        entries = {e.source_path: e for e in ingest_log.list_quarantine(session)}
    for name, (path, code, phrase) in cases.items():
        outcome = outcomes[str(path.resolve())]
        assert outcome.status == "quarantined", (name, outcome)
        assert outcome.code == code, (name, outcome.reason)
        assert phrase in outcome.reason, (name, outcome.reason)
        assert "\n" not in outcome.reason
        entry = entries[str(path.resolve())]
        kept = workspace.root / entry.stored_path
        # Nothing lost: the quarantined copy is the source, byte for byte; the source stays.
        assert _sha(kept) == before[name] == entry.sha256
        assert _sha(path) == before[name]
        assert (kept.parent / (kept.name + ".reason.txt")).read_text().startswith(code)
    # Good frames were not disturbed by the bad ones.
    with db.transaction() as session:
        assert len(ingest_log.list_frames(session)) == len(good)
    # Re-running is a no-op for the quarantined files too.
    again = ingest_paths(workspace, db, [tmp_path / "bad"])
    assert {o.status for o in again} == {"already-quarantined"}
    with db.transaction() as session:
        assert len(ingest_log.list_quarantine(session)) == len(cases)
    db.close()


def test_file_being_written_is_ingested_once_complete(
    workspace, omegacam_night: Path, tmp_path: Path
) -> None:
    source = sorted(omegacam_night.glob("*.fits"))[0]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    target = inbox / source.name
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 3])
    db = workspace.open_database()
    (first,) = ingest_paths(workspace, db, [inbox])
    assert first.status == "quarantined" and first.code == "incomplete"
    target.write_bytes(data)  # the writer finishes
    (second,) = ingest_paths(workspace, db, [inbox])
    assert second.status == "ingested"
    with db.transaction() as session:
        assert ingest_log.list_quarantine(session) == []
        (resolved,) = ingest_log.list_quarantine(session, include_resolved=True)
    assert resolved.resolution is not None and source.name in resolved.resolution
    db.close()


def test_move_removes_sources_only_once_stored(
    workspace, omegacam_night: Path, tmp_path: Path
) -> None:
    inbox = _copy_night(omegacam_night, tmp_path / "inbox")
    (inbox / "junk.fits").write_text("junk")
    _age(inbox / "junk.fits")
    db = workspace.open_database()
    outcomes = ingest_paths(workspace, db, [inbox], move=True)
    assert sorted({o.status for o in outcomes}) == ["ingested", "quarantined"]
    assert list(inbox.iterdir()) == []
    with db.transaction() as session:
        assert all((workspace.root / f.path).exists() for f in ingest_log.list_frames(session))
        (entry,) = ingest_log.list_quarantine(session)
    assert (workspace.root / entry.stored_path).read_text() == "junk"
    db.close()


def test_hidden_and_non_fits_names_in_folders_are_left_alone(
    workspace, hawki_night: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy2(sorted(hawki_night.glob("*.fits"))[0], inbox / ".partial-upload.fits")
    (inbox / "README.txt").write_text("notes")
    db = workspace.open_database()
    assert ingest_paths(workspace, db, [inbox]) == []
    db.close()


def test_stale_temporary_from_a_killed_ingest_does_not_block(
    workspace, hawki_night: Path, tmp_path: Path
) -> None:
    source = sorted(hawki_night.glob("*.fits"))[0]
    arcfile = fits.getval(source, "ARCFILE")
    night_dir = workspace.raw_dir / "2026-11-23"
    night_dir.mkdir(parents=True)
    stale = night_dir / f"{TEMP_PREFIX}999999-{arcfile}"
    stale.write_bytes(source.read_bytes()[:5000])  # what a SIGKILL mid-copy leaves
    db = workspace.open_database()
    (outcome,) = ingest_paths(workspace, db, [source])
    assert outcome.status == "ingested"
    assert _sha(night_dir / arcfile) == _sha(source)
    assert not stale.exists()
    db.close()


def test_move_renames_without_copying(workspace, hawki_night: Path, tmp_path: Path) -> None:
    inbox = workspace.inbox  # same file system as data/raw
    source = inbox / "frame.fits"
    shutil.copy2(sorted(hawki_night.glob("*.fits"))[0], source)
    inode, sha = source.stat().st_ino, _sha(source)
    db = workspace.open_database()
    (outcome,) = ingest_paths(workspace, db, [source], move=True)
    stored = workspace.root / outcome.stored
    assert outcome.status == "ingested" and not source.exists()
    assert stored.stat().st_ino == inode and _sha(stored) == sha
    assert not stored.stat().st_mode & stat.S_IWUSR
    db.close()


def test_a_move_killed_before_indexing_is_finished_by_the_next_pass(
    workspace, hawki_night: Path
) -> None:
    """Replays what a SIGKILL between the rename and the index entry leaves behind."""
    from qclib.fitsio import scan_fits
    from qclib.frames import frame_info_from_scan

    source = workspace.inbox / "frame.fits"
    shutil.copy2(sorted(hawki_night.glob("*.fits"))[0], source)
    info = frame_info_from_scan(scan_fits(source), workspace.instruments())
    dest = workspace.raw_dir / info.night.isoformat() / info.arcfile
    db = workspace.open_database()
    with db.transaction() as session:  # the write-ahead record ...
        ingest_log.record_source(
            session,
            str(source.resolve()),
            size_bytes=source.stat().st_size,
            mtime_ns=source.stat().st_mtime_ns,
            sha256=_sha(source),
            pending_dest=workspace.relative(dest),
        )
    dest.parent.mkdir(parents=True)
    os.replace(source, dest)  # ... and the rename; then the process died.
    outcomes = ingest_paths(workspace, db, [workspace.inbox], move=True)
    assert [o.status for o in outcomes] == ["ingested"]
    with db.transaction() as session:
        (frame,) = ingest_log.list_frames(session)
        assert ingest_log.pending_moves(session) == []
    assert frame.arcfile == info.arcfile and frame.sha256 == _sha(dest)
    assert ingest_paths(workspace, db, [workspace.inbox], move=True) == []
    db.close()
