"""``qc science``, ``qc ob-grades``, ``qc package``: science with certified masters, OB
grades, PI data packages. Thin."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from qclib.cli import (
    _database,
    _executor_options,
    _open_workers,
    _print_json,
    _workspace,
    console,
    night_option,
    unknown,
)
from qclib.errors import ConfigError


@click.command()
@night_option("--night", help="Only this night's science (YYYY-MM-DD).")
@click.option("--prog-id", help="Only this programme's science (OBS.PROG.ID).")
@click.option("--ab", "ab_ids", multiple=True, help="Only this block (repeatable).")
@click.option("--no-reports", is_flag=True, help="Skip the report notebooks (qc report later).")
@_executor_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def science(
    ctx: click.Context,
    night: dt.date | None,
    prog_id: str | None,
    ab_ids: tuple[str, ...],
    no_reports: bool,
    executor: str,
    workers: int | None,
    scheduler: str | None,
    as_json: bool,
) -> None:
    """Process science blocks with certified masters only; grade their OBs, score and
    report them as 'qc run' does.

    Every science block not done (of --night, of --prog-id, or the --ab blocks); one
    whose masters are not all certified waits and names them ('qc review').
    """
    from qclib.workflow.run import run_science
    from qclib.workflow.science import science_blocks

    workspace, database = _workspace(ctx), _database(ctx)
    every = science_blocks(database)
    for ab_id in ab_ids:
        if ab_id not in {b.ab_id for b in every}:
            raise ConfigError(
                unknown("science block", ab_id, [b.ab_id for b in every], "'qc abs' lists them")
            )
    if prog_id is not None and prog_id not in {b.prog_id for b in every}:
        raise ConfigError(unknown("programme", prog_id, [b.prog_id for b in every if b.prog_id]))
    chosen = science_blocks(database, night=night) if night else every
    ids = list(ab_ids) or [
        b.ab_id for b in chosen if b.state != "done" and (prog_id is None or b.prog_id == prog_id)
    ]
    if not ids:
        if as_json:
            _print_json({"blocks": [], "grades": [], "reports": []})
        else:
            console.print("no science block to process")
        return
    with _open_workers(executor, workers, scheduler) as pool:
        done = run_science(
            workspace,
            database,
            ids,
            progress=not as_json,
            write_reports=not no_reports,
            workers=pool,
        )
    outcomes, grades = done.outcomes, done.grades
    if as_json:
        _print_json(
            {
                "blocks": [o.as_dict() for o in outcomes],
                "grades": [g.as_dict() for g in grades],
                "reports": [r.as_dict() for r in done.reports],
            }
        )
        return
    colour = {"done": "green", "failed": "bold red", "waiting": "yellow", "skipped": "dim"}
    for o in outcomes:
        detail = ", ".join(o.products) if o.products else (o.reason or "")
        console.print(f"[{colour[o.status]}]{o.status:<8}[/] {o.ab_id}  {escape(detail)}")
    for g in grades:
        console.print(f"grade {g.grade}  {g.ab_id}  {escape(g.reason)}", highlight=False)
    for r in done.reports:
        where = r.html if r.status == "written" else r.reason
        console.print(f"report {r.status}  {r.ab_id}  {escape(str(where))}", highlight=False)


@click.command("ob-grades")
@night_option("--night", help="Only this night (YYYY-MM-DD).")
@click.option("--prog-id", help="Only this programme (OBS.PROG.ID).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def ob_grades(
    ctx: click.Context, night: dt.date | None, prog_id: str | None, as_json: bool
) -> None:
    """Science OBs' grades against their constraints (A, B, C), with the reasons."""
    from qclib.db import ob_grades as grade_store

    with _database(ctx).transaction() as session:
        if prog_id is not None:
            graded = {g.prog_id for g in grade_store.list_grades(session) if g.prog_id}
            if prog_id not in graded:
                raise ConfigError(unknown("programme", prog_id, graded, "of a graded OB"))
        found = grade_store.list_grades(session, prog_id=prog_id, nights=[night] if night else None)
    if as_json:
        _print_json([g.as_dict() for g in found])
        return
    if not found:
        console.print("no graded OB")
        return
    table = Table("grade", "night", "programme", "OB", "block", "why")
    for g in found:
        table.add_row(
            g.grade,
            g.night.isoformat(),
            g.prog_id or "",
            str(g.obs_id or ""),
            g.ab_id,
            escape(g.reason),
        )
    console.print(table)


@click.group(invoke_without_command=True)
@click.option("--prog-id", help="The programme (OBS.PROG.ID) to package.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="A new (or empty) folder, or a FILE.tar.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def package(ctx: click.Context, prog_id: str | None, out: Path | None, as_json: bool) -> None:
    """A PI data package: qc package --prog-id ID --out DIR|FILE.tar.

    The programme's raw science, the raw and master calibrations its science products
    used (by provenance), those products, the QC reports, the OB grades, a README and
    MANIFEST.sha256. 'qc package verify DIR|FILE.tar' checks one.
    """
    if ctx.invoked_subcommand is not None:
        return
    from qclib.archive.package import PackageError, plan_package, write_package

    if prog_id is None or out is None:
        raise click.UsageError("give --prog-id and --out (or 'qc package verify PATH')")
    workspace, database = _workspace(ctx), _database(ctx)
    plan = plan_package(workspace, database, prog_id)
    try:
        written = write_package(plan, out)
    except PackageError as err:
        raise ConfigError(str(err)) from None
    counts: dict[str, int] = {}
    for item in plan.files:
        kind = item.path.split("/")[1] if item.path.count("/") >= 2 else "."
        counts[kind] = counts.get(kind, 0) + 1
    if as_json:
        _print_json({"package": str(written), "files": [f.path for f in plan.files]})
        return
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    console.print(f"{written}: {len(plan.files)} files + manifest ({summary})", highlight=False)


@package.command("verify")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def verify(path: Path) -> None:
    """Check a package against its manifest; name every altered, missing or extra file."""
    from qclib.archive.package import PackageError, verify_package

    try:
        problems = verify_package(path)
    except PackageError as err:
        raise ConfigError(str(err)) from None
    if problems:
        for line in problems:
            console.print(escape(line), highlight=False)
        raise SystemExit(1)
    console.print(f"{path}: every file matches its manifest")


def register(main: click.Group) -> None:
    """Add these commands to ``qc``."""
    for command in (science, ob_grades, package):
        main.add_command(command)
