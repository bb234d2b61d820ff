"""What the both-ways report shows of a ``both_ways.json``
(``qclib.peers.hawki_both_ways``): the quantities against the truth, each block's
wall time and memory on both sides, and figures of both.

``quantity_cells`` is also the docs' table of the same numbers
(scripts/peer_table.py): one wording in both places.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from pandas.io.formats.style import Styler

from qclib.reports.display import use_offline_renderer

#: Who is closer to the truth, in words.
CLOSER = {"qclib": "native", "esorex": "ESO", "tie": "tie", None: "not the same quantity"}
QUANTITY_COLUMNS = ["quantity", "truth", "native", "ESO (esorex)", "native tolerance", "closer"]


def _percent(value: float) -> str:
    return f"{100 * value:+.2f} %"


def _range(values: list[float], fmt: Callable[[float], str]) -> str:
    low, high = min(values), max(values)
    return fmt(low) if fmt(low) == fmt(high) else f"{fmt(low)} … {fmt(high)}"


def _relative(row: dict[str, Any], side: str) -> str:
    errors = row[f"{side}_errors"]
    return f"{_percent(sum(errors) / len(errors))} ({_range(errors, _percent)})"


def _pixels(row: dict[str, Any], side: str) -> str:
    false = sum(c[f"{side}_false"] for c in row["chips"].values())
    return f"{100 * row[f'{side}_recall']:.1f} % found, {false} false flags"


def quantity_cells(row: dict[str, Any]) -> list[str]:
    """One quantity as text: label, truth, native, ESO, the native tolerance and the
    side closer to the truth. Errors are relative to the truth, the mean over the
    chips with their range; pixels: found and false flags, all chips together."""
    chips = list(row["chips"].values())
    tolerance = row["tolerance"]
    if row["kind"] == "pixels":
        truth = f"{sum(c['truth'] for c in chips)} pixels"
        ours, theirs = _pixels(row, "qclib"), _pixels(row, "esorex")
        limit = (
            f"≥ {100 * tolerance['recall']:.0f} % found, "
            f"≤ {100 * tolerance['false']:.0f} % of flags false"
        )
    else:
        unit = f" {row['unit']}" if row["unit"] else ""
        truth = _range([c["truth"] for c in chips], lambda v: f"{v:.4g}") + unit
        ours = _relative(row, "qclib")
        limit = f"± {100 * tolerance:.0f} %"
        if row["kind"] == "particles":
            rejected = _range([c["esorex"] for c in chips], lambda v: f"{v:.3g}")
            particle = _range([c["particle_pixels_per_s"] for c in chips], lambda v: f"{v:.3g}")
            theirs = (
                f"QC.PARTICLE_RATE {rejected} pixels rejected per s while combining "
                f"(pixels hit by particles: {particle} per s)"
            )
        else:
            theirs = _relative(row, "esorex")
    return [row["label"], truth, ours, theirs, limit, CLOSER[row["closer"]]]


def load_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A ``both_ways.json``; figures shown from here on draw offline."""
    use_offline_renderer()
    return json.loads(Path(path).read_text())


def quantity_table(result: dict[str, Any]) -> pd.DataFrame:
    """The quantities both sides measure, against the truth (empty without one)."""
    rows = [quantity_cells(row) for row in (result["quantities"] or {}).values()]
    return pd.DataFrame(rows, columns=QUANTITY_COLUMNS)


def _side_cells(block: dict[str, Any] | None) -> list[Any]:
    if block is None:
        return ["—", None, None, "no block of the same frames"]
    reason = (block["reason"] or "").splitlines()[:1]  # a failed job's: esorex's line
    outcome = (
        block["status"] if block["status"] == "done" else ": ".join([block["status"], *reason])
    )
    return [f"{block['action']} ({block['recipe']})", block["wall_s"], block["peak_mb"], outcome]


def cost_table(result: dict[str, Any]) -> pd.DataFrame:
    """Each block on both sides (a native block beside the ESO block of the same raw
    frames): wall time (s) and peak memory (MB above the process at rest), the
    recipe's own time as esorex states it, and the ratio of the wall times."""
    rows = []
    for pair in result["blocks"]:
        native, eso = pair["native"], pair["eso"]
        frames = (native or eso)["inputs"]
        ratio = (
            eso["wall_s"] / native["wall_s"]
            if native and eso and native["status"] == eso["status"] == "done"
            else None
        )
        rows.append(
            [frames, *_side_cells(native), *_side_cells(eso), eso and eso["recipe_s"], ratio]
        )
    return pd.DataFrame(
        rows,
        columns=[
            "raw frames",
            "native block",
            "native s",
            "native MB",
            "native outcome",
            "ESO block",
            "ESO s",
            "ESO MB",
            "ESO outcome",
            "esorex recipe s",
            "ESO / native time",
        ],
    )


def _labels(result: dict[str, Any]) -> list[str]:
    """A block pair's name on a figure's axis: when its first frame was taken (the
    block id's time), the action, the raw frames; made unique."""
    labels: list[str] = []
    for pair in result["blocks"]:
        block = pair["native"] or pair["eso"]
        when = re.search(r"T(\d\d:\d\d:\d\d)", block["ab_id"] or "")
        label = f"{when[1] if when else ''} {block['action']} [{block['inputs']}]".strip()
        labels.append(label if label not in labels else f"{label} #{labels.count(label) + 1}")
    return labels


def cost_figure(result: dict[str, Any], column: str, title: str, unit: str) -> go.Figure:
    """Bars of ``column`` ("s" or "MB") per block, native beside ESO."""
    table = cost_table(result)
    labels = _labels(result)
    fig = go.Figure()
    for side, colour in (("native", "#2a6f97"), ("ESO", "#c1121f")):
        fig.add_bar(name=side, x=labels, y=table[f"{side} {column}"], marker_color=colour)
    fig.update_layout(
        title=title, barmode="group", yaxis_title=unit, xaxis_tickangle=-30, height=480
    )
    return fig


def error_figure(result: dict[str, Any]) -> go.Figure:
    """Each chip's relative error against the truth, per quantity, on both sides,
    with the native tolerance as a band."""
    fig = go.Figure()
    rows = [
        (key, row) for key, row in (result["quantities"] or {}).items() if row["kind"] == "relative"
    ]
    for side, name, colour, symbol in (
        ("qclib", "native", "#2a6f97", "circle"),
        ("esorex", "ESO", "#c1121f", "diamond"),
    ):
        xs, ys, texts = [], [], []
        for key, row in rows:
            for chip, error in zip(row["chips"], row[f"{side}_errors"], strict=True):
                xs.append(key)
                ys.append(100 * error)
                texts.append(chip)
        fig.add_scatter(
            x=xs,
            y=ys,
            mode="markers",
            name=name,
            text=texts,
            marker={"color": colour, "symbol": symbol, "size": 9},
            hovertemplate="%{x} %{text}: %{y:+.2f} %<extra>" + name + "</extra>",
        )
    for i, (_key, row) in enumerate(rows):
        tol = 100 * row["tolerance"]
        fig.add_shape(
            type="rect",
            x0=i - 0.4,
            x1=i + 0.4,
            y0=-tol,
            y1=tol,
            line_width=0,
            fillcolor="rgba(42,111,151,0.12)",
        )
    fig.update_layout(
        title="Error against the truth per chip (band: the native tolerance)",
        yaxis_title="error, %",
        height=450,
    )
    return fig


def verdict(result: dict[str, Any]) -> list[str]:
    """Sentences saying, per quantity, which side is closer to the truth and by how
    much; ESO's wins are said first."""
    said: dict[str, list[str]] = {"esorex": [], "qclib": [], "tie": [], None: []}
    for row in (result["quantities"] or {}).values():
        if row["closer"] is None:
            said[None].append(f"{row['label']}: the two measure different things")
            continue
        errors = (
            f"error {100 * row['qclib_error']:.2f} % native, {100 * row['esorex_error']:.2f} % ESO"
        )
        said[row["closer"]].append(f"{row['label']} ({errors})")
    lines = []
    if said["esorex"]:
        lines.append(
            "ESO's recipes are closer to the truth for: " + "; ".join(said["esorex"]) + "."
        )
    if said["qclib"]:
        lines.append(
            "The native recipes are closer to the truth for: " + "; ".join(said["qclib"]) + "."
        )
    if said["tie"]:
        lines.append("Both are equally close for: " + "; ".join(said["tie"]) + ".")
    lines += [f"Not compared: {text}." for text in said[None]]
    return lines


def styled(table: pd.DataFrame) -> Styler:
    """A table as the report shows it: left-aligned, numbers to two decimals, no index."""
    return (
        table.style.hide(axis="index")
        .format(precision=2, na_rep="—")
        .set_properties(**{"text-align": "left", "vertical-align": "top"})
        .set_table_styles([{"selector": "th", "props": [("text-align", "left")]}])
    )
