"""Fetch untrusted URLs (links found in posts) without reaching a non-global address.

Policy, applied to the first URL and again to every redirect hop:

* only ``http`` / ``https``;
* the URL requested drops any ``user:password@`` and ``#fragment``;
* the host is normalised the way resolvers read it (``127.1``, ``2130706433``,
  ``0x7f000001``, ``0177.0.0.1`` all mean 127.0.0.1; a trailing dot is dropped);
* ``localhost`` and ``*.localhost`` are refused by name;
* a name is resolved once (``socket.getaddrinfo``) and refused unless EVERY address is
  global (see :func:`_ip_refusal`: loopback, private, link-local, CGNAT, multicast,
  unspecified, reserved, Teredo, and the IPv4-mapped / 6to4 / NAT64 forms embedding such
  an IPv4 address are all refused);
* an operator allow-list (``FetchConfig.allow_hosts``: ``host`` or ``host:port``) lets
  named internal hosts through; nothing else reaches a non-global address.

Connect-to-checked-address: the connection is made to the address that was checked, never
to a second resolution (a DNS-rebinding name cannot swap 127.0.0.1 in between). httpx stays
in charge of HTTP (Host header from the URL; for https, SNI and certificate checks against
the URL's host name, since httpcore passes the origin host as ``server_hostname``); only the
TCP connect is redirected. httpcore's ``ConnectionPool`` accepts a ``network_backend``; ours
(:class:`_PinnedBackend`) maps the one (host, port) of the hop to its checked IP, refuses any
other origin, and delegates to httpcore's ``SyncBackend`` with the IP literal. The pool is
installed in an ``httpx.HTTPTransport`` subclass (:class:`_PinnedTransport`) that replaces the
pool the base class built (httpx 0.28 has no public hook for the backend). The backend also
wraps each stream so every read/write waits at most until the fetch's total deadline.

Redirects are never followed by httpx; :func:`fetch` follows at most
``max_redirects`` hops itself, checking each. A body over ``max_bytes`` (after content
decoding) is a :class:`FetchFailed` — the stream stops there, nothing truncated is returned.
Only ``text/html`` and ``text/plain`` are taken; another type is a :class:`FetchRefused`.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import time
import typing
import urllib.parse
from dataclasses import dataclass, field

import httpcore
import httpx

from tgsearch.errors import FetchFailed, FetchRefused

__all__ = ["FetchConfig", "FetchResult", "Hop", "fetch"]

_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_TAKEN_TYPES = frozenset({"text/html", "text/plain"})
_IPV4_SPELLING = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)

IPAddress = typing.Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


@dataclass(frozen=True)
class FetchConfig:
    """How :func:`fetch` behaves. Timeouts are seconds; ``total_timeout`` bounds a whole
    fetch (all hops, body included)."""

    allow_hosts: tuple[str, ...] = ()
    max_bytes: int = 5 * 1024 * 1024
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 30.0
    max_redirects: int = 3
    user_agent: str = "tgsearch-fetch/1 (+self-hosted archive of linked articles)"
    ca_file: str | None = None  # CA bundle trusted instead of the system one (internal CA)


@dataclass(frozen=True)
class Hop:
    """One request made: its URL, the address connected to, and the status answered."""

    url: str
    address: str
    status: int


@dataclass(frozen=True)
class FetchResult:
    url: str  # final URL (after redirects)
    status: int
    content_type: str  # media type only, lower case ("text/html")
    text: str
    hops: tuple[Hop, ...] = field(default_factory=tuple)


# ---------------------------------------------------------------- address policy


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _ip_refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be fetched from, or None when it is a global unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.teredo is not None:
            return f"{ip} is a Teredo address"
        if ip in _NAT64_LOCAL:
            return f"{ip} is a local-use NAT64 address"
        inner = _embedded_v4(ip)
        if inner is not None:
            why = _ip_refusal(inner)
            return f"{ip} embeds {why}" if why else None
    for flag, what in (("is_loopback", "loopback"), ("is_unspecified", "unspecified"),
                       ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                       ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, flag):
            return f"{ip} is a {what} address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return f"{ip} is a shared (CGNAT) address"
    if not ip.is_global:
        return f"{ip} is not a global address"
    return None


def _literal_ip(host: str) -> IPAddress | None:
    """The address a resolver would read from ``host`` without DNS, or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _IPV4_SPELLING.match(host) and any(c.isdigit() for c in host):
        try:  # inet_aton reads 127.1, 2130706433, 0x7f000001, 0177.0.0.1 like resolvers do
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _split_allow(entry: str) -> tuple[str, int | None]:
    entry = entry.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host.rstrip("."), int(port)
    return entry.rstrip("."), None


def _allowed(host: str, port: int, allow_hosts: tuple[str, ...]) -> bool:
    for entry in allow_hosts:
        a_host, a_port = _split_allow(entry)
        if a_host == host and (a_port is None or a_port == port):
            return True
    return False


@dataclass(frozen=True)
class _Target:
    """A checked hop: the URL to request and the (host, port) -> ip it may connect to."""

    url: str
    host: str
    port: int
    ip: str


def _check_url(url: str, config: FetchConfig) -> _Target:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise FetchRefused(url, f"not a valid URL ({e})") from e
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchRefused(url, f"scheme {scheme or '(none)'!r} is not http or https")
    raw_host = parts.hostname or ""
    if not raw_host:
        raise FetchRefused(url, "no host in the URL")
    host = raw_host.rstrip(".").lower()
    port = port or (443 if scheme == "https" else 80)
    allowed = _allowed(host, port, config.allow_hosts)
    literal = _literal_ip(host)
    if literal is not None:
        if not allowed:
            why = _ip_refusal(literal)
            if why:
                raise FetchRefused(url, why)
        url = _with_host(parts, str(literal), literal.version)
        return _Target(url, str(literal), port, str(literal))
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError as e:
        raise FetchRefused(url, f"host {host!r} is not a valid name") from e
    if not allowed and (ascii_host == "localhost" or ascii_host.endswith(".localhost")):
        raise FetchRefused(url, f"{ascii_host} is a local name")
    try:
        infos = socket.getaddrinfo(ascii_host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise FetchFailed(url, f"cannot resolve {ascii_host} ({e})") from e
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise FetchFailed(url, f"{ascii_host} resolves to no address")
    if not allowed:
        for ip in addresses:
            why = _ip_refusal(ip)
            if why:
                raise FetchRefused(url, f"{ascii_host} resolves to {why}")
    return _Target(_with_host(parts, ascii_host, 0), ascii_host, port, str(addresses[0]))


def _with_host(parts: urllib.parse.SplitResult, host: str, version: int) -> str:
    """The URL requested: normalised host, no user:password, no fragment."""
    netloc = f"[{host}]" if version == 6 else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme.lower(), netloc, parts.path or "/",
                                    parts.query, ""))


# ------------------------------------------------------- connect to the checked address


class _DeadlineStream(httpcore.NetworkStream):
    """A stream whose every wait ends by the fetch's total deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float):
        self._inner = inner
        self._deadline = deadline

    def _wait(self, timeout: float | None) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("total deadline passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._wait(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._wait(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):  # type: ignore[no-untyped-def]
        tls = self._inner.start_tls(ssl_context, server_hostname, self._wait(timeout))
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects the one checked origin to its checked IP; refuses every other origin."""

    def __init__(self, target: _Target, deadline: float):
        self._target = target
        self._deadline = deadline
        self._base = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: typing.Iterable[typing.Any] | None = None,
                    ) -> httpcore.NetworkStream:
        if (host.lower(), port) != (self._target.host, self._target.port):
            raise httpcore.ConnectError(f"{host}:{port} was not checked; not connecting")
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ConnectTimeout("total deadline passed")
        timeout = left if timeout is None else min(timeout, left)
        stream = self._base.connect_tcp(self._target.ip, port, timeout=timeout,
                                        local_address=local_address,
                                        socket_options=socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: typing.Iterable[typing.Any] | None = None,
                            ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are never used for fetched links")

    def sleep(self, seconds: float) -> None:
        self._base.sleep(seconds)


class _PinnedTransport(httpx.HTTPTransport):
    """httpx's transport, with a connection pool whose network backend is pinned."""

    def __init__(self, target: _Target, deadline: float, ca_file: str | None):
        super().__init__(trust_env=False)
        context = (ssl.create_default_context(cafile=ca_file) if ca_file
                   else httpx.create_ssl_context(trust_env=False))
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=1, http1=True, http2=False,
            network_backend=_PinnedBackend(target, deadline),
        )


# ------------------------------------------------------------------------ fetching


def _media_type(value: str) -> tuple[str, str | None]:
    kind, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip():
            charset = val.strip().strip("\"'")
    return kind.strip().lower(), charset


def _decode(body: bytes, kind: str, charset: str | None) -> str:
    if charset is None and kind == "text/html":
        found = _META_CHARSET.search(body[:4096])
        if found:
            charset = found.group(1).decode("ascii")
    for encoding in (charset, "utf-8"):
        if encoding:
            try:
                return body.decode(encoding, errors="replace")
            except LookupError:
                continue
    return body.decode("utf-8", errors="replace")  # pragma: no cover - utf-8 always exists


def _read_body(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchFailed(url, f"body of {declared} bytes is over the {max_bytes}-byte cap")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FetchFailed(url, f"body is over the {max_bytes}-byte cap")
        chunks.append(chunk)
    return b"".join(chunks)


def _one_hop(target: _Target, config: FetchConfig, deadline: float,
             take_body: typing.Callable[[httpx.Response], FetchResult]
             ) -> FetchResult | tuple[int, str]:
    """Request one checked URL; the result, or a redirect's (status, absolute Location)."""
    timeout = httpx.Timeout(connect=config.connect_timeout, read=config.read_timeout,
                            write=config.read_timeout, pool=config.connect_timeout)
    headers = {"User-Agent": config.user_agent,
               "Accept": "text/html, text/plain;q=0.9"}
    try:
        transport = _PinnedTransport(target, deadline, config.ca_file)
        with httpx.Client(transport=transport, timeout=timeout, follow_redirects=False,
                          trust_env=False, headers=headers) as client:
            with client.stream("GET", target.url) as response:
                if response.status_code in _REDIRECT_CODES:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchFailed(target.url, f"HTTP {response.status_code} "
                                                      "redirect without a Location")
                    return (response.status_code,
                            urllib.parse.urljoin(target.url, location.strip()))
                return take_body(response)
    except httpx.TimeoutException as e:
        raise FetchFailed(target.url, f"timed out ({e or type(e).__name__})") from e
    except httpx.HTTPError as e:
        raise FetchFailed(target.url, f"{type(e).__name__}: {e}") from e


def fetch(url: str, config: FetchConfig | None = None) -> FetchResult:
    """GET ``url`` under the policy in this module's docstring.

    Raises :class:`FetchRefused` for a policy refusal (nothing is connected to for a
    refused address) and :class:`FetchFailed` for a network or HTTP failure.
    """
    config = config or FetchConfig()
    deadline = time.monotonic() + config.total_timeout
    hops: list[Hop] = []
    current = url
    for _ in range(config.max_redirects + 1):
        target = _check_url(current, config)

        def take_body(response: httpx.Response, target: _Target = target) -> FetchResult:
            hops.append(Hop(target.url, target.ip, response.status_code))
            if not 200 <= response.status_code < 300:
                raise FetchFailed(target.url, f"HTTP {response.status_code}")
            kind, charset = _media_type(response.headers.get("content-type", ""))
            if kind not in _TAKEN_TYPES:
                raise FetchRefused(target.url, f"content type {kind or '(none)'!r} is not "
                                               "text/html or text/plain")
            body = _read_body(response, target.url, config.max_bytes)
            return FetchResult(target.url, response.status_code, kind,
                               _decode(body, kind, charset), tuple(hops))

        outcome = _one_hop(target, config, deadline, take_body)
        if isinstance(outcome, FetchResult):
            return outcome
        status, current = outcome
        hops.append(Hop(target.url, target.ip, status))
    raise FetchRefused(url, f"more than {config.max_redirects} redirects "
                            f"(last to {current})")
