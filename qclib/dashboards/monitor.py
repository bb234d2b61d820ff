"""The monitor dashboard (ESO's dfoMonitor): what the flow did and what waits, per night."""

from __future__ import annotations

import datetime as dt

import ipywidgets as widgets

from qclib.dashboards.loaders import (
    monitor_nights,
    night_grades,
    night_overview,
    quarantined,
    recent_passes,
)
from qclib.dashboards.page import empty_workspace_text, message_page, page
from qclib.dashboards.panels import (
    message,
    night_panel,
    nights_panel,
    ob_grades_panel,
    passes_panel,
    quarantine_panel,
)
from qclib.dashboards.refresh import Refresher
from qclib.dashboards.session import DashboardSession

TITLE = "Monitor"
RECENT_NIGHTS = 7


def dashboard(session: DashboardSession) -> widgets.Widget:
    """Last pass, one night's blocks and OB grades (newest night first in the selector),
    quarantine."""
    if session.problem or session.workspace is None or session.database is None:
        return message_page(session, TITLE, session.problem or "no workspace")
    workspace, database = session.workspace, session.database
    night = widgets.Dropdown(
        description="Details of night",
        layout=widgets.Layout(width="340px"),
        style={"description_width": "initial"},
    )
    night.add_class("qc-night")
    passes, recent, blocks, grades, files = (widgets.HTML() for _ in range(5))

    def draw_night() -> None:
        if night.value is None:
            blocks.value = message(empty_workspace_text(session, "association blocks"))
            grades.value = ""
            return
        overview = night_overview(workspace, database, night.value)
        blocks.value = night_panel(overview, session.report_url)
        graded = night_grades(database, night.value)
        grades.value = ob_grades_panel(night.value, graded, session.report_url)

    def draw() -> None:
        nights = monitor_nights(database)
        options = [(_night_label(n, i), n) for i, n in enumerate(nights)]
        if options != list(night.options):
            chosen = night.value if night.value in nights else (nights[0] if nights else None)
            night.options = options  # selects the first option: the newest night
            night.value = chosen
        passes.value = passes_panel(recent_passes(database))
        recent.value = nights_panel(
            [night_overview(workspace, database, n) for n in nights[:RECENT_NIGHTS]]
        )
        files.value = quarantine_panel(quarantined(database))
        draw_night()

    refresher = Refresher(draw, interval_s=session.refresh_s)
    night.observe(lambda _: draw_night(), names="value")
    return page(
        session,
        TITLE,
        refresher.controls,
        passes,
        recent,
        night,
        blocks,
        grades,
        files,
    )


def _night_label(night: dt.date, index: int) -> str:
    return f"{night} (newest)" if index == 0 else str(night)
