"""Report templates: thin (STYLE.md), and each executes with papermill on a processed
block into a notebook and a self-contained HTML page holding its plotly figures."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
from pathlib import Path

import nbformat
import papermill
import pytest

from qclib.db import blocks as block_store
from qclib.recipes.registry import SPECS
from qclib.workflow.reports import (
    TEMPLATES_DIR,
    render_health_check,
    render_notebook,
    render_reports,
    template_for,
)
from qclib.workflow.scoring import score_values
from tests.reports.test_block_report import assert_no_code

pytestmark = pytest.mark.notebook

TEMPLATES = sorted(TEMPLATES_DIR.glob("*.ipynb"))
INVESTIGATE = TEMPLATES_DIR / "investigate.ipynb"
HEALTH = TEMPLATES_DIR / "health_check.ipynb"
#: Executed on a processed science block by tests/workflow/test_science.py.
SCIENCE = TEMPLATES_DIR / "science_coadd.ipynb"
#: Executed on blocks of ESO's recipes by tests/eso/test_workflow.py.
ESO_PRODUCT = TEMPLATES_DIR / "eso_product.ipynb"
#: Executed on a comparison's both_ways.json by tests/test_esorex_peer.py.
BOTH_WAYS = TEMPLATES_DIR / "hawki_both_ways.ipynb"
#: The parameters of templates that are not a block's report.
NOT_OF_A_BLOCK = {"health_check": {"instrument", "workspace"}, "hawki_both_ways": {"result"}}
FORBIDDEN = ("def ", "class ", "import numpy", "np.", "sqlalchemy", ".add(", "commit(")


def test_every_recipe_names_an_existing_template() -> None:
    for spec in SPECS:
        assert template_for(spec.name) is not None, spec.name
        for alias in spec.aliases:
            assert template_for(alias) == template_for(spec.name)


@pytest.mark.parametrize("path", TEMPLATES, ids=[p.stem for p in TEMPLATES])
def test_templates_are_thin(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    names = {line.split("=")[0].strip() for line in code[0].source.splitlines() if "=" in line}
    expected = NOT_OF_A_BLOCK.get(path.stem, {"ab_id", "workspace"})
    assert names == expected
    # papermill must read the parameters cell too (a quote in a comment hides one).
    assert set(papermill.inspect_notebook(str(path))) == expected
    for cell in code[1:]:
        assert not any(word in cell.source for word in FORBIDDEN), cell.source


def test_every_template_executes_on_processed_blocks(omegacam_processed) -> None:
    """Three at a time, as ``qc run`` does on a pool: kernels starting together must
    not share ports or sockets (TCP ports did: "Address already in use")."""
    workspace = omegacam_processed.workspace
    database = workspace.open_database()
    done = [ab for ab, o in omegacam_processed.outcomes.items() if o.status == "done"]
    with concurrent.futures.ProcessPoolExecutor(
        3, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        outcomes = render_reports(workspace, database, done, executor=pool)
    with database.transaction() as session:
        blocks = [block_store.get_block(session, ab) for ab in done]
    database.close()
    assert {o.status for o in outcomes} == {"written"}, [o.reason for o in outcomes]
    used = {template_for(b.recipe) for b in blocks if b is not None}
    # Every block template is exercised (science's on its own processed block).
    assert used == set(TEMPLATES) - {INVESTIGATE, HEALTH, SCIENCE, ESO_PRODUCT, BOTH_WAYS}
    for outcome in outcomes:
        assert outcome.notebook.parent == workspace.runs_dir / "2026-11-23"
        book = json.loads(outcome.notebook.read_text())
        errors = [
            o for c in book["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"
        ]
        assert not errors
        html = outcome.html.read_text()
        assert html.count("Plotly.newPlot") >= 2  # figures survive the export...
        assert "plotly.js v" in html  # ...and render offline (plotly.js inlined)
        assert outcome.ab_id in html
        assert_no_code(html)  # operations staff read outputs; the .ipynb keeps the code


def test_investigate_and_health_check_execute(omegacam_processed) -> None:
    workspace = omegacam_processed.workspace
    bias = next(ab for ab in omegacam_processed.outcomes if ab.endswith("_MASTER_BIAS"))
    html = render_notebook(
        INVESTIGATE,
        workspace.runs_dir / "investigate" / f"{bias}.ipynb",
        {"ab_id": bias, "workspace": str(workspace.root)},
        cwd=workspace.root,
    )
    assert "QC.RON" in html.read_text() and html.read_text().count("Plotly.newPlot") >= 3
    database = workspace.open_database()
    score_values(database)  # the health check shows graded parameters
    database.close()
    health = render_health_check(workspace, "omegacam")
    text = health.read_text()
    assert health.parent == workspace.runs_dir / "health"
    assert "MASTER_BIAS QC.RON" in text and text.count("Plotly.newPlot") >= 5
    assert_no_code(text)
