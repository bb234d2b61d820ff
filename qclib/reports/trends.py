"""QC parameter trends: values at their observation time, per detector, with the limits
stored with each score, grades, certified and rejected products and quality events
(block reports and the health check).

The time axis reads the same whether the history is one night or several years: values
sit at their product's ``mid_mjd`` (UTC), the range is padded to at least
``MIN_WINDOW`` (one block's values share one instant), and the tick labels follow the
span: hours and dates within a few days, dates within a few months, months within a
few years, years beyond (``time_axis``); zooming in switches to finer labels.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from qclib.db import qc1
from qclib.nights import local_noon_utc, mjd_to_datetime
from qclib.reports.display import message_figure, use_offline_renderer
from qclib.reports.grades import grade_label, grade_rank, grade_style

#: Product statuses that count as certified: archiving it, or a newer master
#: superseding it, does not undo a QC scientist's certification.
CERTIFIED_STATUSES = frozenset({"certified", "archived", "superseded"})
REJECTED_STATUSES = frozenset({"rejected"})

#: Marker of each product standing: filled certified, open pending, a cross rejected.
STANDING_SYMBOLS = {"certified": "circle", "not yet certified": "circle-open", "rejected": "x"}

#: The narrowest time range a trend shows (all of one block's values share one instant).
MIN_WINDOW = dt.timedelta(hours=12)
LIMIT_COLOUR = "#d62728"
EVENT_COLOUR = "#1f77b4"

_MINUTE_MS = 60_000
_HOUR_MS = 60 * _MINUTE_MS
_DAY_MS = 24 * _HOUR_MS


@dataclass(frozen=True)
class TickLevel:
    """Tick labels for one zoom level: used while plotly's tick spacing (``dtick``,
    milliseconds or ``"M<months>"``) lies in ``dtick_range``, and as the axis's
    ``tickformat`` when the shown span is at most ``max_span``."""

    name: str
    tickformat: str
    dtick_range: tuple[int | str | None, int | str | None]
    max_span: dt.timedelta | None


#: From fine to coarse. No level shows fractions of a second.
TICK_LEVELS = (
    TickLevel("seconds", "%H:%M:%S<br>%d %b %Y", (None, 30_000), dt.timedelta(minutes=5)),
    TickLevel("hours", "%H:%M<br>%d %b %Y", (_MINUTE_MS, 12 * _HOUR_MS), dt.timedelta(days=3)),
    TickLevel("days", "%d %b %Y", (_DAY_MS, 14 * _DAY_MS), dt.timedelta(days=120)),
    TickLevel("months", "%b %Y", ("M1", "M6"), dt.timedelta(days=3 * 366)),
    TickLevel("years", "%Y", ("M12", None), None),
)


@dataclass(frozen=True)
class TimeAxis:
    """A trend's x range (naive UTC) and its tick labels."""

    start: dt.datetime
    end: dt.datetime
    level: TickLevel

    @property
    def finer_levels(self) -> tuple[TickLevel, ...]:
        return TICK_LEVELS[: TICK_LEVELS.index(self.level)]

    def layout(self) -> dict[str, Any]:
        """The plotly ``xaxis`` of this axis."""
        ends = [_plotly_time(self.start), _plotly_time(self.end)]
        return {
            "type": "date",
            "title": {"text": "observation time (UTC)"},
            "range": ends,
            # Autoscale (modebar, double click) would shrink one night to milliseconds.
            "autorangeoptions": {"include": ends},
            "tickformat": self.level.tickformat,
            # Zooming in switches to finer labels; the coarser ones keep `tickformat`.
            "tickformatstops": [
                {"dtickrange": list(level.dtick_range), "value": level.tickformat}
                for level in self.finer_levels
            ],
        }


def time_axis(
    first: dt.datetime, last: dt.datetime, *, min_window: dt.timedelta = MIN_WINDOW
) -> TimeAxis:
    """The x range of values observed from ``first`` to ``last``: padded by 5 % (at
    least an hour) on each side, widened around their middle to ``min_window``; and the
    tick labels for that span.

    >>> night = time_axis(dt.datetime(2026, 11, 23, 17), dt.datetime(2026, 11, 23, 17, 5))
    >>> night.start.isoformat(), night.end.isoformat()
    ('2026-11-23T11:02:30', '2026-11-23T23:02:30')
    >>> night.level.tickformat
    '%H:%M<br>%d %b %Y'
    >>> time_axis(dt.datetime(2026, 1, 1), dt.datetime(2026, 12, 31)).level.tickformat
    '%b %Y'
    """
    span = last - first
    pad = max(span * 0.05, dt.timedelta(hours=1))
    start, end = first - pad, last + pad
    if end - start < min_window:
        middle = first + span / 2
        start, end = middle - min_window / 2, middle + min_window / 2
    start = start.replace(microsecond=0)  # whole seconds: the range as plotly gets it
    end = end.replace(microsecond=0) + dt.timedelta(seconds=1 if end.microsecond else 0)
    shown = end - start
    level = next(lv for lv in TICK_LEVELS if lv.max_span is None or shown <= lv.max_span)
    return TimeAxis(start, end, level)


def observation_times(mid_mjd: pd.Series) -> pd.Series:
    """UTC datetimes (naive, to the millisecond) of Modified Julian Dates.

    >>> observation_times(pd.Series([61367.75])).iloc[0]
    Timestamp('2026-11-23 18:00:00')
    """
    times = [mjd_to_datetime(float(m)).replace(tzinfo=None) for m in mid_mjd]
    return pd.Series(pd.to_datetime(times), index=mid_mjd.index).dt.round("ms")


def product_standing(status: str | None) -> str:
    """certified, rejected or not yet certified (a product's status, as a reader needs it).

    >>> [product_standing(s) for s in ("archived", "rejected", "scored")]
    ['certified', 'rejected', 'not yet certified']
    """
    if status in CERTIFIED_STATUSES:
        return "certified"
    if status in REJECTED_STATUSES:
        return "rejected"
    return "not yet certified"


def _plotly_time(when: dt.datetime | pd.Timestamp) -> str:
    return pd.Timestamp(when).strftime("%Y-%m-%d %H:%M:%S")


def _text(value: Any) -> str:
    return "" if value is None or value != value else str(value)


def trend_figure(
    rows: pd.DataFrame,
    parameter: str,
    *,
    events: Sequence[dict[str, Any]] = (),
    highlight: Collection[str] = (),
    title: str = "",
    timezone: str = "UTC",
) -> go.Figure:
    """One parameter's values (rows of the QC1 table, ``qc1.export_rows``) against
    their observation time.

    Colour is the grade (``qclib.reports.grades``); a filled marker is a certified
    product, an open one a product not certified yet, a cross a rejected one; products
    named in ``highlight`` are ringed; faint lines join each detector's values. The
    limits stored with the scores are dashed lines (steps where they changed, one line
    per detector where detectors differ). Quality events are vertical lines with their
    text, at the local noon (``timezone``) that starts the night of their date.
    """
    if rows.empty:
        return message_figure(f"{title or parameter}: no values")
    table = rows.assign(
        time=observation_times(rows["mid_mjd"]),
        label=rows["grade"].map(grade_label),
        rank=rows["grade"].map(grade_rank),
        standing=rows["status"].map(product_standing),
    ).sort_values(["time", "detector"])
    axis = time_axis(table["time"].min().to_pydatetime(), table["time"].max().to_pydatetime())
    unit = _text(table["unit"].iloc[0])
    fig = go.Figure()
    _add_detector_lines(fig, table)
    _add_values(fig, table, unit)
    _add_limits(fig, table, axis)
    current = table[table["product"].isin(set(highlight))]
    if not current.empty:
        fig.add_trace(
            go.Scatter(
                x=current["time"],
                y=current["value"],
                mode="markers",
                name="this block",
                hoverinfo="skip",
                marker={
                    "size": 18,
                    "color": "rgba(0,0,0,0)",
                    "line": {"width": 2, "color": "black"},
                },
            )
        )
    _add_events(fig, events, axis, timezone)
    fig.update_layout(
        title={"text": title or parameter},
        xaxis=axis.layout(),
        yaxis_title=unit or parameter,
        template="plotly_white",
        height=420,
        margin={"l": 70, "r": 20, "t": 60, "b": 40},
        legend={"orientation": "h", "x": 0, "y": -0.3, "yanchor": "top"},
        hovermode="closest",
    )
    return fig


def _add_detector_lines(fig: go.Figure, table: pd.DataFrame) -> None:
    """Faint lines joining each detector's values: a detector that drifts stands out."""
    for detector, group in table.groupby("detector", sort=True):
        if len(group) > 1:
            fig.add_trace(
                go.Scatter(
                    x=group["time"],
                    y=group["value"],
                    mode="lines",
                    line={"width": 1, "color": "rgba(100,100,100,0.25)"},
                    name=str(detector),
                    showlegend=False,
                    hoverinfo="skip",
                )
            )


def _add_values(fig: go.Figure, table: pd.DataFrame, unit: str) -> None:
    """One trace per grade and product standing, so that the legend explains colours
    and symbols; the hover names the night, product, detector, value, grade, reason."""
    hover = (
        "<b>%{customdata[3]}</b>: %{y:.5g}" + (f" {unit}" if unit else "") + "<br>"
        "night %{customdata[0]}, %{x|%Y-%m-%d %H:%M:%S} UTC<br>"
        "%{customdata[1]} (%{customdata[5]})<br>"
        "detector %{customdata[2]}<br>"
        "%{customdata[4]}<extra></extra>"
    )
    standings = list(STANDING_SYMBOLS)
    keys = table[["rank", "label", "standing"]].drop_duplicates()
    keys = keys.assign(order=keys["standing"].map(standings.index)).sort_values(["rank", "order"])
    for label, standing in keys[["label", "standing"]].itertuples(index=False):
        group = table[(table["label"] == label) & (table["standing"] == standing)]
        style = grade_style(group["grade"].iloc[0])
        open_marker = standing != "certified"
        fig.add_trace(
            go.Scatter(
                x=group["time"],
                y=group["value"],
                mode="markers",
                name=f"{label}, {standing}",
                marker={
                    "symbol": STANDING_SYMBOLS[standing],
                    "color": style.colour,
                    "size": 10,
                    "line": {"width": 2 if open_marker else 0, "color": style.colour},
                },
                customdata=list(
                    zip(
                        group["night"],
                        group["product"],
                        group["detector"],
                        group["label"],
                        group["reason"].map(_text),
                        group["status"].map(_text),
                        strict=True,
                    )
                ),
                hovertemplate=hover,
            )
        )


def _add_limits(fig: go.Figure, table: pd.DataFrame, axis: TimeAxis) -> None:
    """The low and high limits stored with the scores: one line when every detector
    shares them, else one per detector; steps where they change, held to the end."""
    shown = False
    for bound in ("low", "high"):
        limited = table.dropna(subset=[bound])
        if limited.empty:
            continue
        shared = bool((limited.groupby("product")[bound].nunique() <= 1).all())
        groups = (
            [("every detector", limited.drop_duplicates("product"))]
            if shared
            else list(limited.groupby("detector", sort=True))
        )
        for detector, group in groups:
            values = [float(v) for v in group[bound]]
            if shared and len(set(values)) == 1:  # one limit for all: across the plot
                x, y = [axis.start, axis.end], values[:1] * 2
            else:
                x, y = [*group["time"], axis.end], [*values, values[-1]]
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines",
                    line={"color": LIMIT_COLOUR, "dash": "dash", "width": 1.5 if shared else 1},
                    opacity=1 if shared else 0.6,
                    line_shape="hv",
                    name="limits" if shared else "limits (per detector)",
                    legendgroup="limits",
                    showlegend=not shown,
                    hovertemplate=f"{bound} limit %{{y:.5g}} ({detector})<extra></extra>",
                )
            )
            shown = True


def _add_events(
    fig: go.Figure, events: Sequence[dict[str, Any]], axis: TimeAxis, timezone: str
) -> None:
    for event in events:
        when = local_noon_utc(dt.date.fromisoformat(str(event["date"])), timezone)
        when = when.replace(tzinfo=None)
        if not axis.start <= when <= axis.end:
            continue
        fig.add_shape(
            type="line",
            xref="x",
            yref="paper",
            x0=_plotly_time(when),
            x1=_plotly_time(when),
            y0=0,
            y1=1,
            line={"color": EVENT_COLOUR, "width": 1.5},
        )
        fig.add_annotation(
            x=_plotly_time(when),
            y=1,
            yref="paper",
            text=str(event["text"]),
            hovertext=f"quality event of {event['date']}: {event['text']}",
            showarrow=False,
            textangle=-90,
            xanchor="right",
            yanchor="top",
            bgcolor="rgba(255,255,255,0.85)",
            font={"color": EVENT_COLOUR, "size": 11},
        )


def health_trends(
    instrument: str,
    workspace: str | os.PathLike[str] | None = None,
    *,
    parameters: Sequence[str] | None = None,
    days: int = 90,
) -> list[go.Figure]:
    """The health-check plots of an instrument: each graded QC parameter of each product
    category over the last ``days`` nights with data."""
    from qclib.instruments import load_instrument
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
    timezone = load_instrument(instrument.upper()).site.timezone
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
            trend_figure(
                group,
                str(parameter),
                events=events,
                title=f"{pro_catg} {parameter}",
                timezone=timezone,
            )
        )
    return figures
