"""The dashboards in real Chromium, served by ``qc dashboards`` with reviewer tokens."""

from __future__ import annotations

import re
import time

import pytest

from qclib.db.models import ArchiveFileRow, AuditRow, ProductRow
from qclib.workspace import load_workspace
from tests.dashboards.conftest import (
    NIGHT_WITHOUT_FLATS,
    TRUNCATED,
    Server,
    screenshot,
)

pytestmark = pytest.mark.browser

FIGURE = ".js-plotly-plot .main-svg"
PAINT_TIMEOUT_MS = 60_000


def _open(context, url: str, *, figure: bool = False):  # type: ignore[no-untyped-def]
    """Open a dashboard and wait until it has painted; returns (page, seconds)."""
    page = context.new_page()
    start = time.perf_counter()
    # Not "load": that waits for the inline report (an iframe of several MB) too.
    response = page.goto(url, wait_until="commit", timeout=PAINT_TIMEOUT_MS)
    assert response is not None and response.status == 200
    page.wait_for_selector(".qc", timeout=PAINT_TIMEOUT_MS)
    if figure:
        page.wait_for_selector(FIGURE, timeout=PAINT_TIMEOUT_MS)
    return page, time.perf_counter() - start


# ----------------------------------------------------------------------- access
@pytest.mark.parametrize(
    "path",
    [
        "",
        "voila/tree",
        "voila/render/monitor.ipynb",
        "voila/render/certification.ipynb",
        "voila/static/voila.js",
        "api/kernels",
        "status",
        "REPORT",
    ],
)
def test_every_page_needs_a_valid_token(server: Server, qc_context, path: str) -> None:
    url = server.url + (f"reports/{server.site.report}" if path == "REPORT" else path)
    for attempt in (url, f"{url}?token=not-a-token"):
        reply = qc_context.request.get(attempt)
        assert reply.status == 403, attempt
        assert "qc user add NAME" in reply.text()
    spoofed = qc_context.request.get(url, headers={"X-QC-Reviewer": "alice"})
    assert spoofed.status == 403  # the reviewer header is the server's, never the browser's
    with_token = qc_context.request.get(f"{url}?token={server.site.tokens['bob']}")
    # Past the gate: Voila answers (it has no kernel listing: 404 there).
    assert with_token.status == (404 if path == "api/kernels" else 200), url


def test_a_token_opens_a_session_for_the_pages_own_requests(server: Server, qc_context) -> None:
    page = qc_context.new_page()
    page.goto(f"{server.url}?token={server.site.tokens['alice']}")
    assert "Signed in as alice" in page.inner_text("body")
    cookie = next(c for c in qc_context.cookies() if c["name"].startswith("qc-dashboards-"))
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # The report, the API: by the session cookie, no token in the URL.
    assert qc_context.request.get(f"{server.url}reports/{server.site.report}").status == 200
    assert qc_context.request.get(f"{server.url}status").json()["reviewer"] == "alice"


# ----------------------------------------------------------------------- painting
@pytest.mark.parametrize(
    ("notebook", "figure"),
    [
        ("calchecker.ipynb", False),
        ("monitor.ipynb", False),
        ("health_check.ipynb", True),
        ("certification.ipynb", True),
    ],
)
def test_each_dashboard_paints(server: Server, qc_context, notebook: str, figure: bool) -> None:
    server.wait_for_kernels()  # a preheated kernel per dashboard, as a reviewer finds it
    page, seconds = _open(qc_context, server.page_url(notebook), figure=figure)
    print(f"{notebook}: first paint {seconds:.2f} s")
    text = page.inner_text("body")
    assert "signed in as alice" in text
    assert "Traceback" not in text and "Error" not in text
    page.wait_for_timeout(500)  # let the last widgets settle before the picture
    screenshot(page, notebook.removesuffix(".ipynb"))


def test_calchecker_shows_miss_for_the_night_whose_flats_were_removed(
    server: Server, qc_context
) -> None:
    page, _ = _open(qc_context, server.page_url("calchecker.ipynb"))
    row = page.locator("tr", has_text=NIGHT_WITHOUT_FLATS.isoformat()).first
    assert row.locator(".badge").first.inner_text() == "MISS"
    assert "MASTER_FLAT" in row.inner_text()
    todo = page.locator(".todo").inner_text()
    assert "To take tonight" in todo and "FLAT" in todo


def test_calchecker_refreshes_on_its_own(server: Server, qc_context) -> None:
    page, _ = _open(qc_context, server.page_url("calchecker.ipynb"))
    stamp = page.locator(".qc-refreshed")
    first = stamp.inner_text()
    assert first.startswith("last refreshed")
    # The server refreshes every 4 s (qc dashboards --refresh-seconds 4).
    page.wait_for_function(
        "(first) => document.querySelector('.qc-refreshed').innerText !== first",
        arg=first,
        timeout=30_000,
    )


def test_monitor_lists_the_quarantined_file_and_links_reports(server: Server, qc_context) -> None:
    page, _ = _open(qc_context, server.page_url("monitor.ipynb"))
    quarantine = page.locator("tr", has_text=TRUNCATED)
    assert quarantine.count() == 1
    assert "truncated" in quarantine.inner_text().lower()
    assert re.search(r"Last pass: \d{4}-\d\d-\d\d", page.inner_text("body"))
    night = server.site.report.split("/")[0]
    page.select_option(".qc-night select", label=night)
    link = page.locator("a", has_text="report").first
    link.wait_for(timeout=30_000)
    href = link.get_attribute("href")
    assert href is not None and href.startswith("/reports/")
    # Same server, same session: the report opens; a stranger gets 403.
    report = qc_context.request.get(server.url.rstrip("/") + href)
    assert report.status == 200 and "<html" in report.text().lower()
    stranger = qc_context.browser.new_context()
    try:
        assert stranger.request.get(server.url.rstrip("/") + href).status == 403
    finally:
        stranger.close()


def test_health_check_detector_selector_redraws(server: Server, qc_context) -> None:
    page, _ = _open(qc_context, server.page_url("health_check.ipynb"), figure=True)
    options = [
        o.replace("\xa0", " ") for o in page.locator(".qc-detector select option").all_inner_texts()
    ]
    assert options[0] == "all detectors" and len(options) >= 3
    title = page.locator(".gtitle").first
    assert "all detectors" in (title.text_content() or "")
    chosen = options[2]
    start = time.perf_counter()
    page.select_option(".qc-detector select", index=2)
    page.wait_for_function(
        "(name) => document.querySelector('.gtitle').textContent.endsWith(name)",
        arg=chosen,
        timeout=15_000,
    )
    print(f"detector change redrawn in {time.perf_counter() - start:.3f} s")
    screenshot(page, "health_check_detector")


def test_certify_and_reject_through_the_page(server: Server, qc_browser) -> None:
    workspace = load_workspace(server.site.root)
    database = workspace.open_database()
    try:
        certified = _decide(server, qc_browser, "alice", "certify", "checked by eye: fine")
        rejected = _decide(server, qc_browser, "bob", "reject", "gradient across the chip")
        with database.transaction() as session:
            rows = {
                r.path.rsplit("/", 1)[-1]: r
                for r in session.query(ProductRow).filter(
                    ProductRow.path.like(f"%{certified}") | ProductRow.path.like(f"%{rejected}")
                )
            }
            assert rows[certified].status in ("certified", "archived")
            assert rows[rejected].status == "rejected"
            audit = {
                (a.product, a.action): a
                for a in session.query(AuditRow).filter(AuditRow.actor.in_(["alice", "bob"]))
            }
            assert any(p == certified and act.startswith("certify") for p, act in audit)
            assert audit[(rejected, "reject")].actor == "bob"
            assert audit[(rejected, "reject")].comment == "gradient across the chip"
            assert all(a.actor == "alice" for (p, _), a in audit.items() if p == certified)
            archived = session.query(ArchiveFileRow).filter_by(
                product_id=rows[certified].id, kind="product"
            )
            (item,) = list(archived)
            assert item.status == "archived"
            assert (workspace.root / item.path).is_file()
            assert workspace.archive_dir in (workspace.root / item.path).parents
            assert (
                not session.query(ArchiveFileRow)
                .filter_by(product_id=rows[rejected].id, status="archived")
                .count()
            )
    finally:
        database.close()


def _decide(server: Server, browser, reviewer: str, decision: str, comment: str) -> str:  # type: ignore[no-untyped-def]
    """Open the certification page as ``reviewer`` (a forged reviewer header sent along
    must not matter), decide on the first product of the queue; returns its file name."""
    context = browser.new_context(
        viewport={"width": 1400, "height": 1000}, extra_http_headers={"X-QC-Reviewer": "mallory"}
    )
    try:
        page, _ = _open(context, server.page_url("certification.ipynb", reviewer))
        assert f"signed in as {reviewer}" in page.inner_text("body")
        name = page.locator(".qc h3 code").first.inner_text()
        page.fill(".qc-comment textarea", comment)
        start = time.perf_counter()
        page.click(f"button.qc-{decision}")
        word = "certified" if decision == "certify" else "rejected"
        page.wait_for_function(
            "(word) => document.querySelector('.qc-result').innerText.includes(word)",
            arg=word,
            timeout=30_000,
        )
        print(f"{decision} by {reviewer}: page updated in {time.perf_counter() - start:.3f} s")
        result = page.locator(".qc-result").inner_text()
        assert name in result and f"by {reviewer}" in result
        screenshot(page, f"certification_after_{decision}")
        return name
    finally:
        context.close()
