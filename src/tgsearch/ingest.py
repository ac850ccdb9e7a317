"""Collect: walk inputs, pick a reader per file, store the posts, report per file.

A file that fails does not stop the batch. Posts are written in batches, each its
own transaction, and upserts are idempotent, so an ingest killed at any point and
run again ends with exactly the store an uninterrupted run gives.

Every reader runs under one per-file guard: whatever it raises becomes one line naming
the file (the posts it yielded before are kept), and a reader that runs longer than the
per-file time budget (TGSEARCH_FILE_TIMEOUT seconds, default 120) or is given a file
larger than it can hold in memory (TGSEARCH_MAX_FILE_MB, default 512; streaming readers
have no limit) is stopped the same way.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .errors import InputError, TgsearchError
from .sources import ReadContext, detect, reader_by_name, walk
from .store import Store, UpsertResult

BATCH = 2000
FILE_TIMEOUT = 120.0              # seconds one file may take to read (TGSEARCH_FILE_TIMEOUT)
MAX_FILE_BYTES = 512 * 1024 ** 2  # for readers that hold a whole file in memory (TGSEARCH_MAX_FILE_MB)
# What a store write can raise for a value it cannot hold; the batch is then written post by post.
_VALUE_ERRORS = (ValueError, TypeError, OverflowError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
                 sqlite3.IntegrityError, sqlite3.DataError)


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return value if value > 0 else default


@dataclass
class FileReport:
    path: str
    format: str = ""
    posts: int = 0
    new: int = 0
    updated: int = 0
    refreshed: int = 0   # only views/reactions changed: updated in place, same version
    unchanged: int = 0
    error: str = ""
    record_errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error and not self.record_errors


@dataclass
class IngestReport:
    files: list[FileReport] = field(default_factory=list)

    @property
    def posts(self) -> int:
        return sum(f.posts for f in self.files)

    def total(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.files)

    @property
    def errors(self) -> list[str]:
        out = []
        for f in self.files:
            if f.error:
                out.append(f.error)
            out.extend(f.record_errors)
        return out

    @property
    def failed_files(self) -> int:
        return sum(1 for f in self.files if not f.ok)

    def to_dict(self) -> dict:
        return {
            "files": len(self.files),
            "posts": self.posts,
            "new": self.total("new"),
            "updated": self.total("updated"),
            "refreshed": self.total("refreshed"),
            "unchanged": self.total("unchanged"),
            "failed_files": self.failed_files,
            "errors": self.errors,
            "by_format": self.by_format(),
        }

    def by_format(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            if f.format:
                out[f.format] = out.get(f.format, 0) + f.posts
        return out


def ingest_file(store: Store, path: Path, *, encoding: str | None = None, format: str | None = None,
                channel: str | None = None, on_posts: Callable[[int], None] | None = None,
                timeout: float | None = None, max_bytes: int | None = None) -> FileReport:
    origin = str(path)
    report = FileReport(path=origin)
    ctx = ReadContext(origin_file=origin, encoding=encoding, channel=channel)
    timeout = timeout if timeout is not None else _env_number("TGSEARCH_FILE_TIMEOUT", FILE_TIMEOUT)
    if max_bytes is None:
        max_bytes = int(_env_number("TGSEARCH_MAX_FILE_MB", MAX_FILE_BYTES / 1024 ** 2) * 1024 ** 2)
    try:
        stat = path.stat()
    except OSError as e:
        report.error = InputError(origin, f"cannot read ({e.strerror})", "check the path").message
        return report
    batch: list = []
    posts = None
    try:
        reader = reader_by_name(format) if format else detect(path, encoding)
        report.format = reader.NAME
        if stat.st_size > max_bytes and not getattr(reader, "STREAMING", False):
            raise InputError(origin, f"too large for the {reader.NAME} reader ({_mb(stat.st_size)}; it holds a whole "
                             f"file in memory and the limit is {_mb(max_bytes)})",
                             "split the file, or raise TGSEARCH_MAX_FILE_MB")
        with _Budget(origin, timeout) as budget:
            posts = reader.read(path, ctx)
            while True:
                with budget.reading():
                    post = next(posts, None)
                if post is None:
                    break
                batch.append(post)
                if len(batch) >= BATCH:
                    _flush(store, batch, report, ctx, on_posts)
                budget.check()
    except TgsearchError as e:
        report.error = e.message
    except sqlite3.Error:
        raise  # the store failed (locked, disk full): not this file's fault
    except Exception as e:  # noqa: BLE001 - the per-file guard: a reader's crash costs only its file
        problem = "nested too deeply" if isinstance(e, RecursionError) else f"{type(e).__name__}: {e}"
        report.error = InputError(origin, f"could not be read as {report.format or 'any format'} ({problem[:300]})",
                                  "report this file to the tgsearch developers if it is a valid export").message
    finally:
        if posts is not None:
            posts.close()
    _flush(store, batch, report, ctx, on_posts)  # posts read before an error are kept
    report.record_errors = ctx.errors
    report.warnings = ctx.warnings
    status = "ok" if report.ok else ("partial" if report.posts else "failed")
    store.record_file(origin, format=report.format, size=stat.st_size, mtime_ns=stat.st_mtime_ns,
                      posts=report.posts, status=status, error=report.error or "; ".join(report.record_errors[:3]))
    return report


def _mb(size: int) -> str:
    return f"{size / 1024 ** 2:.0f} MB" if size >= 1024 ** 2 else f"{size} bytes"


class _Budget:
    """The per-file time budget. Checked after every post; where it can (the main thread of a
    Unix process) a timer also interrupts a reader stuck inside one record. The timer only
    interrupts the reader, never a store write."""

    def __init__(self, origin: str, seconds: float):
        self.origin = origin
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.in_reader = False
        self.expired = False
        self._old_handler = None
        self._old_timer = (0.0, 0.0)

    def error(self) -> TgsearchError:
        # The base class on purpose: readers catch InputError for bad lines, never this.
        return TgsearchError(InputError(self.origin, f"stopped: reading took longer than {self.seconds:g} s "
                                        "(the posts read before were kept)",
                                        "split the file, or raise TGSEARCH_FILE_TIMEOUT").message)

    def __enter__(self) -> "_Budget":
        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            self._old_handler = signal.signal(signal.SIGALRM, self._alarm)
            self._old_timer = signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc) -> None:
        if self._old_handler is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._old_handler)
            delay, interval = self._old_timer
            if delay:  # someone else's timer: give back what is left of it
                spent = time.monotonic() - (self.deadline - self.seconds)
                signal.setitimer(signal.ITIMER_REAL, max(delay - spent, 0.001), interval)

    def _alarm(self, signum, frame) -> None:
        self.expired = True
        if self.in_reader:
            raise self.error()

    def reading(self) -> "_Reading":
        return _Reading(self)

    def check(self) -> None:
        if self.expired or time.monotonic() > self.deadline:
            raise self.error()


class _Reading:
    def __init__(self, budget: _Budget):
        self.budget = budget

    def __enter__(self) -> None:
        self.budget.in_reader = True
        self.budget.check()

    def __exit__(self, *exc) -> None:
        self.budget.in_reader = False


def _flush(store: Store, batch: list, report: FileReport, ctx: ReadContext, on_posts) -> None:
    if not batch:
        return
    try:
        result: UpsertResult = store.upsert(batch)
    except _VALUE_ERRORS:
        # A value the store cannot hold slipped past Post's checks: write the batch post by post
        # so only that post is lost, and name it.
        result = UpsertResult()
        kept = []
        for post in batch:
            try:
                result.add(store.upsert([post]))
                kept.append(post)
            except _VALUE_ERRORS as e:
                ctx.error(f"post {post.id} could not be stored ({type(e).__name__}: {e})", None,
                          "fix or remove that record; the others were stored")
        batch[:] = kept
    report.posts += len(batch)
    report.new += result.new
    report.updated += result.updated
    report.refreshed += result.refreshed
    report.unchanged += result.unchanged
    if on_posts:
        on_posts(len(batch))
    batch.clear()


def ingest(store: Store, paths: Iterable[str | os.PathLike], *, encoding: str | None = None,
           format: str | None = None, channel: str | None = None, on_file: Callable[[FileReport], None] | None = None,
           on_posts: Callable[[int], None] | None = None, timeout: float | None = None,
           max_bytes: int | None = None) -> IngestReport:
    """Ingest every file under `paths`; `timeout` (seconds) and `max_bytes` override the per-file
    guards (TGSEARCH_FILE_TIMEOUT, TGSEARCH_MAX_FILE_MB)."""
    report = IngestReport()
    for path in walk(list(paths)):
        file_report = ingest_file(store, path, encoding=encoding, format=format, channel=channel, on_posts=on_posts,
                                  timeout=timeout, max_bytes=max_bytes)
        report.files.append(file_report)
        if on_file:
            on_file(file_report)
    return report
