"""The archive: certified products (and their QC reports) under ESO-style names.

``data/archive/<INSTRUMENT>/<night>/M.<INSTRUMENT>.<timestamp>.fits``, read-only, with
the report beside it (``.html``). Ingestion is atomic and survives a kill at any
point: a ``pending`` row is committed first (what is about to appear), the file is
put under a hidden temporary name (a hard link to the immutable product where the
archive shares the workspace's file system, else a copy), its SHA-256 and FITS
CHECKSUM/DATASUM are verified there, then it is renamed into place and the row
becomes ``archived`` with the product's status, in one transaction. The next archive
operation finishes or undoes whatever a killed one left pending. So a visible archive
file always has its record, and a record its file.

A newer certified master of the same setup supersedes the older one, which stays in
the archive, marked ``superseded``; a certified product that is later rejected or
tainted is marked ``withdrawn``.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qclib.atomicfile import TEMP_PREFIX, atomic_path, sweep_stale_temporaries
from qclib.db import Database
from qclib.db import archive as archive_store
from qclib.db import audit as audit_store
from qclib.db import products as product_store
from qclib.db.archive import PENDING, ArchivedFile
from qclib.db.products import StoredProduct
from qclib.errors import QCError
from qclib.fitsio import copy_hashing, sha256_file, verify_checksums
from qclib.instruments import load_instrument
from qclib.workspace import Workspace

#: Why a hard link cannot be made where a copy can: another file system, links not
#: allowed or not supported, too many links.
_NO_LINK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP)


class ArchiveError(QCError):
    """A file cannot be archived or read back intact (the message says which, and why)."""


@dataclass(frozen=True)
class ArchiveCheck:
    """What ``verify_archive`` found."""

    checked: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def archive_name(instrument: str, when: dt.datetime, taken: Container[str]) -> str:
    """``M.<INSTRUMENT>.<UTC timestamp to the ms>``, a millisecond later while taken.

    >>> archive_name("HAWKI", dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC), set())
    'M.HAWKI.2026-12-01T08:00:00.000'
    >>> archive_name("HAWKI", dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC),
    ...              {"M.HAWKI.2026-12-01T08:00:00.000.fits"})
    'M.HAWKI.2026-12-01T08:00:00.001'
    """
    when = when.astimezone(dt.UTC).replace(microsecond=when.microsecond // 1000 * 1000)
    while True:
        stem = f"M.{instrument}.{when:%Y-%m-%dT%H:%M:%S}.{when.microsecond // 1000:03d}"
        if f"{stem}.fits" not in taken:
            return stem
        when += dt.timedelta(milliseconds=1)


def _setup(product: StoredProduct) -> dict[str, Any]:
    """The product's setup (its instrument's ``[setups]``), which a newer product must
    share to supersede it."""
    return load_instrument(product.instrument).setup_of(product.pro_catg, product.header)


def _copy_verified(source: Path, dest: Path, *, sha256: str | None, fits: bool) -> tuple[str, int]:
    """Put ``source`` at ``dest`` atomically, read-only, and verify the bytes now at
    ``dest`` (SHA-256 against ``sha256`` if given, FITS checksums) before the rename.

    Where ``dest``'s file system holds ``source``, ``dest`` is a hard link: products
    and reports are never written in place (each is written under a temporary name
    and renamed onto its own, products read-only), so the archive's name keeps the
    bytes it verified whatever later happens to the workspace's name. A copy of the demo night's
    5.7 GB of masters took 12 s of the 13 s of certification, mostly in touching
    fresh page-cache pages; a link costs only the verification's read. Elsewhere (the
    archive on another file system) the file is copied.
    """
    with atomic_path(dest, readonly=True) as tmp:
        try:
            os.link(source, tmp)
        except OSError as err:
            if err.errno not in _NO_LINK:
                raise
            digest = copy_hashing(source, tmp)
        else:
            digest = sha256_file(tmp)
        if sha256 is not None and digest != sha256:
            raise ArchiveError(
                f"{source.name}: its content changed since it was made (SHA-256 "
                f"{digest[:12]}… is not the recorded {sha256[:12]}…); "
                "reprocess its block, then certify again"
            )
        if fits:
            problems = verify_checksums(tmp)
            if problems:
                raise ArchiveError(f"{source.name}: not archived, {problems[0]}")
        size = tmp.stat().st_size
    return digest, size


def recover_pending(workspace: Workspace, database: Database) -> list[str]:
    """Finish or undo what a killed ingestion left: a pending row whose file is in
    place with the right checksum is completed, any other is removed with its file.
    Returns what was done, one line each."""
    if workspace.archive_dir.exists():
        sweep_stale_temporaries(workspace.archive_dir, record=workspace.sweep_record("archive"))
    done = []
    with database.transaction() as session:
        pending = archive_store.pending(session)
    for item in pending:
        path = workspace.confine(item.path)
        intact = path.exists() and sha256_file(path) == item.sha256
        with database.transaction() as session:
            if intact and item.kind == "product":
                _complete(session, workspace, item)
                done.append(f"{item.name}: ingestion completed")
            elif intact:
                archive_store.set_status(session, item.id, "archived")
                done.append(f"{item.name}: ingestion completed")
            else:
                archive_store.remove(session, item.id)
                done.append(f"{item.name}: half-done ingestion undone")
        if not intact and path.exists():
            path.unlink()  # no chmod: it may be a hard link to a read-only product
    return done


def _complete(session: Any, workspace: Workspace, item: ArchivedFile) -> None:
    """Mark an ingested product archived (and its product row), superseding older
    masters of the same setup; in the caller's transaction."""
    archive_store.set_status(session, item.id, "archived")
    product = _product_of(session, item)
    if product is not None:
        product_store.set_product_status(session, product.id, "archived")
        audit_store.append(
            session,
            actor="qc",
            action="archive",
            product=product.name,
            product_id=product.id,
            old_status=product.status,
            new_status="archived",
            comment=f"archived as {item.name}",
        )
    if not item.pro_catg.startswith("MASTER_"):
        return
    same = [
        f
        for f in archive_store.archived_products(session, item.instrument, item.pro_catg)
        if f.id != item.id
        and all(f.setup.get(k) == v for k, v in item.setup.items() if k in f.setup)
    ]
    newest = max([*same, item], key=lambda f: (f.mid_mjd, f.id))
    for older in [f for f in [*same, item] if f.id != newest.id and f.mid_mjd <= newest.mid_mjd]:
        archive_store.set_status(session, older.id, "superseded", f"superseded by {newest.name}")
        old_product = _product_of(session, older)
        if old_product is not None:
            product_store.set_product_status(session, old_product.id, "superseded")
        audit_store.append(
            session,
            actor="qc",
            action="supersede",
            product=older.product,
            product_id=older.product_id,
            old_status="archived",
            new_status="superseded",
            comment=f"{older.name} superseded by {newest.name} (same setup, newer)",
        )


def _product_of(session: Any, item: ArchivedFile) -> StoredProduct | None:
    """The product row an archived file was made from, while it still describes that
    file (a block processed again replaces its rows)."""
    if item.product_id is None:
        return None
    product = product_store.get_product(session, item.product_id)
    return product if product is not None and product.sha256 == item.sha256 else None


def archive_product(
    workspace: Workspace, database: Database, product: StoredProduct, *, report: Path | None
) -> ArchivedFile:
    """Ingest one certified product (and its report) into the archive."""
    source = workspace.confine(product.path)
    if not source.exists():
        raise ArchiveError(
            f"{product.name}: the product file is missing from {source.parent}; reprocess its block"
        )
    with database.transaction() as session:
        taken = archive_store.TakenNames(session)
        stem = archive_name(product.instrument, dt.datetime.now(dt.UTC), taken)
        folder = workspace.archive_dir / product.instrument / product.night.isoformat()
        common = {
            "product_id": product.id,
            "product": product.name,
            "instrument": product.instrument,
            "pro_catg": product.pro_catg,
            "night": product.night,
            "mid_mjd": product.mid_mjd,
            "setup": _setup(product),
        }
        product_row = archive_store.add_file(
            session,
            name=f"{stem}.fits",
            kind="product",
            path=workspace.relative(folder / f"{stem}.fits"),
            sha256=product.sha256,
            size_bytes=source.stat().st_size,
            status=PENDING,
            **common,
        )
    written: list[Path] = []
    try:
        dest = folder / f"{stem}.fits"
        _copy_verified(source, dest, sha256=product.sha256, fits=True)
        written.append(dest)
        report_entry: dict[str, Any] | None = None
        if report is not None and report.exists():
            report_dest = folder / f"{stem}.html"
            sha, size = _copy_verified(report, report_dest, sha256=None, fits=False)
            written.append(report_dest)
            report_entry = {
                "name": report_dest.name,
                "kind": "report",
                "path": workspace.relative(report_dest),
                "sha256": sha,
                "size_bytes": size,
                "status": "archived",
                "report_of": dest.name,
                **common,
            }
        with database.transaction() as session:
            if report_entry is not None:
                archive_store.add_file(session, **report_entry)
            row = archive_store.by_id(session, product_row)
            assert row is not None  # added above, in this pass's lock
            _complete(session, workspace, row)
            result = archive_store.by_name(session, f"{stem}.fits")
    except BaseException:
        for path in written:
            if path.exists():
                path.unlink()  # no chmod: it may be a hard link to a read-only product
        with database.transaction() as session:
            archive_store.remove(session, product_row)
        raise
    assert result is not None
    return result


def withdraw(session: Any, product: StoredProduct, reason: str) -> list[str]:
    """Mark a product's archived files withdrawn (rejected or tainted after
    certification); in the caller's transaction. Returns their names."""
    names = []
    for item in archive_store.of_product(session, product.sha256):
        if item.status in ("archived", "superseded"):
            archive_store.set_status(session, item.id, "withdrawn", reason)
            names.append(item.name)
    return names


def list_archive(database: Database, *, instrument: str | None = None) -> list[ArchivedFile]:
    with database.transaction() as session:
        return archive_store.files(session, instrument=instrument)


def _verify_file(workspace: Workspace, item: ArchivedFile) -> str | None:
    try:
        path = workspace.confine(item.path)
    except QCError as err:
        return f"{item.name}: {err}"
    if not path.exists():
        return f"{item.name}: missing (expected at {item.path})"
    if path.stat().st_size != item.size_bytes:
        return f"{item.name}: size {path.stat().st_size} bytes, {item.size_bytes} recorded"
    if sha256_file(path) != item.sha256:
        return f"{item.name}: content changed (SHA-256 differs from the one recorded)"
    if item.kind == "product":
        problems = verify_checksums(path)
        if problems:
            return f"{item.name}: {problems[0]}"
    return None


def verify_archive(workspace: Workspace, database: Database) -> ArchiveCheck:
    """Every archived file against its record (size, SHA-256, FITS checksums), and
    every file in the archive folder against the records: a changed, missing or
    unexpected file is named."""
    recover_pending(workspace, database)
    with database.transaction() as session:
        items = archive_store.files(session)
    problems = [p for p in (_verify_file(workspace, i) for i in items) if p]
    known = {workspace.confine(i.path) for i in items}
    if workspace.archive_dir.exists():
        for path in sorted(workspace.archive_dir.rglob("*")):
            if path.is_file() and path.resolve() not in known:
                hidden = path.name.startswith(TEMP_PREFIX)
                what = "a temporary of a live ingestion" if hidden else "no record"
                problems.append(
                    f"{workspace.relative(path)}: unexpected file ({what}); "
                    "the archive holds only what it ingested"
                )
    return ArchiveCheck(len(items), tuple(problems))


def get_archived(workspace: Workspace, database: Database, name: str, out_dir: Path) -> Path:
    """Copy an archived file to ``out_dir``, verified on read (SHA-256 and FITS
    checksums of the archive copy first, SHA-256 of the copy made)."""
    with database.transaction() as session:
        item = archive_store.by_name(session, name)
    if item is None:
        raise ArchiveError(f"no archived file {name!r}; 'qc archive list' shows them")
    problem = _verify_file(workspace, item)
    if problem:
        raise ArchiveError(f"archive copy damaged, not delivered: {problem}")
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / item.name
    with atomic_path(dest) as tmp:
        shutil.copyfile(workspace.confine(item.path), tmp)
        if sha256_file(tmp) != item.sha256:
            raise ArchiveError(f"{name}: the copy written to {out_dir} differs; try again")
    return dest
