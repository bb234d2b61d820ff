"""The dashboards: Voila notebooks in ``dashboards/``, served by ``qc dashboards``.

- ``server``: Voila behind reviewer tokens (``auth``), preheated kernels, block reports;
- ``session``: a kernel's workspace, database and reviewer (learnt from the request);
- ``loaders``: what is shown, read from the database; ``panels`` (HTML) and ``figures``
  (plotly) show it; ``refresh``: periodic redraws in the kernel;
- ``calchecker``, ``monitor``, ``health``, ``certification``: one module per dashboard,
  each with ``dashboard(session)``, the widget its notebook displays;
- ``publish``: the same as static HTML pages for a plain web server (``qc publish``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dashboard:
    notebook: str
    title: str
    summary: str


DASHBOARDS = (
    Dashboard(
        "calchecker.ipynb",
        "calChecker",
        "The last nights' science setups: are their calibrations there (OK), outdated "
        "(NOK) or missing (MISS), and what to take tonight. Refreshes on its own.",
    ),
    Dashboard(
        "monitor.ipynb",
        "Monitor",
        "Per night: association blocks waiting, done or failed (with the reason), "
        "quarantined files, grades, block reports, and what the last pass did.",
    ),
    Dashboard(
        "health_check.ipynb",
        "Health check",
        "Each QC parameter against time per detector, with its limits, certified and "
        "rejected products, and quality events.",
    ),
    Dashboard(
        "certification.ipynb",
        "Certification",
        "The review queue (NOK first): QC values, grades and reasons, the block report, "
        "trends; certify or reject with a comment.",
    ),
)


def dashboard_url(base_url: str, dashboard: Dashboard) -> str:
    """Where the server renders a dashboard."""
    return f"{base_url}voila/render/{dashboard.notebook}"
