"""Citations (issue 10 §3): the post page lists the articles a post links to and, on an article's
page, the posts citing it; exports carry `articles` and `cited_by`.

An article and the posts linking to it are invented here and written to a fresh data folder as
`tgsearch fetch-articles` leaves them (the article stored, its link recorded as fetched); pages
and exports are served by the real app (in-process client) and the real CLI. No network.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from tgsearch.backend import EmbeddedBackend
from tgsearch.cli import main
from tgsearch.export import EXPORT_FIELDS, write_jsonl
from tgsearch.post import FIELD_NAMES, Post


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


SRC = "https://news.example/flood?a=1&b=2"
OTHER = "https://other.example/report"
HOSTILE_TITLE = "Паводок <script>alert('t')</script> в степи"
HOSTILE_CHANNEL = "Вестник <b>Степи</b>"

ARTICLE = Post(id="article:news.example/flood", channel="news.example", channel_title="news.example",
               kind="article", date=utc(2024, 5, 1, 8), title=HOSTILE_TITLE, source_url=SRC,
               text=HOSTILE_TITLE + "\nВода поднялась <img src=x onerror=alert('a')> на два метра.")
ARTICLE2 = Post(id="article:other.example/report", channel="other.example", channel_title="other.example",
                kind="article", date=utc(2024, 4, 30, 8), title="Отчёт о дамбе", source_url=OTHER,
                text="Отчёт о дамбе\nДамба выдержала.")
LONG = "Паводок " + "очень " * 80 + "<img src=x onerror=alert('p')> конец."
CITING = Post(id="stepnoy_vestnik/7", channel="stepnoy_vestnik", channel_title=HOSTILE_CHANNEL,
              date=utc(2024, 5, 2, 9), text=LONG + " " + SRC, message_ids=(7,),
              links=(SRC, "https://unfetched.example/x", OTHER))
CITING_OLDER = Post(id="river_daily/3", channel="river_daily", channel_title="Речные новости",
                    date=utc(2024, 5, 1, 12), text="Тоже про <i>паводок</i>: " + SRC, message_ids=(3,), links=(SRC,))
CITING_DELETED = Post(id="river_daily/4", channel="river_daily", channel_title="Речные новости",
                      date=utc(2024, 5, 3, 12), text="Удалённый пост " + SRC, message_ids=(4,), links=(SRC,))
PLAIN = Post(id="river_daily/5", channel="river_daily", channel_title="Речные новости",
             date=utc(2024, 5, 4, 12), text="Пост без ссылок на статьи https://unfetched.example/x",
             message_ids=(5,), links=("https://unfetched.example/x",))


def post_path(post_id: str) -> str:
    return "/posts/" + post_id.replace("/", "%2F").replace(":", "%3A")


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    backend = EmbeddedBackend(tmp_path_factory.mktemp("citedb"), vectors="off")
    backend.store.upsert([ARTICLE, ARTICLE2, CITING, CITING_OLDER, CITING_DELETED, PLAIN])
    backend.store.record_link(SRC, "fetched", article_id=ARTICLE.id)
    backend.store.record_link(OTHER, "fetched", article_id=ARTICLE2.id)
    backend.store.record_link("https://unfetched.example/x", "failed", reason="HTTP 404")
    backend.store.mark_deleted([CITING_DELETED.id])
    backend.after_write()
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def client(backend):
    from tgsearch.api.app import create_app

    with TestClient(create_app(backend)) as c:
        yield c


def page(client, post_id: str) -> str:
    r = client.get(post_path(post_id))
    assert r.status_code == 200
    return r.text


def section(html: str, section_id: str) -> str:
    start = html.index(f'id="{section_id}"')
    return html[start:html.index("</section>", start)]


def test_post_page_lists_the_articles_it_links_to(client):
    html = page(client, CITING.id)
    assert "Articles it links to" in html
    part = section(html, "articles")
    # both fetched articles, in the post's link order, each linking to its page here
    assert part.index('href="/posts/article%3Anews.example%2Fflood"') < part.index('href="/posts/article%3Aother.example%2Freport"')
    assert "Паводок &lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt; в степи" in part
    assert "<script>alert" not in html
    assert "news.example" in part and "2024-05-01" in part
    # the article's own source link: http(s) only, its "&" escaped
    assert 'href="https://news.example/flood?a=1&amp;b=2"' in part
    assert "Cited by" not in html    # a post is not an article


def test_article_page_lists_the_posts_citing_it(client):
    html = page(client, ARTICLE.id)
    assert "Cited by" in html
    part = section(html, "cited-by")
    # live citing posts only, newest first; the deleted one is left out
    assert part.index('href="/posts/stepnoy_vestnik%2F7"') < part.index('href="/posts/river_daily%2F3"')
    assert "river_daily%2F4" not in part
    assert "Вестник &lt;b&gt;Степи&lt;/b&gt;" in part and "<b>Степи" not in html
    assert "2024-05-02" in part
    assert "Тоже про &lt;i&gt;паводок&lt;/i&gt;: https://news.example/flood?a=1&amp;b=2" in part
    # the snippet of a long text is cut to at most 200 characters, and escaped
    assert "onerror" not in part
    link_text = part.split('href="/posts/stepnoy_vestnik%2F7">', 1)[1].split("</a>", 1)[0]
    assert link_text.startswith("Паводок очень") and link_text.endswith("…") and len(link_text) <= 200
    assert "Articles it links to" not in html


def test_post_without_citations_shows_neither_list(client):
    html = page(client, PLAIN.id)
    assert "Articles it links to" not in html and "Cited by" not in html


class _OldBackend:
    """A custom backend from before citations: everything but articles_for/citing_posts/citations/export_fields."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        if name in ("articles_for", "citing_posts", "citations", "export_fields"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_backend_without_citation_methods_shows_and_exports_nothing(backend):
    from tgsearch.api.app import create_app

    old = _OldBackend(backend)
    assert not hasattr(old, "articles_for")
    with TestClient(create_app(old)) as c:
        html = page(c, CITING.id)
        assert "Articles it links to" not in html
        assert "Cited by" not in page(c, ARTICLE.id)
        r = c.get("/api/export", params={"q": "паводок", "mode": "lexical", "format": "jsonl"})
        assert r.status_code == 200
        rows = [json.loads(line) for line in r.text.splitlines()]
        assert rows and all(row["articles"] == [] and row["cited_by"] == [] for row in rows)


def test_backend_citations_in_one_batch(backend):
    got = backend.citations([CITING.id, ARTICLE.id, ARTICLE2.id, PLAIN.id, "no/such"])
    assert got[CITING.id] == {"articles": [ARTICLE.id, ARTICLE2.id], "cited_by": []}
    assert got[ARTICLE.id] == {"articles": [], "cited_by": [CITING.id, CITING_OLDER.id]}
    assert got[ARTICLE2.id] == {"articles": [], "cited_by": [CITING.id]}
    assert got[PLAIN.id] == {"articles": [], "cited_by": []}
    assert got["no/such"] == {"articles": [], "cited_by": []}
    # the same answers as the one-post methods
    assert got[CITING.id]["articles"] == [p.id for p in backend.articles_for(CITING.id)]
    assert got[ARTICLE.id]["cited_by"] == [p.id for p in backend.citing_posts(ARTICLE.id)]


def test_api_export_jsonl_and_csv_carry_articles_and_cited_by(client):
    r = client.get("/api/export", params={"q": "паводок", "mode": "lexical", "format": "jsonl"})
    assert r.status_code == 200
    rows = {row["id"]: row for row in map(json.loads, r.text.splitlines())}
    assert rows[CITING.id]["articles"] == [ARTICLE.id, ARTICLE2.id] and rows[CITING.id]["cited_by"] == []
    assert rows[ARTICLE.id]["cited_by"] == [CITING.id, CITING_OLDER.id] and rows[ARTICLE.id]["articles"] == []
    assert rows[CITING_OLDER.id]["articles"] == [ARTICLE.id]

    r = client.get("/api/export", params={"q": "паводок", "mode": "lexical", "format": "csv"})
    assert r.status_code == 200
    reader = csv.reader(io.StringIO(r.text))
    header = next(reader)
    # the existing columns in their order, the new ones at the end
    assert header == list(FIELD_NAMES) + ["articles", "cited_by", "story", "copy_of", "entities"] == list(EXPORT_FIELDS)
    table = {row["id"]: row for row in csv.DictReader(io.StringIO(r.text))}
    assert json.loads(table[CITING.id]["articles"]) == [ARTICLE.id, ARTICLE2.id]
    assert json.loads(table[ARTICLE.id]["cited_by"]) == [CITING.id, CITING_OLDER.id]
    assert json.loads(table[ARTICLE.id]["articles"]) == []


def test_cli_export_carries_citations_and_empty_lists(backend):
    runner = CliRunner()
    out = runner.invoke(main, ["export", "--db", str(backend.root), "--format", "jsonl"])
    assert out.exit_code == 0, out.output
    rows = {row["id"]: row for row in map(json.loads, out.stdout.splitlines())}
    assert CITING_DELETED.id not in rows
    assert rows[CITING.id]["articles"] == [ARTICLE.id, ARTICLE2.id]
    assert rows[ARTICLE.id]["cited_by"] == [CITING.id, CITING_OLDER.id]
    assert rows[ARTICLE2.id]["cited_by"] == [CITING.id]
    assert rows[PLAIN.id]["articles"] == [] and rows[PLAIN.id]["cited_by"] == []

    out = runner.invoke(main, ["export", "--db", str(backend.root), "--format", "csv"])
    assert out.exit_code == 0, out.output
    table = {row["id"]: row for row in csv.DictReader(io.StringIO(out.stdout))}
    assert json.loads(table[PLAIN.id]["articles"]) == [] and json.loads(table[PLAIN.id]["cited_by"]) == []
    assert json.loads(table[CITING_OLDER.id]["articles"]) == [ARTICLE.id]

    # a deleted citing post exported with --include-deleted still names its article
    out = runner.invoke(main, ["export", "--db", str(backend.root), "--include-deleted"])
    rows = {row["id"]: row for row in map(json.loads, out.stdout.splitlines())}
    assert rows[CITING_DELETED.id]["articles"] == [ARTICLE.id]
    assert rows[ARTICLE.id]["cited_by"] == [CITING.id, CITING_OLDER.id]


def test_export_looks_citations_up_per_batch(backend, monkeypatch):
    import tgsearch.export as export

    monkeypatch.setattr(export, "BATCH", 2)
    calls = []

    def citations(ids):
        calls.append(list(ids))
        return backend.citations(ids)

    buf = io.StringIO()
    posts = list(backend.iter_posts())
    n = write_jsonl(iter(posts), buf, citations)
    assert n == len(posts) == 5
    assert [len(c) for c in calls] == [2, 2, 1]
    rows = {row["id"]: row for row in map(json.loads, buf.getvalue().splitlines())}
    assert rows[ARTICLE.id]["cited_by"] == [CITING.id, CITING_OLDER.id]
