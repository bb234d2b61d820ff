"""``qc eso``: ESO's pipelines installed here, and what of their rule files can run. Thin."""

from __future__ import annotations

from pathlib import Path

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
    from qclib.eso.pipelines import action_recipes
    from qclib.instruments import read_rules

    pipeline = _installed(name)
    actions = action_recipes(read_rules(pipeline.oca_path), pipeline)
    if as_json:
        _print_json([a.__dict__ for a in actions])
        return
    table = Table("action", "recipe named", "runs", "why", title=str(pipeline.oca_path))
    for a in actions:
        table.add_row(a.action, a.named or "", a.runs or "-", escape(a.reason))
    console.print(table)


@eso.command("harvest")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--pipeline", "name", required=True, help="Whose QC1 dictionary (giraf, uves, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eso_harvest(path: Path, name: str, as_json: bool) -> None:
    """The QC1 values of a product (FITS, or a header text dump: its primary), each
    with the type, unit and comment of pipeline NAME's QC1 dictionary; keywords the
    dictionary lacks, or values of another type, are marked."""
    from qclib.cli import _header_of
    from qclib.eso.harvest import harvest_file, harvest_header

    pipeline = _installed(name)
    if not pipeline.qc_dictionaries:
        raise ConfigError(f"ESO's {name} pipeline {pipeline.version} has no QC1 dictionary here")
    entries = pipeline.qc_entries()
    is_fits = path.suffix.lower() in (".fits", ".fit", ".fts")
    found = harvest_file(path, entries) if is_fits else harvest_header(_header_of(path), entries)
    if as_json:
        _print_json([q.as_dict() for q in found])
        return
    if not found:
        console.print(f"{path}: no QC keyword")
        return
    table = Table("keyword", "detector", "value", "unit", "dictionary", title=str(path))
    for q in found:
        if q.entry is None:
            said = f"[red]not in {', '.join(d.name for d in pipeline.qc_dictionaries)}[/]"
        elif not q.type_ok:
            said = f"[yellow]{q.entry.type} expected[/]: {escape(q.entry.comment)}"
        else:
            said = escape(q.entry.comment)
        table.add_row(q.keyword, q.detector, str(q.value), q.unit or "", said)
    console.print(table)
    missing = sum(q.entry is None for q in found)
    console.print(
        f"{len(found)} QC keyword(s); {missing} not in the dictionary, "
        f"{sum(q.entry is not None and not q.type_ok for q in found)} of another type"
    )


@eso.command("both-ways")
@click.argument("raw_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A new folder: the two workspaces, both_ways.json and the report go there.",
)
@click.option("--no-report", is_flag=True, help="Only both_ways.json, no HTML report.")
@click.option("--json", "as_json", is_flag=True, help="Print both_ways.json.")
def eso_both_ways(raw_dir: Path, out_dir: Path, no_report: bool, as_json: bool) -> None:
    """Process the HAWK-I night in RAW_DIR both ways, by the native recipes (HAWKI)
    and by ESO's pipeline through esorex (HAWKI_ESO), each block alone for its wall
    time and memory; compare the QC both measure, against the simulator's truth when
    RAW_DIR has one (truth.json), and write the report."""
    import json

    from qclib.peers.hawki_both_ways import run_both_ways
    from qclib.reports.both_ways import cost_table, verdict
    from qclib.workflow.reports import render_both_ways

    say = None if as_json else (lambda text: console.print(escape(text), highlight=False))
    result_path = run_both_ways(raw_dir, out_dir, progress=say)
    result = json.loads(result_path.read_text())
    html = None if no_report else render_both_ways(result_path)
    if as_json:
        _print_json({**result, "report": str(html or "")})
        return
    table = Table("block (native)", "s", "MB", "block (ESO)", "s", "MB", title="wall time, memory")
    for row in cost_table(result).itertuples(index=False):
        table.add_row(
            escape(str(row[1])),
            _number(row[2]),
            _number(row[3]),
            escape(str(row[5])),
            _number(row[6]),
            _number(row[7]),
        )
    console.print(table)
    for line in verdict(result):
        console.print(escape(line), highlight=False)
    if result["not_compared"]:
        console.print(escape(result["not_compared"]), highlight=False)
    console.print(f"results: {result_path}", highlight=False)
    if html:
        console.print(f"report: {html}", highlight=False)


def _number(value: object) -> str:
    return "—" if value is None or value != value else f"{value:.1f}"


def _installed(name: str):  # type: ignore[no-untyped-def]
    """The installed pipeline NAME, or a one-line error naming what is and how to install."""
    from qclib.eso.pipelines import find_pipeline, installed_pipelines

    known = [p.name for p in installed_pipelines()]
    if name not in known:
        raise ConfigError(
            unknown("ESO pipeline", name, known, "'qc eso pipelines' lists them")
            + f"; to install it: apt-get install esorex cpl-plugin-{name}"
        )
    return find_pipeline(name)


def register(main: click.Group) -> None:
    """Add these commands to ``qc``."""
    main.add_command(eso)
