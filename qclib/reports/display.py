"""How figures reach a notebook and its HTML export."""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

#: Figures must survive nbconvert's HTML export and render offline
#: (shared/STACK_NOTES.md: they vanish unless the renderer is set).
NOTEBOOK_RENDERER = "plotly_mimetype+notebook"


def use_offline_renderer() -> None:
    """Show plotly figures so that nbconvert's HTML keeps them, plotly.js inlined."""
    pio.renderers.default = NOTEBOOK_RENDERER


def message_figure(text: str) -> go.Figure:
    """A small figure that only says ``text`` (where a plot has nothing to show)."""
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=120)
    return fig
