"""The instruments QC Workbench knows: one folder each, ``<name>/<name>.toml`` (+ ``.oca``).

Adding an instrument is adding a folder; nothing here lists them by hand. An
instrument whose TOML has an ``[eso]`` table is processed by its installed ESO
pipeline, whose rule file it uses (``qclib.instruments.eso``); the others by QC
Workbench's own recipes and their folder's rule file.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from qclib.classify import RuleProblem, check_rules
from qclib.config.eso_instrument import EsoInstrumentConfig
from qclib.config.instrument import InstrumentConfig, read_toml, validated
from qclib.errors import ConfigError
from qclib.instruments.recipe_check import check_actions, check_recipe_tables
from qclib.oca import RuleSet, parse_oca

if TYPE_CHECKING:
    from qclib.eso.recipes import EsoRecipeSpec

AnyInstrument = InstrumentConfig | EsoInstrumentConfig

INSTRUMENTS_DIR = Path(__file__).parent


def available_instruments() -> list[str]:
    """Names (INSTRUME values) of every instrument with a configuration folder."""
    return sorted(
        p.parent.name.upper() for p in INSTRUMENTS_DIR.glob("*/*.toml") if p.stem == p.parent.name
    )


def config_path(name: str) -> Path:
    """An instrument's TOML file (which may not exist)."""
    folder = name.lower()
    return INSTRUMENTS_DIR / folder / f"{folder}.toml"


def eso_instruments() -> dict[str, bool]:
    """The instruments ESO's pipelines process (an ``[eso]`` table), each with whether
    its pipeline is installed here; read without loading them."""
    from qclib.eso.pipelines import installed_pipelines

    installed = {p.name for p in installed_pipelines()}
    found = {}
    for name in available_instruments():
        eso = read_toml(config_path(name)).get("eso")
        if isinstance(eso, dict):
            found[name] = eso.get("pipeline") in installed
    return found


def native_instruments() -> list[str]:
    """The instruments QC Workbench's own recipes process (a new workspace takes these;
    ESO-pipeline instruments are added by name: loading ESO's rules takes a second)."""
    eso = eso_instruments()
    return [name for name in available_instruments() if name not in eso]


@functools.cache
def load_instrument(name: str) -> AnyInstrument:
    """The validated configuration of an instrument, by name (case-insensitive).

    Raises
    ------
    ConfigError
        No such instrument, its configuration is invalid, or (ESO pipeline) the
        pipeline is not installed.
    """
    path = config_path(name)
    if not path.exists():
        raise ConfigError(
            f"unknown instrument {name!r}: known are {', '.join(available_instruments())}"
        )
    data = read_toml(path)
    if "eso" in data:
        from qclib.instruments.eso import load_eso_config

        return load_eso_config(path, data)
    config = validated(InstrumentConfig, data, path)
    check_recipe_tables(config, str(path))
    return config


def is_eso(name: str) -> bool:
    """Whether ESO's pipeline processes the instrument (its TOML has an ``[eso]`` table)."""
    return isinstance(load_instrument(name), EsoInstrumentConfig)


def load_native_instrument(name: str) -> InstrumentConfig:
    """An instrument QC Workbench simulates and reduces itself.

    Raises
    ------
    ConfigError
        It is unknown, invalid, or processed by ESO's pipeline.
    """
    config = load_instrument(name)
    if not isinstance(config, InstrumentConfig):
        raise ConfigError(
            f"{config.name} is processed by ESO's {config.eso.pipeline} pipeline, not by "
            "QC Workbench's own recipes"
        )
    return config


def rules_path(name: str) -> Path:
    """The rule file an instrument's rules are read from (ESO's, in its package, for
    an ESO-pipeline instrument)."""
    config = load_instrument(name)
    if isinstance(config, EsoInstrumentConfig):
        from qclib.eso.pipelines import find_pipeline

        return find_pipeline(config.eso.pipeline).oca_path
    folder = name.lower()
    return INSTRUMENTS_DIR / folder / f"{folder}.oca"


@functools.cache
def eso_recipes(name: str) -> tuple[dict[str, EsoRecipeSpec], dict[str, str]]:
    """An ESO-pipeline instrument's recipes by the name its rules give them, and why
    each other recipe they name cannot run; ({}, {}) for other instruments."""
    config = load_instrument(name)
    if not isinstance(config, EsoInstrumentConfig):
        return {}, {}
    from qclib.instruments.eso import eso_recipes as build

    return build(config)


def read_rules(path: str | Path) -> RuleSet:
    """Parse an OCA rule file (any file: ESO's own load too).

    Raises
    ------
    ConfigError
        The file is missing, or (OCASyntaxError) does not parse: file, line, column.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise ConfigError(f"{path}: rule file not found") from None
    return parse_oca(text, source=str(path))


@functools.cache
def load_rules(name: str) -> RuleSet:
    """An instrument's rules: its folder's, checked against the categories its TOML
    declares; for an ESO-pipeline instrument, its package's with the products the TOML
    names (its recipe tables checked, the actions that cannot run logged).

    Raises
    ------
    ConfigError
        A syntax error, a category name no rule assigns (a typo), or an action whose
        recipe does not exist or does not fit it (``recipe_check``), with the line.
    """
    config = load_instrument(name)
    if isinstance(config, EsoInstrumentConfig):
        from qclib.instruments.eso import eso_rules

        eso_recipes(name)
        return eso_rules(config)
    rules = read_rules(rules_path(name))
    declared = {
        "DO.CATG": set(config.association.raw_categories)
        | set(config.association.product_categories),
        "PRO.CATG": set(config.association.product_categories),
    }
    problems = check_rules(rules, declared)
    problems += check_actions(rules, config, f"{name.lower()}.toml")
    actions = {a.name for a in rules.actions}
    for action in config.association.min_frames:
        if action not in actions:
            problems.append(
                RuleProblem(
                    0,
                    f"{name.lower()}.toml [association.min_frames] "
                    f"names action {action!r} that the rules lack",
                )
            )
    if problems:
        listed = "; ".join(str(p) for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ConfigError(f"{rules.source}: {len(problems)} problem(s): {listed}{more}")
    return rules
