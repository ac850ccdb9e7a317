"""`tgsearch crawl`: paging through t.me/s previews, served by a stand-in on loopback."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from click.testing import CliRunner

from tgsearch.backend import open_backend
from tgsearch.cli import main
from tgsearch.collect import CrawlConfig, Crawler, crawl
from tgsearch.collect.crawl import parse_channel
from tme_standin import PAGE, Standin, serve


@pytest.fixture
def site():
    standin = Standin()
    server, thread = serve(standin)
    yield standin
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def backend(tmp_path):
    b = open_backend(tmp_path / "db")
    yield b
    b.close()


def config(site, **kw) -> CrawlConfig:
    kw.setdefault("delay", 0)
    kw.setdefault("backoff", 0)
    kw.setdefault("retries", 2)
    return CrawlConfig(base_url=site.base_url, **kw)


def stored(backend, channel: str) -> dict[str, object]:
    posts = [p for p in backend.store.iter_posts() if p.channel == channel]
    ids = [p.id for p in posts]
    assert len(ids) == len(set(ids))
    return {p.id: p for p in posts}


def expected(site, channel: str) -> set[str]:
    return {f"{channel}/{m.id}" for m in site.channels[channel]}


def test_whole_crawl_brings_every_message_once(site, backend):
    site.add_channel("riverdaily", 190)
    site.add_channel("hillnews", 45)
    reports = crawl(backend, ["RiverDaily", "https://t.me/s/hillnews"], config(site))
    assert [r.channel for r in reports] == ["riverdaily", "hillnews"]
    assert all(not r.error and r.complete for r in reports)
    assert reports[0].pages == 10 and reports[0].new == 190 and reports[1].pages == 3
    posts = stored(backend, "riverdaily")
    assert set(posts) == expected(site, "riverdaily")
    assert set(stored(backend, "hillnews")) == expected(site, "hillnews")
    first = site.channels["riverdaily"][0]
    post = posts[f"riverdaily/{first.id}"]
    assert post.text == first.text and post.views == first.views and post.date == first.date
    assert post.channel_title == "Вестник riverdaily"
    # one robots.txt per crawl, then one request per page, paging with the site's own links
    assert site.log.count("/robots.txt") == 1 and len(site.page_requests()) == 13
    assert site.page_requests()[1] == f"/s/riverdaily?before={site.channels['riverdaily'][-PAGE].id}"
    assert backend.store.get_cursor("riverdaily") == {"newest": site.channels["riverdaily"][-1].id,
                                                       "oldest": first.id, "complete": True}
    # the index caught up: the crawled posts are searchable
    from tgsearch.search.types import SearchRequest
    assert backend.search(SearchRequest(q="комиссии", channels=("hillnews",), mode="lexical")).total == 45


def test_429_with_retry_after_and_empty_page_are_retried(site, backend):
    msgs = site.add_channel("riverdaily", 190)
    site.throttle.append(f"/s/riverdaily?before={msgs[-3 * PAGE].id}")
    site.empty.append(f"/s/riverdaily?before={msgs[-5 * PAGE].id}")
    waits = []
    crawler = Crawler(config(site), httpx.Client(), sleep=waits.append)
    report = crawler.crawl_channel(backend, "riverdaily")
    assert not report.error and report.complete
    assert set(stored(backend, "riverdaily")) == expected(site, "riverdaily")
    assert len(site.page_requests()) == 10 + 2          # each refused page asked again once
    site.retry_after = "3"
    site.throttle.append("/s/riverdaily")
    Crawler(config(site), httpx.Client(), sleep=waits.append).crawl_channel(backend, "riverdaily")
    assert 3.0 in waits                                 # Retry-After honoured


def test_throttled_for_good_is_one_line_and_keeps_what_was_stored(site, backend):
    site.add_channel("riverdaily", 60)
    site.fail_after = 2
    [report] = crawl(backend, ["riverdaily"], config(site, retries=1))
    assert "failed after 2 attempts (HTTP 500)" in report.error and "\n" not in report.error
    assert len(stored(backend, "riverdaily")) == 2 * PAGE and not report.complete


def test_missing_preview_and_unknown_channel_are_reported_and_others_complete(site, tmp_path):
    site.add_channel("riverdaily", 50)
    site.add_channel("hillnews", 30)
    site.no_preview.add("closedclub")
    result = CliRunner().invoke(main, ["crawl", "closedclub", "riverdaily", "nosuchchannel", "hillnews", "--db",
                                       str(tmp_path / "db"), "--base-url", site.base_url, "--delay", "0"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 2
    assert "closedclub: no public web preview" in lines[0] and "redirects to /closedclub" in lines[0]
    assert "nosuchchannel: no such channel" in lines[1] and "404" in lines[1]
    assert "riverdaily: pages 3  posts 50  new 50" in result.output
    assert "hillnews: pages 2  posts 30  new 30" in result.output
    b = open_backend(tmp_path / "db")
    assert set(stored(b, "riverdaily")) == expected(site, "riverdaily") and len(stored(b, "hillnews")) == 30
    b.close()


def test_second_crawl_fetches_only_what_is_new_and_updates_edits_and_views(site, backend):
    msgs = site.add_channel("riverdaily", 190)
    crawl(backend, ["riverdaily"], config(site))
    before = {p.id: p for p in backend.store.iter_posts()}
    versions = backend.store.ids_and_versions()
    edited, viewed, older_edit = msgs[-5], msgs[-6], msgs[-25]
    edited.text, edited.edited = "Сводка исправлена: заседание перенесено на вторник", True
    older_edit.text, older_edit.edited = "Сводка дополнена: бюджет принят во втором чтении", True
    for m in msgs[-12:]:
        m.views += 400
    new = site.post("riverdaily", 7)
    site.log.clear()
    [report] = crawl(backend, ["riverdaily"], config(site))
    # robots.txt counted; the page under the head is read again for edits and views
    head = site.channels["riverdaily"][-PAGE].id
    assert len(site.log) <= 3 and site.log == ["/robots.txt", "/s/riverdaily", f"/s/riverdaily?before={head}"]
    assert (report.new, report.updated, report.pages) == (7, 2, 2) and report.refreshed == 11
    o = backend.store.get(f"riverdaily/{older_edit.id}")
    assert o.text == older_edit.text and o.edited
    posts = stored(backend, "riverdaily")
    assert set(posts) == expected(site, "riverdaily") and len(posts) == 197
    assert {f"riverdaily/{m.id}" for m in new} <= set(posts)
    e = posts[f"riverdaily/{edited.id}"]
    assert e.text == edited.text and e.edited and backend.store.ids_and_versions()[e.id] > versions[e.id]
    v = posts[f"riverdaily/{viewed.id}"]
    assert v.views == before[v.id].views + 400 and backend.store.ids_and_versions()[v.id] == versions[v.id]
    assert backend.store.get_cursor("riverdaily")["newest"] == new[-1].id
    # nothing new: one page again
    site.log.clear()
    [report] = crawl(backend, ["riverdaily"], config(site))
    assert site.log == ["/robots.txt", "/s/riverdaily", f"/s/riverdaily?before={head}"]
    assert report.unchanged == 2 * PAGE and report.pages == 2


@pytest.mark.parametrize("stop_after", [1, 4, 9])
def test_crawl_killed_mid_way_resumes_without_loss_or_duplicates(site, backend, stop_after):
    site.add_channel("riverdaily", 190)

    class Killed(BaseException):
        pass

    def kill(report):
        if report.pages == stop_after:
            raise Killed

    with pytest.raises(Killed):
        Crawler(config(site), httpx.Client()).crawl_channel(backend, "riverdaily", on_page=kill)
    assert len(stored(backend, "riverdaily")) == stop_after * PAGE
    [report] = crawl(backend, ["riverdaily"], config(site))
    assert report.complete and report.new == 190 - stop_after * PAGE
    assert set(stored(backend, "riverdaily")) == expected(site, "riverdaily")


def test_server_failing_mid_way_then_resume_including_new_posts(site, backend):
    site.add_channel("riverdaily", 190)
    site.fail_after = 4
    [report] = crawl(backend, ["riverdaily"], config(site, retries=1))
    assert report.error and not report.complete
    # while away: 50 new posts (3 pages at the head) and the server fails again after 1 page
    site.fail_after = None
    site.post("riverdaily", 50)
    site.log.clear()
    site.fail_after = 1
    [report] = crawl(backend, ["riverdaily"], config(site, retries=0))
    assert report.error
    cursor = backend.store.get_cursor("riverdaily")
    assert cursor["newest"] == site.channels["riverdaily"][-51].id     # not moved past the unfilled gap
    site.fail_after = None
    [report] = crawl(backend, ["riverdaily"], config(site))
    assert report.complete and not report.error
    assert set(stored(backend, "riverdaily")) == expected(site, "riverdaily")


def test_robots_disallowing_previews_stops_with_one_line(site, tmp_path):
    site.add_channel("riverdaily", 30)
    site.robots = "User-agent: *\nDisallow: /s/\n"
    result = CliRunner().invoke(main, ["crawl", "riverdaily", "--db", str(tmp_path / "db"),
                                       "--base-url", site.base_url, "--delay", "0"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "robots.txt disallows" in lines[0] and "riverdaily" in lines[0]
    assert site.page_requests() == []
    site.robots = "User-agent: *\nDisallow: /private/\n"
    site.log.clear()
    result = CliRunner().invoke(main, ["crawl", "riverdaily", "--db", str(tmp_path / "db"),
                                       "--base-url", site.base_url, "--delay", "0"])
    assert result.exit_code == 0 and "posts 30" in result.output


def test_limit_and_since_bound_the_backfill_which_a_later_crawl_continues(site, backend):
    msgs = site.add_channel("riverdaily", 190)
    [report] = crawl(backend, ["riverdaily"], config(site, limit=50))
    posts = stored(backend, "riverdaily")
    assert len(posts) == 50 and set(posts) == {f"riverdaily/{m.id}" for m in msgs[-50:]}
    assert not report.complete and len(site.page_requests()) == 3
    cut = msgs[-100].date
    [report] = crawl(backend, ["riverdaily"], config(site, since=cut))
    assert set(stored(backend, "riverdaily")) == {f"riverdaily/{m.id}" for m in msgs[-100:]}
    assert not report.complete
    [report] = crawl(backend, ["riverdaily"], config(site))
    assert report.complete and set(stored(backend, "riverdaily")) == expected(site, "riverdaily")


def test_cli_since_and_json_report(site, tmp_path):
    msgs = site.add_channel("riverdaily", 90)
    day = msgs[-30].date.date() + timedelta(days=1)
    result = CliRunner().invoke(main, ["crawl", "riverdaily", "--db", str(tmp_path / "db"), "--base-url",
                                       site.base_url, "--delay", "0", "--since", day.isoformat(), "--json"])
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.output)
    keep = [m for m in msgs if m.date.date() >= day]
    assert report["new"] == len(keep) > 0 and report["complete"] is False


def test_channel_names_and_user_agent(site, backend):
    assert parse_channel("@RiverDaily") == parse_channel("t.me/riverdaily") == "riverdaily"
    with pytest.raises(Exception, match="not a channel name"):
        parse_channel("not a name!")
    seen = []
    site.add_channel("riverdaily", 5)

    def hook(request):
        seen.append(request.headers["User-Agent"])

    client = httpx.Client(event_hooks={"request": [hook]})
    reports = crawl(backend, ["riverdaily", "bad name!"], config(site), client=client)
    assert reports[0].complete and "not a channel name" in reports[1].error
    assert seen and all(ua.startswith("tgsearch/") and "+https://" in ua for ua in seen)


def test_posts_are_stored_before_the_cursor_moves(site, tmp_path):
    """A write that dies on page 3 (the disk, a kill inside the transaction) leaves the cursor at
    page 2, so the next crawl fetches page 3 again."""
    from tgsearch.collect.backend_api import CollectAPI
    from tgsearch.store import Store

    class DyingStore(Store):
        calls = 0

        def upsert(self, posts):
            DyingStore.calls += 1
            if DyingStore.calls == 3:
                raise OSError("disk full")
            return super().upsert(posts)

    class OnStore(CollectAPI):      # the collectors' backend methods over that store alone
        def __init__(self, store):
            self.store = store

        def _writable(self):
            pass

    site.add_channel("riverdaily", 190)
    store = DyingStore(tmp_path / "db")
    with pytest.raises(OSError):
        Crawler(config(site), httpx.Client()).crawl_channel(OnStore(store), "riverdaily")
    assert store.get_cursor("riverdaily")["oldest"] == site.channels["riverdaily"][-2 * PAGE].id
    store.close()
    b = open_backend(tmp_path / "db")
    [report] = crawl(b, ["riverdaily"], config(site))
    assert report.complete and set(stored(b, "riverdaily")) == expected(site, "riverdaily")
    b.close()


def test_cursor_is_kept_in_the_store(store):
    assert store.get_cursor("riverdaily") is None
    store.set_cursor("riverdaily", newest=300, oldest=120, complete=False)
    store.set_cursor("riverdaily", newest=320, oldest=101, complete=True)
    store.close()
    from tgsearch.store import Store

    again = Store(store.root)
    assert again.get_cursor("riverdaily") == {"newest": 320, "oldest": 101, "complete": True}
    assert again.get_cursor("hillnews") is None
    again.close()


def test_requests_are_spaced_by_the_delay_and_robots_crawl_delay(site, backend):
    site.add_channel("riverdaily", 70)
    waits = []
    crawler = Crawler(config(site, delay=30), httpx.Client(), sleep=waits.append)
    crawler.crawl_channel(backend, "riverdaily")
    assert len(site.log) == 5 and len(waits) == 4 and all(0 < w <= 30 for w in waits)   # before every later request
    site.robots = "User-agent: *\nCrawl-delay: 90\n"
    waits.clear()
    Crawler(config(site, delay=0), httpx.Client(), sleep=waits.append).crawl_channel(backend, "riverdaily")
    assert len(waits) == 2 and all(30 < w <= 90 for w in waits)      # the head page, then the recheck page


def test_a_request_that_times_out_is_retried(site, backend):
    msgs = site.add_channel("riverdaily", 50)
    site.slow.append(f"/s/riverdaily?before={msgs[-PAGE].id}")
    report = Crawler(config(site, timeout=0.5), httpx.Client()).crawl_channel(backend, "riverdaily")
    assert report.complete and set(stored(backend, "riverdaily")) == expected(site, "riverdaily")
    assert site.page_requests().count(f"/s/riverdaily?before={msgs[-PAGE].id}") == 2


def test_bad_base_url_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["crawl", "riverdaily", "--db", str(tmp_path / "db"), "--base-url", "t.me"])
    assert result.exit_code == 1 and "--base-url 't.me': expected a site such as https://t.me" in result.output
