"""Access token for the server: a login form and a cookie for the UI, a bearer header for the API.

When `tgsearch serve` is given a token (``--token`` or ``TGSEARCH_TOKEN``) every page and every
API call needs it:

- API clients send ``Authorization: Bearer <token>``;
- people sign in once on ``/login``; the server then sets an HttpOnly, SameSite=Strict cookie that
  holds an HMAC of the token (never the token itself) and that also opens ``/api/*`` (so the UI's
  export links work in the browser).

Without a token nothing is checked (the server then binds to loopback only; `serve` enforces that).

Also here: the security headers every response carries (Content-Security-Policy without inline
scripts, nosniff, no framing, no referrer to other sites).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from typing import Callable
from urllib.parse import quote

from starlette.requests import Request

COOKIE_NAME = "tgsearch_session"
COOKIE_MAX_AGE = 30 * 24 * 3600

# Reachable without a token: the login form itself and the static files it needs.
PUBLIC_PATHS = ("/login", "/logout", "/favicon.ico")
PUBLIC_PREFIXES = ("/static/",)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)


def session_value(token: str) -> str:
    """What the UI cookie holds: a keyed hash of the token, so the cookie never reveals it."""
    return hmac.new(token.encode("utf-8"), b"tgsearch-ui-session-v1", hashlib.sha256).hexdigest()


def bearer_ok(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def cookie_ok(request: Request, token: str) -> bool:
    value = request.cookies.get(COOKIE_NAME, "")
    return bool(value) and hmac.compare_digest(value.encode(), session_value(token).encode())


def request_authorized(request: Request, token: str | None) -> bool:
    """True when no token is configured, or the request carries it (bearer header or UI cookie)."""
    if not token:
        return True
    return bearer_ok(request, token) or cookie_ok(request, token)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def safe_next(value: str | None) -> str:
    """Only same-site paths are followed after login (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 32 for c in value):
        return "/"
    return value


class TokenMiddleware:
    """Pure ASGI middleware: refuses requests without the token (pages: redirect to the login
    form; /api: 401 JSON). `token_getter` is read per request so the app can be configured after
    the middleware is added."""

    def __init__(self, app, token_getter: Callable[[], str | None]):
        self.app = app
        self.token_getter = token_getter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        token = self.token_getter()
        path = scope.get("path", "")
        if not token or is_public(path):
            return await self.app(scope, receive, send)
        request = Request(scope)
        if request_authorized(request, token):
            return await self.app(scope, receive, send)
        if path.startswith("/api/") or path == "/api":
            body = json.dumps({"error": "auth", "message": "this server needs a token: send 'Authorization: Bearer <token>' (or sign in on /login)"}).encode()
            headers = [(b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="tgsearch"'),
                       (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 401, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        target = path + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
        location = "/login?next=" + quote(target, safe="")
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0"),
                                (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": b""})


class SecurityHeadersMiddleware:
    """Adds the Content-Security-Policy and friends to every response that lacks them."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for name, value in SECURITY_HEADERS:
                    if name not in present:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class LoginThrottle:
    """At most MAX_FAILURES wrong tokens per client address within WINDOW seconds on the login form
    (then 429 until the oldest failure ages out), so a token cannot be guessed at speed."""

    MAX_FAILURES = 10
    WINDOW = 15 * 60

    def __init__(self):
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> list[float]:
        recent = [t for t in self._failures.get(client, []) if now - t < self.WINDOW]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return recent

    def blocked(self, client: str) -> bool:
        with self._lock:
            return len(self._recent(client, time.monotonic())) >= self.MAX_FAILURES

    def failed(self, client: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent(client, now)
            self._failures.setdefault(client, []).append(now)
            if len(self._failures) > 10_000:      # bound memory: forget the quietest addresses
                for key in sorted(self._failures, key=lambda k: self._failures[k][-1])[:5_000]:
                    del self._failures[key]

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def install(app, token: str | None) -> None:
    """Add the token check and the security headers to a FastAPI/Starlette app (once).

    The token is kept on ``app.state.token``; the API layer can call ``request_authorized`` too.
    """
    if getattr(app.state, "tgsearch_auth_installed", False):
        if token:
            app.state.token = token
        return
    if token or not getattr(app.state, "token", None):
        app.state.token = token or None
    app.state.tgsearch_auth_installed = True
    app.add_middleware(TokenMiddleware, token_getter=lambda: getattr(app.state, "token", None))
    app.add_middleware(SecurityHeadersMiddleware)
