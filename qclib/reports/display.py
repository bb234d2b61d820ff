"""How figures reach a notebook and its HTML export.

A report's figures are shown as plotly's JSON (what JupyterLab draws) and as an HTML
``div`` that draws itself with the page's ``Plotly`` (what nbconvert's HTML keeps:
shared/STACK_NOTES.md, figures vanish without an HTML output). plotly.js itself is not
in any output: the HTML export puts it in the page once (``plotly_library_script``),
so a page is whole whichever kernel made it, one kept alive across reports included.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import plotly.io as pio
from plotly.io._base_renderers import HtmlRenderer

#: The renderer registered by ``use_offline_renderer``: a figure's div, no plotly.js.
_FIGURE_DIV = "qc_figure_div"
NOTEBOOK_RENDERER = f"plotly_mimetype+{_FIGURE_DIV}"


def use_offline_renderer() -> None:
    """Show plotly figures as JSON and as a div drawn by the page's plotly.js."""
    if _FIGURE_DIV not in pio.renderers:
        pio.renderers[_FIGURE_DIV] = HtmlRenderer(include_plotlyjs=False)
    pio.renderers.default = NOTEBOOK_RENDERER


def plotly_library_script() -> str:
    """plotly.js (about 4.6 MB) as a ``<script>``, for a page with figures."""
    from plotly.offline import get_plotlyjs

    return (
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
        f"<script>{get_plotlyjs()}</script>\n"
    )


def message_figure(text: str) -> go.Figure:
    """A small figure that only says ``text`` (where a plot has nothing to show)."""
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=120)
    return fig


def mosaic_figure(
    layout: Sequence[Sequence[str]], *, horizontal_spacing: float, vertical_spacing: float
) -> go.Figure:
    """An empty figure with one titled panel per detector, laid out as ``layout`` (the
    instrument's rows of detector names, as on the sky), without tick labels."""
    from plotly.subplots import make_subplots

    rows, cols = len(layout), len(layout[0])
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[name for row in layout for name in row],
        horizontal_spacing=horizontal_spacing,
        vertical_spacing=vertical_spacing,
    )
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(height=240 * rows + 60)
    return fig
