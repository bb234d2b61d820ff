"""The ``qc`` command: thin; parses, calls qclib, prints (tables, or JSON with --json)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from qclib import __version__
from qclib.errors import ConfigError, QCError

console = Console()
err_console = Console(stderr=True)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _parse_night(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD") from None


class QCGroup(click.Group):
    """Turns the errors qclib reports into one red line and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except QCError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False)
            sys.exit(2)


@click.group(cls=QCGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qc")
@click.option(
    "--workspace",
    "-w",
    envvar="QC_WORKSPACE",
    type=click.Path(file_okay=False, path_type=Path),
    help="Workspace folder (default: $QC_WORKSPACE, else the current folder).",
)
@click.pass_context
def main(ctx: click.Context, workspace: Path | None) -> None:
    """QC Workbench: calibration and quality control of an observatory's raw data."""
    ctx.obj = {"workspace": workspace}


def _workspace(ctx: click.Context):  # type: ignore[no-untyped-def]
    from qclib.workspace import load_workspace

    return load_workspace(ctx.obj["workspace"])


@main.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def init(ctx: click.Context, directory: Path | None) -> None:
    """Create a workspace (qc.toml, data folders, database) in DIRECTORY."""
    from qclib.workspace import init_workspace

    workspace = init_workspace(directory or ctx.obj["workspace"])
    console.print(f"workspace ready: [bold]{workspace.root}[/]")
    console.print(f"  settings  {workspace.root / 'qc.toml'}")
    console.print(f"  inbox     {workspace.inbox}")
    console.print(f"  database  {workspace.open_database().url}")


@main.command()
@click.argument("instrument")
@click.option("--night", required=True, help="ESO night (date of the evening), YYYY-MM-DD.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Same seed, same files.")
@click.option("--scale", type=click.Choice(["test", "full"]), default="full", show_default=True)
@click.option("--workers", type=int, default=None, help="Processes (default: one per core).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def simulate(
    instrument: str,
    night: str,
    out_dir: Path,
    seed: int,
    scale: str,
    workers: int | None,
    as_json: bool,
) -> None:
    """Simulate a raw night of INSTRUMENT (OMEGACAM, HAWKI) with recorded truth."""
    from qclib.simulate.night import simulate_night

    date = _parse_night(night)
    assert date is not None
    result = simulate_night(
        instrument, date, out_dir, seed=seed, scale=scale, workers=workers, progress=not as_json
    )
    if as_json:
        _print_json(
            {
                "out_dir": str(result.out_dir),
                "files": [str(f) for f in result.files],
                "truth": str(result.truth_path),
                "bytes": result.bytes_written,
            }
        )
        return
    console.print(
        f"{len(result.files)} raw files ({result.bytes_written / 1e9:.2f} GB) in "
        f"[bold]{result.out_dir}[/]; truth in {result.truth_path}"
    )


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--move", is_flag=True, help="Remove each source once it is safely stored.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file.")
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[Path, ...], move: bool, as_json: bool) -> None:
    """Ingest raw FITS files (or folders of them) into the workspace."""
    from qclib.workflow.ingest import ingest_paths

    workspace = _workspace(ctx)
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise ConfigError(f"no such file or folder: {', '.join(map(str, missing))}")
    database = workspace.open_database()
    outcomes = ingest_paths(workspace, database, paths, move=move, progress=not as_json)
    if as_json:
        _print_json([o.as_dict() for o in outcomes])
        return
    for o in outcomes:
        if o.status == "ingested":
            console.print(f"[green]ingested[/]    {o.arcfile}  night {o.night}", highlight=False)
        elif o.status in ("quarantined", "unreadable"):
            console.print(f"[bold red]{o.status.upper()}[/] {o.reason}", highlight=False)
    counts = Counter(o.status for o in outcomes)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    console.print(f"{len(outcomes)} file(s): {summary or 'nothing to do'}")
    if counts["quarantined"]:
        console.print("see [bold]qc quarantine[/] for the reasons and where the files are kept")


@main.command()
@click.option("--night", help="Only this night (YYYY-MM-DD).")
@click.option("--instrument", help="Only this instrument.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, keywords included.")
@click.pass_context
def frames(ctx: click.Context, night: str | None, instrument: str | None, as_json: bool) -> None:
    """List the ingested frames."""
    from qclib.db import ingest_log

    database = _workspace(ctx).open_database()
    with database.transaction() as session:
        rows = ingest_log.list_frames(session, night=_parse_night(night), instrument=instrument)
    if as_json:
        _print_json([r.as_dict(with_keywords=True) for r in rows])
        return
    table = Table(title=f"{len(rows)} frame(s)")
    for column in (
        "night",
        "ARCFILE",
        "DPR.CATG",
        "DPR.TYPE",
        "DPR.TECH",
        "EXPTIME",
        "filter",
        "det.",
    ):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.night.isoformat(),
            r.arcfile,
            r.dpr_catg or "",
            r.dpr_type or "",
            r.dpr_tech or "",
            f"{r.exptime_s:g}",
            r.filters or "",
            str(len(r.detectors)),
        )
    console.print(table)


@main.command()
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved entries.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def quarantine(ctx: click.Context, include_resolved: bool, as_json: bool) -> None:
    """List quarantined files with the reason for each."""
    from qclib.db import ingest_log

    workspace = _workspace(ctx)
    with workspace.open_database().transaction() as session:
        entries = ingest_log.list_quarantine(session, include_resolved=include_resolved)
    if as_json:
        _print_json([e.as_dict() for e in entries])
        return
    if not entries:
        console.print("quarantine is empty")
        return
    table = Table(title=f"{len(entries)} quarantined file(s)")
    for column in ("id", "when (UTC)", "code", "reason", "kept as"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(
            str(e.id), f"{e.quarantined_at:%Y-%m-%d %H:%M}", e.reason_code, e.reason, e.stored_path
        )
    console.print(table)


@main.command()
@click.option(
    "--workspace-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-workspace"),
    show_default=True,
)
@click.option("--night", default="2026-11-23", show_default=True)
@click.option("--scale", type=click.Choice(["test", "full"]), default="full", show_default=True)
def demo(workspace_dir: Path, night: str, scale: str) -> None:
    """Simulate an OmegaCAM night, ingest it, and show what was found."""
    from qclib.demo import run_demo

    date = _parse_night(night)
    assert date is not None
    run_demo(workspace_dir, date, scale=scale, console=console)


if __name__ == "__main__":
    main()
