"""``qc review``, ``qc certify``, ``qc audit``, ``qc archive``, ``qc calselector``: thin."""

from __future__ import annotations

import datetime as dt
import getpass
import sys
from pathlib import Path

import click
from rich.table import Table

from qclib.cli import (
    _database,
    _print_json,
    _workspace,
    console,
    err_console,
    instrument_option,
    night_option,
    unknown,
)
from qclib.errors import ConfigError


@click.command()
@instrument_option()
@night_option("--night", help="Only this night (YYYY-MM-DD).")
@click.option("--all", "include_undrawn", is_flag=True, help="Also undrawn all-OK products.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def review(
    ctx: click.Context,
    instrument: str | None,
    night: dt.date | None,
    include_undrawn: bool,
    as_json: bool,
) -> None:
    """The review queue: NOK products, then a random fraction of the all-OK ones."""
    from qclib.archive.review import review_queue

    items = review_queue(
        _workspace(ctx),
        _database(ctx),
        instrument=instrument,
        night=night,
        include_undrawn=include_undrawn,
    )
    if as_json:
        _print_json([i.as_dict() for i in items])
        return
    if not items:
        console.print("review queue empty")
        return
    table = Table("id", "night", "instrument", "category", "grade", "why", "product")
    colour = {"OK": "green", "NOK": "bold red", "UNSCORED": "yellow", "MONITORED": "dim"}
    for item in items:
        why = item.reasons[0] if item.reasons else "not drawn: auto-certified after the delay"
        more = f" (+{len(item.reasons) - 1} more)" if len(item.reasons) > 1 else ""
        table.add_row(
            str(item.product_id),
            item.night.isoformat(),
            item.instrument,
            item.pro_catg,
            f"[{colour[item.grade]}]{item.grade}[/]",
            why + more,
            item.name,
        )
    console.print(table)
    console.print("qc certify ID... --ok|--reject --comment TEXT decides", highlight=False)


def _product_ids(ctx: click.Context, refs: tuple[str, ...]) -> list[int]:
    """Product ids from ids or product file names; an unknown one is an error."""
    from qclib.db import products as product_store

    with _database(ctx).transaction() as session:
        every = product_store.list_products(session)
    by_id = {str(p.id): p.id for p in every}
    by_name = {p.name: p.id for p in every}
    ids = []
    for ref in refs:
        found = by_id.get(ref) if ref.isdigit() else by_name.get(Path(ref).name)
        if found is None:
            known = by_id if ref.isdigit() else by_name
            raise ConfigError(unknown("product", ref, known, "'qc review --all' lists them"))
        ids.append(found)
    return ids


@click.command()
@click.argument("refs", nargs=-1, required=True, metavar="ID...")
@click.option("--ok", "verdict", flag_value="certify", help="Certify.")
@click.option("--reject", "verdict", flag_value="reject", help="Reject (needs --comment).")
@click.option("--comment", help="Why: needed to reject, and to certify over a NOK score.")
@click.option("--as", "reviewer", help="Reviewer name for the audit log (default: your login).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def certify(
    ctx: click.Context,
    refs: tuple[str, ...],
    verdict: str | None,
    comment: str | None,
    reviewer: str | None,
    as_json: bool,
) -> None:
    """Certify (--ok) or reject (--reject) products, by id or file name."""
    from qclib.archive.certification import decide

    if verdict is None:
        raise click.UsageError("say --ok or --reject")
    decisions = decide(
        _workspace(ctx),
        _database(ctx),
        _product_ids(ctx, refs),
        decision=verdict,  # type: ignore[arg-type]
        comment=comment,
        reviewer=reviewer or getpass.getuser(),
    )
    if as_json:
        _print_json([d.as_dict() for d in decisions])
        return
    for d in decisions:
        line = f"{d.product_id:>5} {d.name}: {d.message}"
        if d.archived:
            line += f"; {'archived as ' if d.archived.startswith('M.') else ''}{d.archived}"
        console.print(line, highlight=False)
        for name in d.tainted:
            console.print(f"      tainted, processed again by the next pass: {name}")


@click.group(invoke_without_command=True)
@click.option("--product", "product", help="Only this product (id or file name).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def audit(ctx: click.Context, product: str | None, as_json: bool) -> None:
    """The audit log of certification decisions (append-only)."""
    if ctx.invoked_subcommand is not None:
        return
    from qclib.db import audit as audit_store

    with _database(ctx).transaction() as session:
        if product is None:
            entries = audit_store.entries(session)
        elif product.isdigit():
            entries = audit_store.entries(session, product_id=int(product))
        else:
            entries = audit_store.entries(session, product=Path(product).name)
    if product is not None and not entries:
        _product_ids(ctx, (product,))  # unknown: says so; known: nothing decided yet
    if as_json:
        _print_json([e.as_dict() for e in entries])
        return
    for e in entries:
        change = f"{e.old_status or '-'} -> {e.new_status or '-'}"
        comment = f'  "{e.comment}"' if e.comment else ""
        console.print(
            f"{e.id:>5} {e.at[:19]}  {e.actor:<10} {e.action:<16} {e.product}  {change}{comment}",
            highlight=False,
        )
    if not entries:
        console.print("no entries")


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def audit_verify(ctx: click.Context, as_json: bool) -> None:
    """Check the audit log's hash chain; exit 1 naming each changed or removed row."""
    from qclib.archive.audit import verify_audit

    checked, problems = verify_audit(_workspace(ctx), _database(ctx))
    if as_json:
        _print_json({"rows": checked, "ok": not problems, "problems": problems})
    else:
        for problem in problems:
            err_console.print(f"[bold red]audit:[/] {problem}", highlight=False)
        if not problems:
            console.print(f"audit log intact: {checked} rows, chain and head verified")
    if problems:
        sys.exit(1)


@click.group()
def archive() -> None:
    """The archive of certified products and their reports."""


@archive.command("list")
@instrument_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def archive_list(ctx: click.Context, instrument: str | None, as_json: bool) -> None:
    """Archived files, with their product and status."""
    from qclib.archive.store import list_archive

    files = list_archive(_database(ctx), instrument=instrument)
    if as_json:
        _print_json([f.as_dict() for f in files])
        return
    table = Table("name", "kind", "night", "category", "status", "product")
    for f in files:
        status = f.status + (f" ({f.status_reason})" if f.status_reason else "")
        table.add_row(f.name, f.kind, f.night.isoformat(), f.pro_catg, status, f.product)
    console.print(table if files else "the archive is empty")


@archive.command("get")
@click.argument("name")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def archive_get(ctx: click.Context, name: str, out_dir: Path) -> None:
    """Copy an archived file out, verified on read."""
    from qclib.archive.store import get_archived

    path = get_archived(_workspace(ctx), _database(ctx), name, out_dir)
    console.print(f"{path} (SHA-256 and FITS checksums verified)", highlight=False)


@archive.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def archive_verify(ctx: click.Context, as_json: bool) -> None:
    """Every archived file against the database; exit 1 naming each bad one."""
    from qclib.archive.store import verify_archive

    check = verify_archive(_workspace(ctx), _database(ctx))
    if as_json:
        _print_json({"files": check.checked, "ok": check.ok, "problems": list(check.problems)})
    else:
        for problem in check.problems:
            err_console.print(f"[bold red]archive:[/] {problem}", highlight=False)
        if check.ok:
            console.print(f"archive intact: {check.checked} files verified")
    if not check.ok:
        sys.exit(1)


@click.command()
@click.argument("ref", metavar="FILE|ARCFILE")
@click.option(
    "--format", "fmt", type=click.Choice(["xml", "json"]), default="xml", show_default=True
)
@click.pass_context
def calselector(ctx: click.Context, ref: str, fmt: str) -> None:
    """The calibrations a raw frame needs, as ESO's CalSelector association tree."""
    from qclib.archive.calselector import calselector_tree, to_xml

    tree = calselector_tree(_workspace(ctx), _database(ctx), ref)
    if fmt == "json":
        _print_json(tree.as_dict())
    else:
        click.echo(to_xml(tree), nl=False)


def register(main: click.Group) -> None:
    """Add these commands to ``qc``."""
    for command in (review, certify, audit, archive, calselector):
        main.add_command(command)
