"""ESO's recipes as the workflow sees them: one ``EsoRecipeSpec`` per recipe an
instrument's rule file names, built from its OCA actions.

What such a spec declares comes from ESO's files and the instrument's TOML: its
calibration inputs from the actions' ``select file as TAG`` (required where
``minRet > 0``), its products from ``[eso.products]``, the installed recipe that runs
(``action_recipes``, with ``[eso.recipe_map]``), and per action the esorex options:
the rule file's (``recipe NAME { "--opt=value"; }``) with the TOML's
``[recipes.<recipe>]`` over them. esorex makes every detector of a product in one job,
so a block is never shared among tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qclib.config.eso_instrument import EsoInstrumentConfig
from qclib.errors import ConfigError
from qclib.eso.pipelines import EsoPipeline, action_recipes
from qclib.oca import RuleSet
from qclib.recipes.registry import InputSpec, RecipeSpec, did_you_mean

#: The function every ESO recipe's blocks run (``qclib.eso.block_job``).
ENTRY = "qclib.eso.block_job:run"


@dataclass(frozen=True)
class EsoRecipeSpec(RecipeSpec):
    """A recipe of an ESO pipeline (``name`` is the one the rule file names)."""

    runs: str = ""
    """The installed recipe esorex runs (``name``, or its ``recipe_map`` entry)."""
    pipeline: str = ""
    version: str = ""
    recipe_dir: str = ""
    """The pipeline's plugin folder (``esorex --recipe-dir``)."""
    options: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Per action: its esorex options (``--name=value``)."""
    timeout_s: float = 3600.0
    threads: int = 1

    def options_of(self, action: str) -> tuple[str, ...]:
        """The esorex options of a block of ``action``."""
        return dict(self.options).get(action, ())


def option_text(value: Any) -> str:
    """A TOML value as esorex reads it (booleans TRUE/FALSE)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value)


def merged_options(named: tuple[str, ...], overrides: Mapping[str, Any]) -> tuple[str, ...]:
    """The rule file's options (``--name=value``) with ``overrides`` (name -> value)
    replacing or added after them."""
    merged: dict[str, str | None] = {}
    for option in (word for text in named for word in text.split()):  # "--nifu=-1 --merge"
        key, sep, value = option.lstrip("-").partition("=")
        merged[key] = value if sep else None  # a bare flag stays bare
    merged.update({k: option_text(v) for k, v in overrides.items()})
    return tuple(f"--{k}" if v is None else f"--{k}={v}" for k, v in merged.items())


def build_specs(
    config: EsoInstrumentConfig, rules: RuleSet, pipeline: EsoPipeline, where: str
) -> tuple[dict[str, EsoRecipeSpec], dict[str, str]]:
    """The specs of the recipes that can run, by the name the rules give them, and for
    each recipe that cannot, why (by that name). ``where``: the TOML's name, for errors.

    Raises
    ------
    ConfigError
        ``[recipes.<name>]`` names no recipe that runs for an action, or a parameter
        the recipe does not have (with a suggestion).
    """
    actions = {a.name: a for a in rules.actions}
    specs: dict[str, EsoRecipeSpec] = {}
    missing: dict[str, str] = {}
    runs_of: dict[str, str] = {}
    for found in action_recipes(rules, pipeline, config.eso.recipe_map):
        if found.named is None:
            continue
        if found.runs is None:
            missing[found.named] = found.reason
            continue
        runs_of[found.named] = found.runs
    for table, values in config.recipes.items():
        if table not in runs_of.values():
            raise ConfigError(
                f"{where} [recipes.{table}]: no action of {rules.source} runs "
                f"{table}{did_you_mean(table, runs_of.values())}; the recipes that run "
                f"are {', '.join(sorted(set(runs_of.values())))}"
            )
        known = pipeline.recipe_options(table)
        for key in values:
            if key not in known:
                raise ConfigError(
                    f"{where} [recipes.{table}]: {table} has no parameter "
                    f"{key!r}{did_you_mean(key, known)} (esorex --man-page {table})"
                )
    for named, runs in runs_of.items():
        mine = [a for a in actions.values() if a.recipe == named]
        tags: dict[str, bool] = {}
        for action in mine:
            for assoc in action.associations:
                tags[assoc.tag] = tags.get(assoc.tag, False) or assoc.mandatory
        products = tuple(
            dict.fromkeys(c for a in mine for c in config.eso.products.get(a.name, []))
        )
        limits = config.eso.limits(runs)
        specs[named] = EsoRecipeSpec(
            name=named,
            does=f"ESO's {runs} ({pipeline.package} {pipeline.version}), through esorex",
            entry=ENTRY,
            products=products,
            inputs=tuple(
                InputSpec((tag,), f"{tag} (ESO's rule file)", required)
                for tag, required in tags.items()
            ),
            min_raws=1,
            template=config.eso.report_template,
            detector_parts=False,
            runs=runs,
            pipeline=pipeline.name,
            version=pipeline.version,
            recipe_dir=str(pipeline.plugin_dir),
            options=tuple(
                (a.name, merged_options(a.recipe_parameters, config.recipes.get(runs, {})))
                for a in mine
            ),
            timeout_s=limits.timeout_s,
            threads=limits.threads,
            memory_mb=limits.memory_mb,
        )
    return specs, missing
