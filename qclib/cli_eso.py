"""``qc eso``: ESO's pipelines installed here, and what of their rule files can run. Thin."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from qclib.cli import _print_json, console, unknown
from qclib.errors import ConfigError


@click.group()
def eso() -> None:
    """ESO's own pipelines (esorex + cpl-plugin-<name>) installed on this machine."""


@eso.command("pipelines")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eso_pipelines(as_json: bool) -> None:
    """Each installed pipeline: version, recipes, rule file, QC dictionary, and how
    many of its rule file's actions can run."""
    from qclib.dictionary import parse_dictionary
    from qclib.eso.pipelines import action_recipes, installed_pipelines
    from qclib.instruments import read_rules

    rows = []
    for pipeline in installed_pipelines():
        row: dict[str, object] = {
            "name": pipeline.name,
            "version": pipeline.version,
            "package": pipeline.package,
            "plugin_dir": str(pipeline.plugin_dir),
            "qc_dictionaries": [str(p) for p in pipeline.qc_dictionaries],
            "problem": None,
        }
        try:  # one broken install is shown as such; the others are still listed
            actions = action_recipes(read_rules(pipeline.oca_path), pipeline)
            row |= {
                "recipes": len(pipeline.recipes()),
                "actions": len(actions),
                "actions_that_run": sum(a.runs is not None for a in actions),
                "rules": str(pipeline.oca_path),
                "qc_keywords": sum(
                    len(parse_dictionary(path.read_text(encoding="latin-1")))
                    for path in pipeline.qc_dictionaries
                ),
            }
        except ConfigError as err:
            row["problem"] = str(err)
        rows.append(row)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        console.print("no ESO pipeline installed (Debian: apt-get install esorex cpl-plugin-NAME)")
        return
    table = Table("pipeline", "version", "recipes", "actions that run", "QC keywords", "rules")
    for row in rows:
        if row["problem"]:
            table.add_row(
                str(row["name"]), str(row["version"]), "", "", "", escape(str(row["problem"]))
            )
            continue
        table.add_row(
            str(row["name"]),
            str(row["version"]),
            str(row["recipes"]),
            f"{row['actions_that_run']} of {row['actions']}",
            str(row["qc_keywords"]),
            str(row["rules"]),
        )
    console.print(table)


@eso.command("actions")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eso_actions(name: str, as_json: bool) -> None:
    """The actions of pipeline NAME's rule file: the recipe each names, and the one
    that runs or why none does."""
    from qclib.eso.pipelines import action_recipes, find_pipeline, installed_pipelines
    from qclib.instruments import read_rules

    known = [p.name for p in installed_pipelines()]
    if name not in known:
        raise ConfigError(
            unknown("ESO pipeline", name, known, "'qc eso pipelines' lists them")
            + f"; to install it: apt-get install esorex cpl-plugin-{name}"
        )
    pipeline = find_pipeline(name)
    actions = action_recipes(read_rules(pipeline.oca_path), pipeline)
    if as_json:
        _print_json([a.__dict__ for a in actions])
        return
    table = Table("action", "recipe named", "runs", "why", title=str(pipeline.oca_path))
    for a in actions:
        table.add_row(a.action, a.named or "", a.runs or "-", escape(a.reason))
    console.print(table)


def register(main: click.Group) -> None:
    """Add these commands to ``qc``."""
    main.add_command(eso)
