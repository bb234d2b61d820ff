"""What reports and dashboards show: loaders of stored results and plotly figures.

Notebooks (``notebooks/templates/``) call these and display what they return; nothing
here writes to the database.
"""

from __future__ import annotations

from qclib.reports.abreport import ABReport, load_report
from qclib.reports.grades import grade_label
from qclib.reports.science import ScienceReport, load_science_report
from qclib.reports.trends import health_trends, trend_figure

__all__ = [
    "ABReport",
    "ScienceReport",
    "grade_label",
    "health_trends",
    "load_report",
    "load_science_report",
    "trend_figure",
]
