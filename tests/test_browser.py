"""The web UI in a real browser: Debian's chromium driven by Playwright against `tgsearch serve`.

A real server (`python -m tgsearch.cli serve`) runs in a subprocess on a free loopback port over a
tmp data folder holding the seeds (../shared/seeds) and our invented hostile post. Never downloads a
browser: the tests skip when /usr/bin/chromium (or TGSEARCH_CHROMIUM) is missing.

Screenshots of the search and post pages (1280px and 390px wide) go to artifacts/screenshots/.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from testdata import shared_path
from tgsearch.backend import EmbeddedBackend

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("TGSEARCH_CHROMIUM", "/usr/bin/chromium")
SHOTS = REPO / "artifacts" / "screenshots"
HOSTILE = Path(__file__).resolve().parent / "fixtures" / "web" / "posts.jsonl"
TOKEN = "browser-test-token-7d1f"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (`make browser`) to run the browser tests",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python package) is not installed")


# -- a real server ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, db: Path, log: Path, token: str | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TGSEARCH_DB": str(db)}
        env.pop("TGSEARCH_TOKEN", None)
        cmd = [sys.executable, "-m", "tgsearch.cli", "serve", "--db", str(db), "--host", "127.0.0.1",
               "--port", str(self.port)]
        if token:
            cmd += ["--token", token]
        self.log = log
        self.proc = subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env)
        self.wait_ready()

    def wait_ready(self) -> None:
        # Readiness, not timing: poll until the server answers (or dies), bounded so a hang fails.
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"tgsearch serve exited ({self.proc.returncode}): {self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/static/app.css", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"tgsearch serve did not answer: {self.log.read_text()}")

    def api(self, path: str, token: str | None = None) -> dict:
        req = urllib.request.Request(self.url + path)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    seeds = shared_path("seeds")
    db = tmp_path_factory.mktemp("browserdb")
    # vectors="sync": every post has its vector before the server starts, so hybrid search and
    # similar posts are complete and stable while the tests run (no background filler).
    backend = EmbeddedBackend(db, vectors="sync")
    report = backend.ingest([seeds, HOSTILE])
    assert report.to_dict()["posts"] > 9, report.to_dict()
    assert backend.stats()["vectors"]["complete"], backend.stats()["vectors"]
    backend.close()
    return db


@pytest.fixture(scope="module")
def server(data_dir, tmp_path_factory):
    s = Server(data_dir, tmp_path_factory.mktemp("logs") / "serve.log")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Watch:
    """Collects dialogs (alert/confirm/prompt), console errors and page errors of a page."""

    def __init__(self, page):
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.watch = Watch(pg)
    yield pg
    context.close()


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def hits(page) -> list[dict]:
    return page.eval_on_selector_all("li.hit", """els => els.map(li => ({
        id: li.dataset.id,
        retrievers: (li.dataset.retrievers || "").split(" ").filter(Boolean),
        channel: li.querySelector('.channel').textContent.trim(),
        date: (li.querySelector('time') || {}).getAttribute ? li.querySelector('time').getAttribute('datetime') : null,
        marks: Array.from(li.querySelectorAll('.hit-title mark, .snippet mark')).map(m => m.textContent)
    }))""")


def total(page) -> int:
    return int(page.inner_text("#total").replace("\u202f", "").replace(",", ""))


def shoot(page, name: str) -> None:
    """What the reader sees first (name.png) and the whole page (name-full.png)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))
    page.screenshot(path=str(SHOTS / name.replace(".png", "-full.png")), full_page=True)


# -- the analyst's path ------------------------------------------------------------------------------

def test_search_with_an_inflected_word_highlights_matches(server, page):
    page.goto(server.url + "/")
    page.locator("a.brand").focus()          # somewhere else than the search box
    assert page.evaluate("document.activeElement.id") != "q"
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("Казахстане")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert query_of(page.url)["q"] == ["Казахстане"]
    found = hits(page)
    assert found, "no results for Казахстане"
    api = server.api("/api/search?" + "q=%D0%9A%D0%B0%D0%B7%D0%B0%D1%85%D1%81%D1%82%D0%B0%D0%BD%D0%B5&limit=20")
    assert total(page) == api["total"] > 0
    assert [h["id"] for h in found] == [h["id"] for h in api["hits"]]
    lexical = [h for h in found if "lexical" in h["retrievers"]]
    assert lexical, found
    for h in lexical:     # (a hit found only by meaning may hold none of the typed words)
        assert h["marks"], f"{h['id']} has no highlight"
        assert any(m.lower().startswith("казахстан") for m in h["marks"]), h
    # Every form of the word is highlighted, not only the one typed.
    forms = {m.lower() for h in lexical for m in h["marks"]}
    assert len(forms) > 1, forms
    assert page.locator("svg a.bar").count() > 0 and page.locator('[data-facet="channel"] a').count() > 0
    shoot(page, "search-desktop-1280.png")
    assert page.watch.dialogs == [] and page.watch.errors == []


def test_narrow_by_a_click_on_the_chart_then_by_channel(server, page):
    page.goto(server.url + "/?q=%D0%A2%D0%BE%D0%BA%D0%B0%D0%B5%D0%B2%D1%83&mode=lexical")   # Токаеву
    before = total(page)
    assert before > 0
    bars = page.locator("svg a.bar:not(.empty)")
    assert bars.count() > 0
    bar = bars.first
    start, end, n = bar.get_attribute("data-start"), bar.get_attribute("data-end"), int(bar.get_attribute("data-count"))
    with page.expect_navigation():
        bar.click()
    q = query_of(page.url)
    assert q["since"] == [start] and q["until"] == [end] and q["q"] == ["Токаеву"] and q["mode"] == ["lexical"]
    assert 0 < total(page) == n <= before
    lo, hi = date.fromisoformat(start), date.fromisoformat(end)
    for h in hits(page):
        assert lo <= date.fromisoformat(h["date"][:10]) <= hi, h

    # The channel facet counts follow the narrowed query; a click keeps the period.
    facet = page.locator('[data-facet="channel"] a').first
    label = facet.locator(".label").inner_text()
    count = int(facet.locator(".count").inner_text().replace("\u202f", ""))
    assert count <= n
    with page.expect_navigation():
        facet.click()
    q = query_of(page.url)
    assert len(q["channel"]) == 1 and q["since"] == [start] and q["until"] == [end]
    assert total(page) == count
    assert all(h["channel"] == label for h in hits(page))
    assert any(c.startswith("channel:") for c in page.locator(".chips .chip").all_inner_texts())
    # Removing the channel chip widens the search again.
    with page.expect_navigation():
        page.locator(".chips .chip", has_text="channel:").click()
    assert "channel" not in query_of(page.url) and total(page) == n
    assert page.watch.dialogs == [] and page.watch.errors == []


def test_syntax_help_and_the_filter_bar(server, page):
    page.goto(server.url + "/?q=%D0%9A%D0%B0%D0%B7%D0%B0%D1%85%D1%81%D1%82%D0%B0%D0%BD%D0%B5&mode=lexical")   # Казахстане
    help_box = page.locator(".help-toggle .syntax")
    assert not help_box.is_visible()
    page.click(".help-toggle summary")
    assert help_box.is_visible() and "OR" in help_box.inner_text()
    # Two channels from the picker (OR-ed): the total is the sum of their facet counts.
    page.click(".channel-picker summary")
    boxes = page.locator(".channel-list input[type=checkbox]")
    assert boxes.count() >= 2
    chosen = [boxes.nth(0).get_attribute("value"), boxes.nth(1).get_attribute("value")]
    boxes.nth(0).check()
    boxes.nth(1).check()
    with page.expect_navigation():
        page.click(".picker-actions button")
    assert sorted(query_of(page.url)["channel"]) == sorted(chosen)
    facet_counts = page.eval_on_selector_all('[data-facet="channel"] a .count',
                                             "els => els.map(e => parseInt(e.textContent.replace(/\\s/g, '')))")
    assert total(page) == sum(facet_counts) and len(facet_counts) <= 2
    # A date typed in the bar (Enter submits the form).
    page.fill("input[name=since]", "2025-05-01")
    with page.expect_navigation():
        page.press("input[name=since]", "Enter")
    q = query_of(page.url)
    assert q["since"] == ["2025-05-01"] and sorted(q["channel"]) == sorted(chosen)
    for h in hits(page):
        assert h["date"] is None or h["date"][:10] >= "2025-05-01", h
    assert page.watch.dialogs == [] and page.watch.errors == []


def test_sort_switch_applies_at_once_and_state_is_in_the_url(server, page):
    page.goto(server.url + "/?q=%D0%A2%D0%BE%D0%BA%D0%B0%D0%B5%D0%B2%D1%83")
    with page.expect_navigation():
        page.select_option("select[name=sort]", "date")
    q = query_of(page.url)
    assert q["sort"] == ["date"] and "since" not in q and "mode" not in q   # empty/default fields left out
    dates = [h["date"] for h in hits(page) if h["date"]]
    assert dates == sorted(dates, reverse=True) and len(dates) > 1
    # The same URL in a fresh page gives the same state (shareable, bookmarkable).
    url = page.url
    page.goto(server.url + "/")
    page.goto(url)
    assert page.input_value("#q") == "Токаеву" and page.input_value("select[name=sort]") == "date"


def test_open_a_post_and_come_back(server, page):
    page.goto(server.url + "/?q=%D0%A2%D0%BE%D0%BA%D0%B0%D0%B5%D0%B2%D1%83")
    search_url = page.url
    first = page.locator("li.hit").first
    post_id = first.get_attribute("data-id")
    with page.expect_navigation():
        first.locator("a.hit-title").click()
    assert page.locator("article.post").get_attribute("data-id") == post_id
    post = server.api("/api/posts/" + post_id)
    last_line = [line for line in post["text"].splitlines() if line.strip()][-1]
    assert last_line[:60] in page.inner_text(".post-text")
    if post["title"]:
        assert page.inner_text("article.post h1") == post["title"]
    assert page.locator("dl.fields").is_visible()
    # Similar posts come from the vector index, through the real backend.
    similar = page.locator("section.similar li.hit a.hit-title")
    assert similar.count() > 0
    api_similar = server.api("/api/posts/" + post_id + "/similar")
    expected = [h["id"] for h in api_similar["hits"] if h["id"] != post_id]
    shown = [unquote(urlsplit(href).path.split("/posts/", 1)[1]) for href in
             similar.evaluate_all("els => els.map(a => a.getAttribute('href'))")]
    assert shown and shown == expected[:len(shown)]
    shoot(page, "post-desktop-1280.png")
    # The browser's back button returns to the results…
    page.go_back()
    assert page.url == search_url and page.locator(f'li.hit[data-id="{post_id}"]').count() == 1
    # …and so does the page's own "Back to results" link.
    with page.expect_navigation():
        page.locator(f'li.hit[data-id="{post_id}"] a.hit-title').click()
    with page.expect_navigation():
        page.click("#back-link")
    assert page.url == search_url
    assert page.locator(f'li.hit[data-id="{post_id}"]').count() == 1
    assert page.watch.dialogs == [] and page.watch.errors == []


def test_export_csv_has_every_matching_post(server, page):
    page.goto(server.url + "/?q=%D0%9A%D0%B0%D0%B7%D0%B0%D1%85%D1%81%D1%82%D0%B0%D0%BD%D0%B5&mode=lexical")
    n = total(page)
    with page.expect_download() as info:
        page.click("#export-csv")
    path = info.value.path()
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    assert len(rows) == n
    assert info.value.suggested_filename.endswith(".csv")
    api = server.api("/api/search?q=%D0%9A%D0%B0%D0%B7%D0%B0%D1%85%D1%81%D1%82%D0%B0%D0%BD%D0%B5&limit=200&mode=lexical")
    assert {r["id"] for r in rows} == {h["id"] for h in api["hits"]}
    assert all(r["text"] and r["channel"] for r in rows)


def test_hostile_post_is_shown_as_text_and_runs_nothing(server, page):
    page.goto(server.url + "/?q=%D1%81%D0%B5%D0%B9%D1%81%D0%BC%D0%BE%D0%B3%D1%80%D0%B0%D1%84&mode=lexical")   # сейсмограф
    assert [h["id"] for h in hits(page)] == ["hostile_lab/301"]
    snippet = page.locator("li.hit .snippet").first
    assert "<script>alert('xss-1')</script>" in snippet.inner_text()
    assert snippet.locator("script, img").count() == 0
    assert snippet.locator("mark").count() >= 1
    page.hover("li.hit a.hit-title")
    with page.expect_navigation():
        page.click("li.hit a.hit-title")
    text = page.locator(".post-text")
    assert text.get_by_text("<img src=x onerror=alert('xss-2')>", exact=False).is_visible()
    assert "<script>alert('xss-1')</script>" in text.inner_text()
    assert page.locator("main script, main img, main svg, main [onerror], main [onmouseover], main [onclick]").count() == 0
    assert page.get_by_text("Лаборатория <svg onload=alert('xss-title')>").first.is_visible()
    assert page.locator('a[href^="javascript:"]').count() == 0
    page.hover("h1")
    for el in page.locator("mark").all():
        el.click()
    assert page.watch.dialogs == [], page.watch.dialogs
    assert page.watch.errors == [], page.watch.errors


def test_core_search_works_with_javascript_off(server, browser):
    context = browser.new_context(java_script_enabled=False)
    try:
        pg = context.new_page()
        pg.goto(server.url + "/")
        pg.fill("#q", "Токаеву")
        with pg.expect_navigation():
            pg.press("#q", "Enter")
        assert query_of(pg.url)["q"] == ["Токаеву"]
        assert pg.locator("li.hit").count() > 0 and pg.locator(".snippet mark").count() > 0
        # Bars are plain links, so the chart narrows without JavaScript too.
        bar = pg.locator("svg a.bar:not(.empty)").first
        with pg.expect_navigation():
            bar.click()
        assert "since" in query_of(pg.url)
    finally:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_phone_width_screenshots(server, browser, scheme):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                  is_mobile=True, has_touch=True, color_scheme=scheme)
    try:
        pg = context.new_page()
        watch = Watch(pg)
        pg.goto(server.url + "/?q=%D0%A2%D0%BE%D0%BA%D0%B0%D0%B5%D0%B2%D1%83")
        # Nothing wider than the phone: no sideways scrolling.
        assert pg.evaluate("document.documentElement.scrollWidth") <= 390
        shoot(pg, f"search-phone-390-{scheme}.png")
        with pg.expect_navigation():
            pg.locator("li.hit a.hit-title").first.click()
        assert pg.evaluate("document.documentElement.scrollWidth") <= 390
        shoot(pg, f"post-phone-390-{scheme}.png")
        assert watch.dialogs == [] and watch.errors == []
    finally:
        context.close()


def test_dark_desktop_screenshot(server, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    try:
        pg = context.new_page()
        pg.goto(server.url + "/?q=%D0%A2%D0%BE%D0%BA%D0%B0%D0%B5%D0%B2%D1%83")
        bg = pg.evaluate("getComputedStyle(document.body).backgroundColor")
        assert bg != "rgb(247, 247, 245)"   # follows the system's dark scheme
        shoot(pg, "search-desktop-1280-dark.png")
        pg.goto(server.url + "/channels")
        shoot(pg, "channels-desktop-1280-dark.png")
    finally:
        context.close()


def test_channels_page_links_into_a_channel_search(server, page):
    page.goto(server.url + "/channels")
    stats = server.api("/api/stats")
    assert page.locator("table.channels tbody tr").count() == len(stats["channels"])
    with page.expect_navigation():
        page.locator("table.channels a", has_text="Search in channel").first.click()
    assert query_of(page.url)["channel"] == [stats["channels"][0]["channel"]]
    assert total(page) == stats["channels"][0]["posts"]


# -- the token -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def token_server(data_dir, tmp_path_factory):
    s = Server(data_dir, tmp_path_factory.mktemp("logs") / "serve-token.log", token=TOKEN)
    yield s
    s.stop()


def test_token_flow_in_the_browser(token_server, browser):
    context = browser.new_context(accept_downloads=True)
    try:
        pg = context.new_page()
        watch = Watch(pg)
        # Refused without the token: pages go to the login form, the API answers 401.
        pg.goto(token_server.url + "/?q=%D0%A2%D0%BE%D0%BA%D0%B0%D0%B5%D0%B2%D1%83")
        assert urlsplit(pg.url).path == "/login"
        assert context.request.get(token_server.url + "/api/search?q=x").status == 401
        assert context.request.get(token_server.url + "/api/export?q=x&format=csv").status == 401
        pg.fill("#token", "not-the-token")
        with pg.expect_navigation():
            pg.click("form.login button")
        assert pg.locator(".notice.error").is_visible() and urlsplit(pg.url).path == "/login"
        # Allowed with it: back to the search that was asked for.
        pg.fill("#token", TOKEN)
        with pg.expect_navigation():
            pg.click("form.login button")
        assert query_of(pg.url)["q"] == ["Токаеву"] and pg.locator("li.hit").count() > 0
        # The UI cookie also opens the API (export link).
        with pg.expect_download() as info:
            pg.click("#export-csv")
        assert len(list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text("utf-8"))))) == total(pg)
        # API clients use the bearer header.
        fresh = browser.new_context()
        try:
            assert fresh.request.get(token_server.url + "/api/stats").status == 401
            ok = fresh.request.get(token_server.url + "/api/stats", headers={"Authorization": f"Bearer {TOKEN}"})
            assert ok.status == 200 and ok.json()["posts"] > 0
        finally:
            fresh.close()
        # Signing out closes the UI again.
        with pg.expect_navigation():
            pg.click("form.logout button")
        pg.goto(token_server.url + "/channels")
        assert urlsplit(pg.url).path == "/login"
        assert watch.dialogs == []
    finally:
        context.close()
