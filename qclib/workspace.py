"""A workspace: a folder with ``qc.toml``, the data tree and the database (ARCHITECTURE §6).

qc.toml                 workspace settings (validated)
inbox/                  where new raw files arrive (``qc run`` / ``qc watch``)
data/raw/<night>/       ingested raw frames, read-only, named by ARCFILE
data/quarantine/        files that could not be ingested, kept with their reason
data/products/          pipeline products
data/archive/           certified products
data/qc.sqlite          the database (unless QC_DB_URL or qc.toml names another)
parameterized_runs/     executed reports
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, ValidationError

from qclib.atomicfile import write_text_atomic
from qclib.config.instrument import InstrumentBase, Strict, read_toml
from qclib.db import Database, open_database
from qclib.errors import ConfigError
from qclib.instruments import (
    available_instruments,
    config_path,
    eso_instruments,
    load_instrument,
    native_instruments,
)

CONFIG_FILE = "qc.toml"
ENV_WORKSPACE = "QC_WORKSPACE"
ENV_DB_URL = "QC_DB_URL"

DEFAULT_CONFIG = """\
# QC Workbench workspace settings.

[workspace]
# Instruments this workspace takes (INSTRUME values); files of others are quarantined.
{eso}instruments = {instruments}
# Folder (relative to the workspace) that `qc run` and `qc watch` ingest from.
inbox = "inbox"

[database]
# SQLAlchemy URL; empty means SQLite at data/qc.sqlite. The QC_DB_URL environment
# variable overrides it, e.g. postgresql+psycopg://qc@localhost:5432/qc
url = ""

[ingest]
# A truncated file modified less than this many seconds ago is reported as
# "still being written" rather than "truncated".
settle_seconds = 10.0

[workflow]
# A block whose recipe fails is retried by this many later passes, then left failed.
max_retries = 3
# qc watch: minutes between passes (a pass also starts when new files arrive).
interval_minutes = 60

[science]
# Science blocks are processed with certified masters only, on request ('qc science');
# 'qc run' also processes those of these programmes (OBS.PROG.ID; "*": every one).
programmes = []

[certification]
# Every product with a NOK value is reviewed; so is this fraction of the all-OK ones,
# drawn at random (reproducibly, from the product's checksum).
review_fraction = 0.1
# All-OK products not drawn for review are certified by `auto` after this many hours.
auto_certify_after_hours = 24
"""


class WorkspaceSection(Strict):
    instruments: list[str] = Field(min_length=1)
    inbox: str = "inbox"


class DatabaseSection(Strict):
    url: str = ""


class IngestSection(Strict):
    settle_seconds: float = Field(10.0, ge=0)


class WorkflowSection(Strict):
    max_retries: int = Field(3, ge=0, description="Passes that retry a failed block")
    interval_minutes: float = Field(60.0, gt=0, description="qc watch: minutes between passes")


class ScienceSection(Strict):
    programmes: list[str] = Field(
        default_factory=list,
        description="Programmes (OBS.PROG.ID) whose science 'qc run' processes; '*': all",
    )


class CertificationSection(Strict):
    review_fraction: float = Field(
        0.1, ge=0, le=1, description="Fraction of all-OK products drawn for review"
    )
    auto_certify_after_hours: float = Field(
        24.0, ge=0, description="Hours after grading before `auto` certifies an undrawn all-OK"
    )


class WorkspaceConfig(Strict):
    workspace: WorkspaceSection
    database: DatabaseSection = DatabaseSection()
    ingest: IngestSection = IngestSection()
    workflow: WorkflowSection = WorkflowSection()
    science: ScienceSection = ScienceSection()
    certification: CertificationSection = CertificationSection()


@dataclass(frozen=True)
class Workspace:
    """A loaded workspace: its folder and validated settings."""

    root: Path
    config: WorkspaceConfig

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def products_dir(self) -> Path:
        return self.data_dir / "products"

    @property
    def catalogues_dir(self) -> Path:
        """Reference catalogues of standard fields (``<OBJECT>.csv``)."""
        return self.data_dir / "catalogues"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"

    @property
    def runs_dir(self) -> Path:
        return self.root / "parameterized_runs"

    def sweep_record(self, folder: str) -> Path:
        """Where sweeps for leftovers in one of the workspace's folders keep what they
        saw (``qclib.atomicfile.sweep_stale_temporaries``)."""
        return self.data_dir / f".sweep-{folder}.json"

    @property
    def inbox(self) -> Path:
        return self.root / self.config.workspace.inbox

    @property
    def database_url(self) -> str:
        url = os.environ.get(ENV_DB_URL) or self.config.database.url
        return url or f"sqlite:///{self.data_dir / 'qc.sqlite'}"

    def instruments(self) -> dict[str, InstrumentBase]:
        """The configured instruments, keyed by every INSTRUME value that means them."""
        out: dict[str, InstrumentBase] = {}
        for name in self.config.workspace.instruments:
            config = load_instrument(name)
            for value in config.ingest.instrume_values:
                out[value] = config
        return out

    def open_database(self) -> Database:
        return open_database(self.database_url)

    def relative(self, path: Path) -> str:
        """``path`` relative to the workspace root (as stored in the database)."""
        return str(path.resolve().relative_to(self.root))

    def confine(self, relative: str) -> Path:
        """Resolve a workspace-relative path, refusing anything that escapes the workspace."""
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):
            raise ConfigError(f"path {relative!r} leaves the workspace {self.root}")
        return path

    def confine_archive(self, name: str) -> Path:
        """An archive file's path from its name, refusing anything outside the archive."""
        path = (self.archive_dir / name).resolve()
        if not path.is_relative_to(self.archive_dir.resolve()):
            raise ConfigError(f"archive name {name!r} leaves the archive {self.archive_dir}")
        return path


def _read_config(path: Path) -> WorkspaceConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    try:
        config = WorkspaceConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: key '{key}': {first['msg']}") from None
    known = available_instruments()
    for name in config.workspace.instruments:
        if name.upper() not in known:
            raise ConfigError(
                f"{path}: key 'workspace.instruments': unknown instrument {name!r} "
                f"(known: {', '.join(known)})"
            )
    _check_one_way(path, config.workspace.instruments)
    return config


def _check_one_way(path: Path, names: Sequence[str]) -> None:
    """Each INSTRUME value means one configured instrument (HAWKI and HAWKI_ESO both
    read HAWK-I's frames: a workspace processes them one way)."""
    claimed: dict[str, str] = {}
    for name in names:
        data = read_toml(config_path(name))
        for value in data.get("ingest", {}).get("instrume_values", []):
            if value in claimed:
                raise ConfigError(
                    f"{path}: key 'workspace.instruments': {claimed[value]} and {name} both "
                    f"take frames with INSTRUME = {value!r}; a workspace processes an "
                    f"instrument one way: list one of them (qc eso both-ways compares the two)"
                )
            claimed[value] = name


def find_workspace_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The workspace folder: ``root``, else $QC_WORKSPACE, else the current folder."""
    chosen = root or os.environ.get(ENV_WORKSPACE) or Path.cwd()
    return Path(chosen).expanduser().resolve()


def load_workspace(root: str | os.PathLike[str] | None = None) -> Workspace:
    """Load an existing workspace.

    Raises
    ------
    ConfigError
        There is no ``qc.toml`` (the message says to run ``qc init``), or it is invalid.
    """
    folder = find_workspace_root(root)
    path = folder / CONFIG_FILE
    if not path.exists():
        raise ConfigError(
            f"{folder} is not a QC workspace (no {CONFIG_FILE}); run 'qc init {folder}' first, "
            f"or pass --workspace / set {ENV_WORKSPACE}"
        )
    return Workspace(root=folder, config=_read_config(path))


def init_workspace(
    root: str | os.PathLike[str] | None = None, instruments: Sequence[str] | None = None
) -> Workspace:
    """Create (or complete) a workspace and its database; safe to run again.

    A new ``qc.toml`` lists ``instruments`` (default: the native ones); an existing one
    is kept as it is."""
    folder = find_workspace_root(root)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONFIG_FILE
    if not path.exists():
        names = native_instruments() if instruments is None else instruments
        instruments_toml = "[" + ", ".join(f'"{n}"' for n in names) + "]"
        ready = [name for name, installed in eso_instruments().items() if installed]
        eso = (
            f"# Also available, processed by ESO's installed pipelines: {', '.join(ready)}.\n"
            if ready
            else ""
        )
        write_text_atomic(path, DEFAULT_CONFIG.format(instruments=instruments_toml, eso=eso))
    workspace = load_workspace(folder)
    for sub in (
        workspace.inbox,
        workspace.raw_dir,
        workspace.quarantine_dir,
        workspace.products_dir,
        workspace.archive_dir,
        workspace.runs_dir,
    ):
        sub.mkdir(parents=True, exist_ok=True)
    workspace.open_database().close()
    return workspace
