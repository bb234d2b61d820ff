"""Plotly figures of the dashboards: the health check's trend of one QC parameter.

Beyond ``qclib.reports.trend_figure`` (the block reports'), the health check shows
which products were certified or rejected (marker shape), the limits as they were
on each night (a rule's limits change with its ``valid_from``), and the quality
events as vertical lines named by their text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from qclib.dashboards.panels import COLOURS

CERTIFIED = ("certified", "archived", "superseded")
SYMBOLS = {"certified": "circle", "rejected": "x-thin-open", "undecided": "circle-open"}
SHAPE_WORDS = {"certified": "certified", "rejected": "rejected", "undecided": "not decided yet"}


def decision_of(status: str) -> str:
    """certified / rejected / undecided, from a product's lifecycle status."""
    if status in CERTIFIED:
        return "certified"
    return "rejected" if status == "rejected" else "undecided"


def health_figure(
    rows: pd.DataFrame,
    *,
    title: str,
    events: Sequence[dict[str, Any]] = (),
    height: int = 460,
) -> go.Figure:
    """Values against night: colour = grade, shape = decision, dashed = limits.

    ``rows``: QC1 rows (``qclib.db.qc1.export_rows``) of one parameter, one or all
    detectors.
    """
    fig = go.Figure()
    if rows.empty:
        fig.add_annotation(
            text="no value of this parameter",
            showarrow=False,
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
            font={"size": 16},
        )
        fig.update_layout(title=title, height=height)
        return fig
    rows = rows.assign(
        decision=[decision_of(s) for s in rows["status"]],
        shown_grade=rows["grade"].fillna("UNSCORED"),
    )
    for grade in ("NOK", "OK", "UNSCORED", "MONITORED"):
        group = rows[rows["shown_grade"] == grade]
        if group.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=group["night"],
                y=group["value"],
                mode="markers",
                name=f"graded {grade}",
                marker={
                    "color": COLOURS.get(grade, "#6b7280"),
                    "symbol": [SYMBOLS[d] for d in group["decision"]],
                    "size": 10,
                    "line": {"width": 2, "color": COLOURS.get(grade, "#6b7280")},
                },
                customdata=list(
                    zip(
                        group["detector"],
                        group["product"],
                        group["decision"],
                        group["reason"].fillna("not graded"),
                        strict=True,
                    )
                ),
                hovertemplate=(
                    "%{x}  %{y:.5g}<br>%{customdata[0]}  %{customdata[1]}<br>"
                    "%{customdata[2]}: %{customdata[3]}<extra></extra>"
                ),
            )
        )
    for decision in ("certified", "undecided", "rejected"):
        if (rows["decision"] == decision).any():
            fig.add_trace(
                go.Scatter(
                    x=[None],
                    y=[None],
                    mode="markers",
                    name=SHAPE_WORDS[decision],
                    marker={"symbol": SYMBOLS[decision], "color": "#374151", "size": 10},
                    hoverinfo="skip",
                )
            )
    limits = rows.dropna(subset=["grade"]).groupby("night")[["low", "high"]].last().sort_index()
    for bound, word in (("low", "lower limit"), ("high", "upper limit")):
        if bound in limits and limits[bound].notna().any():
            fig.add_trace(
                go.Scatter(
                    x=list(limits.index),
                    y=limits[bound],
                    mode="lines",
                    line={"dash": "dash", "color": "#b91c1c", "shape": "hv", "width": 1.5},
                    name=word,
                    hovertemplate=f"{word} %{{y:.5g}}<extra></extra>",
                )
            )
    first, last = str(rows["night"].min()), str(rows["night"].max())
    for event in events:
        if first <= event["date"] <= last:
            fig.add_vline(x=event["date"], line_color="#1d4ed8", line_width=2)
            text = event["text"]
            fig.add_annotation(
                x=event["date"],
                y=1,
                yref="paper",
                text=f"⚑ {text if len(text) <= 40 else text[:39] + '…'}",
                hovertext=f"{event['date']}: {text}",
                showarrow=False,
                xanchor="left",
                yanchor="bottom",
                font={"color": "#1d4ed8", "size": 11},
            )
    unit = str(rows["unit"].iloc[0]) if "unit" in rows else ""
    parameter = str(rows["parameter"].iloc[0]) if "parameter" in rows else "value"
    grid = {"gridcolor": "#e5e7eb", "linecolor": "#9ca3af", "zeroline": False}
    xaxis: dict[str, Any] = {"title": "night", "type": "date", "tickformat": "%Y-%m-%d", **grid}
    span = pd.to_datetime(rows["night"]).agg(["min", "max"])
    if (span["max"] - span["min"]).days <= 14:
        xaxis["dtick"] = 86_400_000  # one tick a night, not every six hours
    fig.update_layout(
        title={"text": title},
        xaxis=xaxis,
        yaxis={"title": f"{parameter} [{unit}]" if unit else parameter, **grid},
        height=height,
        margin={"l": 60, "r": 20, "t": 70, "b": 50},
        legend={"orientation": "v"},
        # No template: plotly_white would add 8 kB to every redraw; the few styles
        # wanted are set here.
        template="none",
        plot_bgcolor="white",
        paper_bgcolor="white",
        font={"family": "Helvetica, Arial, sans-serif", "size": 12, "color": "#1f2937"},
        hovermode="closest",
    )
    return fig
