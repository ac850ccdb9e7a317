"""Keep a data folder current: run the sources file's entries on their schedules (`tgsearch watch`,
`tgsearch serve --watch`).

One long-lived loop in one process: every `tick` seconds it re-reads `<db>/sources.toml` (so
`tgsearch sources add/remove` apply without a restart), runs the sources that are due one after
the other (crawl, sync, articles: each kind's runner is registered in `RUNNERS` the same way) and
records each run in the store (`source_runs`: started, finished, posts added, last error). The
derived work (lexical index, vectors) is done by the backend's one background worker, woken by
every write; no process is started per write.

A source is due when it never ran, when its last run never finished (the process was killed: it
runs again at once and its cursor continues where the stored data ends), or when `interval`
seconds have passed since its last run started. After downtime every overdue source runs once,
not once per missed interval.

One watch per data folder: `<db>/watch.lock` (an advisory lock held while the loop runs; the
kernel releases it when the process dies). `stop()` (SIGTERM/SIGINT in the CLI) ends the loop
after the request in flight: a crawl stops before its next request, waits are cut short.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..errors import TgsearchError, WatchError
from ..post import iso, parse_datetime
from . import sources as sources_file
from .sources import Source

LOCK_FILE = "watch.lock"


@dataclass
class WatchSettings:
    tick: float = 5.0                 # seconds between looks at the schedule (and the sources file)
    crawl_delay: float = 1.0          # seconds between two requests of a crawl
    articles_per_run: int = 200       # links an articles run fetches at most
    live: bool = True                 # with sync sources: stay connected to Telegram for live events
    sync_options: dict = field(default_factory=dict)   # passed to the sync runner


@dataclass
class RunReport:
    key: str
    started_at: str
    finished_at: str
    posts: int = 0                    # posts added or changed by the run
    error: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


Runner = Callable[["Watcher", Source], tuple[int, str]]
RUNNERS: dict[str, Runner] = {}


def runner(kind: str) -> Callable[[Runner], Runner]:
    """Register the function that runs sources of `kind`: (watcher, source) -> (posts added or
    changed, error line or ''); the watcher gives the backend, settings, stop event and the live
    Telegram client (`watcher.live`, or None)."""
    def register(fn: Runner) -> Runner:
        RUNNERS[kind] = fn
        return fn
    return register


@runner("crawl")
def _run_crawl(watcher: "Watcher", source: Source) -> tuple[int, str]:
    from .crawl import CrawlConfig, crawl

    config = CrawlConfig(base_url=source.base_url or CrawlConfig.base_url, delay=watcher.settings.crawl_delay)
    reports = crawl(watcher.backend, [source.channel], config, stop=watcher.stop_event)
    r = reports[0]
    return r.new + r.updated, "; ".join(([r.error] if r.error else []) + r.record_errors[:3])


@runner("articles")
def _run_articles(watcher: "Watcher", source: Source) -> tuple[int, str]:
    from .articles import fetch_articles
    from .safe_fetch import FetchConfig

    report = fetch_articles(watcher.backend, FetchConfig(allow_hosts=source.allow_hosts),
                            limit=watcher.settings.articles_per_run)
    return report.new, ""    # refused and failed links are recorded per link, not errors of the run


@runner("sync")
def _run_sync(watcher: "Watcher", source: Source) -> tuple[int, str]:
    from ..errors import SyncError
    from . import telegram

    live = watcher.live
    if live is not None and live.client is not None:
        try:
            reports = live.run(telegram.sync_async(watcher.backend, [source.channel],
                                                   telegram.SyncConfig(**watcher.settings.sync_options),
                                                   client=live.client, stop=watcher.stop_event))
        except SyncError as e:
            return 0, e.message
    else:
        reports = telegram.sync_source(watcher.backend, source, stop=watcher.stop_event, **watcher.settings.sync_options)
    r = reports[0]
    return r.new + r.updated + getattr(r, "deleted", 0), r.error


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Watcher:
    """Runs due sources until stopped; see the module docstring."""

    def __init__(self, backend, settings: WatchSettings | None = None, *,
                 on_run: Callable[[RunReport], None] | None = None,
                 on_problem: Callable[[str], None] | None = None,
                 clock: Callable[[], datetime] = _now):
        self.backend = backend
        self.root = Path(backend.root)
        self.settings = settings or WatchSettings()
        self.on_run = on_run
        self.on_problem = on_problem
        self.clock = clock
        self.stop_event = threading.Event()
        self.rounds = 0
        self.runs: list[RunReport] = []        # the last 100 runs, newest last
        self._sources: list[Source] = []
        self._sources_problem = ""
        self._lock_fd: int | None = None
        self._thread: threading.Thread | None = None
        self.live = None                       # the LiveListener, while sync sources exist and it connects
        self._live_tried = False

    # -- one watch per folder ---------------------------------------------------------------------
    def _acquire(self) -> None:
        if self._lock_fd is not None:
            return
        path = self.root / LOCK_FILE
        if getattr(self.backend, "url", None):      # a database backend: its local state folder, made on first use
            self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            other = ""
            try:
                other = path.read_text().strip()
            except OSError:
                pass
            raise WatchError(f"{self.root}: another watch is already running here"
                             + (f" (pid {other})" if other else "") + "; stop it first") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _release(self) -> None:
        if self._lock_fd is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None

    # -- the schedule -------------------------------------------------------------------------------
    def sources(self) -> list[Source]:
        """The sources file now; when it cannot be read, the last good list (the problem is
        reported once, until the file changes)."""
        try:
            self._sources = sources_file.load(self.root)
            self._sources_problem = ""
        except TgsearchError as e:
            if e.message != self._sources_problem and self.on_problem:
                self.on_problem(f"{e.message} (keeping the {len(self._sources)} sources read before)")
            self._sources_problem = e.message
        return self._sources

    def due(self, now: datetime | None = None) -> list[Source]:
        """Sources to run now, the most overdue first (never run and unfinished runs first)."""
        now = now or self.clock()
        runs = self.backend.source_runs()
        ranked = []
        for src in self.sources():
            run = runs.get(src.key)
            if not run or not run["started_at"] or not run["finished_at"]:
                ranked.append((float("-inf"), src))
                continue
            try:
                started = parse_datetime(run["started_at"])
            except (TypeError, ValueError):
                ranked.append((float("-inf"), src))
                continue
            overdue_at = started.timestamp() + src.interval
            if overdue_at <= now.timestamp():
                ranked.append((overdue_at, src))
        return [src for _, src in sorted(ranked, key=lambda r: r[0])]

    def next_due_in(self, now: datetime | None = None) -> float:
        """Seconds until the next source is due (0 when one is due; `tick` when none is known)."""
        now = now or self.clock()
        runs = self.backend.source_runs()
        waits = []
        for src in self._sources:
            run = runs.get(src.key)
            if not run or not run["finished_at"]:
                return 0.0
            try:
                waits.append(parse_datetime(run["started_at"]).timestamp() + src.interval - now.timestamp())
            except (TypeError, ValueError):
                return 0.0
        return max(0.0, min(waits)) if waits else self.settings.tick

    # -- runs ---------------------------------------------------------------------------------------
    def run_source(self, src: Source) -> RunReport:
        """Run one source now and record the run (started first, so a kill leaves it due)."""
        backend = self.backend
        started = self.clock()
        t0 = time.monotonic()
        backend.record_source_run(src.key, iso(started), None, 0, "")
        fn = RUNNERS.get(src.kind)
        try:
            if fn is None:
                posts, error = 0, f"{src.key}: no runner for kind {src.kind!r}"
            else:
                posts, error = fn(self, src)
        except TgsearchError as e:
            posts, error = 0, e.message
        except Exception as e:  # noqa: BLE001 - one source failing must not end the watch
            posts, error = 0, f"{src.key}: {type(e).__name__}: {e}"
        finished = self.clock()
        backend.record_source_run(src.key, iso(started), iso(finished), posts, error)
        report = RunReport(src.key, iso(started), iso(finished), posts, error, round(time.monotonic() - t0, 3))
        self.runs = (self.runs + [report])[-100:]
        if self.on_run:
            self.on_run(report)
        return report

    def _follow_live(self) -> None:
        """Connect for live events once there are sync sources (one try per process), and
        listen to the sync sources of now."""
        channels = [s.channel for s in self._sources if s.kind == "sync"]
        if not self.settings.live or not channels:
            if self.live is not None:
                self.live.follow([])
            return
        if self.live is None and not self._live_tried:
            from .watch_live import LiveListener

            self._live_tried = True
            listener = LiveListener(self.backend, on_problem=self.on_problem)
            if listener.start():
                self.live = listener
        if self.live is not None:
            try:
                self.live.follow(channels)
            except Exception as e:  # noqa: BLE001 - live events are a bonus: the scheduled syncs go on
                if self.on_problem:
                    self.on_problem(f"Telegram live events: {type(e).__name__}: {e}")

    def run_due(self) -> list[RunReport]:
        """One round: every due source once (stops early when asked to)."""
        reports = []
        due = self.due()
        self._follow_live()
        for src in due:
            if self.stop_event.is_set():
                break
            reports.append(self.run_source(src))
        self.rounds += 1
        # every round, not only after a collection: posts that waited for the stories (placed by the
        # worker a moment later) are checked at the next tick; a check with nothing new costs a query
        self._check_alerts()
        return reports

    def _check_alerts(self) -> None:
        """The saved searches' alert check after each round (alerts/check.py); a failure is
        reported, never ending the watch."""
        try:
            from ..alerts.check import run_alerts

            run_alerts(self.backend)
        except Exception as e:  # noqa: BLE001 - alerts must not stop collecting
            if self.on_problem:
                self.on_problem(f"alerts: {getattr(e, 'message', None) or f'{type(e).__name__}: {e}'}")

    def run(self, *, once: bool = False) -> None:
        """The loop (in this thread) until `stop()`; `once`: one round, then return."""
        self._acquire()
        try:
            while not self.stop_event.is_set():
                self.run_due()
                if once:
                    break
                self.stop_event.wait(min(self.settings.tick, max(self.next_due_in(), 0.05)))
        finally:
            if self.live is not None:
                self.live.stop()
                self.live = None
            self._release()

    # -- in a thread (serve --watch) ----------------------------------------------------------------
    def start(self) -> "Watcher":
        """Run the loop in a daemon thread (the lock is taken here, so a second watch fails now)."""
        self._acquire()   # here, so a second watch on the folder fails before `serve --watch` serves

        def loop() -> None:
            try:
                self.run()
            except TgsearchError as e:
                if self.on_problem:
                    self.on_problem(e.message)

        self._thread = threading.Thread(target=loop, name="tgsearch-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self) -> dict:
        return {"running": self._thread.is_alive() if self._thread else self._lock_fd is not None,
                "rounds": self.rounds, "last_runs": [r.to_dict() for r in self.runs[-10:]]}
