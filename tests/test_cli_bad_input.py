"""Every ``qc`` command refuses bad input with one line on stderr and a non-zero exit.

The commands are walked from click's own tree, so a new command, or a new option
taking a value, fails ``test_every_command_and_option_has_bad_input`` until it gets
a case here (or, for free text, a reason in ``FREE``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from qclib.cli import main
from qclib.workspace import load_workspace

ENV = {"QC_DB_URL": ""}  # SQLite in the workspace, whatever the shell says
#: Placeholders filled in per workspace: an existing file, an existing folder, a new path.
A_FILE, A_FOLDER, NEW = "<file>", "<folder>", "<new>"


@dataclass(frozen=True)
class Bad:
    """Arguments after the command's name; ``named``: what the error line must name."""

    args: tuple[str, ...]
    named: str


def bad(*args: str, named: str | None = None) -> Bad:
    return Bad(args, args[-1] if named is None else named)


def nights(option: str, *, indexed: bool = True, before: tuple[str, ...] = ()) -> list[Bad]:
    """A malformed date, and (``indexed``) a well-formed one without frames."""
    cases = [bad(*before, option, "2026-02-30")]
    return [*cases, bad(*before, option, "1999-01-01")] if indexed else cases


SIM = ("HAWKI", "--night", "2026-11-23", "--out", NEW, "--scale", "test")
EXTRA = "(extra argument)"  # commands that take no value: an argument they do not take
SUBCOMMAND = "(subcommand)"  # groups: a subcommand that does not exist

CASES: dict[str, dict[str, list[Bad]]] = {
    "": {
        "workspace": [
            bad("-w", A_FILE, "frames", named=A_FILE),
            bad("-w", NEW, "frames", named="qc init"),
        ],
        SUBCOMMAND: [bad("nope")],
    },
    "abs": {"night": nights("--night"), SUBCOMMAND: [bad("nope")]},
    "abs show": {"block_id": [bad("NOPE")]},
    "archive": {SUBCOMMAND: [bad("nope")]},
    "archive get": {
        "name": [bad("NOPE", "--out", NEW, named="NOPE")],
        "out_dir": [bad("NOPE", "--out", A_FILE)],
    },
    "archive list": {"instrument": [bad("--instrument", "NOPE")]},
    "archive verify": {EXTRA: [bad("NOPE")]},
    "associate": {EXTRA: [bad("NOPE")]},
    "audit": {
        "product": [bad("--product", "NOPE"), bad("--product", "999")],
        SUBCOMMAND: [bad("nope")],
    },
    "audit verify": {EXTRA: [bad("NOPE")]},
    "calchecker": {
        "nights": [bad("--nights", "-3"), bad("--nights", "0")],
        "until": [*nights("--until", indexed=False), bad("--until", "1999-01-01")],
    },
    "calselector": {"ref": [bad("NOPE")], "fmt": [bad("NOPE", "--format", "xml2")]},
    "certify": {"refs": [bad("999", "--ok", named="999"), bad("x.fits", "--ok", named="x.fits")]},
    "classify": {"paths": [bad(NEW), bad(A_FOLDER)], "rules_file": [bad(A_FILE, "--rules", NEW)]},
    "dashboards": {
        "port": [bad("--port", "0")],
        "refresh_seconds": [bad("--refresh-seconds", "-2.5")],
        "pool_size": [bad("--pool-size", "-1")],
        "cull_idle_minutes": [bad("--cull-idle-minutes", "-2.5")],
    },
    "demo": {
        "workspace_dir": [bad("--workspace-dir", A_FILE)],
        "night": nights("--night", indexed=False),
        "scale": [bad("--scale", "huge")],
        "workers": [bad("--workers", "0")],
    },
    "event": {SUBCOMMAND: [bad("nope")]},
    "event add": {
        "text": [bad(" ", "--instrument", "HAWKI", "--date", "2026-11-23", named="TEXT")],
        "instrument": [bad("x", "--date", "2026-11-23", "--instrument", "NOPE")],
        "when": nights("--date", indexed=False, before=("x", "--instrument", "HAWKI")),
    },
    "event list": {"instrument": [bad("--instrument", "NOPE")]},
    "eso": {SUBCOMMAND: [bad("nope")]},
    "eso pipelines": {EXTRA: [bad("NOPE")]},
    "eso actions": {"name": [bad("NOPE")]},
    "eso both-ways": {
        "raw_dir": [bad(NEW, "--out", NEW, named=NEW), bad(A_FOLDER, "--out", NEW, named=A_FOLDER)],
        "out_dir": [bad(A_FOLDER, "--out", A_FILE)],
    },
    "eso harvest": {
        "path": [bad(NEW, "--pipeline", "giraf", named=NEW)],
        "name": [bad(A_FILE, "--pipeline", "NOPE", named="NOPE")],
    },
    "frames": {"night": nights("--night"), "instrument": [bad("--instrument", "NOPE")]},
    "grades": {"instrument": [bad("--instrument", "NOPE")], "night": nights("--night")},
    "health": {"instrument": [bad("NOPE")]},
    "ingest": {"paths": [bad(NEW)]},
    "init": {"directory": [bad(A_FILE)]},
    "process": {"ids": [bad("NOPE")], "night": nights("--night")},
    "science": {
        "night": nights("--night"),
        "prog_id": [bad("--prog-id", "NOPE")],
        "ab_ids": [bad("--ab", "NOPE")],
        "executor": [bad("--executor", "slurm")],
        "workers": [bad("--workers", "0")],
        "scheduler": [bad("--scheduler", "nope"), bad("--scheduler", "tcp://127.0.0.1")],
    },
    "ob-grades": {"night": nights("--night"), "prog_id": [bad("--prog-id", "NOPE")]},
    "package": {
        "prog_id": [bad("--out", NEW, "--prog-id", "NOPE")],
        "out": [bad("--prog-id", "110.2345.001", "--out", A_FOLDER, named=A_FOLDER)],
        SUBCOMMAND: [bad("nope")],
    },
    "package verify": {"path": [bad(NEW), bad(A_FILE, named="neither a package folder nor a tar")]},
    "publish": {"directory": [bad(A_FILE)], "nights": [bad(NEW, "--nights", "0")]},
    "qc1": {SUBCOMMAND: [bad("nope")]},
    "qc1 export": {
        "instrument": [bad("--instrument", "NOPE")],
        "parameter": [bad("--param", "QC.NOPE")],
        "since": nights("--since", indexed=False),
        "fmt": [bad("--format", "xlsx")],
        "out": [bad("--out", A_FOLDER), bad("--out", f"{NEW}/x.csv", named=NEW)],
    },
    "quarantine": {EXTRA: [bad("NOPE")]},
    "report": {
        "ids": [bad("NOPE")],
        "night": nights("--night"),
        "executor": [bad("--executor", "slurm")],
        "workers": [bad("--workers", "0")],
        "scheduler": [bad("--scheduler", "nope"), bad("--scheduler", "tcp://127.0.0.1")],
    },
    "review": {"instrument": [bad("--instrument", "NOPE")], "night": nights("--night")},
    "rules": {SUBCOMMAND: [bad("nope")]},
    "rules check": {"path": [bad(NEW), bad(A_FOLDER)]},
    "run": {
        "night": [*nights("--night", indexed=False), bad("--night", "1999-01-01")],
        "executor": [bad("--executor", "slurm")],
        "workers": [bad("--workers", "0")],
        "scheduler": [bad("--scheduler", "nope"), bad("--scheduler", "tcp://127.0.0.1")],
    },
    "score": {"instrument": [bad("--instrument", "NOPE")]},
    "simulate": {
        "instrument": [bad("NOPE", *SIM[1:], named="NOPE")],
        "night": nights("--night", indexed=False, before=SIM),
        "out_dir": [bad(*SIM, "--out", A_FILE)],
        "seed": [bad(*SIM, "--seed", "-1")],
        "scale": [bad(*SIM, "--scale", "huge")],
        "workers": [bad(*SIM, "--workers", "0")],
        "only": [bad(*SIM, "--only", "lamp")],
        "nights": [bad(*SIM, "--nights", "0")],
        "science_every": [bad(*SIM, "--science-every", "0")],
    },
    "user": {SUBCOMMAND: [bad("nope")]},
    "user add": {"name": [bad("alice"), bad("9 lives", named="9 lives")]},
    "user list": {EXTRA: [bad("NOPE")]},
    "user remove": {"name": [bad("NOPE")]},
    "watch": {
        "interval": [bad("--interval", "0"), bad("--interval", "-2.5")],
        "passes": [bad("--passes", "0")],
        "executor": [bad("--executor", "slurm")],
        "workers": [bad("--workers", "0")],
        "scheduler": [bad("--scheduler", "nope"), bad("--scheduler", "tcp://127.0.0.1")],
    },
}

#: Options whose value is free text, and why no value of it is bad input.
FREE = {
    ("certify", "comment"): "the reviewer's own words",
    ("certify", "reviewer"): "a name for the audit log",
    ("dashboards", "host"): "an address; the server says whether it can listen there",
}


def _commands(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, click.Command]]:
    yield " ".join(path), command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, (*path, name))


def _takes_a_value(param: click.Parameter) -> bool:
    return not (isinstance(param, click.Option) and (param.is_flag or param.count))


def test_every_command_and_option_has_bad_input() -> None:
    expected = {}
    for path, command in _commands(main):
        names = {p.name for p in command.params if _takes_a_value(p)}
        names -= {name for (where, name) in FREE if where == path}
        if isinstance(command, click.Group):
            names.add(SUBCOMMAND)
        expected[path] = names or {EXTRA}
    got = {path: set(params) for path, params in CASES.items()}
    assert got == expected


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, hawki_night: Path) -> Path:
    """A HAWK-I night ingested and associated; one reviewer, alice."""
    ws = tmp_path_factory.mktemp("bad-input") / "ws"
    runner = CliRunner(env=ENV)
    for args in (
        ["init", str(ws)],
        ["-w", str(ws), "ingest", str(hawki_night)],
        ["-w", str(ws), "associate"],
        ["-w", str(ws), "user", "add", "alice"],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
    (ws.parent / "a-file.txt").write_text("not a folder\n")
    return ws


def _argv(ws: Path, path: str, case: Bad) -> tuple[list[str], str]:
    places = {
        A_FILE: str(ws.parent / "a-file.txt"),
        A_FOLDER: str(ws.parent),
        NEW: str(ws.parent / "nothing-here"),
    }

    def fill(text: str) -> str:
        for slot, value in places.items():
            text = text.replace(slot, value)
        return text

    return ["-w", str(ws), *path.split(), *map(fill, case.args)], fill(case.named)


ALL_CASES = [
    pytest.param(path, case, id=f"{path or 'qc'}:{param}:{' '.join(case.args)}")
    for path, params in CASES.items()
    for param, cases in params.items()
    for case in cases
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("path", "case"), ALL_CASES)
def test_bad_input_is_one_line_naming_it(workspace: Path, path: str, case: Bad) -> None:
    argv, named = _argv(workspace, path, case)
    result = CliRunner(env=ENV).invoke(main, argv)
    assert result.exit_code != 0, f"accepted: qc {' '.join(argv)}\n{result.output}"
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and named in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_the_issue_examples_as_a_user_types_them(workspace: Path) -> None:
    """In a real process: exit code 2, one line naming the value and what exists."""
    qc = Path(sys.executable).with_name("qc")
    known = ", ".join(sorted({c.name for c in load_workspace(workspace).instruments().values()}))
    assert "HAWKI" in known
    expected = {
        ("report", "NOPE"): r"unknown block 'NOPE'; \d+ known, HAWKI\.\S+ \.\. HAWKI\.\S+ \(",
        ("calchecker", "--nights", "-3"): r"'--nights': -3 is not in the range x>=1\.$",
        ("score", "--instrument", "NOPE"): rf"unknown instrument 'NOPE'; known: {known}$",
    }
    for args, message in expected.items():
        result = subprocess.run(
            [str(qc), "-w", str(workspace), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **ENV},
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert re.search(message, result.stderr.strip()), result.stderr
        assert result.stdout == ""
