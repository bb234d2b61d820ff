"""One association block's report: its facts, products, QC values with grades, images,
and where each value stands in the instrument's history."""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from qclib.config.instrument import InstrumentConfig
from qclib.db import blocks as block_store
from qclib.db import products as product_store
from qclib.db import qc1
from qclib.errors import ConfigError
from qclib.fitsio import read_image_sample, scan_fits
from qclib.instruments import load_instrument
from qclib.reports.trends import trend_figure
from qclib.workspace import Workspace, load_workspace

#: Figures must survive nbconvert's HTML export and render offline
#: (shared/STACK_NOTES.md: they vanish unless the renderer is set).
NOTEBOOK_RENDERER = "plotly_mimetype+notebook"


def use_offline_renderer() -> None:
    pio.renderers.default = NOTEBOOK_RENDERER


@dataclass
class ABReport:
    """Everything stored about one block, ready to display."""

    workspace: Workspace
    instrument: InstrumentConfig
    block: dict[str, Any]
    state: tuple[str, str | None]
    products: list[product_store.StoredProduct]
    rows: list[dict[str, Any]]  # QC1 rows (values, grades) of this instrument, 90 days back
    events: list[dict[str, Any]]

    # ------------------------------------------------------------------ tables
    def summary(self) -> pd.DataFrame:
        """The block's facts: action, recipe, night, state, inputs, calibrations."""
        b = self.block
        calibrations = "; ".join(
            f"{t['tag']}: {', '.join(c.get('ref') or c.get('ab_id') or '?' for c in t['chosen'])}"
            for t in b.get("calibrations", [])
        )
        facts = {
            "block": b["id"],
            "instrument": b["instrument"],
            "action / recipe": f"{b['action']} / {b.get('recipe')}",
            "night": b["night"],
            "state": self.state[0] + (f" ({self.state[1]})" if self.state[1] else ""),
            "raw inputs": f"{len(b['inputs'])}: {', '.join(b['inputs'][:4])}"
            + (" ..." if len(b["inputs"]) > 4 else ""),
            "calibrations": calibrations or "none",
            "products": ", ".join(p.pro_catg for p in self.products) or "none yet",
        }
        return pd.DataFrame({"": list(facts.values())}, index=list(facts))

    def scores(self) -> pd.DataFrame:
        """Every QC value of the block's products with its grade and reason."""
        ids = {p.path.rsplit("/", 1)[-1] for p in self.products}
        mine = [r for r in self.rows if r["product"] in ids]
        columns = ["pro_catg", "detector", "parameter", "value", "unit", "grade", "reason"]
        if not mine:
            return pd.DataFrame(columns=columns)
        return pd.DataFrame(mine)[columns].sort_values(["pro_catg", "parameter", "detector"])

    def grade_counts(self) -> pd.DataFrame:
        """Grades per product: the roll-up a QC scientist reads first."""
        table = self.scores()
        if table.empty:
            return table
        return table.pivot_table(
            index="pro_catg", columns="grade", values="value", aggfunc="size", fill_value=0
        )

    # ------------------------------------------------------------------ figures
    def _image_products(self) -> list[product_store.StoredProduct]:
        return [
            p for p in self.products if _detector_hdus(scan_fits(self.workspace.confine(p.path)))
        ]

    def mosaic(self, pro_catg: str | None = None, *, bin_px: int | None = None) -> go.Figure:
        """Each detector's image as a thumbnail, placed as on the sky."""
        candidates = [p for p in self._image_products() if pro_catg in (None, p.pro_catg)]
        if not candidates:
            return _message(f"{self.block['id']}: no product image to show")
        product = candidates[0]
        path = self.workspace.confine(product.path)
        scan = scan_fits(path)
        layout = self.instrument.layout
        rows, cols = len(layout), len(layout[0])
        fig = make_subplots(
            rows=rows,
            cols=cols,
            subplot_titles=[name for row in layout for name in row],
            horizontal_spacing=0.01,
            vertical_spacing=0.04,
        )
        hdus = _detector_hdus(scan)
        if not hdus:
            return _message(f"{product.pro_catg}: no detector images")
        # Thumbnails of about 128 pixels: block means of every PREVIEW_STEP-th pixel.
        size = max(int(hdus[0].header["NAXIS1"]), int(hdus[0].header["NAXIS2"]))
        step = bin_px or max(1, size // 128)
        read_step = math.gcd(step, PREVIEW_STEP)
        images = {str(h.extname): read_image_sample(path, h, read_step) for h in hdus}
        sample = np.concatenate([im[::4, ::4].ravel() for im in images.values()])
        sample = sample[np.isfinite(sample)]
        low, high = np.percentile(sample, [1, 99]) if sample.size else (0.0, 1.0)
        for name, image in images.items():
            row, col = self.instrument.layout_position(name)
            small = _bin(image, step // read_step)
            fig.add_trace(
                go.Heatmap(
                    z=small,
                    zmin=low,
                    zmax=high,
                    colorscale="Gray",
                    showscale=False,
                    hovertemplate=f"{name}<br>x %{{x}}<br>y %{{y}}<br>%{{z:.4g}}<extra></extra>",
                ),
                row=row + 1,
                col=col + 1,
            )
        fig.update_xaxes(showticklabels=False)
        fig.update_yaxes(showticklabels=False)
        fig.update_layout(
            title=f"{product.pro_catg}: detectors as on the sky (1-99 % range "
            f"{low:.4g} .. {high:.4g})",
            height=240 * rows + 60,
            margin={"l": 10, "r": 10, "t": 70, "b": 10},
        )
        return fig

    def histograms(self, pro_catg: str | None = None) -> go.Figure:
        """Pixel-value histograms of each detector (central 0.1-99.9 %)."""
        candidates = [p for p in self._image_products() if pro_catg in (None, p.pro_catg)]
        if not candidates:
            return _message("no product image to show")
        product = candidates[0]
        path = self.workspace.confine(product.path)
        fig = go.Figure()
        unit = ""
        for hdu in _detector_hdus(scan_fits(path)):
            unit = str(hdu.header.get("BUNIT", "") or "")
            values = read_image_sample(path, hdu, PREVIEW_STEP).ravel()
            values = values[np.isfinite(values)]
            if values.size:
                # Counted here, not in the browser: 32 CCDs of raw values made a 200-MB page.
                lo, hi = np.percentile(values, [0.1, 99.9])
                counts, edges = np.histogram(values, bins=100, range=(lo, hi))
                centres = 0.5 * (edges[:-1] + edges[1:])
                step = go.Scatter(x=centres, y=counts, mode="lines", line_shape="hvh")
                fig.add_trace(step.update(name=hdu.extname))
        fig.update_layout(
            title=f"{product.pro_catg}: pixel values per detector",
            xaxis_title=unit or "value",
            yaxis_title=f"pixels (1 in {PREVIEW_STEP**2})",
        )
        return fig

    def reference_difference(self) -> go.Figure:
        """QC.REFDIFF.MED / RMS per detector: this master against the previous one."""
        table = self.scores()
        diff = table[table["parameter"].str.startswith("QC.REFDIFF")]
        if diff.empty:
            return _message("no earlier master of this setup to compare with")
        fig = go.Figure()
        for parameter, group in diff.groupby("parameter"):
            fig.add_trace(go.Bar(x=group["detector"], y=group["value"], name=parameter))
        fig.update_layout(title="difference to the reference master", barmode="group")
        return fig

    def show_trends(self, parameters: list[str] | None = None, *, days: int = 90) -> None:
        """Display every trend figure (for notebooks)."""
        _show(self.trends(parameters, days=days))

    def trends(self, parameters: list[str] | None = None, *, days: int = 90) -> list[go.Figure]:
        """Each graded parameter's history (``days`` back): every detector, thresholds,
        this block's values ringed, certified products filled, quality events as lines."""
        mine = self.scores()
        if mine.empty:
            return []
        wanted = parameters or sorted(set(mine["parameter"]))
        names = {p.path.rsplit("/", 1)[-1] for p in self.products}
        start = dt.date.fromisoformat(self.block["night"]) - dt.timedelta(days=days)
        history = pd.DataFrame(self.rows)
        history = history[
            history["pro_catg"].isin(set(mine["pro_catg"]))
            & (history["night"] >= start.isoformat())
        ]
        return [
            trend_figure(
                history[history["parameter"] == parameter],
                parameter,
                events=self.events,
                highlight=names,
                title=f"{parameter} over {days} days (this block ringed; thresholds dashed)",
            )
            for parameter in wanted
            if (history["parameter"] == parameter).any()
        ]


def _show(figures: list[go.Figure]) -> None:
    for figure in figures:
        figure.show()


#: Previews (thumbnails, histograms) read every 4th pixel of every 4th row.
PREVIEW_STEP = 4


def _detector_hdus(scan: Any) -> list[Any]:
    """The detector images of a product (not their .ERR / .DQ planes, not tables)."""
    return [
        h
        for h in scan.extensions
        if h.extname
        and not h.extname.endswith((".ERR", ".DQ"))
        and h.header.get("XTENSION") == "IMAGE"
        and int(h.header.get("NAXIS", 0) or 0) == 2
    ]


def _bin(image: np.ndarray, step: int) -> np.ndarray:
    ny, nx = (image.shape[0] // step) * step, (image.shape[1] // step) * step
    if step == 1:
        return image
    with np.errstate(all="ignore"):
        return np.nanmean(image[:ny, :nx].reshape(ny // step, step, nx // step, step), axis=(1, 3))


def _message(text: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=120)
    return fig


def load_report(ab_id: str, workspace: str | os.PathLike[str] | None = None) -> ABReport:
    """Load what is stored about a block (for a notebook or a dashboard).

    Raises
    ------
    ConfigError
        No such block in the workspace.
    """
    use_offline_renderer()
    ws = load_workspace(Path(workspace) if workspace else None)
    database = ws.open_database()
    try:
        with database.transaction() as session:
            block = block_store.get_block(session, ab_id)
            if block is None:
                raise ConfigError(
                    f"no association block {ab_id!r} in {ws.root}; 'qc abs' lists them"
                )
            state = product_store.block_states(session).get(ab_id, ("created", None))
            products = product_store.products_of_block(session, ab_id)
            night = dt.date.fromisoformat(block["night"])
            rows = qc1.export_rows(
                session, instrument=block["instrument"], since=night - dt.timedelta(days=90)
            )
            events = qc1.list_events(session, instrument=block["instrument"])
    finally:
        database.close()
    rows = [r for r in rows if r["night"] <= block["night"]]
    return ABReport(ws, load_instrument(block["instrument"]), block, state, products, rows, events)
