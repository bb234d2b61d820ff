"""Trend plots read the same for one night and for a year: values at their observation
time, a padded date axis whose labels follow the span (never fractions of a second),
limits as stored with the scores, certified / rejected products and quality events."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest

from qclib.db import products as product_store
from qclib.db import qc1
from qclib.nights import datetime_to_mjd, local_noon_utc, mjd_to_datetime
from qclib.reports import load_report, trend_figure
from qclib.reports.trends import MIN_WINDOW, TICK_LEVELS, time_axis

#: d3 time-format directives below one second: milliseconds, microseconds.
SUBSECOND = re.compile(r"%[-_0]?[LfQ]|%S\.")


def _rows(times: list[dt.datetime], **columns) -> pd.DataFrame:
    """QC1 rows (as ``qc1.export_rows`` gives them) of one parameter, one per time and
    detector; ``columns`` override the defaults, a list giving one value per time."""
    detectors = columns.pop("detectors", ["CCD1", "CCD2"])
    rows = []
    for i, when in enumerate(times):
        for detector in detectors:
            row = {
                "instrument": "OMEGACAM",
                "night": (when - dt.timedelta(hours=15)).date().isoformat(),
                "mid_mjd": datetime_to_mjd(when),
                "ab_id": f"AB{i}_MASTER_BIAS",
                "pro_catg": "MASTER_BIAS",
                "product": f"MASTER_BIAS_{i}.fits",
                "status": "certified",
                "detector": detector,
                "parameter": "QC.RON",
                "value": 2.0 + 0.01 * i,
                "unit": "ADU",
                "grade": "OK",
                "reason": "within limits (range@2020-01-01)",
                "rule": "MASTER_BIAS/QC.RON/range@2020-01-01",
                "low": 1.5,
                "high": 3.0,
            }
            for key, value in columns.items():
                row[key] = value[i] if isinstance(value, list) else value
            rows.append(row)
    return pd.DataFrame(rows)


def _range(fig) -> tuple[pd.Timestamp, pd.Timestamp]:
    start, end = fig.layout.xaxis.range
    return pd.Timestamp(start), pd.Timestamp(end)


def _formats(fig) -> list[str]:
    return [fig.layout.xaxis.tickformat] + [s.value for s in fig.layout.xaxis.tickformatstops]


def _value_traces(fig) -> list:
    return [t for t in fig.data if t.mode == "markers" and t.name != "this block"]


def test_one_night_of_stored_values_sits_at_its_observation_times(omegacam_scored) -> None:
    database = omegacam_scored.open_database()
    with database.transaction() as session:
        rows = qc1.export_rows(session, instrument="OMEGACAM", parameter="QC.RON")
        mid_mjd = {
            p.path.rsplit("/", 1)[-1]: p.mid_mjd for p in product_store.list_products(session)
        }
    database.close()
    table = pd.DataFrame(rows).query("pro_catg == 'MASTER_BIAS'")
    assert table["night"].nunique() == 1 and len(table) == 4  # one block, four detectors
    fig = trend_figure(table, "QC.RON")

    start, end = _range(fig)
    assert end - start >= pd.Timedelta(MIN_WINDOW)  # hours, not the milliseconds of old
    assert fig.layout.xaxis.type == "date"
    assert fig.layout.xaxis.tickformat == "%H:%M<br>%d %b %Y"
    assert not any(SUBSECOND.search(f) for f in _formats(fig)), _formats(fig)

    seen = 0
    for trace in _value_traces(fig):
        for x, (night, product, detector, grade, reason, status) in zip(
            trace.x, trace.customdata, strict=True
        ):
            when = mjd_to_datetime(mid_mjd[product]).replace(tzinfo=None)
            assert abs(pd.Timestamp(x) - pd.Timestamp(when)) <= pd.Timedelta(seconds=1)
            assert start <= pd.Timestamp(x) <= end
            assert night == "2026-11-23" and detector.startswith("ESO_CCD_")
            assert (grade, status) == ("OK", "scored") and "within limits" in reason
            seen += 1
    assert seen == len(table)
    hover = _value_traces(fig)[0].hovertemplate
    for shown in ("night %{customdata[0]}", "%{customdata[1]}", "detector %{customdata[2]}"):
        assert shown in hover
    assert "%{y" in hover and "%{customdata[3]}" in hover and "%{customdata[4]}" in hover


def test_a_year_of_values_gets_a_date_axis_over_the_year() -> None:
    times = [dt.datetime(2026, 1, 1, 23, 30) + dt.timedelta(days=7 * i) for i in range(53)]
    fig = trend_figure(_rows(times), "QC.RON")
    start, end = _range(fig)
    assert start <= pd.Timestamp(times[0]) and end >= pd.Timestamp(times[-1])
    assert pd.Timedelta(days=365) <= end - start <= pd.Timedelta(days=420)
    assert fig.layout.xaxis.tickformat == "%b %Y"
    assert not any(SUBSECOND.search(f) for f in _formats(fig))
    xs = sorted(pd.Timestamp(x) for t in _value_traces(fig) for x in t.x)
    assert xs[0] == pd.Timestamp(times[0]) and xs[-1] == pd.Timestamp(times[-1])


@pytest.mark.parametrize(
    ("span", "level"),
    [
        (dt.timedelta(0), "hours"),  # one block: every value at one instant
        (dt.timedelta(minutes=3), "hours"),
        (dt.timedelta(hours=12), "hours"),
        (dt.timedelta(days=10), "days"),
        (dt.timedelta(days=90), "days"),
        (dt.timedelta(days=365), "months"),
        (dt.timedelta(days=5 * 365), "years"),
    ],
)
def test_tick_labels_follow_the_span(span: dt.timedelta, level: str) -> None:
    first = dt.datetime(2026, 11, 23, 17, 0)
    axis = time_axis(first, first + span)
    assert axis.level.name == level
    assert axis.end - axis.start >= MIN_WINDOW
    assert axis.start < first and axis.end > first + span  # padded on both sides
    layout = axis.layout()
    formats = [layout["tickformat"]] + [s["value"] for s in layout["tickformatstops"]]
    assert not any(SUBSECOND.search(f) for f in formats)
    # Zooming in gives finer labels: a stop for every finer level, none for coarser.
    assert len(layout["tickformatstops"]) == [lv.name for lv in TICK_LEVELS].index(level)


def test_limits_are_drawn_as_stored_with_each_score() -> None:
    times = [dt.datetime(2026, 3, 1, 23) + dt.timedelta(days=10 * i) for i in range(4)]
    constant = trend_figure(_rows(times), "QC.RON")
    limits = [t for t in constant.data if t.legendgroup == "limits"]
    assert [t.name for t in limits] == ["limits", "limits"]  # low and high, shared
    start, end = _range(constant)
    for trace, level in zip(limits, (1.5, 3.0), strict=True):
        assert list(trace.y) == [level, level]  # one rule: a line across the plot
        assert (pd.Timestamp(trace.x[0]), pd.Timestamp(trace.x[-1])) == (start, end)

    # History limits: they change with each product and differ by detector: steps.
    lows = [1.0, 1.1, 1.2, 1.3]
    moving = _rows(times, detectors=["CCD1"], low=lows, high=None)
    moving = pd.concat([moving, _rows(times, detectors=["CCD2"], low=0.5, high=None)])
    fig = trend_figure(moving, "QC.RON")
    steps = [t for t in fig.data if t.legendgroup == "limits"]
    assert {t.name for t in steps} == {"limits (per detector)"} and len(steps) == 2
    assert all(t.line.shape == "hv" and t.line.dash == "dash" for t in steps)
    assert list(steps[0].y) == [*lows, lows[-1]]  # held to the end of the range
    assert sum(t.showlegend is not False for t in steps) == 1  # one legend entry

    unscored = trend_figure(_rows(times, grade="UNSCORED", low=None, high=None), "QC.RON")
    assert not [t for t in unscored.data if t.legendgroup == "limits"]


def test_certified_rejected_and_pending_products_are_marked_apart() -> None:
    times = [dt.datetime(2026, 3, 1, 23) + dt.timedelta(days=i) for i in range(6)]
    statuses = ["certified", "archived", "superseded", "rejected", "scored", "candidate"]
    fig = trend_figure(_rows(times, status=statuses, detectors=["CCD1"]), "QC.RON")
    symbols = {t.name: t.marker.symbol for t in _value_traces(fig)}
    assert symbols == {
        "OK, certified": "circle",
        "OK, not yet certified": "circle-open",
        "OK, rejected": "x",
    }
    counts = {t.name: len(t.x) for t in _value_traces(fig)}
    assert counts == {"OK, certified": 3, "OK, not yet certified": 2, "OK, rejected": 1}


def test_grades_have_their_own_colours_and_labels() -> None:
    times = [dt.datetime(2026, 3, 1, 23) + dt.timedelta(days=i) for i in range(4)]
    grades = ["OK", "NOK", "UNSCORED", "MONITORED"]
    fig = trend_figure(_rows(times, grade=grades, detectors=["CCD1"]), "QC.RON")
    colours = {t.name: t.marker.color for t in _value_traces(fig)}
    assert list(colours) == [  # most urgent first in the legend
        "NOK, certified",
        "not graded, certified",
        "OK, certified",
        "monitored, certified",
    ]
    assert len(set(colours.values())) == 4


def test_quality_events_are_vertical_lines_with_their_text() -> None:
    times = [dt.datetime(2026, 3, 1, 23) + dt.timedelta(days=10 * i) for i in range(4)]
    events = [
        {"date": "2026-03-15", "text": "CCD2 controller replaced"},
        {"date": "2020-01-01", "text": "long before"},
    ]
    fig = trend_figure(_rows(times), "QC.RON", events=events, timezone="America/Santiago")
    assert len(fig.layout.shapes) == 1
    line = fig.layout.shapes[0]
    noon = local_noon_utc(dt.date(2026, 3, 15), "America/Santiago").replace(tzinfo=None)
    assert pd.Timestamp(line.x0) == pd.Timestamp(line.x1) == pd.Timestamp(noon)
    assert line.yref == "paper" and (line.y0, line.y1) == (0, 1)
    assert [a.text for a in fig.layout.annotations] == ["CCD2 controller replaced"]


def test_monitored_parameters_are_trended_as_monitored(omegacam_scored) -> None:
    database = omegacam_scored.open_database()
    with database.transaction() as session:
        bias = next(p for p in product_store.list_products(session) if p.pro_catg == "MASTER_BIAS")
    database.close()
    report = load_report(bias.ab_id, omegacam_scored.root)
    figures = {f.layout.title.text.split(":")[0]: f for f in report.trends()}
    names = {t.name for t in _value_traces(figures["QC.BIAS.FPN"])}  # no rule for it
    assert names == {"monitored, not yet certified"}
    names = {t.name for t in _value_traces(figures["QC.MASTER.BIAS.STDEV"])}  # no history
    assert names == {"not graded, not yet certified"}
    ringed = next(t for t in figures["QC.RON"].data if t.name == "this block")
    assert len(ringed.x) == 4  # this block's four detectors
