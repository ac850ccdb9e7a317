"""`tgsearch watch` / `serve --watch`: the sources file's entries run on their schedules against a
t.me stand-in on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from click.testing import CliRunner

from server_helpers import running_serve
from tgsearch.backend import open_backend
from tgsearch.cli import main
from tgsearch.collect import sources as sources_file
from tgsearch.collect.watch import Watcher, WatchSettings
from tgsearch.errors import WatchError
from test_crawl import site  # noqa: F401 - the t.me stand-in fixture


@pytest.fixture
def backend(tmp_path):
    b = open_backend(tmp_path / "db", worker=True)
    yield b
    b.close()


def add_crawl(root, site, channel, interval=60):
    sources_file.add(root, sources_file.make("crawl", channel, interval=interval, base_url=site.base_url))


def ids_of(backend, channel):
    ids = [p.id for p in backend.store.iter_posts(deleted=True) if p.channel == channel]
    assert len(ids) == len(set(ids))
    return set(ids)


def expected(site, channel):
    return {f"{channel}/{m.id}" for m in site.channels[channel]}


class Clock:
    def __init__(self):
        self.now = datetime(2026, 5, 1, 10, 0, tzinfo=timezone.utc)

    def __call__(self):
        return self.now


def test_one_round_runs_every_source_records_it_and_leaves_the_posts_searchable(site, backend):
    site.add_channel("riverdaily", 45)
    site.add_channel("hillnews", 12)
    add_crawl(backend.root, site, "riverdaily")
    add_crawl(backend.root, site, "hillnews")
    seen = []
    w = Watcher(backend, WatchSettings(crawl_delay=0), on_run=seen.append)
    reports = w.run_due()
    assert [r.key for r in reports] == ["crawl:riverdaily", "crawl:hillnews"] and [r.key for r in seen] == [r.key for r in reports]
    assert [r.posts for r in reports] == [45, 12] and not any(r.error for r in reports)
    assert ids_of(backend, "riverdaily") == expected(site, "riverdaily")
    runs = backend.store.source_runs()
    assert runs["crawl:riverdaily"]["posts"] == 45 and runs["crawl:riverdaily"]["finished_at"]
    from tgsearch.search.types import SearchRequest

    last = site.channels["riverdaily"][-1].id
    hits = backend.search(SearchRequest(q=f'"пункт {last}"', mode="lexical")).hits
    assert [h.id for h in hits] == [f"riverdaily/{last}"]


def test_schedule_due_after_interval_unfinished_runs_first_and_once_after_downtime(site, backend):
    site.add_channel("riverdaily", 5)
    site.add_channel("hillnews", 5)
    add_crawl(backend.root, site, "riverdaily", interval=600)
    add_crawl(backend.root, site, "hillnews", interval=60)
    clock = Clock()
    w = Watcher(backend, WatchSettings(crawl_delay=0), clock=clock)
    assert [s.key for s in w.due()] == ["crawl:riverdaily", "crawl:hillnews"]    # never run
    w.run_due()
    assert w.due() == [] and 59 <= w.next_due_in() <= 60
    clock.now += timedelta(seconds=61)
    assert [s.key for s in w.due()] == ["crawl:hillnews"]
    clock.now += timedelta(days=3)                 # downtime: each overdue source once, most overdue first
    assert [s.key for s in w.due()] == ["crawl:hillnews", "crawl:riverdaily"]
    # a run that started and never finished (the process was killed) is due at once
    backend.store.record_source_run("crawl:hillnews", "2026-05-04T10:01:00Z", None, 0, "")
    clock.now = datetime(2026, 5, 4, 10, 1, 1, tzinfo=timezone.utc)
    assert [s.key for s in w.due()][0] == "crawl:hillnews" and w.next_due_in() == 0


def test_a_failing_source_is_recorded_and_the_others_still_run(site, backend, tmp_path):
    site.add_channel("riverdaily", 5)
    site.no_preview.add("closedgroup")
    add_crawl(backend.root, site, "closedgroup")
    add_crawl(backend.root, site, "riverdaily")
    reports = Watcher(backend, WatchSettings(crawl_delay=0)).run_due()
    by_key = {r.key: r for r in reports}
    assert "no public web preview" in by_key["crawl:closedgroup"].error and by_key["crawl:riverdaily"].posts == 5
    assert "no public web preview" in backend.store.source_runs()["crawl:closedgroup"]["error"]
    rows = {r["key"]: r for r in backend.sources()}
    assert rows["crawl:riverdaily"]["cursor"]["complete"] and rows["crawl:closedgroup"]["error"]


def test_the_sources_file_is_read_again_each_round_and_a_broken_one_keeps_the_last_good_list(site, backend):
    site.add_channel("riverdaily", 5)
    site.add_channel("hillnews", 7)
    add_crawl(backend.root, site, "riverdaily")
    problems = []
    w = Watcher(backend, WatchSettings(crawl_delay=0), on_problem=problems.append)
    assert [r.key for r in w.run_due()] == ["crawl:riverdaily"]
    add_crawl(backend.root, site, "hillnews")
    assert [r.key for r in w.run_due()] == ["crawl:hillnews"] and len(ids_of(backend, "hillnews")) == 7
    good = sources_file.path_of(backend.root).read_text()
    sources_file.path_of(backend.root).write_text(good + "\n[[source]]\nkind = 'bogus'\n")
    assert [s.key for s in w.sources()] == ["crawl:riverdaily", "crawl:hillnews"]
    w.sources()
    assert len(problems) == 1 and "bogus" in problems[0]          # reported once, not every tick


def test_a_second_watch_on_the_folder_is_refused(site, backend):
    w = Watcher(backend).start()
    try:
        with pytest.raises(WatchError, match="another watch is already running"):
            Watcher(backend).run(once=True)
    finally:
        w.stop()
    Watcher(backend).run(once=True)        # released


def test_stop_ends_a_long_crawl_before_its_next_request_and_the_next_run_continues(site, backend):
    site.add_channel("bigchannel", 400)
    add_crawl(backend.root, site, "bigchannel")
    w = Watcher(backend, WatchSettings(crawl_delay=0.05, tick=0.1))

    def stop_after_some_pages():
        while len(site.page_requests()) < 4:
            time.sleep(0.01)
        w.stop_event.set()

    threading.Thread(target=stop_after_some_pages, daemon=True).start()
    t0 = time.monotonic()
    w.run()
    assert time.monotonic() - t0 < 10
    run = backend.store.source_runs()["crawl:bigchannel"]
    assert "stopped" in run["error"] and run["finished_at"]
    got = ids_of(backend, "bigchannel")
    assert 0 < len(got) < 400
    Watcher(backend, WatchSettings(crawl_delay=0)).run_source(sources_file.load(backend.root)[0])
    assert ids_of(backend, "bigchannel") == expected(site, "bigchannel")


def test_cli_watch_once_exit_status(site, tmp_path):
    db = tmp_path / "db"
    site.add_channel("riverdaily", 5)
    site.no_preview.add("closedgroup")
    add_crawl(db, site, "riverdaily")
    r = CliRunner().invoke(main, ["watch", "--db", str(db), "--once", "--delay", "0"])
    assert r.exit_code == 0, r.output
    assert "crawl:riverdaily: 5 posts added or changed" in r.stderr
    add_crawl(db, site, "closedgroup")
    r = CliRunner().invoke(main, ["watch", "--db", str(db), "--once", "--delay", "0"])
    assert r.exit_code == 2 and "closedgroup" in r.stderr and "no public web preview" in r.stderr


def _watch_proc(db, *args):
    env = {**os.environ, "TGSEARCH_VECTORS": "off"}
    return subprocess.Popen([sys.executable, "-m", "tgsearch.cli", "watch", "--db", str(db), "--tick", "0.2", *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_watch_process_sigterm_is_clean_and_kill_9_loses_nothing(site, tmp_path):
    db = tmp_path / "db"
    site.add_channel("bigchannel", 300)
    add_crawl(db, site, "bigchannel", interval=1)
    proc = _watch_proc(db, "--delay", "0.05")
    while len(site.page_requests()) < 5:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    proc.kill()                                    # mid-backfill, no clean-up at all
    proc.wait()
    proc = _watch_proc(db, "--delay", "0")
    deadline = time.monotonic() + 60
    while True:
        b = open_backend(db, read_only=True)
        try:
            done = len(ids_of(b, "bigchannel")) == 300
        finally:
            b.close()
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    site.post("bigchannel", 3)                     # new posts: picked up by the next run (interval 1 s)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        b = open_backend(db, read_only=True)
        try:
            got = ids_of(b, "bigchannel")
        finally:
            b.close()
        if got == expected(site, "bigchannel"):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    assert got == expected(site, "bigchannel")
    b = open_backend(db, read_only=True)
    try:
        assert b.stats()["posts"] == 303
    finally:
        b.close()


@pytest.mark.slow
def test_serve_watch_makes_new_posts_searchable_within_seconds(site, tmp_path):
    db = tmp_path / "db"
    site.add_channel("riverdaily", 30)
    add_crawl(db, site, "riverdaily", interval=1)
    with running_serve(db, "--watch") as base:
        new = site.post("riverdaily", 2)[-1]
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:
            r = httpx.get(base + "/api/search", params={"q": f'"пункт {new.id}"', "mode": "lexical"}, timeout=10)
            assert r.status_code == 200
            if [h["id"] for h in r.json()["hits"]] == [f"riverdaily/{new.id}"]:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the new post did not become searchable within 30 s")
        rows = {s["key"]: s for s in httpx.get(base + "/api/sources", timeout=10).json()}
        assert rows["crawl:riverdaily"]["posts"] >= 0 and rows["crawl:riverdaily"]["last_run"]


# -- sync sources: one Telegram client for the scheduled syncs and the live events ------------------
def test_sync_sources_run_through_one_live_client_which_stores_live_events(backend, monkeypatch):
    from telethon import utils
    from telethon.tl import types

    from telegram_standin import Standin as TelegramStandin
    from tgsearch.collect import telegram

    client = TelegramStandin()
    chan = client.add_channel("riverdaily", 30)
    made = []
    monkeypatch.setattr(telegram, "client_factory", lambda root: made.append(root) or client)
    sources_file.add(backend.root, sources_file.make("sync", "riverdaily", interval=60))
    w = Watcher(backend, WatchSettings(crawl_delay=0))
    try:
        [report] = w.run_due()
        assert report.key == "sync:riverdaily" and report.posts == 30 and not report.error
        assert len(made) == 1 and w.live is not None and len(client.list_event_handlers()) == 4
        # a new message arrives as an update: Telethon's own dispatch builds the event
        msg = chan.add("Срочно: мост через реку открыт после ремонта.")
        update = types.UpdateNewChannelMessage(message=msg, pts=100, pts_count=1)
        update._entities = {utils.get_peer_id(chan.entity): chan.entity}   # as Telethon's update loop sets it
        w.live.run(client._dispatch_update(update))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and f"riverdaily/{msg.id}" not in ids_of(backend, "riverdaily"):
            time.sleep(0.05)
        assert f"riverdaily/{msg.id}" in ids_of(backend, "riverdaily")
        sources_file.remove(backend.root, "sync", "riverdaily")
        w.run_due()
        assert client.list_event_handlers() == [] and len(made) == 1      # unfollowed, not reconnected
    finally:
        w.stop_event.set()
        if w.live is not None:
            w.live.stop()


def test_without_a_login_sync_sources_report_it_and_crawls_still_run(site, backend, monkeypatch):
    from telegram_standin import Standin as TelegramStandin
    from tgsearch.collect import telegram

    monkeypatch.setattr(telegram, "client_factory", lambda root: TelegramStandin(authorised=False))
    site.add_channel("hillnews", 4)
    sources_file.add(backend.root, sources_file.make("sync", "riverdaily", interval=60))
    add_crawl(backend.root, site, "hillnews")
    problems = []
    w = Watcher(backend, WatchSettings(crawl_delay=0), on_problem=problems.append)
    reports = {r.key: r for r in w.run_due()}
    assert "tgsearch login" in reports["sync:riverdaily"].error and reports["crawl:hillnews"].posts == 4
    assert w.live is None and len(problems) == 1 and "tgsearch login" in problems[0]
