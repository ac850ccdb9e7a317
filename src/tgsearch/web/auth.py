"""Access control and the headers every response carries.

When `tgsearch serve` is given a token (``--token`` or ``TGSEARCH_TOKEN``) every page and every
API call needs it:

- API clients send ``Authorization: Bearer <token>``;
- people sign in once on ``/login``; the server then sets an HttpOnly, SameSite=Strict cookie that
  holds a random session id (never the token) recorded by the server (`Sessions`); it also opens
  ``/api/*`` (so the UI's export links work in the browser). Signing out forgets the id, so a copy
  of the cookie stops working at once.
- Wrong tokens (bearer header or login form) are counted per client address (`LoginThrottle`, a
  token bucket of MAX_FAILURES refilled one per REFILL seconds); past it a wrong token answers 429
  with Retry-After. A request carrying the right token is never refused, whatever its address did.

Without a token nothing is checked but the ``Host`` header (`HostCheckMiddleware`): only loopback
names (and the ones given with ``serve --allow-host``) are answered, so a page on another site
cannot read the server through DNS rebinding. `serve` binds loopback only without a token.

Also here: the one Content-Security-Policy (no inline scripts) and the other security headers,
added to every response, errors and unexpected 500s included (`SecurityHeadersMiddleware`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import math
import secrets
import threading
import time
from typing import Callable, Iterable
from urllib.parse import quote

from starlette.requests import Request

log = logging.getLogger("tgsearch.server")

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

# Host names a token-less server answers (any port), besides the ones configured.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


# -- sessions ------------------------------------------------------------------------------------

class Sessions:
    """Session ids the server handed out at login, in memory. The cookie holds a random id; the
    server keeps only its SHA-256, when it expires, and which token it was opened with (a new
    token closes every old session). At most MAX sessions (the oldest go first)."""

    MAX = 10_000

    def __init__(self, max_age: float = COOKIE_MAX_AGE):
        self.max_age = max_age
        self._open: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(value: str) -> str:
        return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()

    @staticmethod
    def _token_tag(token: str) -> str:
        return hmac.new(token.encode("utf-8"), b"tgsearch-session-token-v2", hashlib.sha256).hexdigest()

    def create(self, token: str) -> str:
        value = secrets.token_urlsafe(32)
        with self._lock:
            if len(self._open) >= self.MAX:
                for key in sorted(self._open, key=lambda k: self._open[k][0])[: self.MAX // 10 or 1]:
                    del self._open[key]
            self._open[self._key(value)] = (time.time() + self.max_age, self._token_tag(token))
        return value

    def valid(self, value: str, token: str) -> bool:
        if not value:
            return False
        key = self._key(value)
        with self._lock:
            found = self._open.get(key)
            if found is None:
                return False
            expires, tag = found
            if expires < time.time():
                del self._open[key]
                return False
        return hmac.compare_digest(tag, self._token_tag(token))

    def revoke(self, value: str) -> None:
        if value:
            with self._lock:
                self._open.pop(self._key(value), None)

    def __len__(self) -> int:
        return len(self._open)


# -- wrong-token throttle --------------------------------------------------------------------

class LoginThrottle:
    """Per client address, a bucket of MAX_FAILURES wrong tokens that refills one every REFILL
    seconds (10 per 15 minutes). `failed` answers 0 while the bucket has room (the caller says
    401) and otherwise the seconds until it has (the caller says 429 with Retry-After). A right
    token on the login form empties the record of its address (a right bearer token does not, so
    an API client behind the same address gives a guesser no fresh attempts). Only wrong tokens
    are ever counted or refused: the right one always passes."""

    MAX_FAILURES = 10
    REFILL = 90.0
    WINDOW = MAX_FAILURES * REFILL     # a full bucket after this long without a failure
    MAX_ADDRESSES = 10_000

    def __init__(self):
        self._buckets: dict[str, tuple[float, float]] = {}   # address -> (tokens left, at time)
        self._lock = threading.Lock()

    def _level(self, client: str, now: float) -> float:
        tokens, at = self._buckets.get(client, (float(self.MAX_FAILURES), now))
        return min(float(self.MAX_FAILURES), tokens + (now - at) / self.REFILL)

    def retry_after(self, client: str) -> int:
        """Seconds until `client` may send a wrong token without a 429 (0: it may now)."""
        with self._lock:
            level = self._level(client, time.monotonic())
        return 0 if level >= 1 else max(1, math.ceil((1 - level) * self.REFILL))

    def blocked(self, client: str) -> bool:
        return self.retry_after(client) > 0

    def failed(self, client: str) -> int:
        with self._lock:
            now = time.monotonic()
            level = self._level(client, now)
            if level < 1:
                self._buckets[client] = (level, now)
                return max(1, math.ceil((1 - level) * self.REFILL))
            self._buckets[client] = (level - 1, now)
            if len(self._buckets) > self.MAX_ADDRESSES:     # bound memory: forget the quietest
                for key in sorted(self._buckets, key=lambda k: self._buckets[k][1])[: self.MAX_ADDRESSES // 2]:
                    del self._buckets[key]
            return 0

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._buckets.pop(client, None)


def client_address(request_or_scope) -> str:
    client = request_or_scope.get("client") if isinstance(request_or_scope, dict) else request_or_scope.client
    if not client:
        return ""
    return client[0] if isinstance(client, (tuple, list)) else getattr(client, "host", "") or ""


# -- the checks ----------------------------------------------------------------------------------

def bearer_value(request: Request) -> str | None:
    """The bearer token the request carries, or None when it sends no Authorization: Bearer."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def bearer_ok(request: Request, token: str) -> bool:
    value = bearer_value(request)
    return value is not None and hmac.compare_digest(value.encode("utf-8", "surrogatepass"), token.encode())


def cookie_ok(request: Request, token: str, sessions: Sessions | None) -> bool:
    return sessions is not None and sessions.valid(request.cookies.get(COOKIE_NAME, ""), token)


def request_authorized(request: Request, token: str | None, sessions: Sessions | None = None) -> bool:
    """True when no token is configured, or the request carries it (bearer header or a live UI
    session)."""
    if not token:
        return True
    return bearer_ok(request, token) or cookie_ok(request, token, sessions)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def safe_next(value: str | None) -> str:
    """Only same-site paths are followed after login (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 32 for c in value):
        return "/"
    return value


def host_name(host_header: str) -> str:
    """The name part of a Host header: 'localhost:8000' -> 'localhost', '[::1]:80' -> '::1'."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def host_allowed(host_header: str, extra: Iterable[str] = ()) -> bool:
    """Loopback names and addresses (127.0.0.0/8, ::1) and the configured names, any port."""
    name = host_name(host_header)
    if not name:
        return False
    if name in LOOPBACK_HOSTS or name in {host_name(h) for h in extra}:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# -- ASGI plumbing -------------------------------------------------------------------------------

async def send_json(send, status: int, body: dict, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            (b"cache-control", b"no-store"), *headers]})
    await send({"type": "http.response.body", "body": data})


async def send_page(send, status: int, title: str, message: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """A small self-contained HTML page (escaped text, no scripts) for errors outside the UI."""
    from html import escape

    data = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title></head>"
            f"<body><h1>{escape(title)}</h1><p>{escape(message)}</p></body></html>").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(data)).encode()),
                            (b"cache-control", b"no-store"), *headers]})
    await send({"type": "http.response.body", "body": data})


def is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


class TokenMiddleware:
    """Pure ASGI middleware: refuses requests without the token (pages: redirect to the login
    form; /api: 401 JSON) and throttles wrong bearer tokens per address (429 + Retry-After).
    `state_getter` gives the app's state (token, sessions, throttle), read per request."""

    def __init__(self, app, state_getter: Callable[[], object]):
        self.app = app
        self.state_getter = state_getter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = self.state_getter()
        token = getattr(state, "token", None)
        path = scope.get("path", "")
        if not token or is_public(path):
            return await self.app(scope, receive, send)
        request = Request(scope)
        if request_authorized(request, token, getattr(state, "sessions", None)):
            return await self.app(scope, receive, send)
        if bearer_value(request) is not None:       # a wrong token: count it against the address
            retry = state.throttle.failed(client_address(scope))
            if retry:
                message = f"too many wrong tokens from this address; try again in {retry} s"
                if is_api(path):
                    return await send_json(send, 429, {"error": "throttled", "message": message},
                                           [(b"retry-after", str(retry).encode())])
                return await send_page(send, 429, "Too many wrong tokens", message,
                                       [(b"retry-after", str(retry).encode())])
        if is_api(path):
            return await send_json(
                send, 401, {"error": "auth", "message": "this server needs a token: send 'Authorization: Bearer <token>' (or sign in on /login)"},
                [(b"www-authenticate", b'Bearer realm="tgsearch"')])
        target = path + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
        location = "/login?next=" + quote(target, safe="")
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0"),
                                (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": b""})


class HostCheckMiddleware:
    """Without a token, answer only requests addressed to a loopback name or a configured one
    (DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends Host: evil.example).
    `state.allowed_hosts` None switches the check off (an app embedded by other code)."""

    def __init__(self, app, state_getter: Callable[[], object]):
        self.app = app
        self.state_getter = state_getter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = self.state_getter()
        allowed = getattr(state, "allowed_hosts", None)
        if allowed is None or getattr(state, "token", None):
            return await self.app(scope, receive, send)
        host = Request(scope).headers.get("host", "")
        if host_allowed(host, allowed):
            return await self.app(scope, receive, send)
        message = (f"host not allowed: {host_name(host)!r}; this server answers loopback names only "
                   "(add a name with 'tgsearch serve --allow-host NAME', or set a token)")
        await send_json(send, 421, {"error": "host", "message": message})


class SecurityHeadersMiddleware:
    """Adds the Content-Security-Policy and friends to every response that lacks them, and turns
    an exception nothing else handled into a 500 that carries them too (JSON under /api, a small
    page elsewhere; the traceback goes to the log)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for name, value in SECURITY_HEADERS:
                    if name not in present:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if started:
                raise     # the response is half sent: only closing the connection is left
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            message = "unexpected server error; the server log has the details"
            if is_api(scope.get("path", "")):
                await send_json(send_with_headers, 500, {"error": "internal", "message": message})
            else:
                await send_page(send_with_headers, 500, "Server error", message)


def install(app, token: str | None, *, allowed_hosts: Iterable[str] | None = None) -> None:
    """Add the host check, the token check and the security headers to a FastAPI/Starlette app
    (once; later calls only update the token). The token is kept on ``app.state.token``, the
    sessions on ``app.state.sessions``, the wrong-token throttle on ``app.state.throttle``.
    `allowed_hosts`: None = no Host check; else the extra names answered besides loopback."""
    if getattr(app.state, "tgsearch_auth_installed", False):
        if token:
            app.state.token = token
        return
    if token or not getattr(app.state, "token", None):
        app.state.token = token or None
    app.state.sessions = Sessions()
    app.state.throttle = LoginThrottle()
    app.state.allowed_hosts = None if allowed_hosts is None else tuple(allowed_hosts)
    app.state.tgsearch_auth_installed = True
    app.add_middleware(TokenMiddleware, state_getter=lambda: app.state)
    app.add_middleware(HostCheckMiddleware, state_getter=lambda: app.state)
    app.add_middleware(SecurityHeadersMiddleware)
