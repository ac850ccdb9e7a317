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
    r = client.get("/api/search", params={"q": 'уран "красная'})
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "query" and body["position"] == 5 and "quote" in body["message"]
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
    result = CliRunner().invoke(main, ["search", "нефть", "(газ", "--db", str(backend.root)])
    assert result.exit_code != 0 and "position" in result.output


def test_api_alone_enforces_token_and_csp_without_the_web_ui(backend, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tgsearch.web.routes", None)   # the UI package is not installed
    client = TestClient(create_app(backend, token="t0ken"))
    denied = client.get("/api/search", params={"q": "уран"})
    assert denied.status_code == 401 and denied.json()["error"] == "auth"
    ok = client.get("/api/search", params={"q": "уран"}, headers={"Authorization": "Bearer t0ken"})
    assert ok.status_code == 200 and "default-src 'self'" in ok.headers["content-security-policy"]
    assert client.get("/").status_code == 404
