"""An instrument processed by its installed ESO pipeline: its TOML, ESO's rules, ESO's
recipes put together (qclib.instruments.eso)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from qclib.errors import ConfigError
from qclib.eso.recipes import EsoRecipeSpec
from qclib.instruments import config_path, eso_recipes, is_eso, load_instrument, load_rules
from qclib.instruments.eso import eso_recipes as build_recipes
from qclib.instruments.eso import load_eso_config
from qclib.recipes.registry import find_recipe, missing_recipe_reason, recipe_names

pytestmark = pytest.mark.usefixtures("esorex_giraffe")


def _giraffe_data() -> dict:
    return tomllib.loads(config_path("GIRAFFE").read_text())


def test_giraffe_rules_are_the_packages_with_the_tomls_products() -> None:
    config = load_instrument("GIRAFFE")
    rules = load_rules("GIRAFFE")
    assert is_eso("GIRAFFE") and not is_eso("HAWKI")
    assert rules.source.endswith("/gasgano/config/giraf.oca")
    assert "/qclib/" not in rules.source  # read in place, never copied
    products = {a.name: [p.pro_catg for p in a.products] for a in rules.actions}
    assert products["gimasterbias"] == ["MASTER_BIAS", "BAD_PIXEL_MAP"]
    assert products["gidetmon"] == []
    # The categories are the rule file's: every DO.CATG its classification assigns.
    assert {"BIAS", "DARK", "FIBER_FLAT", "ARC_SPECTRUM"} <= set(config.association.raw_categories)
    assert "MASTER_DARK" in config.association.product_categories


def test_each_recipe_of_the_rules_runs_or_says_why_not() -> None:
    specs, missing = eso_recipes("GIRAFFE")
    bias = specs["gimasterbias"]
    assert isinstance(bias, EsoRecipeSpec)
    assert bias.runs == "gimasterbias" and not bias.detector_parts
    assert bias.products == ("MASTER_BIAS", "BAD_PIXEL_MAP")
    dark = specs["gimasterdark"]
    # From the action's selects: MASTER_BIAS has minRet = 1, BAD_PIXEL_MAP minRet = 0.
    assert {(i.role, i.required) for i in dark.inputs} == {
        ("MASTER_BIAS", True),
        ("BAD_PIXEL_MAP", False),
    }
    assert "detmon_opt_lg" in missing and "Debian ships none" in missing["detmon_opt_lg"]
    # The workflow finds them through the instrument, and says why a block waits.
    assert find_recipe("gimasterdark", "GIRAFFE") is dark
    assert find_recipe("gimasterdark") is None  # no native recipe of that name
    assert find_recipe("qc_master_bias", "GIRAFFE") is None
    assert "gimasterbias" in recipe_names(["GIRAFFE"])
    why = missing_recipe_reason("gidetmon", "detmon_opt_lg", "GIRAFFE")
    assert "cpl-plugin-giraf" in why and "recipe_map" in why


def test_recipe_parameters_override_the_rule_files(tmp_path: Path) -> None:
    data = _giraffe_data()
    data["recipes"] = {"gimasterbias": {"stack-method": "median", "bpm-create": False}}
    config = load_eso_config(tmp_path / "giraffe.toml", data)
    specs, _ = build_recipes(config)
    assert specs["gimasterbias"].options_of("gimasterbias") == (
        "--stack-method=median",
        "--bpm-create=FALSE",
    )


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        (
            lambda d: d.update(recipes={"gimasterbias": {"stack-methd": "median"}}),
            r"giraffe.toml \[recipes.gimasterbias\]: gimasterbias has no parameter "
            r"'stack-methd' \(did you mean 'stack-method'\?\)",
        ),
        (
            lambda d: d.update(recipes={"gimastrbias": {}}),
            "no action of .*giraf.oca runs gimastrbias \\(did you mean 'gimasterbias'\\?\\)",
        ),
        (
            lambda d: d["eso"]["products"].update(gimasterbais=["MASTER_BIAS"]),
            "names action 'gimasterbais', which .*giraf.oca lacks",
        ),
        (
            lambda d: d["association"].update(raw_categories=["BIAS"]),
            "categories are those of .*giraf.oca",
        ),
    ],
)
def test_a_wrong_toml_names_the_file_and_what_is_wrong(
    tmp_path: Path, change: object, phrase: str
) -> None:
    data = _giraffe_data()
    change(data)  # type: ignore[operator]
    with pytest.raises(ConfigError, match=phrase):
        build_recipes(load_eso_config(tmp_path / "giraffe.toml", data))


def test_an_uninstalled_pipeline_is_one_line_naming_the_package(tmp_path: Path) -> None:
    data = _giraffe_data()
    data["eso"]["pipeline"] = "espresso"
    with pytest.raises(ConfigError) as info:
        load_eso_config(tmp_path / "espresso.toml", data)
    message = str(info.value)
    assert "\n" not in message
    assert "apt-get install esorex cpl-plugin-espresso" in message
