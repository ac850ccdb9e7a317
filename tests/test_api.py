"""The HTTP API contract through an in-process client, auth, and `serve`'s bind guard."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from search_corpus import POSTS, make_backend
from tgsearch.api.app import create_app
from tgsearch.cli import check_bind, main


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    b = make_backend(tmp_path_factory.mktemp("api"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def client(backend):
    return TestClient(create_app(backend))


def test_search_contract(client):
    r = client.get("/api/search", params={"q": "урану", "mode": "lexical"})
    assert r.status_code == 200
    body = r.json()
    assert {"query", "total", "took_ms", "hits", "facets", "timeline"} <= set(body)
    assert body["query"] == "урану" and body["total"] == 1 and body["took_ms"] >= 0
    hit = body["hits"][0]
    assert {"id", "channel", "date", "title", "text", "snippet", "url", "score", "source_url", "retrievers"} <= set(hit)
    assert hit["id"] == "steppe_news/1" and hit["url"] == "https://t.me/steppe_news/1"
    assert "<mark>урана</mark>" in hit["snippet"]


def test_search_parameters(client):
    r = client.get("/api/search", params=[("q", "парад OR нефть"), ("channel", "river_daily"), ("channel", "Техзал"),
                                          ("since", "2025-03-02"), ("until", "2025-06-01"), ("sort", "date"),
                                          ("limit", "2"), ("offset", "1"), ("facets", "true")])
    body = r.json()
    assert r.status_code == 200, body
    assert body["total"] == 3 and [h["id"] for h in body["hits"]] == ["river_daily/3", "tech_hall/9"]
    assert {f["value"] for f in body["facets"]["channel"]} == {"river_daily", "tech_hall"}
    assert sum(b["count"] for b in body["timeline"]) == 3
    r = client.get("/api/search", params={"q": "нефть", "kind": "article"})
    assert [h["id"] for h in r.json()["hits"]] == ["tech_hall/8"]


def test_query_error_is_400_with_position(client):
    r = client.get("/api/search", params={"q": 'уран since:'})
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "query" and body["position"] == 5 and "needs a value" in body["message"]
    r = client.get("/api/search", params={"q": "since:2025-02-30"})
    assert r.status_code == 400 and r.json()["position"] == 6
    r = client.get("/api/search", params={"q": "уран", "since": "май"})
    assert r.status_code == 400 and "since" in r.json()["message"]
    r = client.get("/api/search", params={"q": "уран", "sort": "random"})
    assert r.status_code == 400


def test_posts_endpoint(client):
    r = client.get("/api/posts/river_daily/3")
    assert r.status_code == 200 and r.json()["text"] == POSTS[2]["text"]
    r = client.get("/api/posts/river_daily/999")
    assert r.status_code == 404 and r.json()["error"] and "river_daily/999" in r.json()["message"]


def test_stats_health_docs_and_csp(client):
    stats = client.get("/api/stats").json()
    assert stats["posts"] == len(POSTS) and stats["index"]["indexed"] == len(POSTS)
    assert stats["index"]["hwm"] == stats["index"]["store_version"]
    health = client.get("/api/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and "Query language" in docs.text and "/api/search" in docs.text
    assert "description" in client.get("/api/openapi.json").json()["info"]
    assert "default-src 'self'" in health.headers["content-security-policy"]


def test_bearer_token_is_enforced(backend):
    client = TestClient(create_app(backend, token="s3cret-token"))
    assert client.get("/api/search", params={"q": "уран"}).status_code == 401
    bad = client.get("/api/search", params={"q": "уран"}, headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401
    ok = client.get("/api/search", params={"q": "уран"}, headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200 and ok.json()["total"] == 1


def test_serve_refuses_non_loopback_without_token(tmp_path, monkeypatch):
    monkeypatch.delenv("TGSEARCH_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "db"), "--host", "0.0.0.0"])
    assert result.exit_code != 0 and "token" in result.output
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "a-token")


def test_cli_search_json(backend):
    import json

    result = CliRunner().invoke(main, ["search", "Tokayev", "--db", str(backend.root), "--json", "--mode", "lexical"])
    assert result.exit_code == 0, result.output
    assert [h["id"] for h in json.loads(result.output)["hits"]] == ["steppe_news/1"]
    result = CliRunner().invoke(main, ["search", "нефть", "since:", "--db", str(backend.root)])
    assert result.exit_code != 0 and "position" in result.output
    result = CliRunner().invoke(main, ["search", "нефть", "(газ", "--db", str(backend.root), "--mode", "lexical"])
    assert result.exit_code == 0 and "note: the ( at 7 is never closed" in result.output


def test_a_broken_web_package_is_an_error_not_an_api_only_server(backend):
    """An ImportError from tgsearch.web (a bug in routes.py) must surface, not silently drop the UI."""
    import subprocess
    import sys

    script = ("import sys; sys.modules['tgsearch.web.routes'] = None\n"
              "from tgsearch.api.app import create_app\n"
              "create_app(object())\nprint('served without the UI')")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "tgsearch.web.routes" in r.stderr and "served without the UI" not in r.stdout


def test_one_content_security_policy_for_api_and_ui(client):
    from tgsearch.api import app as api_app
    from tgsearch.web import auth

    assert api_app.CSP is auth.CSP
    api = client.get("/api/health").headers["content-security-policy"]
    page = client.get("/help").headers["content-security-policy"]
    assert api == page == auth.CSP


# -- bounds and errors ---------------------------------------------------------------------------

def test_offset_and_limit_are_bounded_with_a_readable_422(client):
    from tgsearch.api.limits import MAX_LIMIT, MAX_OFFSET

    for params in ({"offset": MAX_OFFSET + 1}, {"offset": 4_000_000_000}, {"offset": 10**30}, {"offset": -1},
                   {"limit": MAX_LIMIT + 1}, {"limit": "many"}):
        r = client.get("/api/search", params={"q": "уран", **params})
        assert r.status_code == 422, (params, r.text)
        body = r.json()
        name = next(iter(params))
        assert body["error"] == "input" and body["message"].startswith(name + ":"), body
        assert r.headers["x-content-type-options"] == "nosniff"
    r = client.get("/api/posts/river_daily/3/similar", params={"limit": 10**12})
    assert r.status_code == 422 and r.json()["message"].startswith("limit:")
    # Deep paging inside the bound still works (past the end: no hits, the total still counted).
    r = client.get("/api/search", params={"q": "нефть", "offset": MAX_OFFSET, "limit": MAX_LIMIT, "mode": "lexical"})
    assert r.status_code == 200 and r.json()["hits"] == [] and r.json()["total"] >= 1


def test_a_malformed_query_answers_with_a_notice(client):
    for q in ['"уран', "уран (Россия", 'уран" красная', "((((", "уран OR"]:
        r = client.get("/api/search", params={"q": q})
        assert r.status_code == 200 and r.json()["notice"], q
    assert client.get("/api/search", params={"q": "уран"}).json()["notice"] == ""


def test_deeply_nested_query_is_not_a_bare_500(client):
    for q in ["(" * 250 + "уран" + ")" * 250, "NOT " * 1000 + "уран"]:
        r = client.get("/api/search", params={"q": q})
        assert r.status_code == 200, r.text[:200]
        assert r.headers["content-type"].startswith("application/json")
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        if r.status_code == 400:
            assert r.json()["error"] == "query" and r.json()["message"]


class RecursingBackend:
    """A backend whose search overflows the stack (as a recursive parser or ranker could)."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def search(self, req):
        def down(n):
            return down(n + 1) + 1

        return down(0)


def test_recursion_error_in_a_request_is_a_400_json_with_headers(backend):
    client = TestClient(create_app(RecursingBackend(backend)))
    r = client.get("/api/search", params={"q": "уран"})
    assert r.status_code == 400 and r.json()["error"] == "query" and "nested too deeply" in r.json()["message"]
    assert r.headers["x-content-type-options"] == "nosniff" and "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_unexpected_errors_are_500s_that_carry_the_security_headers(backend):
    app = create_app(backend)

    def boom():
        raise ValueError("a bug")

    app.add_api_route("/api/boom", boom)
    app.add_api_route("/boom", boom)
    client = TestClient(app, raise_server_exceptions=False)
    r = client.get("/api/boom")
    assert r.status_code == 500 and r.json()["error"] == "internal" and "a bug" not in r.text
    assert r.headers["x-content-type-options"] == "nosniff" and "default-src 'self'" in r.headers["content-security-policy"]
    r = client.get("/boom")
    assert r.status_code == 500 and r.headers["content-type"].startswith("text/html")
    assert r.headers["x-frame-options"] == "DENY" and "default-src 'self'" in r.headers["content-security-policy"]
