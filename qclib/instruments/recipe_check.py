"""An instrument's rules and configuration against the recipes they name
(``qclib.recipes.registry``): checked when the instrument loads, so that a typo stops
it with the file, the line and a suggestion instead of leaving blocks waiting."""

from __future__ import annotations

from typing import Any

from qclib.classify import RuleProblem
from qclib.config.instrument import InstrumentConfig
from qclib.errors import ConfigError
from qclib.oca import RuleSet
from qclib.oca.rules import Action
from qclib.recipes.registry import (
    SPECS,
    RecipeSpec,
    did_you_mean,
    find_recipe,
    recipe_names,
    suggest_recipe,
)


def recipe_parameters(config: InstrumentConfig, spec: RecipeSpec, where: str = "") -> Any:
    """The parameters a recipe runs with for this instrument: its defaults and the
    TOML's ``[recipes.<name>]``.

    Raises
    ------
    ConfigError
        An unknown parameter or a value of the wrong type.
    """
    return spec.parameters_from(config.recipes.get(spec.name, {}), where or config.name)


def check_recipe_tables(config: InstrumentConfig, where: str) -> None:
    """Every ``[recipes.<name>]`` names a recipe (by its name, not an old alias) and
    holds only its parameters.

    Raises
    ------
    ConfigError
        Naming the table, and what is wrong with it.
    """
    canonical = {spec.name: spec for spec in SPECS}
    for name in config.recipes:
        spec = canonical.get(name)
        if spec is None:
            old = find_recipe(name)
            hint = (
                f"; it is now called {old.name!r}"
                if old is not None
                else suggest_recipe(name) or f"; known are {', '.join(sorted(canonical))}"
            )
            raise ConfigError(f"{where} [recipes.{name}]: no such recipe{hint}")
        recipe_parameters(config, spec, where)


def check_actions(rules: RuleSet, config: InstrumentConfig, toml_name: str) -> list[RuleProblem]:
    """What is wrong between each action of an instrument's rules and its recipe: an
    unknown recipe; a required input no ``select file as TAG`` provides; a tag the
    recipe does not read; a product it does not make; a plan asking fewer raw frames
    (``[association.min_frames]``) than its statistics need."""
    problems: list[RuleProblem] = []
    for action in rules.actions:
        if action.recipe is None:
            continue
        spec = find_recipe(action.recipe)
        if spec is None:
            hint = suggest_recipe(action.recipe) or f"; known are {', '.join(recipe_names())}"
            problems.append(
                RuleProblem(
                    action.line,
                    f"action {action.name} names recipe {action.recipe!r}, which does not "
                    f"exist{hint}",
                )
            )
            continue
        problems += _inputs(action, spec)
        problems += [
            RuleProblem(
                action.line,
                f"action {action.name} declares product {p.pro_catg}, which recipe "
                f"{spec.name} does not make (it makes {', '.join(spec.products)})",
            )
            for p in action.products
            if p.pro_catg and p.pro_catg not in spec.products
        ]
        needed = config.association.min_frames.get(action.name)
        if needed is not None and needed < spec.min_raws:
            problems.append(
                RuleProblem(
                    action.line,
                    f"{toml_name} [association.min_frames] {action.name} = {needed}, but "
                    f"recipe {spec.name} needs at least {spec.min_raws} raw frames",
                )
            )
    return problems


def _inputs(action: Action, spec: RecipeSpec) -> list[RuleProblem]:
    problems = []
    selected = {a.tag: a for a in action.associations}
    for wanted in spec.inputs:
        provided = [selected[t] for t in wanted.tags if t in selected]
        if wanted.required and not any(a.mandatory for a in provided):
            how = (
                f"selects {provided[0].tag} with minRet = 0"
                if provided
                else f"has no 'select file as {wanted.role}'"
            )
            problems.append(
                RuleProblem(
                    action.line,
                    f"action {action.name}: recipe {spec.name} needs {wanted.what} "
                    f"(tag {' or '.join(wanted.tags)}), but the action {how}",
                )
            )
    readable = {t for wanted in spec.inputs for t in wanted.tags}
    for tag, association in selected.items():
        if tag not in readable:
            close = did_you_mean(tag, readable)
            problems.append(
                RuleProblem(
                    association.line,
                    f"action {action.name} selects {tag}, which recipe {spec.name} does not "
                    f"read{close} (it reads {', '.join(sorted(readable)) or 'no calibration'})",
                )
            )
    return problems
