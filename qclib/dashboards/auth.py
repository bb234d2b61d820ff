"""Who may open the dashboards: a reviewer token on every request, checked in one place.

Every HTTP and websocket request to ``qc dashboards`` goes through
``GatedApplication.find_handler`` before tornado picks a handler, so the dashboards,
the Voila tree, the static files, the kernel API and the report files are all behind
the same check; a request without a valid token is answered 403 and reaches no
handler. A token comes in the URL (``?token=...``, the link ``qc user add`` prints), in
an ``Authorization: token ...`` header, or in the session cookie set when a page was
opened with a valid token (the page's own websocket and API requests carry that).

The gate writes the reviewer it found into the request as ``X-QC-Reviewer``, after
removing any such header the browser sent. Voila hands that header to the kernel as
the environment variable ``HTTP_X_QC_REVIEWER`` (``VoilaConfiguration.http_header_envs``):
at start for a fresh kernel, and through its request-info websocket for a preheated
one. A kernel therefore learns its reviewer from the server, never from the page.

The one request without a reviewer token is a preheated kernel asking for its page's
request (``/voila/query/<kernel_id>``): it must carry the server's kernel key, a
secret the server puts in the kernels' environment and nowhere else.
"""

from __future__ import annotations

import hmac
import html
import time
from collections.abc import Callable
from typing import Any

import tornado.web
from jupyter_server.auth.identity import IdentityProvider, User
from tornado import httputil

#: The header the gate sets to the reviewer's name (never trusted from a browser).
REVIEWER_HEADER = "X-QC-Reviewer"
#: How a kernel sees it (Voila's rule: HTTP_ + upper case, '-' -> '_').
REVIEWER_ENV = "HTTP_X_QC_REVIEWER"
#: A preheated kernel's request for its page's request info carries this header.
KERNEL_KEY_HEADER = "X-QC-Kernel-Key"
#: ... whose value the kernels find in this environment variable.
KERNEL_KEY_ENV = "QC_DASHBOARDS_KERNEL_KEY"

REFUSED_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>QC dashboards: token needed</title></head>
<body style="font-family: sans-serif; max-width: 46em; margin: 3em auto; line-height: 1.5">
<h1>403: a reviewer token is needed</h1>
<p>{why}</p>
<p>Open the dashboards with the link that <code>qc user add NAME</code> printed for you,
<code>http://HOST:PORT/?token=YOUR_TOKEN</code>. If you have none, or lost it, ask the
QC scientist in charge: <code>qc user remove NAME</code> then <code>qc user add NAME</code>
issue a new one. <code>qc user list</code> shows who has one.</p>
</body></html>
"""


class RefusedHandler(tornado.web.RequestHandler):
    """What a request without a valid token gets: 403 and a page that says what to do."""

    def initialize(self, why: str) -> None:
        self.why = why

    def prepare(self) -> None:
        self.set_status(403)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(REFUSED_PAGE.format(why=html.escape(self.why)))


class ReviewerGate:
    """Resolves a request to a reviewer name (or None), with a short cache.

    Parameters
    ----------
    lookup
        token -> reviewer name or None (``qclib.db.reviewers.reviewer_for_token`` in a
        transaction); asked again once ``ttl_s`` has passed, so removing a reviewer
        takes effect within that time.
    cookie_name
        The session cookie (per port: browsers share cookies across ports).
    base_url
        The server's base URL (``/``): the cookie's path.
    kernel_key
        The secret a preheated kernel shows to read its page's request info.
    """

    def __init__(
        self,
        lookup: Callable[[str], str | None],
        *,
        cookie_name: str,
        base_url: str,
        kernel_key: str,
        ttl_s: float = 10.0,
    ) -> None:
        self.lookup = lookup
        self.cookie_name = cookie_name
        self.base_url = base_url
        self.kernel_key = kernel_key
        self.ttl_s = ttl_s
        self._known: dict[str, tuple[str, float]] = {}

    def reviewer_for(self, token: str) -> str | None:
        cached = self._known.get(token)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        name = self.lookup(token)
        if name is None:
            self._known.pop(token, None)
        else:
            self._known[token] = (name, now + self.ttl_s)
        return name

    def is_kernel_query(self, request: httputil.HTTPServerRequest) -> bool:
        """A preheated kernel asking for its request info, with the right key."""
        if not request.path.startswith(f"{self.base_url}voila/query/"):
            return False
        shown = request.headers.get(KERNEL_KEY_HEADER, "")
        return hmac.compare_digest(shown.encode(), self.kernel_key.encode())

    def check(self, request: httputil.HTTPServerRequest) -> tuple[str | None, str, str | None]:
        """(reviewer or None, why refused, token to keep in a new session cookie)."""
        explicit = _query_token(request) or _header_token(request)
        if explicit:
            name = self.reviewer_for(explicit)
            if name is None:
                return None, "The token in this link is not valid (any more).", None
            fresh = explicit if _cookie(request, self.cookie_name) != explicit else None
            return name, "", fresh
        kept = _cookie(request, self.cookie_name)
        if kept:
            name = self.reviewer_for(kept)
            if name is not None:
                return name, "", None
            return None, "Your session's token is no longer valid.", None
        return None, "This page was opened without a reviewer token.", None

    def session_cookie(self, token: str) -> str:
        """The Set-Cookie value that keeps a session: not readable by scripts, sent
        only by pages of this server."""
        return f"{self.cookie_name}={token}; Path={self.base_url}; HttpOnly; SameSite=Strict"


def _query_token(request: httputil.HTTPServerRequest) -> str | None:
    values = request.query_arguments.get("token")
    return values[-1].decode(errors="replace") if values else None


def _header_token(request: httputil.HTTPServerRequest) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "token" else None


def _cookie(request: httputil.HTTPServerRequest, name: str) -> str | None:
    morsel = request.cookies.get(name)
    return morsel.value if morsel is not None else None


class _SessionCookie(tornado.web.OutputTransform):
    """Adds the session cookie the gate decided on to the response's headers."""

    def __init__(self, request: httputil.HTTPServerRequest) -> None:
        super().__init__(request)
        self._cookie: str | None = getattr(request, "qc_session_cookie", None)

    def transform_first_chunk(
        self, status_code: int, headers: httputil.HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, httputil.HTTPHeaders, bytes]:
        if self._cookie:
            headers.add("Set-Cookie", self._cookie)
        return status_code, headers, chunk


class GatedApplication(tornado.web.Application):
    """A tornado application that answers 403 unless the request names a reviewer."""

    def __init__(self, gate: ReviewerGate, **settings: Any) -> None:
        super().__init__(**settings)
        self.gate = gate
        self.transforms.append(_SessionCookie)

    def find_handler(self, request: httputil.HTTPServerRequest, **kwargs: Any) -> Any:
        if REVIEWER_HEADER in request.headers:
            del request.headers[REVIEWER_HEADER]  # only the gate names the reviewer
        if self.gate.is_kernel_query(request):
            return super().find_handler(request, **kwargs)
        reviewer, why, fresh_token = self.gate.check(request)
        if reviewer is None:
            return self.get_handler_delegate(request, RefusedHandler, {"why": why})
        request.headers[REVIEWER_HEADER] = reviewer
        if fresh_token:
            request.qc_session_cookie = self.gate.session_cookie(fresh_token)  # type: ignore[attr-defined]
        return super().find_handler(request, **kwargs)


class ReviewerIdentityProvider(IdentityProvider):
    """Jupyter Server's view of the gate's decision: the current user is the reviewer
    (so the kernel API and Voila's handlers know who is asking); no login page."""

    def get_user(self, handler: tornado.web.RequestHandler) -> User | None:
        name = handler.request.headers.get(REVIEWER_HEADER)
        return User(username=name, name=name, display_name=name) if name else None

    @property
    def auth_enabled(self) -> bool:
        return True

    @property
    def login_available(self) -> bool:
        return False

    def get_handlers(self) -> list[tuple[str, object]]:
        return []

    def validate_security(self, app: Any, ssl_options: dict[str, Any] | None = None) -> None:
        """The gate is the security; nothing for Jupyter Server to warn about."""
