"""The dashboards in Chromium: first paint of each, and the time from a click to the
updated page (a detector change on the health check, a certify on the certification
page). Aims: first paint <= 3 s, an interaction <= 200 ms.

``qc dashboards`` (preheated kernels, one per dashboard) serves a *shadow* of the
workspace: its own folder with a copy of the SQLite database and qc.toml, and links to
the workspace's raw data, products and reports, so that the certifications the
benchmark makes (and the archive copies they cause) never touch the workspace itself.
A reviewer ``bench`` is added to the shadow. Before each first paint the benchmark
waits until every dashboard has a preheated kernel again, as a reviewer arriving
finds them.

    python bench/bench_dashboards.py [--workspace demo-workspace] [--rounds 3]

Writes bench/results/dashboards.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from qclib.dashboards import DASHBOARDS
from qclib.dashboards.chromium import CHROMIUM, CHROMIUM_ARGS
from qclib.dashboards.server import start_server_process, stop_server_process, wait_until_ready
from qclib.db import reviewers
from qclib.workspace import load_workspace

WITH_FIGURE = {"health_check.ipynb", "certification.ipynb"}
RESULTS = Path(__file__).parent / "results" / "dashboards.json"


def shadow_workspace(source: Path, into: Path) -> Path:
    """A workspace sharing ``source``'s files, with its own database copy and archive.

    Products and reports are hard links (a workspace refuses paths that leave it, so
    symbolic links to the source's folders would not do); raw frames and quarantine
    are symbolic links (nothing here reads them). ``into`` must be on the same file
    system as ``source``.
    """
    workspace = load_workspace(source)
    url = workspace.database_url
    if not url.startswith("sqlite:///"):
        raise SystemExit(f"{source}: the benchmark copies a SQLite database; this one is {url}")
    root = into / "shadow"
    (root / "data" / "archive").mkdir(parents=True)
    shutil.copy(source / "qc.toml", root / "qc.toml")
    with (
        sqlite3.connect(url.removeprefix("sqlite:///")) as live,
        sqlite3.connect(root / "data" / "qc.sqlite") as copy,
    ):
        live.backup(copy)  # consistent even if a pass is writing
    for name in ("raw", "quarantine", "catalogues"):
        if (workspace.data_dir / name).exists():
            (root / "data" / name).symlink_to(workspace.data_dir / name)
    for folder, target in (
        (workspace.products_dir, root / "data" / "products"),
        (workspace.runs_dir, root / "parameterized_runs"),
    ):
        shutil.copytree(folder, target, copy_function=os.link)
    (root / workspace.config.workspace.inbox).mkdir()
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_paint(browser: Any, url: str, figure: bool) -> float:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        start = time.perf_counter()
        page.goto(url, wait_until="commit", timeout=120_000)
        page.wait_for_selector(".qc", timeout=120_000)
        if figure:
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=120_000)
        return time.perf_counter() - start
    finally:
        context.close()


def detector_changes(browser: Any, url: str, times: int) -> list[float]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.goto(url, wait_until="commit", timeout=120_000)
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=120_000)
        names = page.locator(".qc-detector select option").all_inner_texts()
        out = []
        for i in range(times):
            index = 1 + i % (len(names) - 1) if len(names) > 1 else 0
            name = names[index].replace("\xa0", " ")
            start = time.perf_counter()
            page.select_option(".qc-detector select", index=index)
            page.wait_for_function(
                "(n) => document.querySelector('.gtitle')?.textContent.endsWith(n)",
                arg=name,
                timeout=30_000,
            )
            out.append(time.perf_counter() - start)
            if index == 1 and i:
                page.select_option(".qc-detector select", index=0)
                page.wait_for_timeout(300)
        return out
    finally:
        context.close()


def certifications(browser: Any, url: str, times: int) -> list[float]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.goto(url, wait_until="commit", timeout=120_000)
        page.wait_for_selector(".qc", timeout=120_000)
        out = []
        for i in range(times):
            if not page.locator(".qc-queue select option").count():
                break
            page.fill(".qc-comment textarea", f"benchmark certification {i}")
            before = page.locator(".qc-result").inner_text()
            start = time.perf_counter()
            page.click("button.qc-certify")
            page.wait_for_function(
                "(b) => document.querySelector('.qc-result').innerText !== b",
                arg=before,
                timeout=120_000,
            )
            after = page.locator(".qc-result").inner_text()
            if "by bench" not in after:
                print(f"certification refused, not timed: {after.strip()}")
                break
            out.append(time.perf_counter() - start)
        return out
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("demo-workspace"))
    parser.add_argument("--rounds", type=int, default=3, help="First paints per dashboard.")
    parser.add_argument("--clicks", type=int, default=5, help="Detector changes.")
    parser.add_argument("--certify", type=int, default=2, help="Certifications.")
    args = parser.parse_args()
    if not (args.workspace / "qc.toml").exists():
        raise SystemExit(f"{args.workspace} is not a workspace: run 'make demo' first")
    # Beside the workspace: the shadow's hard links need the same file system.
    with tempfile.TemporaryDirectory(
        prefix=".bench-dashboards-", dir=args.workspace.resolve().parent
    ) as tmp:
        root = shadow_workspace(args.workspace.resolve(), Path(tmp))
        database = load_workspace(root).open_database()
        with database.transaction() as session:
            token = reviewers.add_reviewer(session, "bench")
        database.close()
        port = free_port()
        base = f"http://127.0.0.1:{port}/"
        log = Path(tmp) / "qc-dashboards.log"
        env = {k: v for k, v in os.environ.items() if k != "QC_DB_URL"}
        process = start_server_process(root, port, log=log, env=env)
        results: dict[str, Any] = {}
        try:
            wait_until_ready(base, token, kernels=len(DASHBOARDS), timeout_s=300, process=process)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
                )
                for dashboard in DASHBOARDS:
                    url = f"{base}voila/render/{dashboard.notebook}?token={token}"
                    paints = []
                    for _ in range(args.rounds):
                        wait_until_ready(base, token, kernels=len(DASHBOARDS), timeout_s=300)
                        paints.append(first_paint(browser, url, dashboard.notebook in WITH_FIGURE))
                    results[f"first paint: {dashboard.title}"] = paints
                wait_until_ready(base, token, kernels=len(DASHBOARDS), timeout_s=300)
                results["detector change (health check)"] = detector_changes(
                    browser, f"{base}voila/render/health_check.ipynb?token={token}", args.clicks
                )
                wait_until_ready(base, token, kernels=len(DASHBOARDS), timeout_s=300)
                results["certify (certification)"] = certifications(
                    browser, f"{base}voila/render/certification.ipynb?token={token}", args.certify
                )
                browser.close()
        finally:
            stop_server_process(process)
    aims = {"first paint": 3.0}
    print(f"{'measure':<36} {'median s':>9} {'min s':>8} {'max s':>8}  aim")
    summary = {}
    for name, values in results.items():
        if not values:
            print(f"{name:<36} {'(nothing to measure)':>27}")
            continue
        aim = 3.0 if name.startswith("first paint") else 0.2
        median = statistics.median(values)
        print(
            f"{name:<36} {median:>9.3f} {min(values):>8.3f} {max(values):>8.3f}  "
            f"<= {aim:g} s {'ok' if median <= aim else 'MISSED'}"
        )
        summary[name] = {"values_s": values, "median_s": median, "aim_s": aim}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "workspace": str(args.workspace.resolve()),
                "machine": {
                    "cpus": os.cpu_count(),
                    "load_average": os.getloadavg(),
                    "python": platform.python_version(),
                },
                "results": summary,
                "aims": aims,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
