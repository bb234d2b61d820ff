"""ESO's pipelines as Debian installs them: found where the packages put them, their rule
files and QC dictionaries read in place, their recipes listed by esorex, and every OCA
action's recipe either runnable or refused with the reason."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from qclib.cli import main
from qclib.dictionary import find_entry, parse_dictionary
from qclib.errors import ConfigError
from qclib.eso.pipelines import (
    DATA_PATH_ENV,
    PLUGIN_PATH_ENV,
    action_recipes,
    find_pipeline,
    installed_pipelines,
)
from qclib.instruments import read_rules
from tests.conftest import missing_dependency

DEBIAN = ("amber", "giraf", "hawki", "muse", "naco", "uves", "vimos", "visir")


@pytest.fixture(scope="module")
def pipelines() -> dict:
    found = {p.name: p for p in installed_pipelines()} if shutil.which("esorex") else {}
    missing = [n for n in DEBIAN if n not in found]
    if missing:
        missing_dependency(
            "ESO PIPELINE TESTS SKIPPED: not installed: "
            + ", ".join(f"cpl-plugin-{n}" for n in missing)
            + " (apt-get install esorex and them; 'make test' does as root)"
        )
    return found


def test_each_debian_pipeline_is_found_with_its_rules_dictionary_and_recipes(pipelines) -> None:
    # What esorex lists for each package (Debian 12: esorex 3.13.6), and each file's
    # records (its 'Parameter Name' lines, in any case).
    recipes = {"amber": 11, "giraf": 7, "hawki": 25, "muse": 27, "naco": 15, "uves": 23,
               "vimos": 18, "visir": 26}  # fmt: skip
    for name in DEBIAN:
        pipeline = pipelines[name]
        assert pipeline.oca_path.is_file() and pipeline.oca_path.suffix == ".oca"
        assert str(pipeline.oca_path).startswith("/usr/share/cpl-plugins/")
        rules = read_rules(pipeline.oca_path)
        assert rules.classifications and rules.actions
        assert len(pipeline.recipes()) == recipes[name], sorted(pipeline.recipes())
        (dictionary,) = pipeline.qc_dictionaries
        text = dictionary.read_text(encoding="latin-1")
        entries = parse_dictionary(text)
        assert len(entries) == len(re.findall(r"(?im)^parameter name\s*:", text)) > 20
        assert all(e.name and e.type for e in entries), name


def test_the_qc_dictionaries_odd_records_are_read(pipelines) -> None:
    (hawki,) = pipelines["hawki"].qc_dictionaries
    entries = parse_dictionary(hawki.read_text(encoding="latin-1"))
    # Two HAWK-I records write 'Unit               ADU' without its colon.
    no_colon = re.findall(r"(?m)^Unit {3,}(\S.*)$", hawki.read_text(encoding="latin-1"))
    assert no_colon and set(no_colon) <= {e.unit for e in entries}
    (giraffe,) = pipelines["giraf"].qc_dictionaries
    entries = parse_dictionary(giraffe.read_text(encoding="latin-1"))
    ron = find_entry(entries, "QC.OUT1.RON.RAW")
    assert ron is not None and (ron.type, ron.unit) == ("double", "ADU")
    assert ron.comment == "Read out noise of raw bias"
    assert ron.description.startswith("Median of RMS values computed in 5 sub-windows")
    (muse,) = pipelines["muse"].qc_dictionaries
    entries = parse_dictionary(muse.read_text(encoding="latin-1"))
    indexed = find_entry(entries, "QC BIAS MASTER3 RON")  # 'QC BIAS MASTERi RON'
    assert indexed is not None and "i" in indexed.name


def test_dictionary_field_variants() -> None:
    text = (
        "Dictionary Name:   ESO-DFS-DIC.TEST_QC\n\n"
        "Parameter name:    QC RONi\nType:              double\nUnit               e\n"
        "Comment Format:    read noise of port i\nDescription:       from the\n"
        "                   bias pair\n\n"
        "Parameter Name: QC AMPL THRUa\nType: float\nUnit:\nComment field: throughput\n"
    )
    first, second = parse_dictionary(text)
    assert (first.name, first.type, first.unit) == ("QC RONi", "double", "e")
    assert first.comment == "read noise of port i"
    assert first.description == "from the bias pair"
    assert (second.unit, second.comment) == ("", "throughput")
    assert find_entry([first, second], "QC.RON12") == first
    assert find_entry([first, second], "QC AMPL THRU2") == second
    assert find_entry([first, second], "QC RONX") is None


def test_actions_whose_recipe_is_not_installed_say_why(pipelines) -> None:
    giraffe = pipelines["giraf"]
    rules = read_rules(giraffe.oca_path)
    by_action = {a.action: a for a in action_recipes(rules, giraffe)}
    assert by_action["gimasterbias"].runs == "gimasterbias"
    detmon = by_action["gidetmon"]
    assert detmon.named == "detmon_opt_lg" and detmon.runs is None
    assert "cpl-plugin-giraf 2.16.10 does not install detmon_opt_lg" in detmon.reason
    mapped = {
        a.action: a for a in action_recipes(rules, giraffe, {"detmon_opt_lg": "gimasterbias"})
    }
    assert mapped["gidetmon"].runs == "gimasterbias"
    wrong = {a.action: a for a in action_recipes(rules, giraffe, {"detmon_opt_lg": "nope"})}
    assert wrong["gidetmon"].runs is None and "mapped to nope" in wrong["gidetmon"].reason
    # VIMOS's rule file names ten vm* recipes its package does not install.
    vimos = pipelines["vimos"]
    missing = [a for a in action_recipes(read_rules(vimos.oca_path), vimos) if a.runs is None]
    assert {"vmimflatsky", "vmimflatscreen", "vmskyccd"} <= {a.named for a in missing}


def test_a_missing_pipeline_names_the_package(pipelines) -> None:
    with pytest.raises(ConfigError, match=r"apt-get install esorex cpl-plugin-espresso"):
        find_pipeline("espresso")


def test_other_layouts_through_the_environment(pipelines, tmp_path: Path, monkeypatch) -> None:
    """A private install: recipes and data in folders of its own."""
    plugins, data = tmp_path / "lib", tmp_path / "share"
    (plugins / "giraf-9.9.9").mkdir(parents=True)
    config = data / "giraf-9.9.9" / "gasgano" / "config"
    config.mkdir(parents=True)
    shutil.copy(pipelines["giraf"].oca_path, config / "giraf.oca")
    monkeypatch.setenv(PLUGIN_PATH_ENV, str(plugins))
    monkeypatch.setenv(DATA_PATH_ENV, str(data))
    private = find_pipeline("giraf")  # the newest version wins
    assert (private.version, private.plugin_dir) == ("9.9.9", plugins / "giraf-9.9.9")
    assert private.oca_path == config / "giraf.oca" and private.qc_dictionaries == ()
    assert private.recipes() == frozenset()  # an empty plugin folder
    refused = action_recipes(read_rules(private.oca_path), private)
    assert all(a.runs is None for a in refused)


def test_qc_eso_commands(pipelines) -> None:
    listed = json.loads(CliRunner().invoke(main, ["eso", "pipelines", "--json"]).output)
    assert [p["name"] for p in listed] == list(DEBIAN)
    giraffe = next(p for p in listed if p["name"] == "giraf")
    assert (giraffe["actions"], giraffe["actions_that_run"], giraffe["qc_keywords"]) == (7, 6, 31)
    actions = json.loads(CliRunner().invoke(main, ["eso", "actions", "giraf", "--json"]).output)
    assert {"action": "gimasterbias", "named": "gimasterbias", "runs": "gimasterbias",
            "reason": "installed"} in actions  # fmt: skip
    table = CliRunner().invoke(main, ["eso", "actions", "uves"]).output
    assert "uves_cal_lingain" in table and "does not install" in table
