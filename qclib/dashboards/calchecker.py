"""The calChecker dashboard: OK / NOK / MISS per science setup, refreshed on its own."""

from __future__ import annotations

import ipywidgets as widgets

from qclib.dashboards.loaders import calibration_status, monitor_nights
from qclib.dashboards.page import empty_workspace_text, message_page, page
from qclib.dashboards.panels import calchecker_panel, message
from qclib.dashboards.refresh import Refresher
from qclib.dashboards.session import DashboardSession

TITLE = "calChecker"
NIGHTS = (("last night", 1), ("last 3 nights", 3), ("last 7 nights", 7), ("last 14 nights", 14))


def dashboard(session: DashboardSession, *, nights: int = 7) -> widgets.Widget:
    """The calChecker page; redraws every ``session.refresh_s`` seconds."""
    if session.problem or session.workspace is None or session.database is None:
        return message_page(session, TITLE, session.problem or "no workspace")
    workspace, database = session.workspace, session.database
    body = widgets.HTML()
    span = widgets.Dropdown(
        options=NIGHTS, value=nights, description="Nights", layout=widgets.Layout(width="230px")
    )

    def draw() -> None:
        if not monitor_nights(database):
            body.value = message(empty_workspace_text(session, "association blocks"))
            return
        body.value = calchecker_panel(calibration_status(workspace, database, nights=span.value))

    refresher = Refresher(draw, interval_s=session.refresh_s)
    span.observe(lambda _: refresher.refresh(), names="value")
    return page(session, TITLE, widgets.HBox([span, refresher.controls]), body)
