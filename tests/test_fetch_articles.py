"""`tgsearch fetch-articles`: the articles posts link to, fetched from loopback servers.

Every test runs under a connect guard (autouse): each socket connect is recorded and any
connect to a non-loopback address is refused there, so no test touches the internet.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import socket
import threading

import pytest
from click.testing import CliRunner

from tgsearch.backend import open_backend
from tgsearch.cli import main
from tgsearch.collect.articles import fetch_articles, is_telegram, pending
from tgsearch.collect.safe_fetch import FetchConfig
from tgsearch.errors import NotFoundError
from tgsearch.search.types import SearchRequest
from tgsearch.store import Store

ARTICLE = """<!doctype html>
<html lang="ru"><head>
<meta charset="utf-8">
<title>Водохранилище у Ветряногорска наполнили впервые за десять лет</title>
<meta name="author" content="Анна Петрова">
<meta property="article:published_time" content="2025-05-02T09:30:00+00:00">
</head><body>
<header class="site-header"><nav class="menu"><a href="/">Главная</a> <a href="/news">Новости</a>
<a href="/sport">Спорт</a> <a href="/subscribe">Подписаться на рассылку</a></nav></header>
<div class="cookie-banner">Мы используем файлы cookie. Нажмите «Принять».</div>
<main><article>
<h1>Водохранилище у Ветряногорска наполнили впервые за десять лет</h1>
<p class="byline">Анна Петрова, 2 мая 2025</p>
<p>Весенний паводок наполнил водохранилище у Ветряногорска до проектной отметки: такого уровня воды
не было с 2015 года, сообщили в областном управлении водных ресурсов.</p>
<p>Гидрологи объясняют это снежной зимой и поздней, но дружной весной. Сброс воды через плотину
увеличат постепенно, чтобы не подтопить прибрежные сёла ниже по течению.</p>
<p>Жители окрестных посёлков говорят, что рыбалка в этом году обещает быть особенно удачной, а
лодочные станции открываются на две недели раньше обычного.</p>
</article></main>
<aside class="related">Читайте также: Как выбрать палатку для похода</aside>
<div class="share">Поделиться: ВКонтакте Telegram WhatsApp</div>
<footer class="site-footer">© 2025 Вестник края. Все права защищены.</footer>
</body></html>
"""

UNIQUE_WORD = "Ветряногорска"   # only the article says it
CHROME = ("Подписаться на рассылку", "файлы cookie", "Все права защищены", "Поделиться")


class _Site(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server API
        self.server.requests.append(self.path)
        if self.path == "/news/reservoir":
            body = ARTICLE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/go/reservoir":
            self.send_response(302)
            self.send_header("Location", "/news/reservoir")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"not found")


def _serve():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(autouse=True)
def connects(monkeypatch):
    """Record every socket connect; refuse (without connecting) any non-loopback one."""
    made: list[tuple[str, int]] = []
    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        made.append((address[0], address[1]))
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise ConnectionRefusedError(f"test guard: no connect to {address[0]}:{address[1]}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return made


@pytest.fixture
def sites():
    """Two loopback sites: `site` (allowed by --allow-host) and `other` (never allowed)."""
    started = [_serve(), _serve()]
    yield started[0][0], started[1][0]
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join()


def base(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def allow(server) -> str:
    return f"127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def db(tmp_path, sites):
    """A data folder with four posts linking to the sites, a private address and Telegram."""
    site, other = sites
    posts = [
        {"id": 4, "channel": "riverwatch", "date": "2025-05-04T10:00:00+00:00",
         "text": "Подробности о паводке по ссылке", "links": [f"{base(site)}/news/reservoir"]},
        {"id": 3, "channel": "riverwatch", "date": "2025-05-03T10:00:00+00:00",
         "text": "Вода пришла, пишут коллеги", "links": [f"{base(site)}/go/reservoir", "https://t.me/riverwatch/1"]},
        {"id": 2, "channel": "riverwatch", "date": "2025-05-02T10:00:00+00:00",
         "text": "Две ссылки, которые мы не откроем",
         "links": [f"{base(other)}/secret", "http://10.0.0.1/x"]},
        {"id": 1, "channel": "riverwatch", "date": "2025-05-01T10:00:00+00:00",
         "text": "Страница, которой больше нет", "links": [f"{base(site)}/gone"]},
    ]
    path = tmp_path / "posts.jsonl"
    path.write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in posts) + "\n", encoding="utf-8")
    folder = tmp_path / "db"
    result = CliRunner().invoke(main, ["ingest", str(path), "--db", str(folder), "--quiet"])
    assert result.exit_code == 0, result.output
    return folder


def run(db, site, *args):
    result = CliRunner().invoke(main, ["fetch-articles", "--db", str(db), "--allow-host", allow(site), *args])
    assert result.exit_code == 0, result.output
    return result.output


def run_json(db, site, *args) -> dict:
    return json.loads(run(db, site, "--json", *args))


def test_fetches_the_linked_article_and_links_it_both_ways(db, sites, connects):
    site, other = sites
    output = run(db, site)
    assert "links fetched: 2  refused: 2  failed: 1" in output
    assert f"refused: {base(other)}/secret:" in output
    assert "refused: http://10.0.0.1/x:" in output
    assert f"failed: {base(site)}/gone: HTTP 404" in output
    assert "t.me" not in output

    # the refused loopback site was never connected to, nor the private address
    assert other.requests == []
    assert ("10.0.0.1", 80) not in connects
    assert all(port != other.server_address[1] for _, port in connects)

    backend = open_backend(db, create=False)
    try:
        articles = [p for p in backend.iter_posts() if p.kind == "article"]
        assert len(articles) == 1           # /go/reservoir redirects to the same page: one article
        art = articles[0]
        assert art.title == "Водохранилище у Ветряногорска наполнили впервые за десять лет"
        assert art.source_url == f"{base(site)}/news/reservoir"
        assert art.channel == "127.0.0.1"
        assert art.author == "Анна Петрова"
        assert art.date is not None and art.date.isoformat().startswith("2025-05-02")
        assert "Гидрологи объясняют это снежной зимой" in art.text
        assert "лодочные станции" in art.text
        for chrome in CHROME:
            assert chrome not in art.text

        hits = backend.search(SearchRequest(q=UNIQUE_WORD, mode="lexical"))
        assert [h.id for h in hits.hits] == [art.id]

        assert [p.id for p in backend.articles_for("riverwatch/4")] == [art.id]
        assert [p.id for p in backend.articles_for("riverwatch/3")] == [art.id]
        assert backend.articles_for("riverwatch/2") == []
        assert [p.id for p in backend.citing_posts(art.id)] == ["riverwatch/4", "riverwatch/3"]
        assert backend.citing_posts("riverwatch/2") == []
        with pytest.raises(NotFoundError):
            backend.articles_for("riverwatch/99")

        outcomes = backend.store.link_outcomes()
    finally:
        backend.close()
    assert outcomes[f"{base(site)}/news/reservoir"]["article_id"] == art.id
    assert outcomes[f"{base(site)}/go/reservoir"]["article_id"] == art.id
    assert outcomes[f"{base(other)}/secret"]["status"] == "refused"
    assert "127.0.0.1" in outcomes[f"{base(other)}/secret"]["reason"]
    assert outcomes["http://10.0.0.1/x"]["status"] == "refused"
    assert outcomes["http://10.0.0.1/x"]["reason"]
    assert outcomes[f"{base(site)}/gone"] | {"fetched_at": ""} == {
        "status": "failed", "reason": "HTTP 404", "article_id": None, "fetched_at": ""}
    assert "https://t.me/riverwatch/1" not in outcomes     # skipped, not recorded


def test_second_run_fetches_nothing_and_refusals_are_never_retried(db, sites):
    site, other = sites
    first = run_json(db, site)
    assert (first["fetched"], first["refused"], first["failed"]) == (2, 2, 1)
    served = list(site.requests)
    assert served.count("/gone") == 1

    second = run_json(db, site)
    assert (second["fetched"], second["refused"], second["failed"], second["links"]) == (0, 0, 0, [])
    assert site.requests == served          # nothing requested again

    retried = run_json(db, site, "--retry-failed")
    assert [(o["url"], o["status"]) for o in retried["links"]] == [(f"{base(site)}/gone", "failed")]
    assert site.requests.count("/gone") == 2
    assert other.requests == []
    assert run_json(db, site)["links"] == []


def test_most_recent_posts_first_and_limit(db, sites):
    site, other = sites
    store = Store(db)
    try:
        assert pending(store) == [f"{base(site)}/news/reservoir", f"{base(site)}/go/reservoir",
                                  f"{base(other)}/secret", "http://10.0.0.1/x", f"{base(site)}/gone"]
    finally:
        store.close()
    report = run_json(db, site, "--limit", "1")
    assert [o["url"] for o in report["links"]] == [f"{base(site)}/news/reservoir"]
    report = run_json(db, site, "--limit", "2")
    assert [o["url"] for o in report["links"]] == [f"{base(site)}/go/reservoir", f"{base(other)}/secret"]


def test_without_allow_host_loopback_is_refused(db, sites):
    site, _ = sites
    backend = open_backend(db, create=False, read_only=False)
    try:
        report = fetch_articles(backend, FetchConfig())
    finally:
        backend.close()
    assert report.count("fetched") == 0 and report.count("refused") == 5
    assert site.requests == []


def test_an_article_link_in_an_article_is_not_followed(tmp_path, sites):
    """Only posts' links are taken: the links an article carries are not crawled on."""
    site, _ = sites
    folder = tmp_path / "db"
    page = tmp_path / "saved.html"
    page.write_text(ARTICLE.replace("</article>", f'<p><a href="{base(site)}/news/reservoir">ещё</a></p></article>'),
                    encoding="utf-8")
    result = CliRunner().invoke(main, ["ingest", str(page), "--db", str(folder), "--quiet"])
    assert result.exit_code == 0, result.output
    assert run_json(folder, site)["links"] == []


def test_help_says_refusals_are_not_errors():
    result = CliRunner().invoke(main, ["fetch-articles", "--help"])
    assert result.exit_code == 0
    assert "exit status is 0" in " ".join(result.output.split())


def test_telegram_links_are_recognised():
    assert is_telegram("https://t.me/channel/5")
    assert is_telegram("http://www.telegram.me/x")
    assert not is_telegram("https://meta.example/t.me")
    assert not is_telegram("http://[bad")
