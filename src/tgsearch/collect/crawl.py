"""Crawl public Telegram channel previews (`{base}/s/<channel>`) into the store.

Each channel is read newest page first and paged back with the site's own pagination (the
`tme_messages_more` link, `?before=<id>`). A cursor per channel in the store (newest id seen,
oldest id reached, history complete or not) makes a second crawl fetch only what is new and
continue an unfinished backfill. A page's posts are stored before the cursor moves, and the
newest id only moves once every page between the head and the old newest id is stored, so a
crawl killed at any point loses nothing and duplicates nothing when run again.

Politeness: one request at a time, `delay` seconds between requests (at least robots.txt's
Crawl-delay), robots.txt honoured, 429 / 5xx / timeouts retried a bounded number of times with
backoff and jitter (Retry-After honoured), a page without messages where some were expected
treated as throttling, a timeout on every request and a User-Agent naming tgsearch.
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Callable

from .. import __version__
from ..errors import CrawlError, CrawlStopped, InputError
from ..post import Post
from ..sources import ReadContext, channel_name

if TYPE_CHECKING:   # httpx, the page parser and robotparser load with the first crawl: importing
    # tgsearch.collect (the backend does, for CollectAPI) stays cheap for every other command
    from urllib.robotparser import RobotFileParser

    import httpx

USER_AGENT = f"tgsearch/{__version__} (+https://github.com/tgsearch/tgsearch; self-hosted channel search)"
_USERNAME = re.compile(r"^(?:(?:https?://)?(?:www\.)?t(?:elegram)?\.me/(?:s/)?|@)?([A-Za-z0-9_]{3,64})/?$")
_DATA_POST = re.compile(r"^[A-Za-z0-9_]+/(\d+)$")


@dataclass
class CrawlConfig:
    base_url: str = "https://t.me"
    since: datetime | None = None      # stop paging back at posts older than this (UTC)
    limit: int | None = None           # at most this many posts per channel and run
    delay: float = 1.0                 # seconds between two requests
    timeout: float = 20.0              # seconds, every request
    retries: int = 4                   # extra attempts on 429 / 5xx / timeouts / empty pages
    backoff: float = 2.0               # first backoff in seconds (doubled per attempt, plus jitter)
    max_wait: float = 120.0            # cap on any single wait (Retry-After included)
    recheck_pages: int = 1             # incremental crawl whose news fit the head page: re-read this
                                       # many older pages for edits and view counts
    user_agent: str = USER_AGENT


@dataclass
class Page:
    posts: list[Post]
    ids: list[int]                 # every message id on the page (also those that make no post)
    before: int | None             # the "more" link's data-before, None at the channel's start


@dataclass
class ChannelReport:
    channel: str
    pages: int = 0
    posts: int = 0
    new: int = 0
    updated: int = 0
    refreshed: int = 0
    unchanged: int = 0
    complete: bool = False         # the whole available history has been read (now or before)
    error: str = ""
    record_errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def parse_channel(value: str) -> str:
    """'name', '@name', 'https://t.me/name', 't.me/s/name' -> 'name' (lower case)."""
    m = _USERNAME.match(value.strip())
    if not m:
        raise CrawlError(f"{value!r}: not a channel name (expected a t.me username such as durov or https://t.me/durov)")
    return channel_name(m.group(1))


def parse_page(html: str, channel: str, origin: str) -> tuple[Page, list[str]]:
    """The posts, message ids and "more" link of one t.me/s page (and the unreadable records)."""
    from selectolax.lexbor import LexborHTMLParser

    from ..sources.tme_preview import read_html

    tree = LexborHTMLParser(html)
    ids = []
    for node in tree.css(".tgme_widget_message[data-post]"):
        m = _DATA_POST.match((node.attributes.get("data-post") or "").strip())
        if m:
            ids.append(int(m.group(1)))
    more = tree.css_first(".tme_messages_more[data-before]")
    before = None
    if more is not None and (more.attributes.get("data-before") or "").isdigit():
        before = int(more.attributes["data-before"])
    if not ids:
        return Page([], [], before), []
    ctx = ReadContext(origin_file=origin)
    posts = [p for p in read_html(html, ctx, origin) if p.channel == channel]
    return Page(posts, ids, before), ctx.errors


class Crawler:
    """Fetches t.me/s pages politely through one httpx.Client (tests pass their own)."""

    def __init__(self, config: CrawlConfig, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] | None = None, stop: threading.Event | None = None):
        self.config = config
        self.stop = stop
        self.base = config.base_url.rstrip("/")
        if not re.match(r"^https?://[^/\s]+$", self.base):
            raise CrawlError(f"--base-url {config.base_url!r}: expected a site such as https://t.me")
        import httpx

        self.client = client or httpx.Client(timeout=config.timeout, follow_redirects=False)
        # waits end early when `stop` is set (watch shutting down); the next request then stops
        self.sleep = sleep or (stop.wait if stop is not None else time.sleep)
        self.requests = 0
        self._last: float | None = None
        self._robots: RobotFileParser | None = None
        self._crawl_delay = 0.0

    def close(self) -> None:
        self.client.close()

    # -- HTTP ----------------------------------------------------------------------------------
    def _pause(self) -> None:
        delay = max(self.config.delay, self._crawl_delay)
        if self._last is not None and delay > 0:
            wait = self._last + delay - time.monotonic()
            if wait > 0:
                self.sleep(wait)

    def _get(self, url: str, what: str) -> httpx.Response:
        """GET with the delay, timeout and User-Agent; 429, 5xx and transport errors retried."""
        import httpx

        attempt = 0
        while True:
            self._pause()
            if self.stop is not None and self.stop.is_set():
                raise CrawlStopped(f"{what}: stopped before {url} (the next crawl continues from the cursor)")
            self.requests += 1
            try:
                response = self.client.get(url, headers={"User-Agent": self.config.user_agent},
                                           timeout=self.config.timeout, follow_redirects=False)
                problem, retry_after = None, None
                if response.status_code == 429 or response.status_code >= 500:
                    problem = f"HTTP {response.status_code}"
                    retry_after = _retry_after(response.headers.get("Retry-After"))
            except httpx.TransportError as e:
                response, problem, retry_after = None, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__, None
            finally:
                self._last = time.monotonic()
            if problem is None:
                return response
            if attempt >= self.config.retries:
                raise CrawlError(f"{what}: {url} failed after {attempt + 1} attempts ({problem}); "
                                 "try again later, or with a larger --delay")
            self._back_off(attempt, retry_after)
            attempt += 1

    def _back_off(self, attempt: int, retry_after: float | None) -> None:
        if retry_after is not None:
            wait = retry_after
        else:
            base = self.config.backoff * (2 ** attempt)
            wait = base + random.uniform(0, base / 2)
        wait = min(wait, self.config.max_wait)
        if wait > 0:
            self.sleep(wait)

    def robots(self) -> RobotFileParser:
        """{base}/robots.txt, fetched once per crawler; a missing one allows everything."""
        if self._robots is None:
            from urllib.robotparser import RobotFileParser

            url = f"{self.base}/robots.txt"
            parser = RobotFileParser(url)
            response = self._get(url, "robots.txt")
            if response.status_code in (401, 403):
                parser.disallow_all = True
            elif 200 <= response.status_code < 300:
                parser.parse(response.text.splitlines())
            else:
                parser.allow_all = True
            self._crawl_delay = float(parser.crawl_delay(self.config.user_agent) or 0)
            self._robots = parser
        return self._robots

    def fetch_page(self, channel: str, before: int | None, report: ChannelReport) -> Page:
        """One page of a channel; a page without messages where some were expected is retried."""
        url = f"{self.base}/s/{channel}" + (f"?before={before}" if before is not None else "")
        try:
            robots = self.robots()
        except CrawlError as e:
            raise CrawlError(f"{channel}: {e.message}") from e
        if not robots.can_fetch(self.config.user_agent, url):
            raise CrawlError(f"{channel}: {self.base}/robots.txt disallows {url}; not crawled")
        origin = f"{self.base}/s/{channel}"
        for attempt in range(self.config.retries + 1):
            response = self._get(url, channel)
            if response.is_redirect:
                location = response.headers.get("Location", "")
                raise CrawlError(f"{channel}: no public web preview ({url} redirects to {location or 'elsewhere'}); "
                                 "the channel is private, a group, or has its preview turned off")
            if response.status_code == 404:
                raise CrawlError(f"{channel}: no such channel ({url} answered 404); check the name")
            if response.status_code >= 400:
                raise CrawlError(f"{channel}: {url} answered HTTP {response.status_code}")
            try:
                page, errors = parse_page(response.text, channel, origin)
            except InputError as e:
                raise CrawlError(f"{channel}: {e.message}") from e
            report.record_errors += [e for e in errors if e not in report.record_errors]
            if page.ids:
                return page
            if attempt < self.config.retries:
                self._back_off(attempt, None)
        raise CrawlError(f"{channel}: {url} shows no messages after {self.config.retries + 1} attempts "
                         "(throttled, or the channel is empty); try again later")

    # -- one channel ---------------------------------------------------------------------------
    def crawl_channel(self, backend, channel: str, on_page: Callable[[ChannelReport], None] | None = None,
                      report: ChannelReport | None = None) -> ChannelReport:
        """Fetch what is new, then continue the backfill; store each page before moving the cursor.

        The cursor's promise: every message from `oldest` to `newest` is stored."""
        report = report or ChannelReport(channel)
        cursor = backend.get_cursor(channel) or {"newest": None, "oldest": None, "complete": False}
        newest, oldest, complete = cursor["newest"], cursor["oldest"], cursor["complete"]
        report.complete = complete
        budget = self.config.limit

        def keep(page: Page) -> tuple[list[Post], bool]:
            """The page's posts within --since and --limit (newest first), and whether all were kept."""
            nonlocal budget
            posts = sorted(page.posts, key=_mid, reverse=True)
            if self.config.since is not None:
                posts = [p for p in posts if p.date is None or p.date >= self.config.since]
            if budget is not None:
                posts = posts[:budget]
                budget -= len(posts)
            return posts, len(posts) == len(page.posts)

        def store_page(page: Page) -> tuple[list[Post], bool, int | None]:
            posts, whole = keep(page)
            result = backend.write_posts(posts)
            report.pages += 1
            report.posts += len(posts)
            report.new += result.new
            report.updated += result.updated
            report.refreshed += result.refreshed
            report.unchanged += result.unchanged
            # the lowest id from which everything up to this page's top is stored
            low = min(page.ids) if whole else (min(map(_mid, posts)) if posts else None)
            return posts, whole, low

        def moved() -> None:
            report.complete = complete
            if on_page:
                on_page(report)

        # 1. the head page, then back to the newest id already seen (a first crawl: just the head)
        before, head, head_pages = None, None, 0
        while True:
            page = self.fetch_page(channel, before, report)
            head_pages += 1
            posts, whole, low = store_page(page)
            head = max(page.ids) if head is None else head
            if newest is None:                      # first crawl: the head page starts the backfill
                newest, oldest = head, low if low is not None else head + 1
                complete = page.before is None and whole
                backend.set_cursor(channel, newest=newest, oldest=oldest, complete=complete)
                moved()
                break
            kept = {_mid(p) for p in posts}
            covered = all(_mid(p) in kept for p in page.posts if _mid(p) > newest)
            if covered and (min(page.ids) <= newest or page.before is None):
                # every message between the head and the old newest id is stored now
                if page.before is None and whole:
                    complete, oldest = True, min(page.ids) if oldest is None else min(oldest, min(page.ids))
                newest = max(newest, head)
                backend.set_cursor(channel, newest=newest, oldest=oldest, complete=complete)
                moved()
                if head_pages == 1 and whole:
                    self._recheck(channel, page.before, report, store_page, moved)
                break
            moved()
            if not whole or page.before is None or budget == 0:
                return report                       # --since / --limit reached before the old head
            before = page.before
        # 2. continue an unfinished backfill from the oldest id reached
        while not complete and whole and budget != 0:
            page = self.fetch_page(channel, oldest, report)
            if min(page.ids) >= oldest:
                raise CrawlError(f"{channel}: the page before id {oldest} shows no older messages "
                                 "(has the site's pagination changed?); stopped")
            posts, whole, low = store_page(page)
            oldest = low if low is not None else oldest
            complete = page.before is None and whole
            backend.set_cursor(channel, newest=newest, oldest=oldest, complete=complete)
            moved()
        return report


    def _recheck(self, channel: str, before: int | None, report: ChannelReport, store_page, moved) -> None:
        """Re-read `recheck_pages` pages below the head (already stored): edits and new view counts
        of the recent past. Only when the new messages fitted the head page, so a crawl with
        nothing or little new stays within robots.txt + head + this page."""
        for _ in range(self.config.recheck_pages):
            if before is None:
                return
            page = self.fetch_page(channel, before, report)
            _, whole, _ = store_page(page)
            moved()
            if not whole:
                return
            before = page.before


def _mid(post: Post) -> int:
    return int(post.id.rsplit("/", 1)[1])


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (an HTTP date is read as 'soon': the cap and backoff apply)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None


def crawl(backend, channels: list[str], config: CrawlConfig, *, client: httpx.Client | None = None,
          on_page: Callable[[ChannelReport], None] | None = None,
          on_channel: Callable[[ChannelReport], None] | None = None,
          stop: threading.Event | None = None) -> list[ChannelReport]:
    """Crawl every channel (one failing costs only itself), then bring the indexes up to date.

    When `stop` is set (watch shutting down), the request about to be made is not: that channel's
    report says so and the channels after it are not crawled; what was stored stays, and the
    cursor lets the next crawl continue."""
    crawler = Crawler(config, client, stop=stop)
    reports = []
    try:
        for value in channels:
            try:
                channel = parse_channel(value)
            except CrawlError as e:
                reports.append(ChannelReport(value, error=e.message))
            else:
                report = ChannelReport(channel)
                try:
                    crawler.crawl_channel(backend, channel, on_page, report)
                except CrawlStopped as e:
                    report.error = e.message
                    reports.append(report)
                    if on_channel:
                        on_channel(report)
                    break
                except CrawlError as e:
                    report.error = e.message
                    cursor = backend.get_cursor(channel)
                    report.complete = bool(cursor and cursor["complete"])
                reports.append(report)
            if on_channel:
                on_channel(reports[-1])
    finally:
        if client is None:
            crawler.close()
        if any(r.pages for r in reports):
            backend.after_write()
    return reports
