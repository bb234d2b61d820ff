"""Installed ESO pipelines: a Debian package ``cpl-plugin-<name>`` (with ``esorex``) puts

- its recipes (shared libraries) in ``/usr/lib/<triplet>/cpl/plugins/<name>-<version>/``,
- its OCA rule file in ``/usr/share/cpl-plugins/<name>-<version>/gasgano/config/<name>.oca``,
- its QC1 dictionary in ``/usr/share/cpl-plugins/<name>-<version>/dic/ESO-DFS-DIC.<INST>_QC``

(the package's short name is not always the instrument's: ``giraf`` holds
``GIRAFFE_QC``). Other layouts (ESO's own installer, a private build) are found through
``QC_ESO_PLUGIN_PATH`` and ``QC_ESO_DATA_PATH``: ``:``-separated folders holding
``<name>-<version>/`` folders of each kind. Which recipes a pipeline installs is what
``esorex --recipe-dir=<its plugin folder> --recipes`` lists (about 0.1 s; cached per
process). An OCA action whose recipe is not installed (every rule file names ESO's
``detmon_*`` recipes, which Debian does not ship; VIMOS's names ten ``vm*`` recipes its
package lacks) can run only through a mapping to an installed recipe; ``action_recipes``
says, per action, which recipe runs or why none does.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from qclib.dictionary import DictionaryEntry, parse_dictionary
from qclib.errors import ConfigError
from qclib.oca import RuleSet

#: Environment variables naming other folders to look in (``:``-separated).
PLUGIN_PATH_ENV = "QC_ESO_PLUGIN_PATH"
DATA_PATH_ENV = "QC_ESO_DATA_PATH"
#: The esorex executable, when it is not the one on PATH.
ESOREX_ENV = "QC_ESOREX"

_DEBIAN_PLUGINS = ("/usr/lib/*/cpl/plugins", "/usr/lib/cpl/plugins")
_DEBIAN_DATA = ("/usr/share/cpl-plugins",)
_VERSIONED = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)-(?P<version>[0-9][0-9A-Za-z.+~-]*)$")
#: A recipe line of ``esorex --recipes``: two spaces, the name, maybe spaces, a colon.
_RECIPE_LINE = re.compile(r"^  (?P<name>[A-Za-z][A-Za-z0-9_]*)\s*:")


def esorex_command() -> str:
    """The esorex executable: ``$QC_ESOREX`` if set, else ``esorex``."""
    return os.environ.get(ESOREX_ENV) or "esorex"


def _roots(env: str, defaults: Iterable[str]) -> list[Path]:
    extra = [p for p in os.environ.get(env, "").split(":") if p]
    found = []
    for pattern in [*extra, *defaults]:
        found += [Path(p) for p in sorted(glob.glob(pattern)) if Path(p).is_dir()]
    return found


def _versioned_folders(roots: Iterable[Path]) -> dict[str, list[tuple[str, Path]]]:
    """name -> [(version, folder)] of every ``<name>-<version>`` folder in ``roots``."""
    folders: dict[str, list[tuple[str, Path]]] = {}
    for root in roots:
        for child in sorted(root.iterdir()):
            match = _VERSIONED.match(child.name)
            if match and child.is_dir():
                folders.setdefault(match["name"], []).append((match["version"], child))
    return folders


def _version_key(version: str) -> tuple[object, ...]:
    """Orders versions: numbers as numbers, words after numbers, and a Debian
    pre-release (``1.0~rc1``) before its release."""
    release, _, pre = version.partition("~")
    parts = tuple(
        (0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+-]", release)
    )
    return (parts, 0 if pre else 1, pre)


@dataclass(frozen=True)
class EsoPipeline:
    """One installed ESO pipeline: its recipe plugins and its data (rules, dictionaries)."""

    name: str
    version: str
    plugin_dir: Path
    data_dir: Path | None

    @property
    def package(self) -> str:
        """The Debian package that installs it."""
        return f"cpl-plugin-{self.name}"

    @property
    def oca_path(self) -> Path:
        """ESO's OCA rule file for it.

        Raises
        ------
        ConfigError
            The package's data (rule file) is not where it should be.
        """
        candidates = (
            sorted((self.data_dir / "gasgano" / "config").glob("*.oca")) if self.data_dir else []
        )
        if not candidates:
            raise ConfigError(
                f"ESO's {self.name} pipeline {self.version} has no OCA rule file "
                f"(looked in {self.data_dir or 'no data folder'}/gasgano/config): reinstall "
                f"{self.package}, or name its data folder in ${DATA_PATH_ENV}"
            )
        preferred = [p for p in candidates if p.stem == self.name]
        return (preferred or candidates)[0]

    @property
    def qc_dictionaries(self) -> tuple[Path, ...]:
        """ESO's QC1 dictionaries for it (``ESO-DFS-DIC.*_QC``; one per Debian package)."""
        if self.data_dir is None:
            return ()
        return tuple(sorted((self.data_dir / "dic").glob("ESO-DFS-DIC.*_QC")))

    def qc_entries(self) -> list[DictionaryEntry]:
        """Every entry of its QC1 dictionaries (empty when it has none)."""
        return list(_dictionary_entries(self.qc_dictionaries))

    def recipes(self) -> frozenset[str]:
        """The recipes it installs, as esorex lists them.

        Raises
        ------
        ConfigError
            esorex is missing or fails here.
        """
        return _installed_recipes(esorex_command(), str(self.plugin_dir))

    def recipe_options(self, recipe: str) -> frozenset[str]:
        """The parameters (``--name``, without the dashes) of one of its recipes, as
        ``esorex --man-page`` lists them.

        Raises
        ------
        ConfigError
            esorex is missing or fails here.
        """
        return _recipe_options(esorex_command(), str(self.plugin_dir), recipe)


@functools.cache
def _dictionary_entries(paths: tuple[Path, ...]) -> tuple[DictionaryEntry, ...]:
    return tuple(e for p in paths for e in parse_dictionary(p.read_text(encoding="latin-1")))


def _esorex_says(esorex: str, plugin_dir: str, *arguments: str) -> str:
    """What ``esorex --recipe-dir=<plugin_dir> ARGUMENTS`` prints.

    Raises
    ------
    ConfigError
        esorex is missing or fails.
    """
    if shutil.which(esorex) is None:
        raise ConfigError(
            f"esorex not found ({esorex!r}): apt-get install esorex"
            + (f", or correct ${ESOREX_ENV}" if ESOREX_ENV in os.environ else "")
        )
    what = " ".join(arguments)
    try:
        done = subprocess.run(
            # No log file: esorex would write esorex.log into the current folder.
            [esorex, "--log-level=off", f"--recipe-dir={plugin_dir}", *arguments],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ConfigError(f"esorex {what} failed in {plugin_dir}: {err}") from None
    if done.returncode != 0:
        tail = " / ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        raise ConfigError(f"esorex {what} failed in {plugin_dir}: {tail}")
    return done.stdout


@functools.cache
def _installed_recipes(esorex: str, plugin_dir: str) -> frozenset[str]:
    listed = _esorex_says(esorex, plugin_dir, "--recipes")
    return frozenset(m["name"] for line in listed.splitlines() if (m := _RECIPE_LINE.match(line)))


#: An option line of ``esorex --man-page``: two spaces, ``--name``, spaces, a colon.
_OPTION_LINE = re.compile(r"^  --(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)\s*:")


@functools.cache
def _recipe_options(esorex: str, plugin_dir: str, recipe: str) -> frozenset[str]:
    page = _esorex_says(esorex, plugin_dir, "--man-page", recipe)
    return frozenset(m["name"] for line in page.splitlines() if (m := _OPTION_LINE.match(line)))


def installed_pipelines() -> list[EsoPipeline]:
    """Every ESO pipeline with a recipe folder here (its newest version), by name."""
    plugins = _versioned_folders(_roots(PLUGIN_PATH_ENV, _DEBIAN_PLUGINS))
    data = _versioned_folders(_roots(DATA_PATH_ENV, _DEBIAN_DATA))
    found = []
    for name, versions in sorted(plugins.items()):
        version, plugin_dir = max(versions, key=lambda v: _version_key(v[0]))
        data_dir = next((d for v, d in data.get(name, []) if v == version), None)
        found.append(EsoPipeline(name, version, plugin_dir, data_dir))
    return found


def find_pipeline(name: str) -> EsoPipeline:
    """The installed pipeline ``name`` (``giraf``, ``uves``, ...).

    Raises
    ------
    ConfigError
        It is not installed: one line naming the package to install.
    """
    for pipeline in installed_pipelines():
        if pipeline.name == name:
            return pipeline
    known = ", ".join(p.name for p in installed_pipelines()) or "none"
    raise ConfigError(
        f"ESO's {name} pipeline is not installed (installed: {known}): "
        f"apt-get install esorex cpl-plugin-{name}"
        f", or name its folder in ${PLUGIN_PATH_ENV}"
    )


@dataclass(frozen=True)
class ActionRecipe:
    """What runs for one OCA action: the recipe its rule names, the one that runs
    (None: nothing can) and why."""

    action: str
    named: str | None
    runs: str | None
    reason: str


def action_recipes(
    rules: RuleSet, pipeline: EsoPipeline, mapping: Mapping[str, str] | None = None
) -> list[ActionRecipe]:
    """Per action of ``rules`` (in the file's order): the recipe that runs, through
    ``mapping`` (recipe the rules name -> installed recipe) where the named one is not
    installed, or the reason none can."""
    installed = pipeline.recipes()
    mapping = dict(mapping or {})
    out = []
    for action in rules.actions:
        named = action.recipe
        if not named:
            out.append(ActionRecipe(action.name, None, None, "the action names no recipe"))
        elif named in installed:
            out.append(ActionRecipe(action.name, named, named, "installed"))
        elif named in mapping and mapping[named] in installed:
            out.append(
                ActionRecipe(action.name, named, mapping[named], f"mapped to {mapping[named]}")
            )
        elif named in mapping:
            out.append(
                ActionRecipe(
                    action.name,
                    named,
                    None,
                    f"mapped to {mapping[named]}, which {pipeline.package} "
                    f"{pipeline.version} does not install either",
                )
            )
        else:
            family = (
                " (ESO's detector-monitoring recipes; Debian ships none)"
                if named.startswith("detmon_")
                else ""
            )
            out.append(
                ActionRecipe(
                    action.name,
                    named,
                    None,
                    f"{pipeline.package} {pipeline.version} does not install {named}{family}",
                )
            )
    return out
