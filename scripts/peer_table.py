"""Render the qclib-vs-ESO table in docs/calibration.md from the peer test's numbers.

    .venv/bin/pytest tests/test_esorex_peer.py     # writes tests/artifacts/esorex_peer.json
                                                   # (qc eso both-ways on a full night)
    .venv/bin/python scripts/peer_table.py         # adopts them: docs/peer_comparison.json
                                                   # and the table in docs/calibration.md
    .venv/bin/python scripts/peer_table.py --check # the doc's table is the committed numbers

The table sits between the two marker lines below in docs/calibration.md; everything
between them is replaced, nothing else is touched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from qclib.reports.both_ways import quantity_cells

ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ROOT / "tests" / "artifacts" / "esorex_peer.json"
NUMBERS = ROOT / "docs" / "peer_comparison.json"
DOC = ROOT / "docs" / "calibration.md"
BEGIN = "<!-- peer-table: rendered by scripts/peer_table.py from docs/peer_comparison.json -->"
END = "<!-- /peer-table -->"


def _cells(row: dict) -> list[str]:
    cells = quantity_cells(row)
    if row["closer"] == "esorex":
        cells[-1] = f"**{cells[-1]}**"
    return cells


def render(numbers: dict) -> str:
    """The markdown table (with its marker lines) for the peer test's numbers."""
    setup = numbers["setup"]
    lines = [
        BEGIN,
        "",
        f"{setup['instrument']} at {setup['scale']} size, seed {setup['seed']}, night "
        f"{setup['night']}; errors are relative to the simulator's truth, mean over the "
        "four chips (range in brackets); pixels: all chips together.",
        "",
        "| quantity | truth | native (qclib) | ESO (esorex) | native tolerance "
        "| closer to the truth |",
        "|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in numbers["quantities"].values()]
    lines += ["", END]
    return "\n".join(lines)


def replace_table(doc: str, table: str) -> str:
    """``doc`` with the text between the markers (markers included) replaced."""
    if doc.count(BEGIN) != 1 or doc.count(END) != 1 or doc.index(BEGIN) > doc.index(END):
        raise SystemExit(
            f"docs/calibration.md must hold the marker lines once each, in order:\n{BEGIN}\n{END}"
        )
    head, rest = doc.split(BEGIN)
    _, tail = rest.split(END)
    return head + table + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the doc; exit 1 if stale")
    parser.add_argument("--artifact", type=Path, default=ARTIFACT, help="the peer test's output")
    parser.add_argument("--numbers", type=Path, default=NUMBERS, help="the committed numbers")
    parser.add_argument("--doc", type=Path, default=DOC, help="the document holding the table")
    args = parser.parse_args(argv)
    if not args.check:
        if not args.artifact.exists():
            raise SystemExit(
                f"{args.artifact} not found: run '.venv/bin/pytest tests/test_esorex_peer.py' "
                "first (it needs esorex and cpl-plugin-hawki)"
            )
        shutil.copyfile(args.artifact, args.numbers)
    doc = args.doc.read_text()
    rendered = replace_table(doc, render(json.loads(args.numbers.read_text())))
    if args.check:
        if rendered != doc:
            print(
                f"the table in {args.doc} is not the rendering of {args.numbers}: run "
                "'.venv/bin/python scripts/peer_table.py' (never edit the table by hand)"
            )
            return 1
        return 0
    args.doc.write_text(rendered)
    print(f"{args.numbers} and the table in {args.doc} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
