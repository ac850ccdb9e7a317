"""Overload: heavy requests beyond the running + waiting bound are shed at once with 503 +
Retry-After, while the admitted ones finish; on a real uvicorn server on loopback."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from search_corpus import write_corpus
from server_helpers import running_app
from tgsearch.api.app import create_app
from tgsearch.api.limits import LimitConfig, Limiter, is_heavy


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from tgsearch.backend import EmbeddedBackend

    folder = tmp_path_factory.mktemp("server_limits")
    b = EmbeddedBackend(folder / "db", vectors="off")       # lexical only: no embedding in the background
    assert not b.ingest([write_corpus(folder / "in")]).errors
    yield b
    b.close()


class GatedBackend:
    """The real backend, except that search waits until the test opens the gate."""

    def __init__(self, inner):
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def search(self, req):
        self.entered.release()
        if not self.gate.wait(120):
            raise RuntimeError("the test never opened the gate")
        return self.inner.search(req)


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


def test_excess_searches_are_shed_with_503_while_admitted_ones_finish(backend):
    gated = GatedBackend(backend)
    app = create_app(gated, limits=LimitConfig(concurrency=2, queue=1, queue_wait=120))
    limiter: Limiter = app.state.limiter
    with running_app(app) as base, ThreadPoolExecutor(8) as pool, httpx.Client(base_url=base, timeout=120) as http:
        def get(path, **params):
            return httpx.get(base + path, params=params, timeout=120)

        running = [pool.submit(get, "/api/search", q="уран", mode="lexical") for _ in range(2)]
        for _ in range(2):
            assert gated.entered.acquire(timeout=60)            # both are inside the engine
        queued = pool.submit(get, "/api/search", q="нефть", mode="lexical")
        wait_for(lambda: limiter.waiting == 1, "one request waiting")
        # Everything beyond 2 running + 1 waiting is answered now, with the gate still shut.
        shed = [http.get("/api/search", params={"q": "парад"}) for _ in range(3)]
        shed.append(http.get("/api/posts/river_daily/3/similar"))
        page = http.get("/", params={"q": "парад"})
        export = http.get("/api/export", params={"q": "парад"})
        assert not gated.gate.is_set()
        for r in shed + [export]:
            assert r.status_code == 503 and r.json()["error"] == "overloaded", r.text
            assert r.headers["retry-after"] == "1" and "default-src 'self'" in r.headers["content-security-policy"]
        assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
        assert "busy" in page.text and page.headers["retry-after"] == "1"
        # Light requests are not limited.
        assert http.get("/api/posts/river_daily/3").status_code == 200
        assert http.get("/api/health").status_code == 200
        gated.gate.set()
        assert [f.result().status_code for f in running] == [200, 200]
        assert queued.result().status_code == 200 and queued.result().json()["total"] >= 1
        # (a slot is released just after the answer's last byte is sent)
        wait_for(lambda: limiter.active == 0 and limiter.waiting == 0, "every slot released")
        assert http.get("/api/search", params={"q": "уран"}).status_code == 200   # capacity is back


def test_a_request_waiting_too_long_is_shed(backend):
    gated = GatedBackend(backend)
    app = create_app(gated, limits=LimitConfig(concurrency=1, queue=5, queue_wait=0.2))
    with running_app(app) as base, ThreadPoolExecutor(2) as pool:
        running = pool.submit(httpx.get, base + "/api/search", params={"q": "уран"}, timeout=120)
        assert gated.entered.acquire(timeout=60)
        late = httpx.get(base + "/api/search", params={"q": "нефть"}, timeout=120)
        assert late.status_code == 503 and late.headers["retry-after"] == "1"
        gated.gate.set()
        assert running.result().status_code == 200
        limiter = app.state.limiter
        wait_for(lambda: limiter.active == 0 and limiter.waiting == 0 and limiter.shed == 1, "every slot released")


def test_concurrency_zero_means_no_limit(backend):
    gated = GatedBackend(backend)
    app = create_app(gated, limits=LimitConfig(concurrency=0))
    with running_app(app) as base, ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(httpx.get, base + "/api/search", params={"q": "уран"}, timeout=120) for _ in range(6)]
        for _ in range(6):
            assert gated.entered.acquire(timeout=60)     # all six inside the engine at once
        gated.gate.set()
        assert [f.result().status_code for f in futures] == [200] * 6


def test_heavy_paths():
    assert all(map(is_heavy, ["/", "/api/search", "/api/export", "/api/posts/a/1/similar", "/posts/a%2F1"]))
    assert not any(map(is_heavy, ["/api/posts/a/1", "/api/health", "/api/stats", "/static/app.css", "/channels", "/login"]))


def test_serve_takes_the_limits_from_options_and_the_environment(backend, monkeypatch):
    """The `serve` command hands its options to the app it runs (uvicorn.run is caught, not run)."""
    import uvicorn
    from click.testing import CliRunner

    from tgsearch.api.limits import default_concurrency
    from tgsearch.cli import main

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    monkeypatch.setenv("TGSEARCH_VECTORS", "off")
    for var in ("TGSEARCH_TOKEN", "TGSEARCH_CONCURRENCY", "TGSEARCH_QUEUE", "TGSEARCH_QUEUE_WAIT"):
        monkeypatch.delenv(var, raising=False)
    run = CliRunner().invoke
    result = run(main, ["serve", "--db", str(backend.root), "--concurrency", "3", "--queue", "0", "--queue-wait", "0.5"])
    assert result.exit_code == 0, result.output
    assert served[-1].state.limiter.config == LimitConfig(concurrency=3, queue=0, queue_wait=0.5)
    assert served[-1].state.allowed_hosts == ()
    result = run(main, ["serve", "--db", str(backend.root)], env={"TGSEARCH_CONCURRENCY": "5"})
    assert result.exit_code == 0, result.output
    assert served[-1].state.limiter.config == LimitConfig(concurrency=5, queue=20, queue_wait=5.0)
    result = run(main, ["serve", "--db", str(backend.root), "--allow-host", "a.lan", "--allow-host", "b.lan"])
    assert served[-1].state.limiter.config.concurrency == default_concurrency()
    assert served[-1].state.allowed_hosts == ("a.lan", "b.lan")
    assert run(main, ["serve", "--db", str(backend.root), "--concurrency", "-1"]).exit_code != 0
