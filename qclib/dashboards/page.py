"""The frame every dashboard shares: a header (which, who, where), then its widgets."""

from __future__ import annotations

import json

import ipywidgets as widgets
import plotly.graph_objects as go
import plotly.io as pio

from qclib.dashboards import DASHBOARDS, dashboard_url
from qclib.dashboards.panels import header_panel, message
from qclib.dashboards.session import DashboardSession


def page(session: DashboardSession, title: str, *children: widgets.Widget) -> widgets.VBox:
    links = [(d.title, dashboard_url(session.base_url, d)) for d in DASHBOARDS if d.title != title]
    head = widgets.HTML(
        header_panel(
            title,
            reviewer=session.reviewer,
            workspace=str(session.workspace.root) if session.workspace else "?",
            links=links,
        )
    )
    return widgets.VBox(
        [head, *children], layout=widgets.Layout(width="100%", padding="0 12px 12px 12px")
    )


def message_page(session: DashboardSession, title: str, text: str) -> widgets.VBox:
    """A dashboard that cannot show anything yet, saying why and what to do."""
    return page(session, title, widgets.HTML(message(text)))


def empty_workspace_text(session: DashboardSession, what: str) -> str:
    inbox = session.workspace.inbox if session.workspace else "the inbox"
    return (
        f"Nothing to show yet: this workspace has no {what}. Put raw files in {inbox} "
        "and run 'qc run' (or 'qc watch'); this page then fills in."
    )


def figure_output() -> widgets.Output:
    """Where a dashboard shows a plotly figure (``show_figure`` replaces it).

    Not a ``FigureWidget``: that ships its own 5 MB copy of plotly.js through the
    kernel's websocket with every page (first paint 9 s instead of 3 s here), while
    a figure displayed in an ``Output`` is drawn by the plotly extension the page
    has already loaded.
    """
    return widgets.Output(layout=widgets.Layout(width="100%", min_height="300px"))


def show_figure(output: widgets.Output, figure: go.Figure) -> None:
    """Make ``output`` show ``figure``, as plotly's MIME bundle (the page's plotly
    extension draws it).

    The widget's outputs are replaced as a whole rather than captured with
    ``with output: clear_output(); display()``: captured displays made while Voila
    executes the cell left about one page load in ten hanging ("Executing 3 of 4",
    the kernel idle) with preheated kernels here.
    """
    data = json.loads(pio.to_json(figure, validate=False))
    data["config"] = {"displaylogo": False}
    output.outputs = (
        {
            "output_type": "display_data",
            "data": {"application/vnd.plotly.v1+json": data, "text/plain": "a plotly figure"},
            "metadata": {},
        },
    )
