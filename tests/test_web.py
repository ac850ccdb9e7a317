"""Web UI, server side: pages, URL state, escaping, export and the token flow (in-process client).

The browser-driven tests are in test_browser.py. Fixture posts (invented text) are in
tests/fixtures/web/posts.jsonl; one of them carries script/onerror payloads everywhere.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import io
import json
import re
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from starlette.datastructures import QueryParams

from tgsearch.backend import EmbeddedBackend
from tgsearch.web import auth, routes
from tgsearch.web.routes import SearchState, safe_snippet, safe_url, timeline_chart

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "web" / "posts.jsonl"
HOSTILE_ID = "hostile_lab/301"

needs_search = pytest.mark.skipif(
    not hasattr(EmbeddedBackend, "search"),
    reason="EmbeddedBackend.search (the search engine) is not in this checkout yet",
)


def make_app(backend, token: str | None = None):
    """The real server app: the API's create_app, which mounts the UI."""
    from tgsearch.api.app import create_app

    return create_app(backend, token=token)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    # No vectors here: these tests check the UI over the lexical engine, deterministically
    # (the browser tests run with a complete vector index).
    b = EmbeddedBackend(tmp_path_factory.mktemp("webdb"), vectors="off")
    report = b.ingest([FIXTURE])
    assert report.to_dict()["posts"] == 9, report.to_dict()
    yield b
    b.close()


@pytest.fixture(scope="module")
def client(backend):
    with TestClient(make_app(backend)) as c:
        yield c


def inline_scripts(html: str) -> list[str]:
    """<script> elements that are not `<script src=...>` (CSP forbids them anyway)."""
    return [m for m in re.findall(r"<script\b[^>]*>", html, flags=re.I) if "src=" not in m]


# -- URL state -------------------------------------------------------------------------------------

def test_state_round_trips_through_the_url():
    params = QueryParams("q=Токаев+визит&mode=lexical&sort=date&channel=a&channel=b&since=2025-03-01"
                         "&until=2025-03-31&kind=article&publication=X&interval=week&page=3")
    state = SearchState.from_query(params)
    assert state.q == "Токаев визит" and state.mode == "lexical" and state.sort == "date"
    assert state.channels == ("a", "b") and state.since == date(2025, 3, 1) and state.until == date(2025, 3, 31)
    assert state.kind == "article" and state.publication == "X" and state.interval == "week" and state.page == 3
    again = SearchState.from_query(QueryParams(urlsplit(state.url()).query))
    assert again == state
    # Any change other than the page goes back to page 1; defaults are left out of URLs.
    assert "page=" not in state.url(kind="")
    assert SearchState().url() == "/"
    assert SearchState(q="x").url() == "/?q=x"


def test_state_reports_bad_parameters_and_keeps_going():
    state = SearchState.from_query(QueryParams("q=x&since=yesterday&mode=psychic&page=-4&until=2025-01-01&sort=date"))
    assert state.since is None and state.mode == "hybrid" and state.page == 1 and state.sort == "date"
    assert any("since" in e and "YYYY-MM-DD" in e for e in state.errors)
    assert any("mode" in e for e in state.errors)
    swapped = SearchState.from_query(QueryParams("since=2025-05-01&until=2025-04-01"))
    assert swapped.since == date(2025, 4, 1) and swapped.until == date(2025, 5, 1)


def test_state_to_request_and_export_url():
    state = SearchState.from_query(QueryParams("q=зерно&channel=a&page=2&interval=day"))
    req = state.request()
    assert req.q == "зерно" and req.offset == routes.PAGE_SIZE and req.channels == ("a",) and req.facets
    assert req.interval == "day"
    # Browsing without a query shows the newest posts first.
    assert SearchState().request().sort == "date"
    export = parse_qs(urlsplit(state.export_url("csv")).query)
    assert export == {"q": ["зерно"], "channel": ["a"], "format": ["csv"]}


# -- escaping helpers ------------------------------------------------------------------------------

def test_snippet_keeps_only_mark_tags():
    good = "до &lt;b&gt; <mark>Токаев</mark> &amp; после"
    assert str(safe_snippet(good)) == good
    hostile = "<script>alert(1)</script> <mark>слово</mark> <img src=x onerror=alert(2)> <mark onclick=x>y</mark>"
    out = str(safe_snippet(hostile))
    assert "<script" not in out and "<img" not in out and "<mark onclick" not in out
    assert "&lt;script&gt;" in out and "<mark>слово</mark>" in out
    assert str(safe_snippet("<mark><mark>a</mark>")) == "<mark>a</mark>"
    assert str(safe_snippet("</mark>a<mark>b")) == "a<mark>b</mark>"


def test_only_http_links_are_links():
    assert safe_url("https://t.me/x/1") == "https://t.me/x/1"
    for bad in ("javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,<script>", "//evil.example/x", "", None,
                "vbscript:x", "http:///nohost"):
        assert safe_url(bad) == "", bad


def test_timeline_chart_bars_link_to_their_period():
    state = SearchState(q="x", page=4)
    chart = timeline_chart(state, [{"start": "2025-03-03", "end": "2025-03-09", "count": 2},
                                   {"start": "2025-03-10", "end": "2025-03-16", "count": 0},
                                   {"start": "2025-03-17", "end": "2025-03-23", "count": 4}])
    bars = chart["bars"]
    assert [b["count"] for b in bars] == [2, 0, 4]
    assert bars[2]["h"] > bars[0]["h"] > bars[1]["h"] == 0
    link = parse_qs(urlsplit(bars[0]["href"]).query)
    assert link == {"q": ["x"], "since": ["2025-03-03"], "until": ["2025-03-09"]}
    assert timeline_chart(state, []) is None


# -- pages without the engine -------------------------------------------------------------------

def test_channels_page_lists_channels_with_counts_and_search_links(client):
    r = client.get("/channels")
    assert r.status_code == 200
    html = r.text
    assert "Степной вестник" in html and "Евразийские заметки" in html
    row = re.search(r"Степной вестник.*?</tr>", html, flags=re.S).group(0)
    assert ">4<" in row and "2025-03-04" in row and "2025-05-20" in row
    href = re.search(r'href="([^"]+)">Search in channel', row).group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(href).query) == {"channel": ["stepnoy_vestnik"], "sort": ["date"]}
    # The hostile channel title is text, not markup.
    assert "<svg onload" not in html and "&lt;svg onload=alert(&#39;xss-title&#39;)&gt;" in html


def test_post_page_shows_every_field(client):
    r = client.get("/posts/stepnoy_vestnik%2F101?back=%2F%3Fq%3Dx")
    assert r.status_code == 200
    html = r.text
    for text in ("Президент Токаев принял делегацию", "Пресс-служба Акорды", "5\u202f400", "👍", "41", "photo",
                 "https://t.me/stepnoy_vestnik/101", "https://t.me/stepnoy_vestnik/102", "stitched from 2 messages",
                 "https://example.org/akorda/visit", "2025-03-04 04:15"):
        assert text in html, text
    assert 'href="/?q=x"' in html  # back to the results it came from
    article = client.get("/posts/eurasia_notes%2Fa1").text
    for text in ("Каспийский транзит: итоги весны", "Обозреватель Каспия", "Айгерим Вымышленная",
                 "https://example.com/caspian/transit-spring", "Source article"):
        assert text in article, text


def test_post_page_escapes_a_hostile_post(client):
    r = client.get("/posts/" + HOSTILE_ID.replace("/", "%2F"))
    assert r.status_code == 200
    html = r.text
    assert inline_scripts(html) == []
    for payload in ("<script>alert", "<img src=x onerror", "<b onmouseover", "<svg onload", "<mark onclick", "<i>Журнал"):
        assert payload not in html, payload
    assert "&lt;script&gt;alert(&#39;xss-1&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(&#39;xss-2&#39;)&gt;" in html
    # A javascript: source URL is shown as text, never as a link.
    assert 'href="javascript:' not in html.lower()
    assert "javascript:alert(&#39;xss-url&#39;)" in html


def test_bad_back_links_are_dropped(client):
    html = client.get("/posts/stepnoy_vestnik%2F102?back=//evil.example/").text
    assert "evil.example" not in html


def test_unknown_post_is_a_404_page(client):
    r = client.get("/posts/nope%2F1")
    assert r.status_code == 404 and "no post with id" in r.text.lower()


def test_security_headers_and_no_inline_scripts(client):
    for url in ("/channels", "/help", "/posts/stepnoy_vestnik%2F101", "/static/app.css"):
        r = client.get(url)
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        if r.headers["content-type"].startswith("text/html"):
            assert inline_scripts(r.text) == []
            assert 'src="/static/app.js' in r.text
            # Nothing is loaded from elsewhere.
            assert not re.search(r'(src|href)="(https?:)?//(?!t\.me)', r.text.split("<main")[0])


def test_static_files_are_served(client):
    assert "prefers-color-scheme: dark" in client.get("/static/app.css").text
    assert "getElementById(\"q\")" in client.get("/static/app.js").text


class WithSimilar:
    """A backend that offers similar(post_id), as the semantic engine will."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def similar(self, post_id, limit=10):
        self.calls.append((post_id, limit))
        return [self.inner.get("eurasia_notes/201"), self.inner.get(HOSTILE_ID)]


class WithSimilarIds(WithSimilar):
    """similar() answering (post_id, score) pairs, as the semantic retriever does."""

    def similar(self, post_id, limit=10):
        self.calls.append((post_id, limit))
        return [("eurasia_notes/202", 0.91), (post_id, 1.0), ("nope/1", 0.5)]


def test_similar_posts_given_as_id_score_pairs(backend):
    wrapped = WithSimilarIds(backend)
    with TestClient(make_app(wrapped)) as c:
        html = c.get("/posts/stepnoy_vestnik%2F101").text
    section = html.split("Similar posts", 1)[1]
    assert "многовекторная политика Казахстана" in section
    assert section.count('class="hit"') == 1      # itself and unknown ids are left out


class WithoutSimilar:
    """A backend that does not offer similar()."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        if name == "similar":
            raise AttributeError(name)
        return getattr(self.inner, name)


def test_similar_posts_section_only_when_the_backend_offers_it(backend):
    with TestClient(make_app(WithoutSimilar(backend))) as c:
        r = c.get("/posts/stepnoy_vestnik%2F101")
        assert r.status_code == 200 and "Similar posts" not in r.text
    wrapped = WithSimilar(backend)
    with TestClient(make_app(wrapped)) as c:
        html = c.get("/posts/stepnoy_vestnik%2F101").text
    assert wrapped.calls == [("stepnoy_vestnik/101", routes.SIMILAR_LIMIT)]
    section = html.split("Similar posts", 1)[1]
    assert "Узбекистан подписали меморандум" in section and "/posts/eurasia_notes%2F201" in section
    assert "<b onmouseover" not in section and "&lt;b onmouseover" in section


# -- token flow (server side) -------------------------------------------------------------------

def test_token_is_required_for_pages_and_api(backend):
    with TestClient(make_app(backend, token="s3cret-token")) as c:
        r = c.get("/channels", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fchannels"
        r = c.get("/api/export?format=csv", follow_redirects=False)
        assert r.status_code == 401 and r.json()["error"] == "auth"
        assert c.get("/static/app.css").status_code == 200
        assert c.get("/login").status_code == 200
        # Wrong token: refused, no cookie.
        r = c.post("/login", data={"token": "wrong", "next": "/channels"}, follow_redirects=False)
        assert r.status_code == 401 and auth.COOKIE_NAME not in r.cookies
        assert c.get("/channels", follow_redirects=False).status_code == 303
        # Right token: cookie, then pages open.
        r = c.post("/login", data={"token": "s3cret-token", "next": "/channels"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/channels"
        cookie = r.headers["set-cookie"]
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower() and "s3cret-token" not in cookie
        assert c.get("/channels").status_code == 200
        c.post("/logout")
        assert c.get("/channels", follow_redirects=False).status_code == 303
        # Login never redirects off-site.
        r = c.post("/login", data={"token": "s3cret-token", "next": "//evil.example/"}, follow_redirects=False)
        assert r.headers["location"] == "/"


def test_bearer_header_opens_the_api_but_a_forged_cookie_does_not(backend):
    with TestClient(make_app(backend, token="s3cret-token")) as c:
        r = c.get("/posts/stepnoy_vestnik%2F101", headers={"Authorization": "Bearer s3cret-token"})
        assert r.status_code == 200
        r = c.get("/channels", headers={"Authorization": "Bearer nope"}, follow_redirects=False)
        assert r.status_code == 303
        c.cookies.set(auth.COOKIE_NAME, "s3cret-token")
        assert c.get("/channels", follow_redirects=False).status_code == 303


# -- search (needs the engine) --------------------------------------------------------------------

def hit_ids(html: str) -> list[str]:
    return re.findall(r'<li class="hit" data-id="([^"]+)"', html)


def test_hits_found_only_by_meaning_are_labelled():
    from tgsearch.search.types import Hit, SearchResult
    from tgsearch.web.routes import WebUI

    class Fake:
        def search(self, req):
            hits = [Hit(id=f"c/{i}", channel="c", channel_title="C", date=None, title="", text="t", snippet="t",
                        url="", source_url="", score=1.0, retrievers=r) for i, r in enumerate((["lexical"], ["semantic"], ["lexical", "semantic"]))]
            return SearchResult(query=req.q, total=3, took_ms=1.0, hits=hits)

        def stats(self):
            return {"channels": []}

    ui = WebUI(Fake(), lambda: None)
    html = ui.env.get_template("search.html").render(
        state=SearchState(q="t"), result=Fake().search(SearchState(q="t").request()), chart=None, channels=[],
        facets={}, pages=[], error=None, unavailable_modes=set(), channel_names={}, auth_on=False, path="/")
    items = re.findall(r'<li class="hit".*?</li>', html, flags=re.S)
    assert ["by meaning" in item for item in items] == [False, True, False]


@needs_search
def test_search_finds_inflected_forms_with_highlights(client):
    r = client.get("/", params={"q": "Токаеву", "mode": "lexical"})
    assert r.status_code == 200
    ids = hit_ids(r.text)
    assert set(ids) >= {"stepnoy_vestnik/101", "stepnoy_vestnik/102"}
    assert "<mark>Токаев</mark>" in r.text and "<mark>Токаеву</mark>" in r.text
    assert re.search(r'<strong id="total">\d+</strong>', r.text)
    assert inline_scripts(r.text) == []


@needs_search
def test_search_filters_facets_and_timeline(client):
    html = client.get("/", params={"q": "Казахстан", "mode": "lexical"}).text
    assert set(hit_ids(html)) >= {"stepnoy_vestnik/103", "eurasia_notes/201", "eurasia_notes/202", "eurasia_notes/a1"}
    facet = html.split('data-facet="channel"', 1)[1].split("</section>", 1)[0]
    assert "Евразийские заметки" in facet and "/?q=%D0%9A" in facet
    assert 'data-facet="month"' in html and "<svg" in html and 'class="bar' in html
    narrowed = client.get("/", params={"q": "Казахстан", "mode": "lexical", "channel": "stepnoy_vestnik"}).text
    assert hit_ids(narrowed) == ["stepnoy_vestnik/103"]
    by_month = client.get("/", params={"q": "Казахстан", "mode": "lexical", "since": "2025-03-01", "until": "2025-03-31"}).text
    assert hit_ids(by_month) == ["eurasia_notes/201"]
    articles = client.get("/", params={"q": "Казахстан", "mode": "lexical", "kind": "article"}).text
    assert hit_ids(articles) == ["eurasia_notes/a1"]


@needs_search
def test_hostile_post_cannot_inject_through_the_snippet(client):
    html = client.get("/", params={"q": "сейсмограф", "mode": "lexical"}).text
    assert hit_ids(html) == [HOSTILE_ID]
    assert inline_scripts(html) == []
    for payload in ("<script>alert", "<img src=x onerror", "<mark onclick", "<b onmouseover", "<svg onload"):
        assert payload not in html, payload
    assert "&lt;script&gt;alert(&#39;xss-1&#39;)&lt;/script&gt;" in html or "&lt;script&gt;alert(&#x27;xss-1&#x27;)" in html
    assert 'href="javascript:' not in html.lower()


@needs_search
def test_query_error_is_shown_with_its_position(client):
    r = client.get("/", params={"q": 'Токаев since:вчера'})
    assert r.status_code == 400
    assert "bad date" in r.text and "position" in r.text
    # The query is shown with the offending character marked.
    assert '<code class="query-at">Токаев since:<mark class="err">в</mark>чера</code>' in r.text
    assert 'value="Токаев since:вчера"' in r.text


@needs_search
def test_a_stray_quote_is_read_leniently_and_said_so(client):
    r = client.get("/", params={"q": 'Токаев "визит'})
    assert r.status_code == 200
    assert 'id="query-notice"' in r.text and "never closed" in r.text
    assert 'value="Токаев &#34;визит"' in r.text or 'value="Токаев &quot;визит"' in r.text


@needs_search
def test_browsing_without_a_query_shows_newest_first(client):
    ids = hit_ids(client.get("/").text)
    assert len(ids) == 9 and ids[0] == "stepnoy_vestnik/104" and ids[-1] == "stepnoy_vestnik/101"


@needs_search
def test_export_csv_and_jsonl_stream_every_matching_post(client):
    page = client.get("/", params={"q": "Казахстан", "mode": "lexical"}).text
    total = int(re.search(r'<strong id="total">(\d+)</strong>', page).group(1))
    assert 'href="/api/export?q=%D0%9A%D0%B0%D0%B7%D0%B0%D1%85%D1%81%D1%82%D0%B0%D0%BD&amp;mode=lexical&amp;format=csv"' in page
    r = client.get("/api/export", params={"q": "Казахстан", "mode": "lexical", "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == total == int(r.headers["x-total-count"])
    assert len({row["id"] for row in rows}) == total
    assert {"stepnoy_vestnik/103", "eurasia_notes/a1"} <= {row["id"] for row in rows}
    a1 = next(row for row in rows if row["id"] == "eurasia_notes/a1")
    assert a1["publication"] == "Обозреватель Каспия" and a1["author"] == "Айгерим Вымышленная"
    r = client.get("/api/export", params={"q": "Казахстан", "mode": "lexical", "channel": "eurasia_notes", "format": "jsonl"})
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert {p["id"] for p in lines} == {"eurasia_notes/201", "eurasia_notes/202", "eurasia_notes/a1"}
    assert all(p["channel"] == "eurasia_notes" for p in lines)


@needs_search
def test_export_rejects_bad_format_and_bad_query(client):
    assert client.get("/api/export", params={"q": "x", "format": "xlsx"}).status_code == 400
    r = client.get("/api/export", params={"q": "Токаев since:", "format": "csv"})
    assert r.status_code == 400 and r.json()["error"] == "query"


@needs_search
def test_export_and_search_with_the_token(backend):
    with TestClient(make_app(backend, token="s3cret-token")) as c:
        assert c.get("/?q=Токаеву", follow_redirects=False).status_code == 303
        r = c.get("/api/export?q=Токаеву&format=jsonl", headers={"Authorization": "Bearer s3cret-token"})
        assert r.status_code == 200 and len(r.text.splitlines()) >= 2
        c.post("/login", data={"token": "s3cret-token", "next": "/"})
        assert "<mark>" in c.get("/?q=Токаеву").text
        assert c.get("/api/export?q=Токаеву&format=csv").status_code == 200   # the UI cookie opens /api too


@needs_search
def test_pagination(tmp_path):
    lines = [json.dumps({"id": i, "channel": "pager", "date": f"2025-02-{1 + i % 28:02d}T10:00:00Z",
                         "text": f"Сводка номер {i} про урожай пшеницы в северных областях."}, ensure_ascii=False)
             for i in range(1, 46)]
    src = tmp_path / "many.jsonl"
    src.write_text("\n".join(lines), encoding="utf-8")
    b = EmbeddedBackend(tmp_path / "db", vectors="off")
    b.ingest([src])
    try:
        with TestClient(make_app(b)) as c:
            first = c.get("/", params={"q": "пшеница", "mode": "lexical"}).text
            assert len(hit_ids(first)) == routes.PAGE_SIZE
            assert 'rel="next"' in first and "page=3" in first
            third = c.get("/", params={"q": "пшеница", "mode": "lexical", "page": 3}).text
            assert len(hit_ids(third)) == 45 - 2 * routes.PAGE_SIZE and 'rel="next"' not in third
            seen = set(hit_ids(first)) | set(hit_ids(c.get("/", params={"q": "пшеница", "mode": "lexical", "page": 2}).text)) | set(hit_ids(third))
            assert len(seen) == 45
    finally:
        b.close()


def test_snippet_does_not_repeat_the_title_shown_above_it():
    from tgsearch.web.routes import drop_lead

    snippet = safe_snippet("Визит в <mark>Астану</mark>\nПрезидент <mark>Токаев</mark> принял делегацию соседей")
    assert str(drop_lead(snippet, "Визит в Астану")) == "Президент <mark>Токаев</mark> принял делегацию соседей"
    # A snippet from the middle of the text, or one that is only the title, stays as it is.
    middle = safe_snippet("…и <mark>Токаев</mark> сказал очень длинную фразу о транзите")
    assert drop_lead(middle, "Визит в Астану") == middle
    assert drop_lead(safe_snippet("Визит в Астану"), "Визит в Астану") == safe_snippet("Визит в Астану")
    # Hostile text stays escaped after the cut.
    cut = str(drop_lead(safe_snippet("A &lt;b&gt; title — &lt;script&gt;x&lt;/script&gt; and a lot more words"), "A <b> title"))
    assert cut == "&lt;script&gt;x&lt;/script&gt; and a lot more words"
    # When every match is in the title, the snippet keeps it (the highlights stay visible).
    only_title = safe_snippet("Визит в <mark>Астану</mark>. Президент принял делегацию соседей и гостей")
    assert drop_lead(only_title, "Визит в Астану") == only_title
    # …unless the title above shows them itself.
    assert str(drop_lead(only_title, "Визит в Астану", keep_marks=False)) == "Президент принял делегацию соседей и гостей"


def test_dates_accept_month_and_year_like_the_query_language():
    state = SearchState.from_query(QueryParams("since=2025-02&until=2025-02"))
    assert state.since == date(2025, 2, 1) and state.until == date(2025, 2, 28)
    state = SearchState.from_query(QueryParams("since=2024&until=2024"))
    assert state.since == date(2024, 1, 1) and state.until == date(2024, 12, 31)


def test_post_text_under_its_title_does_not_repeat_it():
    from tgsearch.web.routes import body_without_title

    assert body_without_title("Заголовок\nТекст поста.", "Заголовок") == "Текст поста."
    assert body_without_title("**Заголовок**\n\nТекст.", "Заголовок") == "Текст."
    assert body_without_title("Заголовок", "Заголовок") == "Заголовок"          # nothing else: keep it
    assert body_without_title("Другое\nТекст.", "Заголовок") == "Другое\nТекст."
    assert body_without_title("Текст без заголовка.", "") == "Текст без заголовка."


@needs_search
def test_semantic_mode_is_disabled_without_a_vector_index(backend, client):
    option = re.search(r'<option value="semantic"[^>]*>', client.get("/", params={"q": "зерно"}).text).group(0)
    has_vectors = "semantic" in backend.engine.retrievers
    assert ("disabled" in option) is (not has_vectors)
    if not has_vectors:
        r = client.get("/", params={"q": "зерно", "mode": "semantic"})
        assert r.status_code == 400 and "not available" in r.text


def test_login_is_throttled_after_repeated_wrong_tokens(backend):
    with TestClient(make_app(backend, token="s3cret-token")) as c:
        for _ in range(auth.LoginThrottle.MAX_FAILURES):
            assert c.post("/login", data={"token": "guess"}, follow_redirects=False).status_code == 401
        r = c.post("/login", data={"token": "guess"}, follow_redirects=False)
        assert r.status_code == 429 and "Too many wrong tokens" in r.text and auth.COOKIE_NAME not in r.cookies
        # the real user is never locked out by someone else's guesses
        assert c.post("/login", data={"token": "s3cret-token"}, follow_redirects=False).status_code == 303
        # API clients with the bearer header are not affected.
        assert c.get("/channels", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


def test_a_right_token_clears_earlier_failures(backend):
    with TestClient(make_app(backend, token="s3cret-token")) as c:
        for _ in range(auth.LoginThrottle.MAX_FAILURES - 1):
            c.post("/login", data={"token": "guess"}, follow_redirects=False)
        assert c.post("/login", data={"token": "s3cret-token"}, follow_redirects=False).status_code == 303
        for _ in range(auth.LoginThrottle.MAX_FAILURES - 1):
            assert c.post("/login", data={"token": "guess"}, follow_redirects=False).status_code == 401


def test_title_gets_the_snippet_marks_and_stays_escaped():
    from tgsearch.web.routes import mark_title

    snippet = safe_snippet("в <mark>Казахстане</mark> и <mark>Казахстан</mark>")
    assert str(mark_title("<b>Казахстан</b> и Казахстане: итоги", snippet)) == \
        "&lt;b&gt;<mark>Казахстан</mark>&lt;/b&gt; и <mark>Казахстане</mark>: итоги"
    assert str(mark_title("Без совпадений", snippet)) == "Без совпадений"
    assert str(mark_title("<i>x</i>", safe_snippet("нет меток"))) == "&lt;i&gt;x&lt;/i&gt;"


def test_linkify_links_only_http_urls_and_escapes_the_rest():
    from tgsearch.web.routes import linkify

    out = str(linkify('См. https://example.org/a?b=1&c="><script>alert(1)</script>, и javascript:alert(2) тоже.'))
    assert '<a href="https://example.org/a?b=1&amp;c=" rel="noopener noreferrer nofollow">' in out
    assert "<script" not in out and "&lt;script&gt;" in out
    assert out.count("<a ") == 1 and "javascript:alert(2)" in out
    assert str(linkify("конец фразы https://t.me/x/1.")) == \
        'конец фразы <a href="https://t.me/x/1" rel="noopener noreferrer nofollow">https://t.me/x/1</a>.'


def test_serve_refuses_a_public_address_without_a_token(backend):
    env = {k: v for k, v in os.environ.items() if k != "TGSEARCH_TOKEN"}
    r = subprocess.run([sys.executable, "-m", "tgsearch.cli", "serve", "--db", str(backend.root), "--host", "0.0.0.0",
                        "--port", "0"], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode != 0 and "token" in (r.stderr + r.stdout).lower()
