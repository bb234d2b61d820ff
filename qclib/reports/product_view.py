"""Any product, as the generic report shows it: its 2-D images (every image HDU, the
primary's included, as thumbnails with histograms), its 1-D data as plots (a 1-D
image on its linear WCS, a table's columns against its wavelength column), and the
ESO job that made it (options, the end of esorex's log). For products of ESO's
recipes, whose layout is ESO's, not the project's."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from astropy.io import fits

from qclib.eso.job import job_cost
from qclib.previews import PREVIEW_STEP, DetectorPreview, display_range, read_previews
from qclib.reports.display import message_figure

#: Names of a table's wavelength column (ESO's products use these).
WAVELENGTH_COLUMNS = ("WAVE", "WAVELENGTH", "LAMBDA", "WLEN")
#: A 1-D product plotted with at most this many points (every n-th beyond).
PLOT_POINTS = 4000


def image_previews(path: Path, sha256: str) -> list[DetectorPreview]:
    """The previews of a product's 2-D images: those kept with it, else read now."""
    kept = read_previews(path, sha256)
    if kept:
        return kept
    from qclib.eso.block_job import previews_of

    return previews_of(path)


def images_figure(title: str, previews: Sequence[DetectorPreview]) -> go.Figure:
    """One panel per image (thumbnail, one grey scale: the 1-99 % range of all)."""
    from plotly.subplots import make_subplots

    if not previews:
        return message_figure(f"{title}: no 2-D image")
    cols = min(len(previews), 4)
    rows = -(-len(previews) // cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[p.extname for p in previews],
        horizontal_spacing=0.02,
        vertical_spacing=0.06,
    )
    low, high = display_range(previews)
    for i, preview in enumerate(previews):
        fig.add_trace(
            go.Heatmap(
                z=preview.thumbnail,
                zmin=low,
                zmax=high,
                colorscale="Gray",
                showscale=False,
                hovertemplate=f"{preview.extname}<br>%{{z:.4g}}<extra></extra>",
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, scaleanchor="x")
    fig.update_layout(
        title=f"{title} (1-99 % range {low:.4g} .. {high:.4g})",
        height=min(900, 320 * rows + 60),
        margin={"l": 10, "r": 10, "t": 70, "b": 10},
    )
    return fig


def histogram_figure(title: str, previews: Sequence[DetectorPreview]) -> go.Figure:
    """Pixel-value histograms of each image (central 0.1-99.9 %), counted beforehand,
    not in the browser: 32 CCDs of raw values made a 200-MB page."""
    fig = go.Figure()
    for preview in previews:
        if preview.counts.size:
            step = go.Scatter(x=preview.centres, y=preview.counts, mode="lines", line_shape="hvh")
            fig.add_trace(step.update(name=preview.extname))
    unit = previews[-1].unit if previews else ""
    fig.update_layout(
        title=f"{title}: pixel values per detector",
        xaxis_title=unit or "value",
        yaxis_title=f"pixels (1 in {PREVIEW_STEP**2})",
    )
    return fig


def _thinned(values: np.ndarray) -> tuple[np.ndarray, int]:
    step = max(1, -(-values.size // PLOT_POINTS))
    return values[::step], step


def spectra_figures(title: str, path: Path) -> list[go.Figure]:
    """A plot of each 1-D image (on its linear WCS where it has one) and of each
    table's numeric columns against its wavelength column."""
    figures = []
    with fits.open(path, memmap=True) as hdus:
        for index, hdu in enumerate(hdus):
            name = hdu.name or str(index)
            if isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU) and hdu.header.get("NAXIS") == 1:
                values, step = _thinned(np.asarray(hdu.data, dtype=float))
                start = float(hdu.header.get("CRVAL1", 1.0))
                delta = float(hdu.header.get("CDELT1", hdu.header.get("CD1_1", 1.0)))
                pixel = float(hdu.header.get("CRPIX1", 1.0))
                x = start + (np.arange(values.size) * step + 1 - pixel) * delta
                fig = go.Figure(go.Scatter(x=x, y=values, mode="lines", name=name))
                fig.update_layout(
                    title=f"{title} {name}", xaxis_title=str(hdu.header.get("CUNIT1", "pixel"))
                )
                figures.append(fig)
            elif isinstance(hdu, fits.BinTableHDU) and hdu.name != "PROVENANCE":
                columns = {c.name.upper(): c.name for c in hdu.columns}
                wave = next((columns[w] for w in WAVELENGTH_COLUMNS if w in columns), None)
                if wave is None or len(hdu.data) == 0:
                    continue
                fig = go.Figure()
                x, _ = _thinned(np.asarray(hdu.data[wave], dtype=float).ravel())
                for column in hdu.columns:
                    if column.name == wave or column.format[-1] not in "DEIJK":
                        continue
                    y, _ = _thinned(np.asarray(hdu.data[column.name], dtype=float).ravel())
                    if y.size == x.size:
                        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=column.name))
                if fig.data:
                    fig.update_layout(title=f"{title} {name}", xaxis_title=wave)
                    figures.append(fig)
    return figures


#: esorex's last word on a job's recipe time.
_RECIPE_TIME = re.compile(r"Recipe operation\(s\) took\s+([0-9.]+) seconds")


@dataclasses.dataclass(frozen=True)
class JobView:
    """What the ESO job of a block left beside its products: its log's last lines,
    the recipe's own time, as esorex states it (None when it does not), and esorex's
    peak resident memory in MB (None for a job run before it was recorded)."""

    log: Path
    tail: str
    recipe_s: float | None
    peak_mb: float | None = None


def recipe_seconds(log_text: str) -> float | None:
    """The recipe's own time, as esorex's log states it (None when it does not)."""
    timed = _RECIPE_TIME.search(log_text)
    return float(timed[1]) if timed else None


def job_view(product_dir: Path, ab_id: str, lines: int = 25) -> JobView | None:
    """The esorex log of block ``ab_id`` (None when the block has none)."""
    log = product_dir / f"{ab_id}.esorex" / "esorex.log"
    if not log.is_file():
        return None
    text = log.read_text(errors="replace")
    kept = [line for line in text.splitlines() if line.strip()]
    cost = job_cost(log.parent)
    peak = cost["peak_rss_mb"] if cost else None
    return JobView(log, "\n".join(kept[-lines:]), recipe_seconds(text), peak)
