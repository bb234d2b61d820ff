"""One association block's report: its facts, products, QC values with grades, images,
and where each value stands in the instrument's history."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from pandas.io.formats.style import Styler

from qclib.associate import AssociationBlock
from qclib.config.instrument import InstrumentBase, InstrumentConfig
from qclib.db import blocks as block_store
from qclib.db import products as product_store
from qclib.db import qc1
from qclib.errors import ConfigError
from qclib.fitsio import FitsScan, scan_fits
from qclib.instruments import load_instrument
from qclib.previews import (
    DetectorPreview,
    display_range,
    image_hdus,
    previews_from_file,
    read_previews,
)
from qclib.reports import product_view
from qclib.reports.display import (
    NOTEBOOK_RENDERER,
    message_figure,
    mosaic_figure,
    use_offline_renderer,
)
from qclib.reports.grades import (
    GRADE_LABELS,
    GRADE_STYLES,
    NOT_SCORED,
    grade_label,
    grade_rank,
)
from qclib.reports.trends import product_standing, trend_figure
from qclib.workspace import Workspace, load_workspace

__all__ = ["NOTEBOOK_RENDERER", "ABReport", "load_report", "use_offline_renderer"]

#: How far back a report loads the instrument's QC1 rows (its trends' longest reach).
HISTORY_DAYS = 90
#: Columns of the QC1 rows a block's tables show.
SCORE_COLUMNS = ["pro_catg", "detector", "parameter", "value", "unit", "grade", "reason"]


@dataclass
class ABReport:
    """Everything stored about one block, ready to display."""

    workspace: Workspace
    instrument: InstrumentBase
    block: AssociationBlock
    state: tuple[str, str | None]
    products: list[product_store.StoredProduct]
    rows: list[dict[str, Any]]  # QC1 rows (values, grades) of the instrument, HISTORY_DAYS back
    events: list[dict[str, Any]]
    _scans: list[tuple[product_store.StoredProduct, FitsScan]] | None = field(
        default=None, init=False, repr=False
    )

    # ------------------------------------------------------------------ tables
    def summary(self) -> Styler:
        """The block's facts: action, recipe, night, state, inputs, calibrations,
        products with their status, and how its QC values were graded."""
        b = self.block
        calibrations = "; ".join(
            f"{t.tag}: {', '.join(c.ref or c.ab_id or '?' for c in t.chosen)}" for t in b.tags
        )
        facts = {
            "block": b.id,
            "instrument": b.instrument,
            "action / recipe": f"{b.action} / {b.recipe}",
            "night": b.night,
            "state": self.state[0] + (f" ({self.state[1]})" if self.state[1] else ""),
            "raw inputs": f"{len(b.inputs)}: {', '.join(b.inputs[:4])}"
            + (" ..." if len(b.inputs) > 4 else ""),
            "calibrations": calibrations or "none",
            "products": ", ".join(_product_text(p) for p in self.products) or "none yet",
            "QC values": self._grade_line(),
        }
        table = pd.DataFrame({"": list(facts.values())}, index=list(facts))
        return table.style.hide(axis="columns").set_properties(**{"text-align": "left"})

    def association(self) -> pd.DataFrame:
        """The block's association log, one row per file considered for each tag: the
        chosen ones (status, Δt in days, quality level), the runners-up with why each
        lost, and a row without a file for a tag left short (why)."""
        rows: list[dict[str, Any]] = []
        for t in self.block.tags:
            for c in t.chosen:
                rows.append(
                    {
                        "tag": t.tag,
                        "category": t.category,
                        "file": c.ref,
                        "status": c.status,
                        "delta_days": c.delta_days,
                        "level": c.level,
                        "outcome": "chosen",
                    }
                )
            for ref, why in t.runners_up:
                rows.append({"tag": t.tag, "category": t.category, "file": ref, "outcome": why})
            if t.missing_reason:
                rows.append({"tag": t.tag, "category": t.category, "outcome": t.missing_reason})
        columns = ["tag", "category", "file", "status", "delta_days", "level", "outcome"]
        return pd.DataFrame(rows, columns=columns)

    def _values(self) -> pd.DataFrame:
        """The QC1 rows of this block's products (limits included)."""
        names = {p.path.rsplit("/", 1)[-1] for p in self.products}
        mine = [r for r in self.rows if r["product"] in names]
        if not mine:
            return pd.DataFrame(columns=[*SCORE_COLUMNS, "low", "high"])
        return pd.DataFrame(mine).sort_values(["pro_catg", "parameter", "detector"])

    def scores(self) -> pd.DataFrame:
        """Every QC value of the block's products with its stored grade and reason: the
        plain table for queries (grades as stored: OK, NOK, UNSCORED, MONITORED; None
        when not scored yet). ``grade_table`` is the one to read."""
        return self._values()[SCORE_COLUMNS]

    def grade_counts(self) -> Styler:
        """How many values of each product have each grade: the roll-up read first.

        Columns are the report's grade labels, most urgent first: NOK, not graded (a
        rule applies but could not grade the value), OK, monitored (no rule), and not
        scored yet when the scoring step has not run; ``.data`` is the plain table.
        """
        table = self._values()
        columns = list(GRADE_LABELS)
        if table["grade"].isna().any():
            columns.append(NOT_SCORED.label)
        counts = (
            pd.crosstab(table["pro_catg"], table["grade"].map(grade_label))
            .reindex(columns=columns, fill_value=0)
            .rename_axis(index="product", columns=None)
        )
        return counts.style.map_index(_grade_css, axis="columns").map(
            lambda n: "color: #b0b0b0" if n == 0 else "font-weight: bold"
        )

    def grade_table(self) -> Styler:
        """Every QC value of the block with its grade, limits and reason, for reading:
        NOK first, then not graded, OK, monitored; grades labelled and coloured."""
        table = self._values()
        shown = pd.DataFrame(
            {
                "product": table["pro_catg"],
                "detector": table["detector"],
                "parameter": table["parameter"],
                "value": table["value"],
                "unit": table["unit"].map(_text),
                "grade": table["grade"].map(grade_label),
                "limits": [
                    _limits_text(low, high)
                    for low, high in zip(table["low"], table["high"], strict=True)
                ],
                "reason": table["reason"].map(_text),
                "rank": table["grade"].map(grade_rank),
            }
        )
        shown = (
            shown.sort_values(["rank", "product", "parameter", "detector"], kind="stable")
            .drop(columns="rank")
            .reset_index(drop=True)
        )
        left = ["product", "detector", "parameter", "unit", "grade", "limits", "reason"]
        return (
            shown.style.hide(axis="index")
            .format({"value": _value_text})
            .map(_grade_css, subset=["grade"])
            .set_properties(subset=left, **{"text-align": "left"})
            .set_table_styles([{"selector": "th", "props": [("text-align", "left")]}])
        )

    def _grade_line(self) -> str:
        counts = self.grade_counts().data.sum()
        return ", ".join(f"{int(n)} {label}" for label, n in counts.items() if n) or "none"

    # ------------------------------------------------------------------ figures
    def _image_products(self) -> list[tuple[product_store.StoredProduct, FitsScan]]:
        """The block's products that hold detector images, each with its file's scan."""
        if self._scans is None:
            self._scans = [
                (p, scan)
                for p in self.products
                if image_hdus(scan := scan_fits(self.workspace.confine(p.path)))
            ]
        return self._scans

    def _previews(
        self, pro_catg: str | None, bin_px: int | None = None
    ) -> tuple[product_store.StoredProduct, FitsScan, list[DetectorPreview]] | None:
        """The first image product (of ``pro_catg``) and its previews: those kept with
        it when they are its content's, else read from its file."""
        candidates = [(p, s) for p, s in self._image_products() if pro_catg in (None, p.pro_catg)]
        if not candidates:
            return None
        product, scan = candidates[0]
        path = self.workspace.confine(product.path)
        kept = None if bin_px else read_previews(path, product.sha256)
        return product, scan, kept or previews_from_file(path, image_hdus(scan), bin_px=bin_px)

    def mosaic(self, pro_catg: str | None = None, *, bin_px: int | None = None) -> go.Figure:
        """Each detector's image as a thumbnail (about 128 pixels on its longer side,
        each the mean of a block of the image; blocks of ``bin_px`` when given),
        placed as on the sky, on one grey scale (the 1-99 % range of the thumbnails)."""
        found = self._previews(pro_catg, bin_px)
        if found is None or not isinstance(self.instrument, InstrumentConfig):
            return message_figure(f"{self.block.id}: no product image to show as on the sky")
        product, _, previews = found
        layout = self.instrument.layout
        # Empty panels need a word: the product has no image of those detectors.
        total = sum(len(row) for row in layout)
        shown = "detectors" if len(previews) >= total else f"{len(previews)} of {total} detectors"
        fig = mosaic_figure(layout, horizontal_spacing=0.01, vertical_spacing=0.04)
        low, high = display_range(previews)
        for preview in previews:
            row, col = self.instrument.layout_position(preview.extname)
            name = preview.extname
            fig.add_trace(
                go.Heatmap(
                    z=preview.thumbnail,
                    zmin=low,
                    zmax=high,
                    colorscale="Gray",
                    showscale=False,
                    hovertemplate=f"{name}<br>x %{{x}}<br>y %{{y}}<br>%{{z:.4g}}<extra></extra>",
                ),
                row=row + 1,
                col=col + 1,
            )
        fig.update_layout(
            title=f"{product.pro_catg}: {shown} as on the sky (1-99 % range "
            f"{low:.4g} .. {high:.4g})",
            margin={"l": 10, "r": 10, "t": 70, "b": 10},
        )
        return fig

    def histograms(self, pro_catg: str | None = None) -> go.Figure:
        """Pixel-value histograms of each detector (central 0.1-99.9 %)."""
        found = self._previews(pro_catg)
        if found is None:
            return message_figure("no product image to show")
        product, _, previews = found
        return product_view.histogram_figure(product.pro_catg, previews)

    def reference_difference(self) -> go.Figure:
        """QC.REFDIFF.MED / RMS per detector: this master against the previous one."""
        table = self.scores()
        diff = table[table["parameter"].str.startswith("QC.REFDIFF")]
        if diff.empty:
            return message_figure("no earlier master of this setup to compare with")
        fig = go.Figure()
        for parameter, group in diff.groupby("parameter"):
            fig.add_trace(go.Bar(x=group["detector"], y=group["value"], name=parameter))
        fig.update_layout(title="difference to the reference master", barmode="group")
        return fig

    def product_images(self) -> None:
        """Every product's 2-D images (each image HDU, the primary's included) and
        their pixel values, product by product: for products in any layout (ESO's)."""
        figures = []
        for product in self.products:
            path = self.workspace.confine(product.path)
            previews = product_view.image_previews(path, product.sha256)
            if previews:
                title = f"{product.pro_catg} ({path.name})"
                figures += [
                    product_view.images_figure(title, previews),
                    product_view.histogram_figure(title, previews),
                ]
        _show(figures or [message_figure(f"{self.block.id}: no product image to show")])

    def spectra(self) -> None:
        """Every product's 1-D data as plots (1-D images, tables with a wavelength)."""
        figures = [
            fig
            for p in self.products
            for fig in product_view.spectra_figures(p.pro_catg, self.workspace.confine(p.path))
        ]
        _show(figures or [message_figure("no 1-D data (spectrum, profile) in the products")])

    def esorex_job(self) -> Styler:
        """The ESO job that made the products: recipe, options, the recipe's own time,
        esorex's peak memory and the end of esorex's log."""
        folder = self.workspace.products_dir / self.block.night
        job = product_view.job_view(folder, self.block.id)
        provenance = self.products[0].provenance if self.products else {}
        options = provenance.get("parameters", {})
        facts = {
            "recipe": provenance.get("recipe", self.block.recipe),
            "options": " ".join(f"--{k}={v}" for k, v in options.items()) or "ESO's defaults",
            "recipe time": f"{job.recipe_s:.2f} s (esorex)" if job and job.recipe_s else "?",
            "peak memory": f"{job.peak_mb:.0f} MB (esorex)" if job and job.peak_mb else "?",
            "log": str(job.log) if job else "none (not run yet, or not an ESO job)",
            "last lines": job.tail if job else "",
        }
        table = pd.DataFrame({"": list(facts.values())}, index=list(facts))
        return table.style.hide(axis="columns").set_properties(
            **{"text-align": "left", "white-space": "pre-wrap", "font-family": "monospace"}
        )

    def show_trends(self, parameters: list[str] | None = None, *, days: int = 90) -> None:
        """Display every trend figure (for notebooks)."""
        _show(self.trends(parameters, days=days))

    def trends(self, parameters: list[str] | None = None, *, days: int = 90) -> list[go.Figure]:
        """Each QC parameter's history (``days`` back, at most ``HISTORY_DAYS``) at its
        observation times: every detector, limits, grades, certified and rejected
        products, this block's values ringed, quality events as vertical lines."""
        mine = self.scores()
        if mine.empty:
            return []
        days = min(days, HISTORY_DAYS)
        wanted = parameters or sorted(set(mine["parameter"]))
        names = {p.path.rsplit("/", 1)[-1] for p in self.products}
        start = dt.date.fromisoformat(self.block.night) - dt.timedelta(days=days)
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
                title=f"{parameter}: the last {days} days (this block ringed)",
                timezone=self.instrument.site.timezone,
            )
            for parameter in wanted
            if (history["parameter"] == parameter).any()
        ]


def _show(figures: list[go.Figure]) -> None:
    for figure in figures:
        figure.show()


def _text(value: Any) -> str:
    return "" if value is None or value != value else str(value)


def _value_text(value: Any) -> str:
    return "" if value is None or value != value else f"{value:.5g}"


def _limits_text(low: Any, high: Any) -> str:
    """The limits of a score as a reader wants them.

    >>> _limits_text(200.0, 1000.0), _limits_text(None, 3.0), _limits_text(float("nan"), None)
    ('200 .. 1000', '≤ 3', '')
    """
    low = None if low is None or low != low else float(low)
    high = None if high is None or high != high else float(high)
    if low is not None and high is not None:
        return f"{low:.5g} .. {high:.5g}"
    if high is not None:
        return f"≤ {high:.5g}"
    return f"≥ {low:.5g}" if low is not None else ""


def _grade_css(label: str) -> str:
    """Background and text colour of a grade label's cell."""
    styles = {s.label: s for s in (*GRADE_STYLES.values(), NOT_SCORED)}
    style = styles.get(label)
    return f"background-color: {style.colour}; color: {style.text_colour}" if style else ""


def _product_text(product: product_store.StoredProduct) -> str:
    standing = product_standing(product.status)
    status = product.status if standing == product.status else f"{product.status}, {standing}"
    return f"{product.pro_catg} ({status})"


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
            night = dt.date.fromisoformat(block.night)
            rows = qc1.export_rows(
                session,
                instrument=block.instrument,
                since=night - dt.timedelta(days=HISTORY_DAYS),
            )
            events = qc1.list_events(session, instrument=block.instrument)
    finally:
        database.close()
    rows = [r for r in rows if r["night"] <= block.night]
    return ABReport(ws, load_instrument(block.instrument), block, state, products, rows, events)
