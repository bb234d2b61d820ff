"""Reports in a kernel kept alive between them: each starts from an empty namespace,
numbers its cells from one, survives a kernel that died, and its HTML page draws its
figures offline with the plotly.js the export put in."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from qclib.workflow import reports
from qclib.workflow.reports import render_notebook

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def _template(folder: Path, name: str, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell('value = ""')
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, *(nbformat.v4.new_code_cell(s) for s in sources)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def _outputs(notebook: Path) -> list[str]:
    nb = nbformat.read(notebook, as_version=4)
    return [o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if "text" in o]


@pytest.fixture()
def fresh_kernels():  # type: ignore[no-untyped-def]
    reports._shutdown_kept_kernels()
    yield
    reports._shutdown_kept_kernels()


def test_the_next_report_reuses_the_kernel_with_an_empty_namespace(
    tmp_path: Path, fresh_kernels
) -> None:
    first = _template(
        tmp_path, "first", "import os\nleftover = os.getpid()\nprint(leftover)", "leftover"
    )  # the last cell's value goes to the output cache (Out)
    second = _template(
        tmp_path,
        "second",
        "import os\nprint(os.getpid())",
        "print('leftover' in globals(), value, len(Out))",
    )
    render_notebook(first, tmp_path / "out" / "a.ipynb", {"value": "a"}, cwd=tmp_path)
    render_notebook(second, tmp_path / "out" / "b.ipynb", {"value": "b"}, cwd=tmp_path)
    pid_first = _outputs(tmp_path / "out" / "a.ipynb")[0].strip()
    pid_second, namespace = (t.strip() for t in _outputs(tmp_path / "out" / "b.ipynb"))
    assert pid_first == pid_second  # one kernel...
    assert namespace == "False b 0"  # ...emptied between reports (its output cache too)
    counts = [
        c.execution_count
        for c in nbformat.read(tmp_path / "out" / "b.ipynb", as_version=4).cells
        if c.cell_type == "code"
    ]
    assert counts == [1, 2, 3, 4]  # parameters, injected parameters, two cells


def test_a_report_that_kills_its_kernel_leaves_the_next_one_a_new_kernel(
    tmp_path: Path, fresh_kernels
) -> None:
    pid = _template(tmp_path, "pid", "import os\nprint(os.getpid())")
    render_notebook(pid, tmp_path / "out" / "a.ipynb", {}, cwd=tmp_path)
    killer = _template(tmp_path, "killer", "import os\nos._exit(1)")
    with pytest.raises(Exception):  # noqa: B017 - papermill's error names the dead kernel
        render_notebook(killer, tmp_path / "out" / "dead.ipynb", {}, cwd=tmp_path)
    assert not (tmp_path / "out" / "dead.ipynb").exists()
    render_notebook(pid, tmp_path / "out" / "b.ipynb", {}, cwd=tmp_path)
    before, after = (_outputs(tmp_path / "out" / n)[0].strip() for n in ("a.ipynb", "b.ipynb"))
    assert before != after
    assert int(after) != os.getpid()


def test_the_html_page_draws_its_figures_offline(
    tmp_path: Path,
    fresh_kernels,
    qc_browser,
) -> None:
    figure = (
        "import plotly.graph_objects as go\n"
        "from qclib.reports.display import use_offline_renderer\n"
        "use_offline_renderer()\n"
        "go.Figure(go.Scatter(y=[1, 3, 2])).show()\n"
        "go.Figure(go.Bar(y=[2, 1])).show()"
    )
    template = _template(tmp_path, "figures", figure)
    render_notebook(template, tmp_path / "out" / "a.ipynb", {}, cwd=tmp_path)
    html = render_notebook(template, tmp_path / "out" / "b.ipynb", {}, cwd=tmp_path)
    text = html.read_text()
    assert text.count("plotly.js v") == 1  # the library once, from the export
    page = qc_browser.new_page()
    try:
        page.route(
            "**/*",
            lambda route: (
                route.abort() if route.request.url.startswith("http") else route.continue_()
            ),
        )
        page.goto(html.as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=20_000)
        assert page.locator(".js-plotly-plot").count() == 2
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report_offline_figures.png"), full_page=True)
    finally:
        page.close()


def test_a_warmed_kernel_serves_the_first_report_with_its_imports_done(
    tmp_path: Path, fresh_kernels
) -> None:
    """``qc run`` warms each worker's kernel while it ingests: the first report then
    runs in that kernel, the reports' modules already imported, its namespace empty."""
    reports.warm_report_kernel(str(tmp_path))
    assert len(reports._KEPT_KERNELS) == 1
    probe = _template(
        tmp_path,
        "probe",
        "import sys\nprint(*(m in sys.modules for m in ('qclib.reports', 'nbformat')))",
        "print(sorted(k for k in globals() if not k.startswith('_') and k not in "
        "('In', 'Out', 'exit', 'quit', 'get_ipython', 'open', 'sys', 'value')))",
    )
    render_notebook(probe, tmp_path / "out" / "p.ipynb", {"value": "x"}, cwd=tmp_path)
    assert [t.strip() for t in _outputs(tmp_path / "out" / "p.ipynb")] == ["True True", "[]"]
    assert len(reports._KEPT_KERNELS) == 1  # the same kernel, not a second one
