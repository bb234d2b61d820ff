"""A block report as operations staff read it: grades labelled (monitored apart from not
graded), and an HTML page of outputs only, figures included, no code."""

from __future__ import annotations

import json
import re

import pytest

from qclib.db import blocks as block_store
from qclib.fitsio import scan_fits
from qclib.previews import image_hdus, preview_path
from qclib.reports import abreport, load_report
from qclib.reports.grades import GRADE_STYLES
from qclib.workflow.reports import render_report

BIAS = "OMEGACAM.2026-11-23T17:00:00.000_MASTER_BIAS"


def assert_no_code(html: str) -> None:
    """No code cell shows its input or a prompt (the stylesheet names the classes, so
    look at elements' class attributes only)."""
    classes = " ".join(re.findall(r'class="([^"]*)"', html))
    assert "load_report(" not in html
    assert "jp-InputPrompt" not in classes and "jp-OutputPrompt" not in classes
    assert "highlight hl-ipython3" not in classes  # highlighted source
    code_cells = re.findall(r'class="(jp-Cell jp-CodeCell[^"]*)"', html)
    assert code_cells and all("jp-mod-noInput" in c for c in code_cells)


def test_grades_read_monitored_apart_from_not_graded(omegacam_scored) -> None:
    report = load_report(BIAS, omegacam_scored.root)
    stored = report.scores()["grade"].value_counts()
    # The scoring change: no rule is MONITORED; a rule without history UNSCORED.
    assert stored["MONITORED"] > 0 and stored["UNSCORED"] > 0 and stored["OK"] > 0

    counts = report.grade_counts().data
    assert list(counts.columns) == ["NOK", "not graded", "OK", "monitored"]
    assert counts.loc["MASTER_BIAS", "monitored"] == stored["MONITORED"]
    assert counts.loc["MASTER_BIAS", "not graded"] == stored["UNSCORED"]  # not the monitored
    assert counts.loc["MASTER_BIAS", "OK"] == stored["OK"]
    assert counts.to_numpy().sum() == len(report.scores())

    table = report.grade_table().data
    assert set(table["grade"]) == {"not graded", "OK", "monitored"}
    assert list(table["grade"].drop_duplicates()) == ["not graded", "OK", "monitored"]
    not_graded = table[table["grade"] == "not graded"]
    # History rules without certified values yet (defect counts are graded per
    # detector against their own history).
    assert set(not_graded["parameter"]) == {"QC.MASTER.BIAS.STDEV", "QC.NHOTPIX"}
    assert not_graded["reason"].str.contains("certified value").all()  # why, each time
    monitored = table[table["grade"] == "monitored"]
    assert monitored["reason"].str.endswith(": monitored").all()
    assert monitored["limits"].eq("").all()
    ok = table[table["parameter"] == "QC.RON"]
    assert ok["limits"].eq("1.5 .. 3").all()

    html = report.grade_table().to_html()
    assert GRADE_STYLES["MONITORED"].colour in html and GRADE_STYLES["UNSCORED"].colour in html
    assert "UNSCORED" not in html and "MONITORED" not in html
    facts = report.summary().data[""]
    assert facts["QC values"] == (
        f"{stored['UNSCORED']} not graded, {stored['OK']} OK, {stored['MONITORED']} monitored"
    )
    assert facts["products"] == "MASTER_BIAS (scored, not yet certified)"


@pytest.mark.notebook
def test_report_html_shows_outputs_and_figures_without_code(omegacam_scored) -> None:
    database = omegacam_scored.open_database()
    with database.transaction() as session:
        block = block_store.get_block(session, BIAS)
    database.close()
    outcome = render_report(omegacam_scored, block)
    assert outcome.status == "written", outcome.reason
    html = outcome.html.read_text()
    assert_no_code(html)
    assert html.count('class="plotly-graph-div"') >= 5  # mosaic, histograms, trends
    assert "Plotly.newPlot" in html and "plotly.js v" in html  # renders offline
    assert ">monitored<" in html and ">not graded<" in html and ">UNSCORED<" not in html
    assert f"<title>{BIAS}</title>" in html
    assert "celltag_parameters" not in html and "celltag_injected-parameters" not in html
    # The notebook beside it keeps the code for QC scientists.
    book = json.loads(outcome.notebook.read_text())
    code = "".join("".join(c["source"]) for c in book["cells"] if c["cell_type"] == "code")
    assert "load_report(" in code and "report.grade_table()" in code


def _figure_data(fig) -> list[tuple]:
    return [(t.name, json.dumps(t.to_plotly_json(), sort_keys=True, default=str)) for t in fig.data]


def test_figures_come_from_the_kept_previews_without_reading_pixels(
    omegacam_scored, monkeypatch
) -> None:
    report = load_report(BIAS, omegacam_scored.root)
    (product,) = report.products
    path = omegacam_scored.confine(product.path)
    kept = preview_path(path)
    assert kept.exists()
    mosaic, histograms = report.mosaic(), report.histograms()
    images = image_hdus(scan_fits(path))
    assert len(mosaic.data) == len(histograms.data) == len(images) >= 4
    assert mosaic.data[0].z.shape == (128, 64)  # a thumbnail's longer side: 128 pixels

    # Without the kept previews (a product from elsewhere, or from before them), the
    # same figures from the product's pixels.
    saved = kept.read_bytes()
    kept.unlink()
    try:
        again = load_report(BIAS, omegacam_scored.root)
        assert _figure_data(again.mosaic()) == _figure_data(mosaic)
        assert _figure_data(again.histograms()) == _figure_data(histograms)
    finally:
        kept.write_bytes(saved)

    # With them, no pixel is read.
    def no_reading(*args, **kwargs):
        raise AssertionError("the product's pixels were read")

    monkeypatch.setattr(abreport, "previews_from_file", no_reading)
    fresh = load_report(BIAS, omegacam_scored.root)
    assert _figure_data(fresh.mosaic()) == _figure_data(mosaic)
    assert _figure_data(fresh.histograms()) == _figure_data(histograms)
