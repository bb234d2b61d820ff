"""A science block's report: its OB grade, the coadd, image quality, PSF maps, number
counts, astrometric and photometric residuals, from the stored product and grade.

The tables come from the product (``SCIENCE_COADD``: ``SOURCES``, ``PSF``, ``STARS``,
``PHOTOMETRY``; ``qclib.recipes.science_image``), the grade from the database
(``qclib.workflow.grading``). Nothing is measured here: figures show what was stored.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from astropy.io import fits
from pandas.io.formats.style import Styler
from plotly.subplots import make_subplots

from qclib.db import ob_grades
from qclib.fitsio import scan_fits
from qclib.previews import image_hdus, previews_from_file, read_previews
from qclib.reports.abreport import ABReport, load_report
from qclib.reports.display import message_figure, mosaic_figure

#: Magnitude bins of the number counts.
COUNTS_BIN_MAG = 0.5
#: In the PSF maps, a whisker for 1 - b/a = 0.1 is this fraction of the detector's size.
_WHISKER_PER_TENTH = 0.08


@dataclass
class ScienceReport:
    """A science block's report (``load_science_report``)."""

    report: ABReport
    grade: ob_grades.StoredGrade | None
    tables: dict[str, pd.DataFrame]
    coadd_qc: dict[str, Any]
    detector_qc: dict[str, dict[str, Any]]

    # ------------------------------------------------------------------ tables
    def summary(self) -> Styler:
        """The block's facts (``ABReport.summary``)."""
        return self.report.summary()

    def ob_grade(self) -> Styler | str:
        """The OB's grade against its constraints, constraint by constraint."""
        if self.grade is None:
            return "not graded yet: 'qc science' grades a processed science block"
        rows = [
            {
                "constraint": c["constraint"],
                "requested": c["requested"],
                "delivered": c["delivered"],
                "grade": c["grade"],
                "why": c["reason"],
            }
            for c in self.grade.checks
        ]
        table = pd.DataFrame(rows)
        colours = {"A": "#dcfce7", "B": "#fef3c7", "C": "#fee2e2"}
        return (
            table.style.hide(axis="index")
            .set_caption(f"grade {self.grade.grade}: {self.grade.reason}")
            .map(lambda g: f"background-color: {colours.get(g, '')}", subset=["grade"])
            .set_properties(subset=["constraint", "why"], **{"text-align": "left"})
        )

    def coadd_statistics(self) -> Styler:
        """The coadd's QC values with their units and meanings."""
        known = self.report.instrument.qc.get("SCIENCE_COADD", {})
        rows = []
        for name, value in sorted(self.coadd_qc.items()):
            entry = known.get(name)
            if entry is None and name.startswith("QC.FWHM.EXP"):
                unit, meaning = "arcsec", f"FWHM of exposure {name.rsplit('EXP', 1)[1]}"
            else:
                unit = entry.unit if entry else ""
                meaning = entry.description if entry else ""
            rows.append({"parameter": name, "value": value, "unit": unit, "meaning": meaning})
        return (
            pd.DataFrame(rows)
            .style.hide(axis="index")
            .format({"value": "{:.5g}"})
            .set_properties(subset=["parameter", "meaning"], **{"text-align": "left"})
        )

    # ------------------------------------------------------------------ figures
    def _previews(self) -> list[Any] | None:
        """The coadd product's image previews (None: no coadd yet)."""
        products = [p for p in self.report.products if p.pro_catg == "SCIENCE_COADD"]
        if not products:
            return None
        path = self.report.workspace.confine(products[0].path)
        return read_previews(path, products[0].sha256) or previews_from_file(
            path, image_hdus(scan_fits(path))
        )

    def coadd(self) -> go.Figure:
        """The coadd's thumbnail (each pixel the mean of a block of the coadd)."""
        previews = self._previews()
        if previews is None:
            return message_figure(f"{self.report.block.id}: no coadd yet")
        coadd = next((p for p in previews if p.extname == "COADD"), None)
        if coadd is None:
            return message_figure("the coadd has no preview")
        finite = coadd.thumbnail[np.isfinite(coadd.thumbnail)]
        low, high = np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0)
        fig = go.Figure(
            go.Heatmap(z=coadd.thumbnail, zmin=low, zmax=high, colorscale="Gray", showscale=False)
        )
        fig.update_layout(
            title="the coadd (north up, east left; 1-99.5 % range)",
            yaxis={"scaleanchor": "x"},
            height=600,
        )
        return fig

    def sky_and_fringes(self) -> go.Figure:
        """Per detector, the fringe frame made from the OB's own exposures (a fraction
        of the sky) where the filter makes fringes; else the sky flats' spread."""
        previews = self._previews()
        if previews is None:
            return message_figure(f"{self.report.block.id}: no coadd yet")
        frames = {p.extname: p for p in previews if p.extname != "COADD"}
        spread = [q["QC.SKYFLAT.RMS"] for q in self.detector_qc.values() if "QC.SKYFLAT.RMS" in q]
        flats = (
            f"sky flats from the exposures: {min(spread):.2%}-{max(spread):.2%} rms about 1"
            if spread
            else "no sky flat (fewer exposures than the recipe's sky_flat_min_frames)"
        )
        if not frames:
            return message_figure(f"no fringe frame (not a fringe filter); {flats}")
        values = np.concatenate([f.thumbnail[np.isfinite(f.thumbnail)] for f in frames.values()])
        scale = float(np.percentile(np.abs(values), 99)) if values.size else 1.0
        fig = self._mosaic()
        for extname, frame in frames.items():
            row, col = self.report.instrument.layout_position(extname)
            fig.add_trace(
                go.Heatmap(
                    z=frame.thumbnail,
                    zmin=-scale,
                    zmax=scale,
                    colorscale="RdBu",
                    showscale=(row, col) == (0, 0),
                    name=extname,
                ),
                row=row + 1,
                col=col + 1,
            )
        fig.update_layout(title=f"fringe frames (a fraction of the sky; +-{scale:.2%}); {flats}")
        return fig

    def image_quality(self) -> go.Figure:
        """Each exposure's FWHM (median over its detectors' stars) against the OB's
        requested image quality."""
        names = sorted(
            (k for k in self.coadd_qc if k.startswith("QC.FWHM.EXP")),
            key=lambda k: int(k.rsplit("EXP", 1)[1]),
        )
        if not names:
            return message_figure("no exposure's FWHM was measured")
        fig = go.Figure(
            go.Bar(
                x=[f"exposure {n.rsplit('EXP', 1)[1]}" for n in names],
                y=[self.coadd_qc[n] for n in names],
                name="FWHM",
            )
        )
        requested = self._requested("image quality")
        if requested:
            fig.add_hline(y=requested, line_dash="dash", annotation_text="requested")
        fig.update_layout(title="image quality per exposure", yaxis_title="FWHM (arcsec)")
        return fig

    def fwhm_map(self) -> go.Figure:
        """Every fitted star of every exposure on the sky, coloured by its FWHM."""
        psf = self.tables.get("PSF")
        if psf is None or psf.empty:
            return message_figure("no star was fitted")
        scale = self.report.instrument.pixel_scale_arcsec
        fig = go.Figure(
            go.Scattergl(
                x=psf["RA"],
                y=psf["DEC"],
                mode="markers",
                marker={
                    "color": psf["FWHM"] * scale,
                    "colorscale": "Viridis",
                    "colorbar": {"title": "FWHM (arcsec)"},
                    "size": 6,
                },
                text=[
                    f"{d} exposure {e}"
                    for d, e in zip(psf["DETECTOR"], psf["EXPOSURE"], strict=True)
                ],
            )
        )
        fig.update_layout(
            title="image quality over the field (every exposure)",
            xaxis={"title": "RA (deg)", "autorange": "reversed"},
            yaxis={"title": "Dec (deg)", "scaleanchor": "x"},
        )
        return fig

    def psf_maps(self) -> go.Figure:
        """Per detector, a whisker at each fitted star: its length 1 - b/a, its
        direction the major axis (all exposures)."""
        psf = self.tables.get("PSF")
        if psf is None or psf.empty:
            return message_figure("no star was fitted")
        fig = self._mosaic()
        for extname, group in psf.groupby("DETECTOR"):
            row, col = self.report.instrument.layout_position(str(extname).strip())
            size = max(float(np.ptp(group["X"])), float(np.ptp(group["Y"])), 1.0)
            length = group["ELLIPTICITY"] / 0.1 * _WHISKER_PER_TENTH * size
            angle = np.radians(group["THETA"])
            dx, dy = length * np.cos(angle) / 2, length * np.sin(angle) / 2
            x = np.column_stack([group["X"] - dx, group["X"] + dx, np.full(len(group), np.nan)])
            y = np.column_stack([group["Y"] - dy, group["Y"] + dy, np.full(len(group), np.nan)])
            fig.add_trace(
                go.Scatter(
                    x=x.ravel(),
                    y=y.ravel(),
                    mode="lines",
                    line={"width": 1},
                    name=str(extname).strip(),
                    showlegend=False,
                ),
                row=row + 1,
                col=col + 1,
            )
        fig.update_layout(
            title="PSF ellipticity and orientation per detector (a whisker "
            f"{_WHISKER_PER_TENTH:.0%} of the detector long is 1 - b/a = 0.1)"
        )
        return fig

    def _mosaic(self) -> go.Figure:
        """An empty figure with one panel per detector, laid out as on the sky."""
        layout = self.report.instrument.layout
        return mosaic_figure(layout, horizontal_spacing=0.02, vertical_spacing=0.05)

    def number_counts(self) -> go.Figure:
        """Sources per magnitude bin, and the 5-sigma limiting magnitude."""
        sources = self.tables.get("SOURCES")
        mags = np.asarray([] if sources is None else sources["MAG"], float)
        mags = mags[np.isfinite(mags)]
        if mags.size == 0:
            return message_figure("no source was detected")
        low = math.floor(mags.min() / COUNTS_BIN_MAG) * COUNTS_BIN_MAG
        high = math.ceil(mags.max() / COUNTS_BIN_MAG) * COUNTS_BIN_MAG + COUNTS_BIN_MAG
        edges = np.arange(low, high + 1e-9, COUNTS_BIN_MAG)
        counts, _ = np.histogram(mags, edges)
        fig = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, name="sources"))
        limit = self.coadd_qc.get("QC.MAGLIM")
        if limit is not None:
            fig.add_vline(x=limit, line_dash="dash", annotation_text="5-sigma limit")
        fig.update_layout(
            title="number counts",
            xaxis_title="magnitude",
            yaxis={"title": f"sources per {COUNTS_BIN_MAG} mag", "type": "log"},
        )
        return fig

    def astrometric_errors(self) -> go.Figure:
        """Each star's offset from its catalogue position on the coadd, and their
        distribution."""
        stars = self.tables.get("STARS")
        if stars is None or stars.empty:
            return message_figure("no star was fitted on the coadd")
        fig = make_subplots(
            rows=1, cols=2, subplot_titles=["offsets (arcsec)", "distance (arcsec)"]
        )
        fig.add_trace(
            go.Scatter(x=stars["DX"], y=stars["DY"], mode="markers", name="stars"), row=1, col=1
        )
        fig.add_trace(
            go.Histogram(x=np.hypot(stars["DX"], stars["DY"]), name="stars"), row=1, col=2
        )
        fig.update_layout(
            title="astrometric residuals against the reference catalogue", showlegend=False
        )
        return fig

    def photometric_residuals(self) -> go.Figure:
        """Measured minus reference magnitude of each uncontaminated star."""
        phot = self.tables.get("PHOTOMETRY")
        if phot is None or phot.empty:
            return message_figure("no star was measured on the coadd")
        fig = go.Figure(
            go.Scatter(x=phot["REF_MAG"], y=phot["MAG"] - phot["REF_MAG"], mode="markers")
        )
        fig.add_hline(y=0.0, line_dash="dot")
        fig.update_layout(
            title="photometric residuals against the reference catalogue",
            xaxis_title="reference magnitude",
            yaxis_title="coadd - reference (mag)",
        )
        return fig

    # ------------------------------------------------------------------ shared
    def grade_table(self) -> Styler:
        """Every QC value with its grade (``ABReport.grade_table``)."""
        return self.report.grade_table()

    def show_trends(self, parameters: list[str] | None = None, *, days: int = 90) -> None:
        """The QC values' history (``ABReport.show_trends``)."""
        self.report.show_trends(parameters, days=days)

    def _requested(self, constraint: str) -> float | None:
        if self.grade is None:
            return None
        for check in self.grade.checks:
            if check["constraint"] == constraint and isinstance(check["requested"], int | float):
                return float(check["requested"]) or None
        return None


def load_science_report(
    ab_id: str, workspace: str | os.PathLike[str] | None = None
) -> ScienceReport:
    """Load what is stored about a science block.

    Raises
    ------
    ConfigError
        No such block in the workspace.
    """
    report = load_report(ab_id, workspace)
    database = report.workspace.open_database()
    try:
        with database.transaction() as session:
            grade = ob_grades.grade_of(session, ab_id)
    finally:
        database.close()
    tables: dict[str, pd.DataFrame] = {}
    coadd_qc: dict[str, Any] = {}
    detector_qc: dict[str, dict[str, Any]] = {}
    products = [p for p in report.products if p.pro_catg == "SCIENCE_COADD"]
    if products:
        with fits.open(report.workspace.confine(products[0].path)) as hdul:
            for hdu in hdul[1:]:
                if isinstance(hdu, fits.BinTableHDU) and hdu.name != "PROVENANCE":
                    tables[hdu.name] = pd.DataFrame(
                        {c.name: np.asarray(hdu.data[c.name]) for c in hdu.columns}
                    )
        rows = [r for r in report.rows if r["product"] == products[0].name]
        for r in rows:
            target = (
                coadd_qc if r["detector"] == "COADD" else detector_qc.setdefault(r["detector"], {})
            )
            target[r["parameter"]] = r["value"]
    return ScienceReport(report, grade, tables, coadd_qc, detector_qc)
