"""The instruments QC Workbench knows: one folder each, ``<name>/<name>.toml`` (+ ``.oca``).

Adding an instrument is adding a folder; nothing here lists them by hand.
"""

from __future__ import annotations

import functools
from pathlib import Path

from qclib.classify import RuleProblem, check_rules
from qclib.config.instrument import InstrumentConfig, load_instrument_config
from qclib.errors import ConfigError
from qclib.instruments.recipe_check import check_actions, check_recipe_tables
from qclib.oca import RuleSet, parse_oca

INSTRUMENTS_DIR = Path(__file__).parent


def available_instruments() -> list[str]:
    """Names (INSTRUME values) of every instrument with a configuration folder."""
    return sorted(
        p.parent.name.upper() for p in INSTRUMENTS_DIR.glob("*/*.toml") if p.stem == p.parent.name
    )


@functools.cache
def load_instrument(name: str) -> InstrumentConfig:
    """The validated configuration of an instrument, by name (case-insensitive).

    Raises
    ------
    ConfigError
        No such instrument, or its configuration is invalid.
    """
    folder = name.lower()
    path = INSTRUMENTS_DIR / folder / f"{folder}.toml"
    if not path.exists():
        raise ConfigError(
            f"unknown instrument {name!r}: known are {', '.join(available_instruments())}"
        )
    config = load_instrument_config(path)
    check_recipe_tables(config, str(path))
    return config


def rules_path(name: str) -> Path:
    folder = name.lower()
    return INSTRUMENTS_DIR / folder / f"{folder}.oca"


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
    """An instrument's own rules, checked against the categories its TOML declares.

    Raises
    ------
    ConfigError
        A syntax error, a category name no rule assigns (a typo), or an action whose
        recipe does not exist or does not fit it (``recipe_check``), with the line.
    """
    config = load_instrument(name)
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
