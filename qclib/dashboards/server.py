"""``qc dashboards``: the Voila server of the dashboards, behind reviewer tokens.

Voila's own application (``voila.app.Voila``), with three changes:

* its tornado application is a ``GatedApplication`` (``qclib.dashboards.auth``): every
  request needs a reviewer token (or the session cookie a token set), else 403;
* Jupyter Server's identity provider is ``ReviewerIdentityProvider`` and the reviewer
  header goes to the kernels (``VoilaConfiguration.http_header_envs``);
* two routes of ours: ``/`` (the list of dashboards) and ``/reports/<night>/<file>.html``
  (the block reports of ``parameterized_runs/``).

Kernels are preheated (one per dashboard, ``pool_size``) so that a page paints in about
two seconds, and culled when idle and unconnected. The workspace reaches them through
``QC_WORKSPACE``.
"""

from __future__ import annotations

import errno
import html
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import tornado.web
from voila.app import Voila

from qclib.dashboards import DASHBOARDS, dashboard_url
from qclib.dashboards.auth import (
    KERNEL_KEY_ENV,
    REVIEWER_HEADER,
    GatedApplication,
    ReviewerGate,
    ReviewerIdentityProvider,
)
from qclib.dashboards.session import QUERY_URL_ENV, REFRESH_ENV
from qclib.db import Database
from qclib.db import reviewers as reviewer_store
from qclib.errors import ConfigError
from qclib.workspace import ENV_WORKSPACE, Workspace

DASHBOARDS_DIR = Path(__file__).resolve().parents[2] / "dashboards"


class IndexHandler(tornado.web.RequestHandler):
    """``/``: the dashboards, one line each, and who is signed in."""

    def get(self) -> None:
        base = self.settings.get("base_url", "/")
        reviewer = html.escape(self.request.headers.get(REVIEWER_HEADER, ""))
        items = "\n".join(
            f'<li><a href="{dashboard_url(base, d)}">{html.escape(d.title)}</a>: '
            f"{html.escape(d.summary)}</li>"
            for d in DASHBOARDS
        )
        self.set_header("Cache-Control", "no-store")
        self.finish(
            "<!doctype html><html><head><meta charset='utf-8'><title>QC dashboards</title>"
            "</head><body style='font-family: sans-serif; max-width: 50em; margin: 2em auto;"
            " line-height: 1.6'>"
            f"<h1>QC dashboards</h1><p>Signed in as <b>{reviewer}</b>. Workspace "
            f"<code>{html.escape(self.settings['qc_workspace'])}</code>.</p>"
            f"<ul>{items}</ul>"
            f"<p><a href='{base}voila/tree'>All notebooks</a></p></body></html>"
        )


class StatusHandler(tornado.web.RequestHandler):
    """``/status``: JSON, how many preheated kernels wait for a page (readiness).
    Counts only: a kernel's id would let another reviewer drive that page."""

    def get(self) -> None:
        from voila.request_info_handler import RequestInfoSocketHandler

        self.set_header("Cache-Control", "no-store")
        self.finish(
            {
                "workspace": self.settings["qc_workspace"],
                "reviewer": self.request.headers.get(REVIEWER_HEADER),
                "dashboards": [d.notebook for d in DASHBOARDS],
                "kernels_waiting": len(RequestInfoSocketHandler._waiters),
            }
        )


class ReportHandler(tornado.web.StaticFileHandler):
    """``/reports/<night>/<ab_id>.html``: block reports (HTML only, inside
    ``parameterized_runs/``)."""

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        if not absolute_path.endswith(".html"):
            raise tornado.web.HTTPError(404)
        return super().validate_absolute_path(root, absolute_path)


class DashboardsApp(Voila):
    """Voila with the reviewer gate around its tornado application, and our routes."""

    def configure(self, gate: ReviewerGate, workspace: Workspace) -> None:
        self.gate = gate
        self.workspace = workspace

    def start(self) -> None:
        # Voila.start(), with our application class and routes (ours first: "/" is ours).
        self.connection_dir = tempfile.mkdtemp(prefix="voila_", dir=self.connection_dir_root)
        settings = self.init_settings()
        settings["qc_workspace"] = str(self.workspace.root)
        self.app = GatedApplication(self.gate, **settings)
        self.app.settings.update(self.tornado_settings)
        ours: list[Any] = [
            (f"{self.base_url}", IndexHandler),
            (f"{self.base_url}status", StatusHandler),
            (
                f"{self.base_url}reports/(.*)",
                ReportHandler,
                {"path": str(self.workspace.runs_dir)},
            ),
        ]
        self.app.add_handlers(".*$", ours + self.init_handlers())
        self.listen()


def _check_port(host: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as tornado binds
        try:
            probe.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} on {host} is in use; choose another with --port"
                ) from None
            raise ConfigError(f"cannot serve on {host}:{port}: {err.strerror}") from None


def _token_lookup(database: Database):  # type: ignore[no-untyped-def]
    def lookup(token: str) -> str | None:
        with database.transaction() as session:
            return reviewer_store.reviewer_for_token(session, token)

    return lookup


def voila_arguments(
    *,
    host: str,
    port: int,
    pool_size: int,
    cull_idle_s: int,
    show_tracebacks: bool,
) -> list[str]:
    """Voila's command line for the dashboards folder."""
    return [
        str(DASHBOARDS_DIR),
        f"--port={port}",
        f"--Voila.ip={host}",
        "--Voila.port_retries=0",  # kernels are told the port before it is bound
        "--no-browser",
        "--preheat_kernel=True",
        f"--pool_size={pool_size}",
        f"--show_tracebacks={show_tracebacks}",
        f"--Voila.identity_provider_class={ReviewerIdentityProvider.__module__}."
        f"{ReviewerIdentityProvider.__name__}",
        f"--VoilaConfiguration.http_header_envs={REVIEWER_HEADER}",
        # The pages need the widget manager and plotly's renderer, not anywidget (a
        # FigureWidget's): one bundle less to load and parse per page.
        "--VoilaConfiguration.extension_denylist=anywidget",
        # Every page load starts a kernel and closing a tab does not stop it.
        f"--MappingKernelManager.cull_idle_timeout={cull_idle_s}",
        "--MappingKernelManager.cull_interval=60",
        "--MappingKernelManager.cull_connected=False",
        "--Voila.log_level=WARN",
    ]


def serve_dashboards(
    workspace: Workspace,
    database: Database,
    *,
    host: str = "127.0.0.1",
    port: int = 8866,
    pool_size: int = 1,
    refresh_s: float = 300.0,
    cull_idle_s: int = 900,
    show_tracebacks: bool = False,
    announce: Any = print,
) -> None:
    """Serve the dashboards until interrupted (Ctrl-C, SIGTERM).

    Raises
    ------
    ConfigError
        No reviewer has a token yet (``qc user add NAME``), the port is taken, or the
        dashboards folder is missing.
    """
    with database.transaction() as session:
        reviewers = reviewer_store.list_reviewers(session)
    if not reviewers:
        raise ConfigError(
            "no reviewer may open the dashboards yet: run 'qc user add NAME' first; it "
            "prints the reviewer's link with their token"
        )
    missing = [d.notebook for d in DASHBOARDS if not (DASHBOARDS_DIR / d.notebook).is_file()]
    if missing:
        raise ConfigError(f"dashboard notebooks missing in {DASHBOARDS_DIR}: {missing}")
    _check_port(host, port)
    base_url = "/"
    kernel_key = secrets.token_urlsafe(32)
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "", "localhost") else host
    # Kernels inherit this environment (Voila copies os.environ into theirs).
    os.environ[ENV_WORKSPACE] = str(workspace.root)
    os.environ[KERNEL_KEY_ENV] = kernel_key
    os.environ[QUERY_URL_ENV] = f"ws://{connect_host}:{port}{base_url}voila/query/"
    os.environ[REFRESH_ENV] = str(refresh_s)
    gate = ReviewerGate(
        _token_lookup(database),
        cookie_name=f"qc-dashboards-{port}",
        base_url=base_url,
        kernel_key=kernel_key,
    )
    app = DashboardsApp()
    app.initialize(
        voila_arguments(
            host=host,
            port=port,
            pool_size=pool_size,
            cull_idle_s=cull_idle_s,
            show_tracebacks=show_tracebacks,
        )
    )
    app.configure(gate, workspace)
    names = ", ".join(r["name"] for r in reviewers)
    announce(
        f"QC dashboards of {workspace.root} on http://{host}:{port}{base_url}\n"
        f"  open http://{host}:{port}{base_url}?token=YOUR_TOKEN (reviewers: {names}; "
        "'qc user add NAME' issues a token)\n"
        "  Ctrl-C stops the server and its kernels"
    )
    app.start()


def start_server_process(
    workspace: Path, port: int, *args: str, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``qc dashboards`` in a child process (its own process group), its output into
    ``log``: for tests and benchmarks."""
    with open(log, "ab") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from qclib.cli import main; main()",
                "--workspace",
                str(workspace),
                "dashboards",
                "--port",
                str(port),
                *args,
            ],
            env=env if env is not None else dict(os.environ),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_until_ready(
    base: str,
    token: str,
    *,
    kernels: int,
    timeout_s: float = 120.0,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> dict[str, Any]:
    """Poll ``/status`` until ``kernels`` preheated kernels wait for a page."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            output = log.read_text(errors="replace")[-4000:] if log else ""
            raise RuntimeError(f"qc dashboards exited ({process.returncode}): {output}")
        try:
            request = urllib.request.Request(
                f"{base}status", headers={"Authorization": f"token {token}"}
            )
            with urllib.request.urlopen(request, timeout=5) as reply:
                last = json.loads(reply.read())
            if last["kernels_waiting"] >= kernels:
                return last
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{base}: not ready after {timeout_s:.0f} s ({last})")


def stop_server_process(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGTERM (Voila then stops its kernels); the process group if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
