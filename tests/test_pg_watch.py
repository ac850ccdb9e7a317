"""`tgsearch watch` on a PostgreSQL database, beside a `serve` on the same database: the sources file
and the watch lock live in TGSEARCH_STATE, the posts in the database. A watch killed mid-backfill
resumes without loss or duplicates; what it crawls becomes searchable through the other process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from server_helpers import running_serve
from tgsearch.backend import open_backend
from tgsearch.collect import sources as sources_file
from test_crawl import site  # noqa: F401 - the t.me stand-in fixture

pytestmark = pytest.mark.slow


def _env(state) -> dict:
    return {**os.environ, "TGSEARCH_STATE": str(state), "TGSEARCH_VECTORS": "off", "TGSEARCH_STORIES": "off"}


def _watch(url, state, *args):
    return subprocess.Popen([sys.executable, "-m", "tgsearch.cli", "watch", "--db", url, "--tick", "0.2", *args],
                            env=_env(state), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _ids(url, channel) -> list[str]:
    b = open_backend(url, create=False)
    try:
        return [pid for (pid,) in b.store.conn.execute(
            "SELECT id FROM posts WHERE channel = %s", (channel,)).fetchall()]
    finally:
        b.close()


def _wait_for(check, seconds: float, what: str, proc=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"watch exited ({proc.returncode}): {proc.stderr.read()}")
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} not within {seconds:.0f} s")


def test_watch_on_postgres_resumes_after_kill_9_and_serve_finds_what_it_crawled(site, pg_url, tmp_path):  # noqa: F811
    state = tmp_path / "state"
    open_backend(pg_url).close()                           # the schema, as `postgres start` + first use
    site.add_channel("bigchannel", 200)
    sources_file.add(state, sources_file.make("crawl", "bigchannel", interval=1, base_url=site.base_url))
    proc = _watch(pg_url, state, "--delay", "0.05")
    _wait_for(lambda: len(site.page_requests()) >= 4, 60, "the crawl's first pages", proc)
    proc.kill()                                           # mid-backfill, no clean-up at all
    proc.wait()
    want = {f"bigchannel/{m.id}" for m in site.channels["bigchannel"]}
    with running_serve(pg_url, env={"TGSEARCH_STATE": str(state), "TGSEARCH_STORIES": "off"}) as base:
        proc = _watch(pg_url, state, "--delay", "0")
        try:
            _wait_for(lambda: set(_ids(pg_url, "bigchannel")) == want, 90, "the whole backfill", proc)
            # a second watch on the same state folder is refused while the first runs
            second = subprocess.run([sys.executable, "-m", "tgsearch.cli", "watch", "--db", pg_url, "--once"],
                                    env=_env(state), capture_output=True, text=True, timeout=60)
            assert second.returncode != 0 and "watch" in second.stderr.lower()
            new = site.post("bigchannel", 2)[-1]             # picked up by the next run (interval 1 s)

            def found() -> bool:
                r = httpx.get(base + "/api/search", params={"q": f'"пункт {new.id}"', "mode": "lexical"},
                              timeout=10)
                assert r.status_code == 200, r.text
                return [h["id"] for h in r.json()["hits"]] == [f"bigchannel/{new.id}"]

            _wait_for(found, 60, "the new post in the other process's search", proc)
            rows = {s["key"]: s for s in httpx.get(base + "/api/sources", timeout=10).json()}
            assert rows["crawl:bigchannel"]["last_run"]
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        assert code == 0, proc.stderr.read()
    ids = _ids(pg_url, "bigchannel")
    assert len(ids) == len(set(ids)) == 202
    assert set(ids) == {f"bigchannel/{m.id}" for m in site.channels["bigchannel"]}
