"""The ``qc`` command: thin; parses, calls qclib, prints (tables, or JSON with --json).

Bad input (an unknown block, product, instrument or night, a count out of range, a
path of the wrong kind) stops a command before it does anything, with exit code 2 and
one line on stderr naming the value and what exists.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from qclib import __version__
from qclib.errors import ConfigError, QCError

if TYPE_CHECKING:
    from qclib.simulate.night import SimulationResult

# Wide tables when piped (rich would wrap to 80 columns); a terminal sets its own width.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _fail(message: str, code: int) -> NoReturn:
    """One red line on stderr (never wrapped, whatever its length), then exit ``code``."""
    line = " ".join(message.split())
    err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    sys.exit(code)


class QCGroup(click.Group):
    """Turns bad input and the errors qclib reports into one red line and exit code 2
    (click's usage errors too: no usage text, no traceback), and an error of the
    machine (``OSError``: a full disk, a folder that cannot be written) into one line
    and exit code 1."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.ClickException as err:
            _fail(err.format_message(), err.exit_code)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except QCError as err:
            _fail(str(err), 2)
        except click.ClickException as err:
            _fail(err.format_message(), err.exit_code)
        except OSError as err:
            # The machine, not the input (a full disk, a folder that cannot be
            # written): what failed on which file, in the error's own words; the
            # command stopped there, and running it again resumes.
            _fail(f"{err} (stopped here; run the command again once this is fixed)", 1)


def unknown(kind: str, value: object, known: Iterable[object], listing: str = "") -> str:
    """What was not found and what exists, in one line: every known name when there
    are a few, else how many, their range, the closest ones and where they are listed.

    >>> unknown("instrument", "NOPE", ["OMEGACAM", "HAWKI"])
    "unknown instrument 'NOPE'; known: HAWKI, OMEGACAM"
    """
    names = sorted({str(k) for k in known})
    what = f"unknown {kind} {str(value)!r}"
    where = f" ({listing})" if listing else ""
    if not names:
        return f"{what}; there is none yet{where}"
    if len(names) <= 8:
        return f"{what}; known: {', '.join(names)}"
    close = difflib.get_close_matches(str(value), names, n=3)
    nearest = f"; closest: {', '.join(close)}" if close else ""
    return f"{what}; {len(names)} known, {names[0]} .. {names[-1]}{where}{nearest}"


class NightType(click.ParamType):
    """An ESO night (the date of the evening), YYYY-MM-DD."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not a date YYYY-MM-DD", param, ctx)


NIGHT = NightType()


def indexed_nights(ctx: click.Context) -> list[dt.date]:
    """Every night with frames in the index, oldest first."""
    from qclib.db import ingest_log

    with _database(ctx).transaction() as session:
        return sorted({f.night for f in ingest_log.list_frames(session)})


def _nights_text(nights: list[dt.date]) -> str:
    if not nights:
        return "the index is empty ('qc ingest' adds frames)"
    return f"indexed: {nights[0]} .. {nights[-1]} ({len(nights)} night(s); 'qc frames' lists them)"


def _check_indexed_night(
    ctx: click.Context, param: click.Parameter, night: dt.date | None
) -> dt.date | None:
    """A night option's callback: the night must have frames in the index."""
    from qclib.db import ingest_log

    if night is None:
        return None
    with _database(ctx).transaction() as session:
        if ingest_log.list_frames(session, night=night):
            return night
    raise click.BadParameter(
        f"no frames on night {night}; {_nights_text(indexed_nights(ctx))}", ctx, param
    )


def night_option(*names: str, indexed: bool = True, **kwargs: Any) -> Callable[[Any], Any]:
    """``--night``-like option: a date YYYY-MM-DD; ``indexed``: one with frames indexed."""
    callback = _check_indexed_night if indexed else None
    return click.option(*names, type=NIGHT, callback=callback, **kwargs)


def _instrument_name(
    value: str, known: Iterable[str], ctx: click.Context, param: click.Parameter
) -> str:
    """``value`` as the name of one of the ``known`` instruments (any case)."""
    if value.upper() not in known:
        raise click.BadParameter(unknown("instrument", value, known), ctx, param)
    return value.upper()


def _check_instrument(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An instrument option's callback: one the workspace takes; returns its name."""
    if value is None:
        return None
    return _instrument_name(
        value, {c.name for c in _workspace(ctx).instruments().values()}, ctx, param
    )


def instrument_option(**kwargs: Any) -> Callable[[Any], Any]:
    """``--instrument``: one the workspace takes (any case); the command gets its name."""
    kwargs.setdefault("help", "Only this instrument.")
    return click.option("--instrument", callback=_check_instrument, **kwargs)


def _check_block_ids(ctx: click.Context, ids: Iterable[str]) -> None:
    """Every id must name a stored association block."""
    from qclib.db import blocks as block_store

    with _database(ctx).transaction() as session:
        known = {b.id for b in block_store.list_blocks(session)}
    for block_id in ids:
        if block_id not in known:
            raise ConfigError(unknown("block", block_id, known, "'qc abs' lists them"))


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


def _database(ctx: click.Context):  # type: ignore[no-untyped-def]
    """The workspace's database: opened once per command line, closed when it ends."""
    if "database" not in ctx.obj:
        database = _workspace(ctx).open_database()
        ctx.find_root().call_on_close(database.close)
        ctx.obj["database"] = database
    return ctx.obj["database"]


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
    console.print(f"  database  {workspace.database_url}")


def _check_simulated(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``qc simulate``'s instrument: a native one, or one ESO's pipeline reduces that
    has a simulator (HAWKI_ESO reads HAWKI's frames: simulate HAWKI)."""
    from qclib.instruments import native_instruments
    from qclib.simulate.eso import SIMULATED_ESO_INSTRUMENTS

    simulated = sorted({*native_instruments(), *SIMULATED_ESO_INSTRUMENTS})
    return _instrument_name(value, simulated, ctx, param)


def _simulate_eso_night(
    instrument: str, night: dt.date, out_dir: Path, *, seed: int, scale: str, **_: object
) -> SimulationResult:
    """A calibration night of an instrument ESO's pipeline reduces (one process: its
    few frames take seconds)."""
    from qclib.simulate.eso import simulate_eso_night

    return simulate_eso_night(instrument, night, out_dir, seed=seed, scale=scale)


@main.command()
@click.argument("instrument", callback=_check_simulated)
@night_option("--night", indexed=False, required=True, help="ESO night (date of the evening).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Same seed, same files.",
)
@click.option("--scale", type=click.Choice(["test", "full"]), default="full", show_default=True)
@click.option("--workers", type=click.IntRange(min=1), help="Processes (default: one per core).")
@click.option(
    "--only",
    multiple=True,
    help="Write only exposures of this kind (bias, dark, dome_flat, ...); repeatable.",
)
@click.option(
    "--nights",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Consecutive nights from --night: OUT/<date>/ each, the same detectors drifting "
    "as [simulator.history] says, and OUT/history.json.",
)
@click.option(
    "--science-every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --nights: science exposures on every n-th night only (the last has them).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def simulate(
    instrument: str,
    night: dt.date,
    out_dir: Path,
    seed: int,
    scale: str,
    workers: int | None,
    only: tuple[str, ...],
    nights: int,
    science_every: int,
    as_json: bool,
) -> None:
    """Simulate a raw night of INSTRUMENT (OMEGACAM, HAWKI, VIRCAM) with recorded truth.

    With --nights N, a history of N nights whose detectors drift slowly and step
    after a recorded intervention (listed in OUT/history.json, to log as a quality
    event); process the frames with qc ingest and qc run. For an instrument ESO's
    pipeline reduces (GIRAFFE, UVES, NACO, VISIR): its detector calibrations of one
    morning, which ESO's recipes accept.
    """
    from qclib.instruments import is_eso
    from qclib.simulate.night import simulate_night

    if is_eso(instrument):
        simulate = _simulate_eso_night
        if nights > 1 or only:
            raise ConfigError(
                f"{instrument} is simulated one calibration night at a time (ESO's "
                "pipeline reduces it): drop --nights and --only"
            )
    else:
        simulate = simulate_night
    if nights > 1:
        from qclib.simulate.history import simulate_history

        history = simulate_history(
            instrument,
            night,
            nights,
            out_dir,
            seed=seed,
            scale=scale,
            workers=workers,
            progress=not as_json,
            only=frozenset(only) or None,
            science_every=science_every,
        )
        if as_json:
            _print_json(
                {
                    "out_dir": str(history.out_dir),
                    "history": str(history.history_path),
                    "nights": [
                        {
                            "out_dir": str(n.out_dir),
                            "files": len(n.files),
                            "truth": str(n.truth_path),
                            "bytes": n.bytes_written,
                        }
                        for n in history.nights
                    ],
                    "bytes": history.bytes_written,
                }
            )
            return
        files = sum(len(n.files) for n in history.nights)
        console.print(
            f"{nights} nights, {files} raw files ({history.bytes_written / 1e9:.2f} GB) in "
            f"[bold]{history.out_dir}[/]; drifts and interventions in {history.history_path}"
        )
        return
    result = simulate(
        instrument,
        night,
        out_dir,
        seed=seed,
        scale=scale,
        workers=workers,
        progress=not as_json,
        only=frozenset(only) or None,
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
    database = _database(ctx)
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
@night_option("--night", help="Only this night (YYYY-MM-DD).")
@instrument_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON, keywords included.")
@click.pass_context
def frames(
    ctx: click.Context, night: dt.date | None, instrument: str | None, as_json: bool
) -> None:
    """List the ingested frames."""
    from qclib.db import ingest_log

    database = _database(ctx)
    with database.transaction() as session:
        rows = ingest_log.list_frames(session, night=night, instrument=instrument)
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
        "DO.CATG",
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
            r.do_catg or "",
        )
    console.print(table)


@main.command()
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved entries.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def quarantine(ctx: click.Context, include_resolved: bool, as_json: bool) -> None:
    """List quarantined files with the reason for each."""
    from qclib.db import ingest_log

    with _database(ctx).transaction() as session:
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


@main.group()
def rules() -> None:
    """OCA rule files: check them."""


@rules.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rules_check(path: Path, as_json: bool) -> None:
    """Parse FILE.oca; print its rule counts, any category typos and the organisation
    rules no frame can reach, or the first error."""
    from qclib.classify import check_rules
    from qclib.instruments import read_rules
    from qclib.oca.witness import unreachable_organisations

    ruleset = read_rules(path)
    problems = [str(p) for p in check_rules(ruleset)]
    problems += [f"line {line}: {message}" for line, message in unreachable_organisations(ruleset)]
    if as_json:
        _print_json({"file": str(path), **ruleset.counts(), "problems": problems})
        return
    counts = ruleset.counts()
    console.print(
        f"{path}: {counts['classification']} classification, {counts['organisation']} "
        f"organisation, {counts['association']} association rules in "
        f"{counts['actions']} actions",
        highlight=False,
    )
    for problem in problems:
        console.print(f"[yellow]warning:[/] {problem}", highlight=False)


def _header_of(path: Path) -> dict[str, Any]:
    """Primary header of a FITS file, or of a header text dump (astropy Header.tofile)."""
    from qclib.fitsio import parse_cards, scan_fits

    with open(path, "rb") as handle:
        start = handle.read(9)
    if start.startswith(b"SIMPLE  =") and path.suffix.lower() in (".fits", ".fit", ".fts"):
        return dict(scan_fits(path).primary)
    lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    if len(lines) == 1 and len(lines[0]) > 80:  # one line of 80-character cards
        lines = [lines[0][i : i + 80] for i in range(0, len(lines[0]), 80)]
    header = parse_cards(line.ljust(80) for line in lines)
    if not header:
        raise ConfigError(f"{path}: neither a FITS file nor a FITS header text dump")
    return header


@main.command()
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="OCA rules to use (default: the instrument's own, from INSTRUME).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def classify(paths: tuple[Path, ...], rules_file: Path | None, as_json: bool) -> None:
    """Classify FITS files or header dumps: DO.CATG and the rule that matched."""
    from qclib.classify import classify_header
    from qclib.errors import QuarantineError
    from qclib.instruments import available_instruments, load_rules, read_rules

    given = read_rules(rules_file) if rules_file else None
    results: list[dict[str, Any]] = []
    for path in paths:
        try:
            header = _header_of(path)
        except QuarantineError as err:
            results.append({"file": str(path), "do_catg": None, "error": err.reason})
            continue
        ruleset = given
        if ruleset is None:
            instrume = str(header.get("INSTRUME", "")).strip().upper()
            if instrume not in available_instruments():
                results.append(
                    {
                        "file": str(path),
                        "do_catg": None,
                        "error": f"no rules for instrument {instrume or '?'}: "
                        "pass --rules FILE.oca",
                    }
                )
                continue
            ruleset = load_rules(instrume)
        result = classify_header(ruleset, header)
        results.append({"file": str(path), **result.as_dict()})
    if as_json:
        _print_json(results)
        return
    for r in results:
        if r.get("error"):
            console.print(f"[red]ERROR[/] {r['file']}: {r['error']}", highlight=False)
        elif r["do_catg"] == "UNCLASSIFIED":
            console.print(f"[bold red]UNCLASSIFIED[/] {r['file']}", highlight=False)
            for miss in r["near_misses"]:
                console.print(f"    {miss}", highlight=False)
        else:
            console.print(
                f"{r['do_catg']:<22} {r['file']}  [dim](line {r['rule_line']}: {r['rule']})[/]",
                highlight=False,
            )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def associate(ctx: click.Context, as_json: bool) -> None:
    """Classify every frame with the current rules and (re)build the association blocks."""
    from qclib.workflow.association import associate_workspace

    workspace = _workspace(ctx)
    summary = associate_workspace(workspace, _database(ctx))
    if as_json:
        _print_json(summary.__dict__)
        return
    for name, n in summary.blocks.items():
        added, changed, removed = summary.changes[name]
        console.print(
            f"{name}: {summary.frames[name]} frames, {n} ABs ({summary.incomplete[name]} "
            f"incomplete); {added} new, {changed} changed, {removed} removed",
            highlight=False,
        )
    for arcfile, misses in summary.unclassified:
        console.print(f"[bold red]UNCLASSIFIED[/] {arcfile}", highlight=False)
        for miss in misses:
            console.print(f"    {miss}", highlight=False)


@main.group("abs", invoke_without_command=True)
@night_option("--night", help="Only this night (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def association_blocks(ctx: click.Context, night: dt.date | None, as_json: bool) -> None:
    """List association blocks (run 'qc associate' first); 'qc abs show ID' for one."""
    if ctx.invoked_subcommand is not None:
        return
    from qclib.db import blocks as block_store

    with _database(ctx).transaction() as session:
        blocks = block_store.list_blocks(session, night=night)
    if as_json:
        _print_json([b.as_dict() for b in blocks])
        return
    table = Table(title=f"{len(blocks)} association block(s)")
    for column in ("AB", "action", "night", "raw", "calibrations", "state"):
        table.add_column(column, overflow="fold")
    for b in blocks:
        cals = ", ".join(
            f"{t.tag}:{'L' + str(t.chosen[0].level) if t.chosen else 'MISSING'}" for t in b.tags
        )
        state = b.completeness + (f": {b.reason}" if b.reason else "")
        table.add_row(b.id, b.action, b.night, str(len(b.inputs)), cals, state)
    console.print(table)


@association_blocks.command("show")
@click.argument("block_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def abs_show(ctx: click.Context, block_id: str, as_json: bool) -> None:
    """One AB with its association log."""
    from qclib.db import blocks as block_store

    _check_block_ids(ctx, [block_id])
    with _database(ctx).transaction() as session:
        block = block_store.get_block(session, block_id)
    assert block is not None
    if as_json:
        _print_json(block.as_dict())
        return
    reason = f" ({block.reason})" if block.reason else ""
    console.print(
        f"[bold]{block.id}[/]  {block.action} (recipe {block.recipe}), "
        f"night {block.night}: {block.completeness}{reason}",
        highlight=False,
    )
    console.print(f"setup: {block.setup}", highlight=False)
    console.print(f"raw inputs ({block.input_category}):", highlight=False)
    for arcfile in block.inputs:
        console.print(f"  {arcfile}", highlight=False)
    console.print(f"products: {', '.join(block.products)}", highlight=False)
    if block.parents:
        console.print(f"parents: {', '.join(block.parents)}", highlight=False)
    for tag in block.tags:
        console.print(
            f"[bold]{tag.tag}[/] ({tag.category}, minRet={tag.min_ret}, maxRet={tag.max_ret})",
            highlight=False,
        )
        for c in tag.chosen:
            console.print(
                f"  chosen  {c.ref}  Δt={c.delta_days:+.3f} d  level {c.level}  {c.status}",
                highlight=False,
            )
        if tag.missing_reason:
            console.print(f"  [red]missing[/] {tag.missing_reason}", highlight=False)
        for ref, why in tag.runners_up:
            console.print(f"  lost    {ref}: {why}", highlight=False)


@main.command()
@click.option(
    "--nights",
    type=click.IntRange(min=1),
    default=7,
    show_default=True,
    help="How many nights back to look.",
)
@night_option(
    "--until", indexed=False, help="Last night to look at (default: the newest with frames)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def calchecker(ctx: click.Context, nights: int, until: dt.date | None, as_json: bool) -> None:
    """Are the calibrations recent science needs present (OK), outdated (NOK) or missing?

    Judged on the frames indexed now (classified and associated in memory).
    """
    from qclib.workflow.calchecker import calibration_status

    status = calibration_status(_workspace(ctx), _database(ctx), nights=nights, until=until)
    start, end, checks = status.start, status.end, status.checks
    every = indexed_nights(ctx)
    if not any(start <= n <= end for n in every):
        if until is None:
            raise ConfigError(f"nothing to check: {_nights_text(every)}")
        raise click.BadParameter(
            f"no frames on nights {start} .. {end}; {_nights_text(every)}", param_hint="'--until'"
        )
    if as_json:
        _print_json(
            {
                "from": start.isoformat(),
                "until": end.isoformat(),
                "setups": [c.as_dict() for c in checks],
            }
        )
        return
    console.print(f"calibration check, nights {start} .. {end}")
    if not checks:
        console.print("no science setups in these nights")
    colour = {"OK": "green", "NOK": "yellow", "MISS": "bold red"}
    for check in checks:
        setup = ", ".join(f"{k}={v}" for k, v in check.setup.items())
        console.print(
            f"[{colour[check.verdict]}]{check.verdict:<4}[/] {check.instrument} "
            f"{check.action} ({setup})",
            highlight=False,
        )
        for c in check.calibrations:
            todo = f"  -> {c.action_required}" if c.action_required else ""
            console.print(
                f"      [{colour[c.verdict]}]{c.verdict:<4}[/] {c.tag}{todo}", highlight=False
            )


@main.command()
@click.argument("ids", nargs=-1)
@night_option("--night", help="Only blocks of this night (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def process(ctx: click.Context, ids: tuple[str, ...], night: dt.date | None, as_json: bool) -> None:
    """Run the recipes of complete association blocks (run 'qc associate' first).

    The recipes are those of qclib.recipes.registry; a block whose action names none
    (science, so far) waits and says so.
    """
    from qclib.workflow.process import process_blocks

    _check_block_ids(ctx, ids)
    workspace = _workspace(ctx)
    outcomes = process_blocks(workspace, _database(ctx), night=night, ids=list(ids) or None)
    if as_json:
        _print_json([o.as_dict() for o in outcomes])
        return
    colour = {"done": "green", "failed": "bold red", "waiting": "yellow", "skipped": "dim"}
    for o in outcomes:
        detail = ", ".join(o.products) if o.products else (o.reason or "")
        console.print(
            f"[{colour[o.status]}]{o.status:<8}[/] {o.ab_id}  {escape(detail)}", highlight=False
        )
    if not outcomes:
        console.print("nothing to process")


def _check_scheduler(ctx: click.Context, param: click.Parameter, address: str | None) -> Any:
    """``--scheduler``: a Dask address with a port (whether it answers, Dask says)."""
    if address is not None:
        from distributed.comm import parse_address
        from distributed.comm.addressing import parse_host_port

        try:
            parse_host_port(parse_address(address)[1])
        except ValueError as err:
            raise click.BadParameter(
                f"{address!r}: {err}; give tcp://HOST:PORT", ctx, param
            ) from None
    return address


def _executor_options(command: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--executor",
                type=click.Choice(["serial", "local", "dask"]),
                default="local",
                show_default=True,
                help="Where recipes and reports run: here, a local process pool, or Dask.",
            ),
            click.option(
                "--workers",
                type=click.IntRange(min=1),
                help="Pool or LocalCluster size (default: cores).",
            ),
            click.option(
                "--scheduler",
                callback=_check_scheduler,
                help="An existing Dask scheduler, tcp://HOST:PORT.",
            ),
        ]
    ):
        command = option(command)
    return command


def _open_workers(executor: str, workers: int | None, scheduler: str | None) -> Any:
    """The executor the options of ``_executor_options`` ask for (a scheduler means Dask)."""
    from qclib.workflow.executors import open_executor

    kind = "dask" if scheduler else executor
    return open_executor(kind, workers=workers, scheduler=scheduler)  # type: ignore[arg-type]


@main.command("run")
@night_option(
    "--night",
    indexed=False,
    help="Process only this night's blocks (YYYY-MM-DD); it must have frames once the "
    "inbox is ingested.",
)
@click.option("--no-reports", is_flag=True, help="Skip the report notebooks (qc report later).")
@_executor_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def run_command(
    ctx: click.Context,
    night: dt.date | None,
    no_reports: bool,
    executor: str,
    workers: int | None,
    scheduler: str | None,
    as_json: bool,
) -> None:
    """One incremental pass: ingest the inbox, associate, process, score, report."""
    from qclib.workflow.run import run_pass

    workspace = _workspace(ctx)
    # A night not indexed yet may arrive with the inbox: judged before the pass when
    # the inbox is empty, else once it is ingested.
    if (
        night is not None
        and night not in (every := indexed_nights(ctx))
        and not any(p.is_file() for p in workspace.inbox.rglob("*"))
    ):
        raise click.BadParameter(
            f"no frames on night {night} and the inbox is empty; {_nights_text(every)}",
            param_hint="'--night'",
        )
    with _open_workers(executor, workers, scheduler) as pool:
        summary = run_pass(
            workspace,
            _database(ctx),
            night=night,
            progress=not as_json,
            write_reports=not no_reports,
            workers=pool,
        )
    _print_pass(summary, as_json)
    if night is not None and night not in (every := indexed_nights(ctx)):
        raise ConfigError(
            f"no frames on night {night}, even with the inbox ingested; {_nights_text(every)}"
        )


def _print_pass(summary: Any, as_json: bool) -> None:
    if as_json:
        _print_json(
            {
                "ingested": summary.ingested,
                "blocks": summary.blocks,
                "processed": [o.as_dict() for o in summary.outcomes],
                "scored": summary.scored,
                "reports": [r.as_dict() for r in summary.reports],
                "certified": summary.certified,
                "archived": summary.archived,
                "seconds": summary.seconds,
                "science_programmes": summary.science_programmes,
            }
        )
        return
    files = ", ".join(f"{n} {s}" for s, n in sorted(summary.ingested.items())) or "no files"
    console.print(f"inbox: {files}")
    changed = ", ".join(f"{n} {k}" for k, n in summary.blocks.items() if n) or "unchanged"
    console.print(f"association blocks: {changed}")
    colour = {"done": "green", "failed": "bold red", "waiting": "yellow", "skipped": "dim"}
    for o in summary.outcomes:
        detail = ", ".join(o.products) if o.products else (o.reason or "")
        console.print(
            f"[{colour[o.status]}]{o.status:<8}[/] {o.ab_id}  {escape(detail)}", highlight=False
        )
    grades = ", ".join(f"{n} {g}" for g, n in sorted(summary.scored.items())) or "nothing new"
    console.print(f"scored: {grades}")
    for report in summary.reports:
        if report.status == "written":
            console.print(f"report   {report.html}", highlight=False)
        elif report.status == "failed":
            console.print(f"[bold red]report failed[/] {report.reason}", highlight=False)
    if summary.certified or summary.archived:
        console.print(
            f"certified by auto: {summary.certified}; archived: {len(summary.archived)}"
            + "".join(
                f"\n[bold red]not archived[/] product {pid}: {what}"
                for pid, what in summary.archived.items()
                if what.startswith("not archived")
            ),
            highlight=False,
        )
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in summary.seconds.items())
    console.print(f"{'work done' if summary.did_something else 'nothing new'} ({timing})")


@main.command()
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True),
    help="Minutes between passes (default: qc.toml's).",
)
@click.option(
    "--passes", type=click.IntRange(min=1), help="Stop after this many passes (default: never)."
)
@_executor_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per pass.")
@click.pass_context
def watch(
    ctx: click.Context,
    interval: float | None,
    passes: int | None,
    executor: str,
    workers: int | None,
    scheduler: str | None,
    as_json: bool,
) -> None:
    """Run a pass every interval, and as soon as new files arrive in the inbox."""
    from qclib.workflow.run import watch as watch_inbox

    workspace = _workspace(ctx)
    minutes = interval or workspace.config.workflow.interval_minutes
    if not as_json:
        console.print(
            f"watching {workspace.inbox} (a pass every {minutes:g} min, and on new files)"
        )
    with _open_workers(executor, workers, scheduler) as pool:
        watch_inbox(
            workspace,
            _database(ctx),
            interval_minutes=minutes,
            passes=passes,
            on_pass=lambda summary: _print_pass(summary, as_json),
            workers=pool,
        )


@main.command()
@click.argument("instrument", callback=_check_instrument)
@click.pass_context
def health(ctx: click.Context, instrument: str) -> None:
    """Write the health-check report (trend plots of every graded QC parameter)."""
    from qclib.workflow.reports import render_health_check

    workspace = _workspace(ctx)
    console.print(f"health check: {render_health_check(workspace, instrument)}", highlight=False)


@main.command()
@click.argument("ids", nargs=-1)
@night_option("--night", help="Every processed block of this night (YYYY-MM-DD).")
@_executor_options
@click.pass_context
def report(
    ctx: click.Context,
    ids: tuple[str, ...],
    night: dt.date | None,
    executor: str,
    workers: int | None,
    scheduler: str | None,
) -> None:
    """(Re)write the report (notebook + HTML) of blocks: given ids, or a night's."""
    from qclib.db import blocks as block_store
    from qclib.db import products as product_store
    from qclib.workflow.reports import render_reports

    database = _database(ctx)
    _check_block_ids(ctx, ids)
    if not ids:
        with database.transaction() as session:
            states = product_store.block_states(session)
            chosen = block_store.list_blocks(session, night=night)
        ids = tuple(b.id for b in chosen if states.get(b.id, ("",))[0] == "done")
    if not ids:
        raise click.UsageError("no processed block to report on; give ids or --night")
    with _open_workers(executor, workers, scheduler) as pool:
        outcomes = render_reports(_workspace(ctx), database, list(ids), executor=pool.executor)
    for outcome in outcomes:
        detail = outcome.html if outcome.status == "written" else outcome.reason
        console.print(f"{outcome.status:<11} {outcome.ab_id}  {detail}", highlight=False)


@main.command()
@instrument_option()
@click.option(
    "--rescore", is_flag=True, help="Grade every value again (past rules for past nights)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def score(ctx: click.Context, instrument: str | None, rescore: bool, as_json: bool) -> None:
    """Grade QC values OK / NOK / UNSCORED (MONITORED: no rule) with the instrument's rules."""
    from qclib.workflow.scoring import score_values

    summary = score_values(
        _database(ctx),
        instrument=instrument,
        rescore=rescore,
        review_fraction=_workspace(ctx).config.certification.review_fraction,
    )
    if as_json:
        _print_json({"scored": summary.scored, "grades": summary.grades})
        return
    grades = ", ".join(f"{n} {g}" for g, n in sorted(summary.grades.items())) or "nothing new"
    console.print(f"scored {summary.scored} value(s): {grades}")


@main.command()
@instrument_option()
@night_option("--night", help="Only this night (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def grades(
    ctx: click.Context, instrument: str | None, night: dt.date | None, as_json: bool
) -> None:
    """Grades rolled up: instrument, night, block, product (NOK detectors named)."""
    from rich.tree import Tree

    from qclib.db import qc1 as qc1_store
    from qclib.qc.scoring import roll_up_levels

    with _database(ctx).transaction() as session:
        graded = qc1_store.graded_paths(session, instrument=instrument, night=night)
    levels = roll_up_levels(graded)
    names = ("instrument", "night", "ab_id", "pro_catg", "detector")
    if as_json:
        _print_json(
            [
                {**dict(zip(names, path, strict=False)), "grade": grade}
                for path, grade in levels.items()
                if len(path) <= len(names)
            ]
        )
        return
    if not levels:
        console.print("no graded values (qc score grades new ones)")
        return
    colour = {"OK": "green", "NOK": "bold red", "UNSCORED": "yellow", "MONITORED": "dim"}

    def label(path: tuple[str, ...]) -> str:
        return f"{path[-1]}  [{colour[levels[path]]}]{levels[path]}[/]"

    trees: dict[tuple[str, ...], Tree] = {}
    for path in sorted((p for p in levels if len(p) <= 4), key=len):
        if len(path) == 1:
            trees[path] = Tree(label(path))
            continue
        text = label(path)
        if len(path) == 4:
            bad = sorted(
                p[4] for p, g in levels.items() if len(p) == 5 and p[:4] == path and g == "NOK"
            )
            text += f"  NOK: {', '.join(bad)}" if bad else ""
        trees[path] = trees[path[:-1]].add(text, highlight=False)
    for path, tree in trees.items():
        if len(path) == 1:
            console.print(tree)


@main.group()
def qc1() -> None:
    """The QC1 database: every QC value with its grade."""


def _check_out_file(ctx: click.Context, param: click.Parameter, out: Path | None) -> Any:
    """An output file's folder must exist (a mistyped path makes no folders)."""
    if out is not None and not out.parent.is_dir():
        raise click.BadParameter(f"no folder {out.parent} to write {out.name} into", ctx, param)
    return out


@qc1.command("export")
@instrument_option()
@click.option("--param", "parameter", help="Only this QC parameter (e.g. QC.RON).")
@night_option("--since", indexed=False, help="Only nights from this date (YYYY-MM-DD).")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_check_out_file,
    help="File (default: stdout).",
)
@click.pass_context
def qc1_export(
    ctx: click.Context,
    instrument: str | None,
    parameter: str | None,
    since: dt.date | None,
    fmt: str,
    out: Path | None,
) -> None:
    """Export QC values, grades and rules as CSV or JSON."""
    import csv
    import io

    from qclib.atomicfile import write_text_atomic
    from qclib.db import qc1 as qc1_store

    database = _database(ctx)
    with database.transaction() as session:
        rows = qc1_store.export_rows(
            session, instrument=instrument, parameter=parameter, since=since
        )
    if parameter is not None and not rows:
        # Unknown, or known but not measured yet: the instruments' QC catalogues tell.
        workspace = _workspace(ctx)
        catalogue = {
            name
            for config in workspace.instruments().values()
            if instrument in (None, config.name)
            for parameters in config.qc.values()
            for name in parameters
        }
        if parameter not in catalogue:
            raise click.BadParameter(
                unknown("QC parameter", parameter, catalogue), param_hint="'--param'"
            )
    if fmt == "json":
        text = json.dumps(rows, indent=1) + "\n"
    else:
        buffer = io.StringIO()
        fields = list(rows[0]) if rows else ["instrument", "night", "parameter", "value"]
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    if out is None:
        click.echo(text, nl=False)
    else:
        write_text_atomic(out, text)
        console.print(f"{len(rows)} row(s) -> {out}")


@main.group()
def event() -> None:
    """The quality-event log: interventions that explain jumps in trends."""


@event.command("add")
@click.argument("text")
@instrument_option(required=True, help="Instrument (e.g. OMEGACAM).")
@night_option("--date", "when", indexed=False, required=True, help="Date of the event.")
@click.pass_context
def event_add(ctx: click.Context, text: str, instrument: str, when: dt.date) -> None:
    """Record an event: qc event add "CCD 66 controller replaced" --instrument OMEGACAM --date D"""
    from qclib.db import qc1 as qc1_store

    if not text.strip():
        raise click.BadParameter("an event needs a text saying what happened", param_hint="TEXT")
    with _database(ctx).transaction() as session:
        event_id = qc1_store.add_event(session, instrument=instrument, date=when, text=text)
    console.print(f"event {event_id} recorded: {when} {instrument} {text}", highlight=False)


@event.command("list")
@instrument_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def event_list(ctx: click.Context, instrument: str | None, as_json: bool) -> None:
    """The recorded quality events."""
    from qclib.db import qc1 as qc1_store

    with _database(ctx).transaction() as session:
        events = qc1_store.list_events(session, instrument=instrument)
    if as_json:
        _print_json(events)
        return
    for e in events:
        console.print(f"{e['date']}  {e['instrument']:<10} {e['text']}", highlight=False)
    if not events:
        console.print("no events")


# ---------------------------------------------------------------- dashboards
@main.group()
def user() -> None:
    """Reviewers: who may open the dashboards and certify there (one token each)."""


@user.command("add")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (name, token).")
@click.pass_context
def user_add(ctx: click.Context, name: str, as_json: bool) -> None:
    """Add reviewer NAME and print their token (shown this once only)."""
    from qclib.db import reviewers as reviewer_store

    with _database(ctx).transaction() as session:
        token = reviewer_store.add_reviewer(session, name)
    if as_json:
        _print_json({"name": name, "token": token})
        return
    console.print(f"reviewer [bold]{name}[/] added; their token is shown this once:")
    click.echo(f"  {token}")
    console.print("their dashboards link (qc dashboards; another host or port: edit it):")
    click.echo(f"  http://127.0.0.1:8866/?token={token}")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def user_list(ctx: click.Context, as_json: bool) -> None:
    """The reviewers (their tokens are not kept, only a hash)."""
    from qclib.db import reviewers as reviewer_store

    with _database(ctx).transaction() as session:
        found = reviewer_store.list_reviewers(session)
    if as_json:
        _print_json(found)
        return
    for r in found:
        console.print(f"{r['name']:<24} since {r['created_at'][:19]}", highlight=False)
    if not found:
        console.print("no reviewers: 'qc user add NAME' adds one")


@user.command("remove")
@click.argument("name")
@click.pass_context
def user_remove(ctx: click.Context, name: str) -> None:
    """Remove reviewer NAME: their token stops working (within seconds on a running server)."""
    from qclib.db import reviewers as reviewer_store

    with _database(ctx).transaction() as session:
        reviewer_store.remove_reviewer(session, name)
    console.print(f"reviewer {name} removed; their token no longer opens the dashboards")


@main.command("dashboards")
@click.option(
    "--port", default=8866, show_default=True, type=click.IntRange(1, 65535), help="Port."
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to serve on (0.0.0.0: all)."
)
@click.option(
    "--refresh-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    show_default=True,
    help="calChecker and monitor: seconds between refreshes (changeable on the page).",
)
@click.option(
    "--pool-size",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Preheated kernels per dashboard (0: none).",
)
@click.option(
    "--cull-idle-minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=15.0,
    show_default=True,
    help="Stop a closed page's kernel after this long idle.",
)
@click.option("--show-tracebacks", is_flag=True, help="Show Python tracebacks on the pages.")
@click.pass_context
def dashboards_command(
    ctx: click.Context,
    port: int,
    host: str,
    refresh_seconds: float,
    pool_size: int,
    cull_idle_minutes: float,
    show_tracebacks: bool,
) -> None:
    """Serve the dashboards (calChecker, monitor, health check, certification); every
    page needs a reviewer's token ('qc user add NAME')."""
    from qclib.dashboards.server import serve_dashboards

    serve_dashboards(
        _workspace(ctx),
        _database(ctx),
        host=host,
        port=port,
        pool_size=pool_size,
        refresh_s=refresh_seconds,
        cull_idle_s=round(cull_idle_minutes * 60),
        show_tracebacks=show_tracebacks,
        announce=lambda text: console.print(text, highlight=False),
    )


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--nights",
    type=click.IntRange(min=1),
    default=7,
    show_default=True,
    help="How many nights back to show.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the pages written).")
@click.pass_context
def publish(ctx: click.Context, directory: Path, nights: int, as_json: bool) -> None:
    """Write static HTML pages (calChecker, monitor, health-check trends) into DIRECTORY."""
    from qclib.dashboards.publish import publish_pages

    written = publish_pages(_workspace(ctx), _database(ctx), directory, nights=nights)
    if as_json:
        _print_json([str(p) for p in written])
        return
    console.print(f"{len(written)} page(s) in {directory}; open {directory / 'index.html'}")


@main.command()
@click.option(
    "--workspace-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-workspace"),
    show_default=True,
)
@night_option("--night", indexed=False, default="2026-11-23", show_default=True)
@click.option("--scale", type=click.Choice(["test", "full"]), default="full", show_default=True)
@click.option(
    "--workers", type=click.IntRange(min=1), help="Local process pool size (default: cores)."
)
def demo(workspace_dir: Path, night: dt.date, scale: str, workers: int | None) -> None:
    """Simulate an OmegaCAM and a HAWK-I night, run them through `qc run`, show the results."""
    from qclib.demo import run_demo

    run_demo(workspace_dir, night, scale=scale, console=console, workers=workers)


if __name__ == "__main__":
    # `python -m qclib.cli`: run the `qc` of the imported module, which has every verb
    # registered (registering here too would import this file twice, circularly).
    from qclib.cli import main as registered_main

    registered_main()
else:
    # Review, certification, audit log, archive, CalSelector; science and OB grades;
    # ESO's pipelines: their own modules.
    from qclib import cli_certification, cli_eso, cli_science

    cli_certification.register(main)
    cli_science.register(main)
    cli_eso.register(main)
