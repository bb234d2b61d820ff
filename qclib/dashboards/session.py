"""A dashboard's kernel side: which workspace, which database, which reviewer.

``open_dashboard()`` is the second cell of every dashboard notebook. With preheated
kernels (``qc dashboards`` starts one per dashboard ahead of time), everything before
the page's request (imports, opening the database) is done ahead; then the kernel
waits for the request and learns from it who opened the page: the server's gate
resolved the reviewer's token and Voila passes the result as ``HTTP_X_QC_REVIEWER``
(see ``qclib.dashboards.auth``). Nothing typed into the page can change it.

Problems a user can fix (no workspace, a database that cannot be opened) do not
raise: they are kept in ``DashboardSession.problem`` and each dashboard shows them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from urllib.parse import parse_qs

from qclib.dashboards.auth import KERNEL_KEY_ENV, KERNEL_KEY_HEADER, REVIEWER_ENV
from qclib.db import Database
from qclib.errors import ConfigError
from qclib.workspace import ENV_WORKSPACE, Workspace, load_workspace

#: Where a preheated kernel asks for its page's request: ws://HOST:PORT/BASE/voila/query/
QUERY_URL_ENV = "QC_DASHBOARDS_QUERY_URL"
#: Seconds between the calChecker's refreshes (``qc dashboards --refresh-seconds``).
REFRESH_ENV = "QC_DASHBOARDS_REFRESH_S"
DEFAULT_REFRESH_S = 300.0

_request: dict[str, str] | None = None


@dataclass
class DashboardSession:
    """What a dashboard works on. ``problem``: why it cannot (a sentence to show)."""

    workspace: Workspace | None
    database: Database | None
    reviewer: str | None
    base_url: str = "/"
    query: dict[str, str] | None = None
    problem: str | None = None

    def report_url(self, relative: str) -> str:
        """URL of a file of ``parameterized_runs/`` on this server (token-protected)."""
        return f"{self.base_url}reports/{relative}"

    @property
    def refresh_s(self) -> float:
        try:
            return max(1.0, float(os.environ.get(REFRESH_ENV, DEFAULT_REFRESH_S)))
        except ValueError:
            return DEFAULT_REFRESH_S


def request_info() -> dict[str, str]:
    """The page request's variables (QUERY_STRING, HTTP_X_QC_REVIEWER, ...).

    A fresh kernel has them in its environment. A preheated kernel waits here for the
    page request, then asks the server for them over ``/voila/query/<kernel_id>``,
    showing the kernel key (``qclib.dashboards.auth``), and adds them to its
    environment, as Voila's own ``wait_for_request`` does.
    """
    global _request
    if _request is not None:
        return _request
    if os.environ.get("VOILA_PREHEAT") == "True" and os.environ.get(QUERY_URL_ENV):
        from websockets.sync.client import connect

        url = os.environ[QUERY_URL_ENV] + os.environ["VOILA_KERNEL_ID"]
        headers = {KERNEL_KEY_HEADER: os.environ.get(KERNEL_KEY_ENV, "")}
        # No proxy: the server is this machine's, whatever HTTP_PROXY says.
        with connect(url, additional_headers=headers, proxy=None, open_timeout=30) as socket:
            payload = json.loads(socket.recv())
        os.environ.update({k: str(v) for k, v in payload.items()})
    _request = dict(os.environ)
    return _request


def warm_up() -> None:
    """What plotly and pandas do on first use, done while the kernel waits for its
    page (plotly loads its validators lazily: the first figure cost 1-2 s more than
    the next ones). After this a page's first figure costs what later ones do."""
    import plotly.graph_objects as go
    import plotly.io as pio

    from qclib.dashboards.figures import health_figure

    pio.to_json(go.Figure(go.Scatter(x=[1], y=[1]), layout={"template": "none"}))
    health_figure(_sample_rows(), title="warm-up").to_plotly_json()


def _sample_rows():  # type: ignore[no-untyped-def]
    import pandas as pd

    return pd.DataFrame(
        {
            "night": ["2020-01-01"],
            "value": [1.0],
            "grade": ["OK"],
            "status": ["certified"],
            "detector": ["D"],
            "product": ["P"],
            "reason": ["r"],
            "low": [0.0],
            "high": [2.0],
            "unit": ["e"],
            "mid_mjd": [58849.0],
        }
    )


def open_dashboard(workspace: str | os.PathLike[str] | None = None) -> DashboardSession:
    """Open the workspace ($QC_WORKSPACE) and its database, then wait for the page's
    request and learn its reviewer. Never raises for what a user can fix."""
    problem = None
    ws: Workspace | None = None
    database: Database | None = None
    try:
        ws = load_workspace(workspace)
        database = ws.open_database()
    except ConfigError as err:
        problem = (
            f"The dashboards cannot open their workspace: {err}. Start them with "
            f"'qc dashboards --workspace DIR' (or set {ENV_WORKSPACE})."
        )
    warm_up()
    info = request_info()
    if database is not None:
        database.engine.dispose()  # connections opened while preheating may be stale
    query = {k: v[-1] for k, v in parse_qs(info.get("QUERY_STRING", "")).items()}
    query.pop("token", None)
    return DashboardSession(
        workspace=ws,
        database=database,
        reviewer=info.get(REVIEWER_ENV) or None,
        base_url=info.get("VOILA_BASE_URL", "/") or "/",
        query=query,
        problem=problem,
    )
