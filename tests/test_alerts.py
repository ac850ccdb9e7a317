"""Saved searches and alerts that fire once per story (alerts/, cli_alerts.py, web/alerts.py), on
hand-written posts, with a loopback webhook receiver."""

from __future__ import annotations

import json
import re
import threading
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from click.testing import CliRunner

from tgsearch.alerts import store as alert_store
from tgsearch.alerts.check import run_alerts
from tgsearch.backend import EmbeddedBackend
from tgsearch.errors import AlertError

ATOM = "{http://www.w3.org/2005/Atom}"
T0 = datetime(2026, 4, 6, 8, 0, tzinfo=timezone.utc)

DAM = ("В Кызылординской области прорвало дамбу на Сырдарье: подтоплены три аула, эвакуированы 240 жителей, "
       "сообщил аким района. Спасатели МЧС укрепляют берег мешками с песком.")
DAM_COPIES = [
    "‼️ " + DAM + "\n\nПодписывайтесь на наш канал @kyzylorda_today",
    DAM.replace("сообщил", "рассказал") + " 😱",
    ("Аким района сообщил: на Сырдарье прорвало дамбу, подтоплены три аула в Кызылординской области, "
     "из них эвакуированы 240 жителей. Спасатели МЧС укрепляют берег мешками с песком."),
]
DAM_LATER_COPIES = [DAM + "\n\nИсточник: @aral_news", "🔴 " + DAM]
DAM_NEW = ("Через месяц после прорыва дамбы на Сырдарье в Кызылординской области начали строить новую дамбу: "
           "подрядчик обещает закончить к осени, работы оценили в 3 млрд тенге.")
GRAIN = ("Казахстан в марте экспортировал в Китай 400 тысяч тонн пшеницы, заявили в министерстве сельского "
         "хозяйства. Поставки идут через станцию Алтынколь.")


def row(pid, text, hours):
    return {"id": pid, "channel": pid.split("/")[0], "text": text, "date": (T0 + timedelta(hours=hours)).isoformat()}


FIRST = [row("kyzylorda/1", DAM, 0), row("today_kz/7", DAM_COPIES[0], 0.5), row("aral/33", DAM_COPIES[1], 1),
         row("steppe/120", DAM_COPIES[2], 2), row("agro/5", GRAIN, 1.5)]
LATER = [row("aral_news/9", DAM_LATER_COPIES[0], 3), row("qazinform/44", DAM_LATER_COPIES[1], 4)]
NEW_STORY = [row("kyzylorda/2", DAM_NEW, 24 * 30)]


def write(backend, tmp_path, rows, name):
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    backend.ingest([path])


class Receiver:
    """A webhook receiver on 127.0.0.1 recording POSTed JSON; the first `fail` requests get a 500."""

    def __init__(self, fail: int = 0):
        self.posts: list[dict] = []
        self.requests = 0
        self.fail = fail
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.requests += 1
                if outer.requests <= outer.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                outer.posts.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def backend(tmp_path, monkeypatch):
    monkeypatch.setenv("TGSEARCH_STORIES", "sync")
    monkeypatch.setenv("TGSEARCH_VECTORS", "off")
    b = EmbeddedBackend(tmp_path / "db")
    write(b, tmp_path, [row("agro/1", "Урожай зерна в Костанайской области оценили в 5 млн тонн.", -48)], "seed")
    yield b
    b.close()


def save(backend, name, query, **kw):
    s = backend.alert_store()
    try:
        return s.add(name, query, mark=backend.alert_mark(), **kw)
    finally:
        s.close()


def alerts_of(report, name):
    return next(s for s in report["searches"] if s["name"] == name)["alerts"]


# -- once per story ---------------------------------------------------------------------------------
def test_one_story_in_four_channels_alerts_once_later_copies_never_a_new_story_once(backend, tmp_path, receiver):
    save(backend, "dam", "дамба Сырдарья", webhook=receiver.url)
    write(backend, tmp_path, FIRST, "first")
    report = run_alerts(backend)
    fired = alerts_of(report, "dam")
    assert len(fired) == 1
    story = fired[0]["story"]
    assert story["first_post"] == "kyzylorda/1" and story["size"] == 4 and story["channels"] == 4
    assert {p["channel"] for p in story["posts"]} == {"kyzylorda", "today_kz", "aral", "steppe"}
    assert fired[0]["query"] == "дамба Сырдарья" and fired[0]["fired"] and story["title"].startswith("В Кызылординской")
    assert all(p["link"] == f"/posts/{p['id']}" for p in story["posts"])
    assert [d["state"] for d in report["deliveries"]] == ["delivered"]
    assert len(receiver.posts) == 1 and receiver.posts[0]["story"]["id"] == story["id"]

    assert alerts_of(run_alerts(backend), "dam") == []          # nothing new: nothing fires
    write(backend, tmp_path, LATER, "later")
    again = next(s for s in run_alerts(backend)["searches"] if s["name"] == "dam")
    assert again["matched"] == 2 and again["alerts"] == [] and again["already_alerted"] == 1
    write(backend, tmp_path, NEW_STORY, "new")
    fresh = alerts_of(run_alerts(backend), "dam")
    assert len(fresh) == 1 and fresh[0]["story"]["first_post"] == "kyzylorda/2"
    assert fresh[0]["story"]["id"] != story["id"]
    assert len(receiver.posts) == 2

    s = backend.alert_store()
    try:
        rows = s.alerts(s.get("dam")["id"])
        assert len(rows) == 2 and {r["state"] for r in rows} == {"delivered"}
        assert s.get("dam")["mark"] == backend.store.max_version()
    finally:
        s.close()


def test_channel_filter_and_only_posts_after_the_search_was_saved(backend, tmp_path):
    write(backend, tmp_path, FIRST[:1], "old")                   # before the search: never alerts
    save(backend, "dam-aral", "дамба", channels=["aral"])
    save(backend, "grain", "пшеница Китай")
    write(backend, tmp_path, FIRST[1:], "rest")
    report = run_alerts(backend)
    aral = alerts_of(report, "dam-aral")
    assert len(aral) == 1 and aral[0]["matched_post"] == "aral/33"
    assert [a["matched_post"] for a in alerts_of(report, "grain")] == ["agro/5"]
    only = run_alerts(backend, names=["grain"])
    assert [s["name"] for s in only["searches"]] == ["grain"]


def test_posts_not_placed_in_a_story_yet_wait_for_the_next_run(backend, tmp_path, monkeypatch):
    save(backend, "dam", "дамба Сырдарья")
    monkeypatch.setattr(backend.stories, "after_write", lambda: None)    # stories fall behind
    write(backend, tmp_path, FIRST, "first")
    report = run_alerts(backend)
    dam = next(s for s in report["searches"] if s["name"] == "dam")
    assert dam["alerts"] == [] and dam["waiting"] == len(FIRST) and report["notices"]
    backend.stories.catch_up()
    assert len(alerts_of(run_alerts(backend), "dam")) == 1
    assert alerts_of(run_alerts(backend), "dam") == []


def test_a_crash_before_commit_neither_loses_nor_repeats_alerts(backend, tmp_path, receiver):
    save(backend, "dam", "дамба Сырдарья", webhook=receiver.url)
    save(backend, "grain", "пшеница")
    write(backend, tmp_path, FIRST, "first")

    def crash():
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        run_alerts(backend, before_commit=crash)
    s = backend.alert_store()
    try:
        assert all(x["alerts"] == 0 for x in s.searches())
        marks = {x["name"]: x["mark"] for x in s.searches()}
        assert marks["dam"] < backend.store.max_version()
    finally:
        s.close()
    assert receiver.posts == []
    report = run_alerts(backend)
    assert len(alerts_of(report, "dam")) == 1 and len(alerts_of(report, "grain")) == 1
    assert len(receiver.posts) == 1
    report = run_alerts(backend)
    assert alerts_of(report, "dam") == [] and alerts_of(report, "grain") == [] and len(receiver.posts) == 1


# -- webhook delivery -------------------------------------------------------------------------------
def test_webhook_is_retried_with_backoff_then_delivered_and_a_dead_one_blocks_nothing(backend, tmp_path):
    flaky = Receiver(fail=2)
    good = Receiver()
    dead = Receiver()
    dead_url = dead.url
    dead.close()                                  # nothing listens there any more
    try:
        save(backend, "dam", "дамба Сырдарья", webhook=flaky.url)
        save(backend, "dead", "дамба", webhook=dead_url)
        save(backend, "grain", "пшеница", webhook=good.url)
        write(backend, tmp_path, FIRST, "first")
        t = 1_000_000.0
        report = run_alerts(backend, now=t)
        states = {d["url"]: d for d in report["deliveries"]}
        assert states[flaky.url]["state"] == "pending" and states[flaky.url]["attempts"] == 1
        assert states[dead_url]["state"] == "pending" and states[dead_url]["error"]
        assert states[good.url]["state"] == "delivered" and len(good.posts) == 1
        assert run_alerts(backend, now=t + 1)["deliveries"] == []          # not due yet: no attempt
        assert flaky.requests == 1
        second = run_alerts(backend, now=t + alert_store.BACKOFF)
        assert {d["url"]: d["attempts"] for d in second["deliveries"]}[flaky.url] == 2
        third = {d["url"]: d for d in run_alerts(backend, now=t + 10 * alert_store.BACKOFF)["deliveries"]}
        assert third[flaky.url]["state"] == "delivered" and third[flaky.url]["attempts"] == 3
        assert len(flaky.posts) == 1 and flaky.posts[0]["story"]["first_post"] == "kyzylorda/1"
        # the dead one gives up after MAX_ATTEMPTS, recorded as failed
        later = t + 10 * alert_store.BACKOFF
        for _ in range(alert_store.MAX_ATTEMPTS):
            later += 2 ** alert_store.MAX_ATTEMPTS * alert_store.BACKOFF
            run_alerts(backend, now=later)
        s = backend.alert_store()
        try:
            dead_row = s.alerts(s.get("dead")["id"])[0]
            assert dead_row["state"] == "failed" and dead_row["attempts"] == alert_store.MAX_ATTEMPTS and dead_row["error"]
        finally:
            s.close()
        assert len(good.posts) == 1 and len(flaky.posts) == 1                # delivered ones are never resent
    finally:
        flaky.close()
        good.close()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/x", "javascript:alert(1)", "gopher://h/", "http://"])
def test_non_http_webhooks_are_refused_when_added(backend, url):
    with pytest.raises(AlertError):
        save(backend, "x", "дамба", webhook=url)


# -- CLI --------------------------------------------------------------------------------------------
def test_cli_add_list_run_remove(tmp_path, monkeypatch, receiver):
    monkeypatch.setenv("TGSEARCH_STORIES", "sync")
    monkeypatch.setenv("TGSEARCH_VECTORS", "off")
    from tgsearch.cli import main

    db = str(tmp_path / "db")
    b = EmbeddedBackend(db)
    write(b, tmp_path, [row("agro/1", "Урожай зерна оценили в 5 млн тонн.", -48)], "seed")
    b.close()
    runner = CliRunner()
    r = runner.invoke(main, ["alerts", "add", "dam", "дамба Сырдарья", "--webhook", receiver.url, "--db", db])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["alerts", "add", "dam", "дамба", "--db", db])
    assert r.exit_code == 1 and "exists already" in r.output
    r = runner.invoke(main, ["alerts", "add", "bad", "дамба", "--webhook", "file:///etc/passwd", "--db", db])
    assert r.exit_code == 1 and "http" in r.output
    r = runner.invoke(main, ["alerts", "add", "aral", "дамба", "--channel", "aral", "--db", db])
    assert r.exit_code == 0
    listing = runner.invoke(main, ["alerts", "list", "--db", db]).output
    assert "dam: дамба Сырдарья" in listing and "aral: дамба" in listing and "bad" not in listing
    b = EmbeddedBackend(db)
    write(b, tmp_path, FIRST, "first")
    b.close()
    r = runner.invoke(main, ["alerts", "run", "--json", "--db", db])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert len(alerts_of(report, "dam")) == 1 and len(alerts_of(report, "aral")) == 1 and len(receiver.posts) == 1
    r = runner.invoke(main, ["alerts", "run", "--db", db])
    assert r.exit_code == 0 and "0 new stories" in r.output
    b = EmbeddedBackend(db)
    write(b, tmp_path, NEW_STORY, "new")
    b.close()
    r = runner.invoke(main, ["alerts", "run", "dam", "--db", db])
    assert r.exit_code == 0 and "ALERT story" in r.output and "kyzylorda/2" in r.output and "aral:" not in r.output
    assert runner.invoke(main, ["alerts", "run", "nosuch", "--db", db]).exit_code == 1
    assert runner.invoke(main, ["alerts", "remove", "dam", "--db", db]).exit_code == 0
    assert runner.invoke(main, ["alerts", "remove", "dam", "--db", db]).exit_code == 1
    assert "dam:" not in runner.invoke(main, ["alerts", "list", "--db", db]).output


# -- web: Alerts page, Save search, the feed --------------------------------------------------------
@pytest.fixture
def client(backend):
    from fastapi.testclient import TestClient

    from tgsearch.api.app import create_app

    with TestClient(create_app(backend)) as c:
        yield c


def form_key(page: str) -> str:
    return re.search(r'name="form_key" value="([0-9a-f]+)"', page).group(1)


def test_save_search_from_the_search_page_and_the_alerts_page(backend, client, tmp_path):
    page = client.get("/", params={"q": "дамба <b>x</b>", "channel": "aral"}).text
    assert 'id="save-search"' in page and 'href="/alerts"' in page
    key = form_key(page)
    # without the form's key, or from another site: refused
    assert client.post("/alerts", data={"q": "дамба", "name": "n"}, follow_redirects=False).status_code == 403
    assert client.post("/alerts", data={"q": "дамба", "name": "n", "form_key": key},
                       headers={"origin": "https://evil.example"}, follow_redirects=False).status_code == 403
    r = client.post("/alerts", data={"q": "дамба Сырдарья", "name": "dam", "channel": ["aral", "kyzylorda"],
                                     "form_key": key}, headers={"origin": "http://testserver"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/alerts"
    r = client.post("/alerts", data={"q": "<script>alert(1)</script>", "name": "", "form_key": key}, follow_redirects=False)
    assert r.status_code == 303            # a name made from the query
    bad = client.post("/alerts", data={"q": "дамба", "name": "w", "webhook": "file:///etc/passwd", "form_key": key})
    assert bad.status_code == 400 and "http" in bad.text
    write(backend, tmp_path, FIRST, "first")
    run_alerts(backend)
    write(backend, tmp_path, LATER[:1] + [row("aral/34", DAM_LATER_COPIES[1], 5)], "later")
    run_alerts(backend)
    page = client.get("/alerts").text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    story = backend.stories.index.placements(["kyzylorda/1"])["kyzylorda/1"]["story"]
    assert page.count(f'href="/stories/{story}"') == 1                     # one alerted story
    assert "aral_news" in page and "(alerted)" in page                      # its later copies are listed
    assert 'href="/feeds/alerts/dam.xml"' in page and 'aria-current="page">Alerts' in page
    key = form_key(page)
    assert client.post("/alerts/dam/remove", data={}, follow_redirects=False).status_code == 403
    r = client.post("/alerts/dam/remove", data={"form_key": key}, follow_redirects=False)
    assert r.status_code == 303 and "/feeds/alerts/dam.xml" not in client.get("/alerts").text


def test_atom_feed_one_entry_per_alerted_story(backend, client, tmp_path):
    save(backend, "dam", "дамба Сырдарья")
    write(backend, tmp_path, FIRST, "first")
    run_alerts(backend)
    write(backend, tmp_path, LATER, "later")
    run_alerts(backend)
    write(backend, tmp_path, NEW_STORY, "new")
    run_alerts(backend)
    r = client.get("/feeds/alerts/dam.xml")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(r.content)
    assert feed.tag == f"{ATOM}feed"
    for tag in ("id", "title", "updated"):
        assert feed.find(f"{ATOM}{tag}").text
    assert feed.find(f"{ATOM}author/{ATOM}name").text
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == 2
    ids = [e.find(f"{ATOM}id").text for e in entries]
    assert len(set(ids)) == 2
    for e in entries:
        for tag in ("id", "title", "updated"):
            assert e.find(f"{ATOM}{tag}").text
        datetime.fromisoformat(e.find(f"{ATOM}updated").text)
    bridge = next(e for e in entries if "Кызылординской области прорвало" in e.find(f"{ATOM}title").text)
    # updated = the story's last post (the later copies), its content lists them
    assert bridge.find(f"{ATOM}updated").text.startswith((T0 + timedelta(hours=4)).date().isoformat())
    assert "qazinform" in bridge.find(f"{ATOM}content").text
    assert bridge.find(f"{ATOM}link[@rel='alternate']").get("href").startswith("http://testserver/stories/")
    # stable ids: the same feed again
    again = ET.fromstring(client.get("/feeds/alerts/dam.xml").content)
    assert [e.find(f"{ATOM}id").text for e in again.findall(f"{ATOM}entry")] == ids
    assert client.get("/feeds/alerts/nosuch.xml").status_code == 404


def test_feed_and_alerts_page_are_behind_the_token(backend, tmp_path):
    from fastapi.testclient import TestClient

    from tgsearch.api.app import create_app

    save(backend, "dam", "дамба")
    with TestClient(create_app(backend, token="s3cret")) as c:
        for path in ("/feeds/alerts/dam.xml", "/alerts"):
            r = c.get(path, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert c.post("/alerts", data={"q": "x", "name": "x"}, follow_redirects=False).status_code == 303
        ok = c.get("/feeds/alerts/dam.xml", headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ET.fromstring(ok.content).tag == f"{ATOM}feed"


# -- watch ------------------------------------------------------------------------------------------
def test_watch_checks_alerts_after_a_round_that_ran_and_survives_a_failing_check(backend, tmp_path, monkeypatch):
    from tgsearch.collect.watch import Watcher

    save(backend, "dam", "дамба Сырдарья")
    problems: list[str] = []
    w = Watcher(backend, on_problem=problems.append)
    batches = [FIRST, LATER]

    def run_source(src):                      # a collection round that stores posts (no network)
        write(backend, tmp_path, batches.pop(0), f"round{len(batches)}")
        return src

    monkeypatch.setattr(w, "due", lambda: ["source"] if batches else [])
    monkeypatch.setattr(w, "run_source", run_source)
    w.run_due()
    s = backend.alert_store()
    try:
        assert len(s.alerts(s.get("dam")["id"])) == 1
        from tgsearch.alerts import check

        def broken(*a, **k):
            raise RuntimeError("disk full")

        monkeypatch.setattr(check, "run_alerts", broken)
        w.run_due()                           # the check fails: reported, the watch goes on
        assert problems and "alerts" in problems[-1] and "disk full" in problems[-1]
        monkeypatch.undo()
        assert w.run_due() == [] and len(s.alerts(s.get("dam")["id"])) == 1
    finally:
        s.close()


def test_alerts_run_waits_for_the_stories_an_ingest_left_to_a_background_process(tmp_path):
    """Default mode: `ingest` leaves the stories to a detached process; `alerts run` right after
    it still finds the story (it waits for that process, then places what is left)."""
    import os
    import subprocess
    import sys as _sys

    db = tmp_path / "db"
    env = {**os.environ, "TGSEARCH_STORIES": "process", "TGSEARCH_VECTORS": "off"}

    def run(*args):
        return subprocess.run([_sys.executable, "-m", "tgsearch.cli", *args, "--db", str(db)],
                              env=env, capture_output=True, text=True, timeout=300)

    def posts(name, record):
        path = tmp_path / name
        path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
        return str(path)

    first = posts("a.jsonl", {"id": "astana/9", "channel": "astana", "date": "2026-03-01T09:00:00Z",
                              "text": "В Астане к сентябрю построят три новые школы на 3600 мест."})
    bridge = posts("b.jsonl", {"id": "irtysh/10", "channel": "irtysh", "date": "2026-03-02T09:00:00Z",
                               "text": "В Павлодаре после ремонта открыли мост через Иртыш, сообщил аким области."})
    assert run("ingest", first).returncode == 0
    r = run("alerts", "add", "bridge", "мост")
    assert r.returncode == 0, r.stderr
    assert run("ingest", bridge).returncode == 0
    r = run("alerts", "run", "--json")
    assert r.returncode == 0, r.stderr
    [search] = json.loads(r.stdout)["searches"]
    assert len(search["alerts"]) == 1 and search["waiting"] == 0
