"""``qc publish DIR``: the dashboards as static HTML pages, for a plain web server.

ESO publishes its calChecker, monitor and health-check pages as static HTML; so does
this: ``index.html`` links ``calchecker.html``, ``monitor.html`` and one
``health-<instrument>.html`` per instrument with graded values. Plotly figures use
one ``plotly.min.js`` beside the pages (no CDN: they render offline); the monitor's
block reports are copied under ``reports/<night>/``. Every file is written under a
temporary name and renamed into place, the index last, so a reader never sees a
half-written page.
"""

from __future__ import annotations

import datetime as dt
import html
import os
from pathlib import Path

import plotly.offline

from qclib.atomicfile import atomic_path, write_text_atomic
from qclib.dashboards.figures import health_figure
from qclib.dashboards.loaders import (
    calibration_status,
    health_data,
    instruments_with_values,
    monitor_nights,
    night_grades,
    night_overview,
    quarantined,
    recent_passes,
)
from qclib.dashboards.panels import (
    calchecker_panel,
    message,
    night_panel,
    ob_grades_panel,
    passes_panel,
    quarantine_panel,
    utc,
)
from qclib.db import Database
from qclib.workspace import Workspace

PLOTLY_JS = "plotly.min.js"


def _page(title: str, body: str, *, generated: str, plotly: bool = False) -> str:
    script = f'<script src="{PLOTLY_JS}" charset="utf-8"></script>' if plotly else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>{script}</head>"
        "<body style='margin: 1em 2em; font-family: sans-serif'>"
        f"<p style='font-size: 13px; color: #4b5563'><a href='index.html'>QC pages</a> · "
        f"{html.escape(title)} · generated {html.escape(generated)} (static: "
        "<code>qc publish</code> writes it again)</p>"
        f"{body}</body></html>"
    )


def _link_or_copy(source: Path, dest: Path) -> None:
    """A report into the published tree: a hard link where possible (no space)."""
    with atomic_path(dest, durable=False) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            tmp.write_bytes(source.read_bytes())


def publish_pages(
    workspace: Workspace, database: Database, directory: str | os.PathLike[str], *, nights: int = 7
) -> list[Path]:
    """Write the static pages into ``directory``; returns the files written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    generated = utc(dt.datetime.now(dt.UTC))
    written: list[Path] = []

    def write(name: str, text: str) -> None:
        write_text_atomic(out / name, text)
        written.append(out / name)

    write(PLOTLY_JS, plotly.offline.get_plotlyjs())

    every_night = monitor_nights(database)
    if every_night:
        status = calibration_status(workspace, database, nights=nights)
        calchecker = calchecker_panel(status)
    else:
        calchecker = message("No association blocks yet: nothing to check.")
    write("calchecker.html", _page("calChecker", calchecker, generated=generated))

    shown = [n for n in every_night if n >= every_night[0] - dt.timedelta(days=nights - 1)]
    sections = [passes_panel(recent_passes(database))]
    for night in shown:
        overview = night_overview(workspace, database, night)
        for block in overview.blocks:
            if block.report:
                _link_or_copy(workspace.runs_dir / block.report, out / "reports" / block.report)
                written.append(out / "reports" / block.report)
        sections.append(night_panel(overview, lambda relative: f"reports/{relative}"))
        graded = night_grades(database, night)
        if graded:
            sections.append(ob_grades_panel(night, graded, lambda relative: f"reports/{relative}"))
    if not shown:
        sections.append(message("No night processed yet."))
    sections.append(quarantine_panel(quarantined(database)))
    write("monitor.html", _page("Monitor", "".join(sections), generated=generated))

    health_pages = []
    for instrument in instruments_with_values(workspace, database):
        data = health_data(database, instrument, days=90)
        figures = [
            health_figure(
                data.series(pro_catg, parameter),
                title=f"{instrument} {pro_catg} {parameter}: all detectors",
                events=data.events,
                height=380,
            ).to_html(full_html=False, include_plotlyjs=False)
            for pro_catg, parameter in data.parameters
        ]
        name = f"health-{instrument.lower()}.html"
        body = (
            f"<h2 style='font-family: sans-serif'>Health check {html.escape(instrument)}: "
            "the last 90 nights with data</h2>"
            "<p style='font-size: 13px'>Colour: the grade. Shape: the decision (filled: "
            "certified, open: not decided yet, cross: rejected). Dashed: the limits. Blue "
            "lines: quality events.</p>" + "".join(figures)
        )
        write(name, _page(f"Health check {instrument}", body, generated=generated, plotly=True))
        health_pages.append((instrument, name))

    links = [
        ("calchecker.html", "calChecker: calibrations for the last nights' science"),
        ("monitor.html", "Monitor: blocks, quarantine and passes per night"),
        *(
            (name, f"Health check {instrument}: QC parameters over time")
            for instrument, name in health_pages
        ),
    ]
    items = "".join(f"<li><a href='{href}'>{html.escape(text)}</a></li>" for href, text in links)
    write(
        "index.html",
        _page(
            "QC pages",
            f"<h1>QC pages of {html.escape(str(workspace.root.name))}</h1><ul>{items}</ul>",
            generated=generated,
        ),
    )
    return written
