"""Instruments processed by their installed ESO pipeline (an ``[eso]`` table in the
TOML): the configuration, ESO's rules and ESO's recipes put together.

The rule file is the package's, read where Debian (or ``QC_ESO_DATA_PATH``) put it,
never copied; the actions get the products ``[eso.products]`` names (ESO's files do
not say), and the raw and product categories are the rules'. An action whose recipe
is neither installed nor mapped is listed once when the instrument loads (logged), and
its blocks wait with that reason.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qclib.config.eso_instrument import EsoInstrumentConfig, EsoSettings
from qclib.config.instrument import validated
from qclib.errors import ConfigError
from qclib.eso.pipelines import EsoPipeline, find_pipeline
from qclib.eso.recipes import EsoRecipeSpec, build_specs
from qclib.oca import RuleSet, parse_oca
from qclib.oca.rules import Assignment, Product, Text

_log = logging.getLogger(__name__)


def is_eso_table(data: Mapping[str, Any]) -> bool:
    """Whether an instrument TOML (as a dict) describes an ESO-pipeline instrument."""
    return "eso" in data


def _assigned_do_catg(rules: RuleSet) -> list[str]:
    return sorted(
        {
            a.value.value
            for rule in rules.classifications
            for a in rule.assignments
            if a.keyword == "DO.CATG" and isinstance(a.value, Text)
        }
    )


def package_rules(pipeline: EsoPipeline) -> RuleSet:
    """The pipeline's own OCA rule file, parsed.

    Raises
    ------
    ConfigError
        The package lacks it, or it does not parse (file, line, column).
    """
    path = pipeline.oca_path
    return parse_oca(path.read_text(encoding="utf-8", errors="replace"), source=str(path))


def load_eso_config(path: Path, data: Mapping[str, Any]) -> EsoInstrumentConfig:
    """Validate an ESO-pipeline instrument's TOML against its installed pipeline.

    Raises
    ------
    ConfigError
        The TOML breaks the schema; the pipeline is not installed (one line naming
        the package); ``[eso.products]`` names an action the rules lack; the TOML
        lists categories (they are the rules').
    """
    settings = validated(EsoSettings, data["eso"], f"{path} [eso]")
    pipeline = find_pipeline(settings.pipeline)
    rules = package_rules(pipeline)
    association = dict(data.get("association", {}))
    for key in ("raw_categories", "product_categories"):
        if key in association:
            raise ConfigError(
                f"{path} [association] {key}: an ESO-pipeline instrument's categories are "
                f"those of {rules.source}; remove the key"
            )
    association["raw_categories"] = _assigned_do_catg(rules)
    association["product_categories"] = sorted(
        {c for categories in settings.products.values() for c in categories}
    )
    association.setdefault("validity", {})
    association.setdefault("min_frames", {})
    config = validated(EsoInstrumentConfig, {**data, "association": association}, path)
    actions = {a.name for a in rules.actions}
    for action in [*config.eso.products, *config.association.min_frames]:
        if action not in actions:
            raise ConfigError(
                f"{path}: names action {action!r}, which {rules.source} lacks "
                f"(its actions: {', '.join(sorted(actions))})"
            )
    return config


def eso_rules(config: EsoInstrumentConfig) -> RuleSet:
    """The package's rules, each action with the products ``[eso.products]`` names."""
    rules = package_rules(find_pipeline(config.eso.pipeline))
    actions = tuple(
        dataclasses.replace(
            action,
            products=tuple(
                Product(c, (Assignment("PRO.CATG", Text(c)),))
                for c in config.eso.products.get(action.name, [])
            ),
        )
        for action in rules.actions
    )
    return dataclasses.replace(rules, actions=actions)


def eso_recipes(config: EsoInstrumentConfig) -> tuple[dict[str, EsoRecipeSpec], dict[str, str]]:
    """The instrument's runnable recipes by the name its rules give them, and why each
    other recipe they name cannot run (logged).

    Raises
    ------
    ConfigError
        A ``[recipes.<name>]`` table or parameter that fits no recipe.
    """
    pipeline = find_pipeline(config.eso.pipeline)
    where = f"{config.name.lower()}.toml"
    specs, missing = build_specs(config, eso_rules(config), pipeline, where)
    for named, why in sorted(missing.items()):
        _log.info("%s: blocks of recipe %s wait: %s", config.name, named, why)
    return specs, missing
