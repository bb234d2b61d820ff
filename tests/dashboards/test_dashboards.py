"""Dashboards without a browser: reviewers on the command line, the token gate, pages
that speak to the user on an empty workspace, and ``qc publish``."""

from __future__ import annotations

import json
from pathlib import Path

import ipywidgets as widgets
import pytest
from click.testing import CliRunner
from tornado import httputil

from qclib.cli import main
from qclib.dashboards import calchecker, certification, health, monitor
from qclib.dashboards.auth import KERNEL_KEY_HEADER, ReviewerGate
from qclib.dashboards.session import DashboardSession, open_dashboard
from qclib.workspace import init_workspace
from tests.dashboards.conftest import NIGHT_WITHOUT_FLATS, TRUNCATED, Site


def _qc(*args: str) -> object:
    return CliRunner().invoke(main, list(args))


def _texts(widget: widgets.Widget) -> str:
    """Every HTML value inside a widget tree."""
    out = [getattr(widget, "value", "") if isinstance(widget, widgets.HTML) else ""]
    for child in getattr(widget, "children", ()):
        out.append(_texts(child))
    return "\n".join(out)


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("QC_DB_URL", raising=False)
    return init_workspace(tmp_path / "ws")


# ----------------------------------------------------------------------- reviewers
def test_user_add_list_remove(empty) -> None:
    ws = str(empty.root)
    added = _qc("--workspace", ws, "user", "add", "alice")
    assert added.exit_code == 0, added.output
    token = added.output.split("shown this once:")[1].split()[0]
    assert f"?token={token}" in added.output
    assert "alice" in _qc("--workspace", ws, "user", "list").output
    again = _qc("--workspace", ws, "user", "add", "alice")
    assert again.exit_code == 2 and "exists already" in again.output
    listed = json.loads(_qc("--workspace", ws, "user", "list", "--json").output)
    assert [r["name"] for r in listed] == ["alice"] and token not in json.dumps(listed)
    assert _qc("--workspace", ws, "user", "remove", "alice").exit_code == 0
    gone = _qc("--workspace", ws, "user", "remove", "alice")
    assert gone.exit_code == 2 and "qc user list" in gone.output
    assert "no reviewers" in _qc("--workspace", ws, "user", "list").output


def test_dashboards_without_reviewers_say_to_add_one(empty) -> None:
    result = _qc("--workspace", str(empty.root), "dashboards", "--port", "18866")
    assert result.exit_code == 2
    assert "qc user add NAME" in result.output


# ----------------------------------------------------------------------- the gate
def _request(uri: str, **headers: str) -> httputil.HTTPServerRequest:
    return httputil.HTTPServerRequest(
        start_line=httputil.RequestStartLine("GET", uri, "HTTP/1.1"),
        headers=httputil.HTTPHeaders({"Host": "127.0.0.1:1", **headers}),
    )


@pytest.fixture
def gate() -> ReviewerGate:
    return ReviewerGate(
        {"good-token": "alice"}.get, cookie_name="qc-dashboards-1", base_url="/", kernel_key="k"
    )


def test_gate_takes_a_token_from_the_url_and_keeps_it_in_a_cookie(gate: ReviewerGate) -> None:
    reviewer, _, fresh = gate.check(_request("/voila/tree?token=good-token"))
    assert (reviewer, fresh) == ("alice", "good-token")
    assert "HttpOnly" in gate.session_cookie(fresh) and "SameSite=Strict" in gate.session_cookie(
        fresh
    )
    with_cookie = _request("/api/kernels/x", Cookie="qc-dashboards-1=good-token")
    assert gate.check(with_cookie)[::2] == ("alice", None)
    assert gate.check(_request("/", Authorization="token good-token"))[0] == "alice"


@pytest.mark.parametrize(
    ("uri", "headers", "why"),
    [
        ("/", {}, "without a reviewer token"),
        ("/?token=bad", {}, "not valid"),
        ("/", {"Cookie": "qc-dashboards-1=bad"}, "no longer valid"),
        ("/", {"Cookie": "qc-dashboards-2=good-token"}, "without"),  # another port's cookie
        ("/", {"X-QC-Reviewer": "alice"}, "without"),
    ],
)
def test_gate_refuses_what_is_not_a_valid_token(
    gate: ReviewerGate, uri: str, headers: dict[str, str], why: str
) -> None:
    reviewer, reason, _ = gate.check(_request(uri, **headers))
    assert reviewer is None and why in reason


def test_only_kernels_with_the_key_read_request_info(gate: ReviewerGate) -> None:
    assert gate.is_kernel_query(_request("/voila/query/abc", **{KERNEL_KEY_HEADER: "k"}))
    assert not gate.is_kernel_query(_request("/voila/query/abc", **{KERNEL_KEY_HEADER: "x"}))
    assert not gate.is_kernel_query(_request("/voila/query/abc"))
    assert not gate.is_kernel_query(_request("/voila/tree", **{KERNEL_KEY_HEADER: "k"}))


# ----------------------------------------------------------------------- empty pages
@pytest.mark.parametrize("dashboard", [calchecker, monitor, health, certification])
def test_a_dashboard_on_an_empty_workspace_says_so(empty, dashboard) -> None:
    session = DashboardSession(empty, empty.open_database(), "alice")
    text = _texts(dashboard.dashboard(session))
    assert "signed in as <b>alice</b>" in text
    if dashboard is certification:
        assert "The review queue is empty" in text
    else:
        assert "Nothing to show yet" in text and "qc run" in text


def test_a_dashboard_without_a_workspace_says_how_to_start(tmp_path: Path) -> None:
    session = open_dashboard(tmp_path / "nowhere")
    assert session.problem is not None and "qc dashboards --workspace DIR" in session.problem
    text = _texts(monitor.dashboard(session))
    assert "not a QC workspace" in text and "no reviewer identified" in text


# ----------------------------------------------------------------------- publish
def test_publish_writes_static_pages_that_render_offline(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "www"
    for _ in range(2):  # a second run replaces the pages in place
        result = _qc("--workspace", str(site.root), "publish", str(out), "--json")
        assert result.exit_code == 0, result.output
    written = {Path(p).name for p in json.loads(result.output)}
    assert {"index.html", "calchecker.html", "monitor.html", "health-omegacam.html"} <= written
    assert not list(out.rglob(".tmp-*"))
    index = (out / "index.html").read_text()
    for page in ("calchecker.html", "monitor.html", "health-omegacam.html"):
        assert f"href='{page}'" in index
    calchecker_page = (out / "calchecker.html").read_text()
    assert "MISS" in calchecker_page and NIGHT_WITHOUT_FLATS.isoformat() in calchecker_page
    monitor_page = (out / "monitor.html").read_text()
    assert TRUNCATED in monitor_page and "truncated" in monitor_page
    health_page = (out / "health-omegacam.html").read_text()
    assert '<script src="plotly.min.js"' in health_page and "cdn.plot.ly" not in health_page
    assert health_page.count("Plotly.newPlot") >= 5
    assert (out / "plotly.min.js").stat().st_size > 1_000_000


# ----------------------------------------------------------------------- thin notebooks
def test_dashboard_notebooks_stay_thin() -> None:
    """Imports, one parameters cell (paths only), then one qclib call per cell."""
    import ast

    import nbformat

    from qclib.dashboards import DASHBOARDS
    from qclib.dashboards.server import DASHBOARDS_DIR

    assert sorted(p.name for p in DASHBOARDS_DIR.glob("*.ipynb")) == sorted(
        d.notebook for d in DASHBOARDS
    )
    for dashboard in DASHBOARDS:
        notebook = nbformat.read(DASHBOARDS_DIR / dashboard.notebook, as_version=4)
        cells = [c for c in notebook.cells if c.cell_type == "code"]
        tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, dashboard.notebook
        for cell in cells:
            tree = ast.parse(cell.source)
            for node in ast.walk(tree):
                assert not isinstance(node, ast.FunctionDef | ast.Lambda | ast.ClassDef)
                if isinstance(node, ast.ImportFrom):
                    assert (node.module or "").startswith("qclib.")
                assert not isinstance(node, ast.Import), "only 'from qclib... import'"
            calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
            assert len(calls) <= 1, cell.source
            assert "select" not in cell.source.lower() and "sql" not in cell.source.lower()
