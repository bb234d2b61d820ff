"""QC parameter trends: values against time per detector, with thresholds, grades,
certified products and quality events (block reports and the health check)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from qclib.db import qc1

GRADE_COLOURS = {"OK": "#2ca02c", "NOK": "#d62728", "UNSCORED": "#7f7f7f"}


def trend_figure(
    rows: pd.DataFrame,
    parameter: str,
    *,
    events: Sequence[dict[str, Any]] = (),
    highlight: Collection[str] = (),
    title: str = "",
) -> go.Figure:
    """One parameter's values (rows of the QC1 table) by night and detector.

    Colour is the grade, a filled marker a certified product; products named in
    ``highlight`` are ringed; the limits of the newest graded value are dashed lines;
    quality events are vertical lines with their text.
    """
    fig = go.Figure()
    for detector, group in rows.groupby("detector"):
        fig.add_trace(
            go.Scatter(
                x=group["night"],
                y=group["value"],
                mode="markers",
                name=str(detector),
                marker={
                    "color": [GRADE_COLOURS.get(g, "#7f7f7f") for g in group["grade"]],
                    "symbol": [
                        "circle" if s == "certified" else "circle-open" for s in group["status"]
                    ],
                    "size": 8,
                },
                text=group["reason"].fillna("not graded"),
                hovertemplate="%{x} %{y:.4g}<br>%{text}",
            )
        )
    current = rows[rows["product"].isin(set(highlight))]
    if not current.empty:
        fig.add_trace(
            go.Scatter(
                x=current["night"],
                y=current["value"],
                mode="markers",
                name="this block",
                marker={
                    "size": 16,
                    "color": "rgba(0,0,0,0)",
                    "line": {"width": 2, "color": "black"},
                },
            )
        )
    graded = rows.dropna(subset=["grade"]).sort_values("mid_mjd")
    if not graded.empty:
        for bound in ("low", "high"):
            value = graded[bound].dropna()
            if not value.empty:
                fig.add_hline(y=float(value.iloc[-1]), line_dash="dash", line_color="#d62728")
    first = str(rows["night"].min())
    for event in events:
        if event["date"] >= first:
            fig.add_vline(x=event["date"], line_color="#1f77b4")
            fig.add_annotation(
                x=event["date"],
                y=1,
                yref="paper",
                text=event["text"],
                showarrow=False,
                textangle=-90,
                xanchor="right",
            )
    fig.update_layout(
        title=title or parameter,
        xaxis_title="night",
        yaxis_title=str(rows["unit"].iloc[0]) or parameter,
        height=350,
    )
    return fig


def health_trends(
    instrument: str,
    workspace: str | os.PathLike[str] | None = None,
    *,
    parameters: Sequence[str] | None = None,
    days: int = 90,
) -> list[go.Figure]:
    """The health-check plots of an instrument: each graded QC parameter of each product
    category over the last ``days`` nights with data."""
    from qclib.reports.abreport import use_offline_renderer
    from qclib.workspace import load_workspace

    use_offline_renderer()
    ws = load_workspace(Path(workspace) if workspace else None)
    database = ws.open_database()
    try:
        with database.transaction() as session:
            rows = qc1.export_rows(session, instrument=instrument.upper())
            events = qc1.list_events(session, instrument=instrument.upper())
    finally:
        database.close()
    if not rows:
        return []
    table = pd.DataFrame(rows)
    last = dt.date.fromisoformat(str(table["night"].max()))
    table = table[table["night"] >= (last - dt.timedelta(days=days)).isoformat()]
    figures = []
    for (pro_catg, parameter), group in table.groupby(["pro_catg", "parameter"]):
        if parameters and parameter not in parameters:
            continue
        if not parameters and group["grade"].isin(["OK", "NOK"]).sum() == 0:
            continue  # the health check shows what is graded
        figures.append(
            trend_figure(group, str(parameter), events=events, title=f"{pro_catg} {parameter}")
        )
    return figures
