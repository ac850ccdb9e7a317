"""tgsearch.collect.safe_fetch: the link fetcher never reaches a non-global address.

Every test runs under a connect guard (autouse): each socket connect is recorded, and any
connect to a non-loopback address is refused there, so no test touches the internet.
Names under ``.example`` resolve through a table each test sets (``fake_dns``).
"""

from __future__ import annotations

import http.server
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from tgsearch.collect.safe_fetch import FetchConfig, fetch
from tgsearch.errors import FetchFailed, FetchRefused, TgsearchError

# ------------------------------------------------------------------ guards


@pytest.fixture(autouse=True)
def connects(monkeypatch):
    """Record every socket connect; refuse (without connecting) any non-loopback one."""
    made: list[tuple[str, int]] = []
    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        host, port = address[0], address[1]
        made.append((host, port))
        if not ipaddress.ip_address(host).is_loopback:
            raise ConnectionRefusedError(f"test guard: no connect to {host}:{port}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return made


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch):
    """``fake_dns[name] = [addr, ...]`` (or a callable returning that) for *.example names."""
    table: dict = {}
    calls: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, bytes):
            host = host.decode()
        if host and host.endswith(".example"):
            calls.append(host)
            if host not in table:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            addrs = table[host]() if callable(table[host]) else table[host]
            out = []
            for a in addrs:
                ip = ipaddress.ip_address(a)
                fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
                sa = (a, port, 0, 0) if ip.version == 6 else (a, port)
                out.append((fam, socket.SOCK_STREAM, 6, "", sa))
            return out
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    table["_calls"] = calls  # type: ignore[assignment]
    return table


# ------------------------------------------------------------------ servers


class _Handler(http.server.BaseHTTPRequestHandler):
    release: threading.Event

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status, body=b"", ctype="text/html; charset=utf-8", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server API
        path = self.path
        if path == "/page":
            self._send(200, "<html><body><p>Привет, мир</p></body></html>".encode())
        elif path == "/host":
            self._send(200, self.headers.get("Host", "").encode(), "text/plain")
        elif path == "/auth":
            self._send(200, self.headers.get("Authorization", "none").encode(), "text/plain")
        elif path == "/cp1251":
            body = '<meta charset="windows-1251"><p>Новости</p>'.encode("cp1251")
            self._send(200, body, "text/html")
        elif path.startswith("/to?"):
            self._send(302, headers=[("Location", path[len("/to?"):])])
        elif path.startswith("/chain/"):
            n = int(path.rsplit("/", 1)[1])
            target = "/page" if n == 0 else f"/chain/{n - 1}"
            self._send(301, headers=[("Location", target)])
        elif path == "/big":
            self._send(200, b"x" * 5000, "text/plain")
        elif path == "/big-chunked":  # no Content-Length: the cap must stop the stream
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"y" * 1000)
        elif path == "/image":
            self._send(200, b"\x89PNG....", "image/png")
        elif path == "/missing":
            self._send(404, b"nope")
        elif path == "/silent":  # headers, then nothing until the test ends
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.flush()
            self.release.wait(30)
        elif path == "/dribble":  # a byte at a time, each well within the read timeout
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(1000):  # then hang up short of the promised length
                if self.release.wait(0.02):
                    break
                self.wfile.write(b"z")
                self.wfile.flush()
        else:
            self._send(404, b"")


class _Server:
    def __init__(self, tls_context: ssl.SSLContext | None = None):
        release = threading.Event()
        handler = type("H", (_Handler,), {"release": release})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        if tls_context is not None:
            self.httpd.socket = tls_context.wrap_socket(self.httpd.socket, server_side=True)
        self.release = release
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def other_server():
    s = _Server()
    yield s
    s.close()


def allow(*servers, host="127.0.0.1", **kw) -> FetchConfig:
    return FetchConfig(allow_hosts=tuple(f"{host}:{s.port}" for s in servers), **kw)


# ------------------------------------------------------------------ refusals

REFUSED = [
    "ftp://example.org/file",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "http:///no-host",
    "http://127.0.0.1/",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://admin.localhost/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://0/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://0.0.0.0/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[::1]/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[ff02::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[2002:7f00:1::1]/",  # 6to4 embedding 127.0.0.1
    "http://[2002:c0a8:101::1]/",  # 6to4 embedding 192.168.1.1
    "http://[64:ff9b::7f00:1]/",  # NAT64 embedding 127.0.0.1
    "http://[64:ff9b::a00:1]/",  # NAT64 embedding 10.0.0.1
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
    "http://evil.example/",  # -> 10.0.0.1
    "http://mixed.example/",  # -> a public and a private address
    "http://loop.example/",  # -> 127.0.0.1
    "http://six.example/",  # -> ::1
    "https://evil.example:8443/x",
]


@pytest.mark.parametrize("url", REFUSED)
def test_refused_without_any_connect(url, connects, fake_dns):
    fake_dns["evil.example"] = ["10.0.0.1"]
    fake_dns["mixed.example"] = ["93.184.216.34", "10.0.0.1"]
    fake_dns["loop.example"] = ["127.0.0.1"]
    fake_dns["six.example"] = ["::1"]
    with pytest.raises(FetchRefused) as info:
        fetch(url)
    assert connects == []
    message = str(info.value)
    assert "\n" not in message and "refused" in message
    assert isinstance(info.value, TgsearchError)


def test_allow_list_names_exact_host_and_port(server, connects):
    # allowed on another port only: still refused, nothing connected
    with pytest.raises(FetchRefused):
        fetch(f"http://127.0.0.1:{server.port}/page",
              FetchConfig(allow_hosts=(f"127.0.0.1:{server.port + 1}",)))
    assert connects == []


@pytest.mark.parametrize("url,address", [
    ("http://public.example/", ("93.184.216.34", 80)),
    ("http://8.8.8.8:8080/", ("8.8.8.8", 8080)),
    ("http://[64:ff9b::808:808]/", ("64:ff9b::808:808", 80)),  # NAT64 of a public v4
    ("http://134744072/", ("8.8.8.8", 80)),  # decimal spelling of a public v4
])
def test_global_addresses_pass_the_policy(url, address, connects, fake_dns):
    """Public addresses are not refused: the fetch reaches the connect (the guard stops it)."""
    fake_dns["public.example"] = ["93.184.216.34"]
    with pytest.raises(FetchFailed):
        fetch(url)
    assert connects == [address]


# ------------------------------------------------------------------ real fetches


def test_allowed_loopback_server_returns_page(server, connects):
    result = fetch(f"http://127.0.0.1:{server.port}/page", allow(server))
    assert result.status == 200
    assert result.content_type == "text/html"
    assert "Привет, мир" in result.text
    assert result.url == f"http://127.0.0.1:{server.port}/page"
    assert [(h.address, h.status) for h in result.hops] == [("127.0.0.1", 200)]
    assert connects == [("127.0.0.1", server.port)]


def test_allow_list_by_name_localhost(server):
    result = fetch(f"http://localhost:{server.port}/page", allow(server, host="localhost"))
    assert "Привет" in result.text


def test_url_credentials_are_not_sent(server):
    result = fetch(f"http://user:secret@127.0.0.1:{server.port}/auth#frag", allow(server))
    assert result.text == "none"
    assert result.url == f"http://127.0.0.1:{server.port}/auth"


def test_charset_from_meta(server):
    result = fetch(f"http://127.0.0.1:{server.port}/cp1251", allow(server))
    assert "Новости" in result.text


def test_redirects_are_followed_and_recorded(server):
    result = fetch(f"http://127.0.0.1:{server.port}/chain/2", allow(server))  # 3 redirects
    assert result.url.endswith("/page")
    assert [h.status for h in result.hops] == [301, 301, 301, 200]


def test_more_than_three_redirects_refused(server):
    with pytest.raises(FetchRefused, match="more than 3 redirects"):
        fetch(f"http://127.0.0.1:{server.port}/chain/3", allow(server))  # 4 redirects


def test_redirect_to_unallowed_loopback_refused_at_that_hop(server, other_server, connects):
    hop = f"http://127.0.0.1:{other_server.port}/page"
    with pytest.raises(FetchRefused) as info:
        fetch(f"http://127.0.0.1:{server.port}/to?{hop}", allow(server))
    assert info.value.url == hop
    assert ("127.0.0.1", other_server.port) not in connects


@pytest.mark.parametrize("location", [
    "http://169.254.169.254/latest/meta-data/",
    "http://0x7f000001/",
    "file:///etc/passwd",
    "http://evil.example/",
])
def test_redirect_to_forbidden_target_refused(server, connects, fake_dns, location):
    fake_dns["evil.example"] = ["10.0.0.1"]
    with pytest.raises(FetchRefused):
        fetch(f"http://127.0.0.1:{server.port}/to?{location}", allow(server))
    assert connects == [("127.0.0.1", server.port)]


def test_body_over_the_cap_fails(server):
    with pytest.raises(FetchFailed, match="cap"):
        fetch(f"http://127.0.0.1:{server.port}/big", allow(server, max_bytes=1000))
    with pytest.raises(FetchFailed, match="cap"):
        fetch(f"http://127.0.0.1:{server.port}/big-chunked", allow(server, max_bytes=1000))
    assert len(fetch(f"http://127.0.0.1:{server.port}/big", allow(server)).text) == 5000


def test_other_content_types_refused(server):
    with pytest.raises(FetchRefused, match="image/png"):
        fetch(f"http://127.0.0.1:{server.port}/image", allow(server))


def test_http_error_status_fails(server):
    with pytest.raises(FetchFailed, match="HTTP 404"):
        fetch(f"http://127.0.0.1:{server.port}/missing", allow(server))


def test_unresolvable_name_fails(fake_dns):
    with pytest.raises(FetchFailed, match="cannot resolve"):
        fetch("http://nowhere.example/")


def test_silent_server_fails_on_the_deadline(server):
    with pytest.raises(FetchFailed, match="timed out"):
        fetch(f"http://127.0.0.1:{server.port}/silent",
              allow(server, read_timeout=60, total_timeout=0.3))


def test_dribbling_server_fails_on_the_total_deadline(server):
    """Each byte comes well within the read timeout; only the total deadline stops it."""
    with pytest.raises(FetchFailed, match="timed out"):
        fetch(f"http://127.0.0.1:{server.port}/dribble",
              allow(server, read_timeout=60, total_timeout=0.3))


# ------------------------------------------------------------------ connect to the checked address


def test_rebinding_name_connects_to_the_checked_address(connects, fake_dns):
    answers = iter([["93.184.216.34"]])
    fake_dns["rebind.example"] = lambda: next(answers, ["127.0.0.1"])
    with pytest.raises(FetchFailed):  # the guard refuses the (public) connect
        fetch("http://rebind.example/")
    assert connects == [("93.184.216.34", 80)]
    assert fake_dns["_calls"] == ["rebind.example"]  # resolved once, never again


def test_pinned_connect_keeps_the_host_header(server, connects, fake_dns):
    answers = iter([["127.0.0.1"]])
    fake_dns["intranet.example"] = lambda: next(answers, ["10.9.9.9"])
    result = fetch(f"http://intranet.example:{server.port}/host",
                   allow(server, host="intranet.example"))
    assert result.text == f"intranet.example:{server.port}"
    assert connects == [("127.0.0.1", server.port)]


# ------------------------------------------------------------------ https: SNI and certificate


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available to make a test certificate")
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_server(tmp_path):
    cert, key = _self_signed(tmp_path, "secure.example")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    seen: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: seen.append(name)
    s = _Server(context)
    s.cert, s.sni = cert, seen
    yield s
    s.close()


def test_https_uses_the_url_name_for_sni_and_certificate(tls_server, connects, fake_dns):
    fake_dns["secure.example"] = ["127.0.0.1"]
    config = allow(tls_server, host="secure.example", ca_file=str(tls_server.cert))
    result = fetch(f"https://secure.example:{tls_server.port}/page", config)
    assert "Привет" in result.text
    assert tls_server.sni == ["secure.example"]
    assert connects == [("127.0.0.1", tls_server.port)]


def test_https_certificate_for_another_name_fails(tls_server, fake_dns):
    fake_dns["other.example"] = ["127.0.0.1"]
    config = allow(tls_server, host="other.example", ca_file=str(tls_server.cert))
    with pytest.raises(FetchFailed):
        fetch(f"https://other.example:{tls_server.port}/page", config)
