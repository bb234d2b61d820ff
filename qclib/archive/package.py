"""PI data packages: a programme's raw science frames, the raw and master calibrations
its science products were made with, those products, the QC reports, the OB grades, a
README for the PI and a manifest of every file's SHA-256.

Layout (after ESO's service-mode packages: each OB's raw and processed science apart,
the calibrations together; docs/references/science_products.md section 4)::

    README.txt                      what the package holds, and how to check it
    MANIFEST.sha256                 every other file's SHA-256 (``sha256sum -c`` reads it)
    ob_grades.csv                   each OB's grade against its constraints, and why
    <OBS.ID>/sci_raw/<ARCFILE>      the OB's raw science frames
    <OBS.ID>/sci_proc/<product>     its science products
    <OBS.ID>/reports/<block>.html   their QC reports
    calib/cal_raw/<ARCFILE>         the raw calibrations the products used
    calib/cal_proc/<product>        the master calibrations they used
    calib/reports/<block>.html      the masters' QC reports

The calibrations are found through provenance, not a date rule (ESO's packages once
missed sky flats that way): from each science product, every file its provenance names
by SHA-256, a master's own inputs in turn, down to the raw calibration frames. Every
file is copied from the workspace (a path that resolves outside it is refused), its
SHA-256 checked against the index's on the way. The package is written under a
temporary name and renamed when complete; a tar file has fixed times, owners and
order, so the same inputs give the same manifest and the same bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from qclib import __version__
from qclib.archive.review import report_path
from qclib.db import Database, ingest_log
from qclib.db import ob_grades as grade_store
from qclib.db import products as product_store
from qclib.errors import ConfigError
from qclib.fitsio import copy_hashing
from qclib.workflow.science import science_blocks
from qclib.workspace import Workspace

MANIFEST = "MANIFEST.sha256"
README = "README.txt"
GRADES = "ob_grades.csv"
_CHUNK = 8 << 20
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class PackageError(Exception):
    """A package cannot be made or does not verify (the message names the file)."""


@dataclass(frozen=True)
class PackageFile:
    """One file of a package: where it goes, and its source (a workspace file with the
    SHA-256 the index holds for it) or its content (made here)."""

    path: str
    source: Path | None = None
    sha256: str | None = None
    content: bytes | None = None


@dataclass(frozen=True)
class PackagePlan:
    """What a programme's package holds."""

    prog_id: str
    files: tuple[PackageFile, ...]


def plan_package(workspace: Workspace, database: Database, prog_id: str) -> PackagePlan:
    """The files of programme ``prog_id``'s package (see the module).

    Raises
    ------
    ConfigError
        The workspace holds no raw science frame of the programme, or a file's path
        leaves the workspace.
    """
    files: dict[str, PackageFile] = {}

    def add(path: str, source: Path, sha256: str) -> None:
        files.setdefault(path, PackageFile(path, source, sha256))

    with database.transaction() as session:
        science = [
            f
            for f in ingest_log.list_frames(session)
            if f.dpr_catg == "SCIENCE" and f.keywords.get("OBS.PROG.ID") == prog_id
        ]
        if not science:
            raise ConfigError(f"no raw science frame of programme {prog_id!r} is indexed")
        science_shas = {f.sha256 for f in science}
        ob_of = {}
        for frame in science:
            ob = _safe(str(frame.keywords.get("OBS.ID") or "no_OB"))
            ob_of[frame.arcfile] = ob
            add(
                f"{ob}/sci_raw/{Path(frame.path).name}", workspace.confine(frame.path), frame.sha256
            )
        made = []
        blocks = [b for b in science_blocks(database) if b.prog_id == prog_id]
        for block in blocks:
            for product in product_store.products_of_block(session, block.ab_id):
                if product.status == "rejected":
                    continue
                made.append(product)
                ob = next(
                    (ob_of[a] for a in product.provenance.get("inputs", []) if a in ob_of), "no_OB"
                )
                add(
                    f"{ob}/sci_proc/{product.name}", workspace.confine(product.path), product.sha256
                )
                report = report_path(workspace, product.night, product.ab_id)
                if report is not None:
                    add(f"{ob}/reports/{report.name}", report, "")
        for master in _calibrations_used(session, made, science_shas, files, workspace):
            report = report_path(workspace, master.night, master.ab_id)
            if report is not None:
                add(f"calib/reports/{report.name}", report, "")
        grades = grade_store.list_grades(session, prog_id=prog_id)
    files[GRADES] = PackageFile(GRADES, content=_grades_csv(grades))
    files[README] = PackageFile(README, content=_readme(prog_id, files, grades, blocks))
    return PackagePlan(prog_id, tuple(files[p] for p in sorted(files)))


def _calibrations_used(  # type: ignore[no-untyped-def]
    session, made, science_shas: set[str], files: dict[str, PackageFile], workspace: Workspace
) -> list[product_store.StoredProduct]:
    """Add every raw and master calibration the products ``made`` were made with, by
    provenance, transitively; returns the masters."""
    masters = []
    seen = set(science_shas) | {p.sha256 for p in made}
    frontier = set().union(*(product_store.provenance_checksums(p.provenance) for p in made))
    while frontier:
        found = set()
        for sha in sorted(frontier - seen):
            seen.add(sha)
            frame = ingest_log.frame_by_sha256(session, sha)
            if frame is not None:
                path = f"calib/cal_raw/{Path(frame.path).name}"
                files.setdefault(path, PackageFile(path, workspace.confine(frame.path), sha))
                continue
            product = product_store.product_by_sha256(session, sha)
            if product is None:
                continue  # a name in ``inputs``, not a checksum
            masters.append(product)
            path = f"calib/cal_proc/{product.name}"
            files.setdefault(path, PackageFile(path, workspace.confine(product.path), sha))
            found |= product_store.provenance_checksums(product.provenance)
        frontier = found - seen
    return masters


def _safe(name: str) -> str:
    return _SAFE.sub("_", name).strip("_") or "unnamed"


def _grades_csv(grades: list[grade_store.StoredGrade]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["obs_id", "block", "night", "grade", "reason"])
    for g in grades:
        writer.writerow([g.obs_id or "", g.ab_id, g.night.isoformat(), g.grade, g.reason])
    return out.getvalue().encode()


def _readme(prog_id: str, files: dict[str, PackageFile], grades, blocks) -> bytes:  # type: ignore[no-untyped-def]
    """The PI's guide to the package (no dates or times: the same inputs give the same
    README)."""
    count: dict[str, int] = {}
    for path in files:
        folder = path.rsplit("/", 1)[0] if "/" in path else "."
        count[folder] = count.get(folder, 0) + 1
    lines = [
        f"Data package of programme {prog_id}",
        "=" * (24 + len(prog_id)),
        "",
        "Made by QC Workbench (qclib " + __version__ + ").",
        "",
        "Contents",
        "--------",
        "<OB>/sci_raw      your raw science frames, by OB (OBS.ID)",
        "<OB>/sci_proc     the science products made from them with certified master",
        "                  calibrations (SCIENCE_COADD: the coadd per second, its error",
        "                  and flags, a source catalogue, the PSF and residual tables;",
        "                  SCIENCE_COADD_WEIGHT: its weight map, which ASSON1 names)",
        "<OB>/reports      the QC report of each science product (open the .html)",
        "calib/cal_raw     the raw calibration frames those products used",
        "calib/cal_proc    the master calibrations they used",
        "calib/reports     the masters' QC reports",
        f"{GRADES}      each OB's grade against its constraints (A: all met; B: some",
        "                  missed by up to 10 %; C: out of constraints), and why",
        f"{MANIFEST}   the SHA-256 of every other file",
        "",
        "The calibrations are those the products' provenance names (each product's",
        "PROVENANCE table lists its inputs with their SHA-256), not those of a date range.",
        "",
        "Files per folder",
        "----------------",
        *[f"{folder:<28} {n}" for folder, n in sorted(count.items())],
        "",
        "OBs",
        "---",
    ]
    graded = {g.ab_id: g for g in grades}
    for block in blocks:
        g = graded.get(block.ab_id)
        state = f"grade {g.grade}: {g.reason}" if g else f"not graded ({block.state})"
        lines.append(f"{block.ab_id}: {state}")
    lines += [
        "",
        "Checking the package",
        "--------------------",
        f"    sha256sum -c {MANIFEST}      (in this folder), or",
        "    qc package verify <this folder or its .tar>",
        "",
    ]
    return "\n".join(lines).encode()


# ---------------------------------------------------------------------- writing
def write_package(plan: PackagePlan, out: Path) -> Path:
    """Write the package to folder ``out`` (which must not exist, or be empty) or, when
    ``out`` ends in ``.tar``, to that tar file; atomically. Returns ``out``.

    Raises
    ------
    PackageError
        ``out`` holds something already, or a source's SHA-256 is not the index's
        (a file changed since it was recorded).
    """
    out = out.resolve()
    if out.suffix == ".tar":
        if out.exists():
            raise PackageError(f"{out} exists: give a new file name")
        out.parent.mkdir(parents=True, exist_ok=True)
        temporary = out.with_name(f".{out.name}.partial-{os.getpid()}")
        try:
            with tarfile.open(temporary, "w", format=tarfile.PAX_FORMAT) as tar:
                _write_tar(plan, tar)
            os.replace(temporary, out)
        finally:
            temporary.unlink(missing_ok=True)
        return out
    if out.exists() and any(out.iterdir()):
        raise PackageError(f"{out} is not empty: give a new or empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        manifest = []
        for item in plan.files:
            target = temporary / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            if item.content is not None:
                target.write_bytes(item.content)
                digest = hashlib.sha256(item.content).hexdigest()
            else:
                assert item.source is not None
                digest = copy_hashing(item.source, target)
                _check(item, digest)
            manifest.append((item.path, digest))
        (temporary / MANIFEST).write_bytes(_manifest(manifest))
        if out.exists():
            out.rmdir()
        os.replace(temporary, out)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return out


def _check(item: PackageFile, digest: str) -> None:
    if item.sha256 and digest != item.sha256:
        raise PackageError(
            f"{item.source} has SHA-256 {digest}, not the {item.sha256} recorded for it: "
            "it changed since; package refused"
        )


def _manifest(entries: list[tuple[str, str]]) -> bytes:
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(entries)).encode()


class _Hashing(io.RawIOBase):
    """A file read through, hashed on the way (for tarfile.addfile)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        return data


def _tar_info(path: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.size, info.mtime, info.mode = size, 0, 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _write_tar(plan: PackagePlan, tar: tarfile.TarFile) -> None:
    manifest = []
    for item in plan.files:
        if item.content is not None:
            tar.addfile(_tar_info(item.path, len(item.content)), io.BytesIO(item.content))
            manifest.append((item.path, hashlib.sha256(item.content).hexdigest()))
            continue
        assert item.source is not None
        with open(item.source, "rb") as handle:
            reader = _Hashing(handle)
            tar.addfile(_tar_info(item.path, os.fstat(handle.fileno()).st_size), reader)
        digest = reader.digest.hexdigest()
        _check(item, digest)
        manifest.append((item.path, digest))
    text = _manifest(manifest)
    tar.addfile(_tar_info(MANIFEST, len(text)), io.BytesIO(text))


# ---------------------------------------------------------------------- checking
def verify_package(path: Path) -> list[str]:
    """What is wrong with a package (folder or .tar): files altered, missing or not in
    its manifest, each named; empty when it verifies.

    Raises
    ------
    PackageError
        It has no manifest.
    """
    listed, found = _read_package(Path(path))
    problems = []
    for name, digest in sorted(listed.items()):
        if name not in found:
            problems.append(f"missing: {name}")
        elif found[name] != digest:
            problems.append(f"altered: {name} (SHA-256 {found[name]}, manifest {digest})")
    problems += [f"not in the manifest: {name}" for name in sorted(set(found) - set(listed))]
    return problems


def _read_package(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(manifest path -> SHA-256, found path -> SHA-256) of a folder or tar file."""
    found: dict[str, str] = {}
    manifest: bytes | None = None
    for name, handle in _members(path):
        if name == MANIFEST:
            manifest = handle.read()
            continue
        digest = hashlib.sha256()
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
        found[name] = digest.hexdigest()
    if manifest is None:
        raise PackageError(f"{path} has no {MANIFEST}: not a QC Workbench package")
    listed = {}
    for line in manifest.decode().splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    return listed, found


def _members(path: Path) -> Iterator[tuple[str, IO[bytes]]]:
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            with open(file, "rb") as handle:
                yield file.relative_to(path).as_posix(), handle
        return
    if not tarfile.is_tarfile(path):
        raise PackageError(f"{path} is neither a package folder nor a tar file")
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                yield member.name, handle
