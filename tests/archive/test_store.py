"""The archive: certified products under ESO-style names, read-only, verified on write and
on read; `qc archive verify` names a changed, a missing and an unexpected file; a newer
master of the same setup supersedes the older one (SQLite and PostgreSQL)."""

from __future__ import annotations

import errno
import os
import re
import stat

import pytest
from click.testing import CliRunner

from qclib.archive.certification import decide
from qclib.archive.store import ArchiveError, get_archived, list_archive, verify_archive
from qclib.cli import main
from qclib.db import products as product_store
from qclib.fitsio import sha256_file, verify_checksums
from qclib.workflow.run import run_pass
from tests.archive.conftest import fill_inbox


@pytest.fixture
def archived(workspace, bias_nights):
    """Two nights' master biases certified and archived (with their reports)."""
    fill_inbox(workspace, bias_nights[:2])
    db = workspace.open_database()
    run_pass(workspace, db, write_reports=False)
    with db.transaction() as session:
        ids = [p.id for p in product_store.list_products(session)]
    decide(workspace, db, ids, decision="certify", comment="checked", reviewer="anna")
    yield db
    db.close()


def _cli(workspace, *args: str):
    return CliRunner().invoke(main, ["--workspace", str(workspace.root), *args])


def test_certified_masters_are_archived_read_only_and_the_older_superseded(
    workspace, archived
) -> None:
    files = list_archive(archived)
    assert len(files) == 2 and {f.kind for f in files} == {"product"}
    for f in files:
        assert re.fullmatch(r"M\.OMEGACAM\.\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\.fits", f.name)
        path = workspace.confine(f.path)
        assert path.is_relative_to(workspace.archive_dir)
        assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        assert sha256_file(path) == f.sha256 and verify_checksums(path) == []
    older, newer = sorted(files, key=lambda f: f.mid_mjd)
    assert older.status == "superseded" and older.status_reason == f"superseded by {newer.name}"
    assert newer.status == "archived"
    with archived.transaction() as session:
        statuses = sorted(p.status for p in product_store.list_products(session))
    assert statuses == ["archived", "superseded"]
    assert verify_archive(workspace, archived).ok
    listed = _cli(workspace, "archive", "list", "--json")
    assert listed.exit_code == 0 and newer.name in listed.output


def test_archive_links_the_immutable_product_and_copies_across_file_systems(
    workspace, bias_nights, monkeypatch
) -> None:
    """On the workspace's file system an archived product is the product's own inode
    (no bytes copied); where no link can be made, a verified copy."""
    fill_inbox(workspace, bias_nights[:1])
    db = workspace.open_database()
    try:
        run_pass(workspace, db, write_reports=False)
        with db.transaction() as session:
            (product,) = product_store.list_products(session)
        decide(workspace, db, [product.id], decision="certify", comment="ok", reviewer="anna")
        (linked,) = list_archive(db)
        source = workspace.confine(product.path)
        archived = workspace.confine(linked.path)
        assert archived.stat().st_ino == source.stat().st_ino
        assert archived.stat().st_nlink == 2

        def no_link(*_args, **_kwargs):
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        fill_inbox(workspace, bias_nights[1:2])
        monkeypatch.setattr(os, "link", no_link)
        run_pass(workspace, db, write_reports=False)
        with db.transaction() as session:
            newer = [p for p in product_store.list_products(session) if p.id != product.id]
        decide(workspace, db, [newer[0].id], decision="certify", comment="ok", reviewer="anna")
        copied = next(f for f in list_archive(db) if f.name != linked.name)
        path = workspace.confine(copied.path)
        assert path.stat().st_ino != workspace.confine(newer[0].path).stat().st_ino
        assert path.stat().st_nlink == 1 and sha256_file(path) == copied.sha256
        assert verify_archive(workspace, db).ok
    finally:
        db.close()


def test_verify_names_a_changed_a_missing_and_an_unexpected_file(workspace, archived) -> None:
    first, second = list_archive(archived)
    assert _cli(workspace, "archive", "verify").exit_code == 0

    changed = workspace.confine(first.path)
    changed.chmod(0o644)
    with open(changed, "r+b") as handle:  # one byte of the data, far from the header
        handle.seek(-10, 2)
        byte = handle.read(1)
        handle.seek(-10, 2)
        handle.write(bytes([byte[0] ^ 0x01]))
    missing = workspace.confine(second.path)
    missing.chmod(0o644)
    missing.unlink()
    stray = workspace.archive_dir / "OMEGACAM" / "stray.fits"
    stray.write_bytes(b"SIMPLE")

    check = verify_archive(workspace, archived)
    assert not check.ok and len(check.problems) == 3
    text = "\n".join(check.problems)
    assert f"{first.name}: content changed" in text
    assert f"{second.name}: missing" in text
    assert "stray.fits: unexpected file (no record)" in text
    result = _cli(workspace, "archive", "verify")
    assert result.exit_code == 1
    for name in (first.name, second.name, "stray.fits"):
        assert name in result.output


def test_get_verifies_on_read(workspace, archived, tmp_path) -> None:
    first, _ = list_archive(archived)
    copy = get_archived(workspace, archived, first.name, tmp_path / "out")
    assert sha256_file(copy) == first.sha256
    path = workspace.confine(first.path)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="archive copy damaged, not delivered"):
        get_archived(workspace, archived, first.name, tmp_path / "again")
    assert not (tmp_path / "again" / first.name).exists()
    result = _cli(workspace, "archive", "get", "M.NOPE.fits", "--out", str(tmp_path))
    assert result.exit_code == 2 and "no archived file 'M.NOPE.fits'" in result.output
    escape = _cli(workspace, "archive", "get", "../../qc.toml", "--out", str(tmp_path))
    assert escape.exit_code == 2
