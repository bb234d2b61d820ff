"""The health-check dashboard: one QC parameter against time, per detector.

Instrument, parameter and detector are chosen with dropdowns; a change redraws the
figure in place (``page.show_figure``), without reloading the page.
"""

from __future__ import annotations

import ipywidgets as widgets
import plotly.graph_objects as go

from qclib.dashboards.figures import health_figure
from qclib.dashboards.loaders import HealthData, health_data
from qclib.dashboards.page import (
    empty_workspace_text,
    figure_output,
    message_page,
    page,
    show_figure,
)
from qclib.dashboards.session import DashboardSession
from qclib.instruments import load_instrument

TITLE = "Health check"
ALL = "all detectors"


def trend(data: HealthData, pro_catg: str, parameter: str, detector: str | None) -> go.Figure:
    """The figure of one parameter (one detector, or all of them when None)."""
    where = detector or ALL
    return health_figure(
        data.series(pro_catg, parameter, detector),
        title=f"{data.instrument} {pro_catg} {parameter}: {where}",
        events=data.events,
    )


def dashboard(session: DashboardSession) -> widgets.Widget:
    if session.problem or session.workspace is None or session.database is None:
        return message_page(session, TITLE, session.problem or "no workspace")
    workspace, database = session.workspace, session.database
    loaded: dict[str, HealthData] = {}

    def data_of(instrument: str) -> HealthData:
        if instrument not in loaded:
            loaded[instrument] = health_data(database, instrument)
        return loaded[instrument]

    # The first instrument with graded values is shown; the others load when chosen.
    instruments = [load_instrument(n).name for n in workspace.config.workspace.instruments]
    first = next((n for n in instruments if data_of(n).parameters), None)
    if first is None:
        return message_page(session, TITLE, empty_workspace_text(session, "graded QC values"))
    wide = widgets.Layout(width="360px")
    instrument = widgets.Dropdown(options=instruments, value=first, description="Instrument")
    parameter = widgets.Dropdown(description="Parameter", layout=wide)
    detector = widgets.Dropdown(description="Detector", layout=wide)
    detector.add_class("qc-detector")
    reload = widgets.Button(description="Reload values", icon="refresh")
    filling = {"now": False}  # options being replaced: one redraw at the end, not three

    def fill_options() -> None:
        """Parameters of the instrument, detectors of the parameter (keeping choices)."""
        filling["now"] = True
        data = data_of(instrument.value)
        pairs = data.parameters
        first = data.most_recent_nok or (pairs[0] if pairs else None)
        keep = parameter.value if parameter.value in pairs else first
        parameter.options = [(f"{p}  ({c})", (c, p)) for c, p in pairs]
        parameter.value = keep
        names = data_of(instrument.value).detectors(*keep) if keep else []
        chosen = detector.value if detector.value in names else ALL
        detector.options = [ALL, *names]
        detector.value = chosen
        filling["now"] = False

    def current() -> go.Figure:
        if parameter.value is None:
            return health_figure(
                data_of(instrument.value).values.head(0),
                title=f"{instrument.value}: no graded QC values yet",
            )
        chosen = None if detector.value == ALL else detector.value
        return trend(data_of(instrument.value), *parameter.value, chosen)

    def redraw() -> None:
        if not filling["now"]:
            show_figure(figure, current())

    def refill(_: object = None) -> None:
        if not filling["now"]:
            fill_options()
            redraw()

    def reload_values(_: object) -> None:
        loaded.clear()
        refill()

    figure = figure_output()
    figure.add_class("qc-figure")
    fill_options()
    show_figure(figure, current())
    instrument.observe(refill, names="value")
    parameter.observe(refill, names="value")
    detector.observe(lambda _: redraw(), names="value")
    reload.on_click(reload_values)
    legend = widgets.HTML(
        '<div style="font-size:12px; color:#4b5563">Colour: the value\'s grade. Shape: the '
        "product's decision (● certified, ○ not decided yet, ✕ rejected). Dashed: the limits "
        "in force each night. Blue lines: quality events. Hover a point for its product and "
        "the reason of its grade.</div>"
    )
    controls = widgets.HBox([instrument, parameter, detector, reload])
    return page(session, TITLE, controls, legend, figure)
