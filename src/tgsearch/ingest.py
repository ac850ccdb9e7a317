"""Collect: walk inputs, pick a reader per file, store the posts, report per file.

A file that fails does not stop the batch. Posts are written in batches, each its
own transaction, and upserts are idempotent, so an ingest killed at any point and
run again ends with exactly the store an uninterrupted run gives.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .errors import InputError, TgsearchError
from .sources import ReadContext, detect, reader_by_name, walk
from .store import Store, UpsertResult

BATCH = 2000


@dataclass
class FileReport:
    path: str
    format: str = ""
    posts: int = 0
    new: int = 0
    updated: int = 0
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
                channel: str | None = None, on_posts: Callable[[int], None] | None = None) -> FileReport:
    origin = str(path)
    report = FileReport(path=origin)
    ctx = ReadContext(origin_file=origin, encoding=encoding, channel=channel)
    try:
        stat = path.stat()
    except OSError as e:
        report.error = InputError(origin, f"cannot read ({e.strerror})", "check the path").message
        return report
    batch: list = []
    try:
        reader = reader_by_name(format) if format else detect(path, encoding)
        report.format = reader.NAME
        for post in reader.read(path, ctx):
            batch.append(post)
            if len(batch) >= BATCH:
                _flush(store, batch, report, on_posts)
        _flush(store, batch, report, on_posts)
    except TgsearchError as e:
        _flush(store, batch, report, on_posts)  # posts read before the error are kept
        report.error = e.message
    except (ValueError, KeyError, TypeError, UnicodeError, RecursionError) as e:
        _flush(store, batch, report, on_posts)
        # A reader tripped over input it did not expect: report it as that file's error.
        report.error = InputError(origin, f"could not be read as {report.format or 'any format'} ({type(e).__name__}: {e})",
                                  "report this file to the tgsearch developers if it is a valid export").message
    report.record_errors = ctx.errors
    report.warnings = ctx.warnings
    status = "ok" if report.ok else ("partial" if report.posts else "failed")
    store.record_file(origin, format=report.format, size=stat.st_size, mtime_ns=stat.st_mtime_ns,
                      posts=report.posts, status=status, error=report.error or "; ".join(report.record_errors[:3]))
    return report


def _flush(store: Store, batch: list, report: FileReport, on_posts) -> None:
    if not batch:
        return
    result: UpsertResult = store.upsert(batch)
    report.posts += len(batch)
    report.new += result.new
    report.updated += result.updated
    report.unchanged += result.unchanged
    if on_posts:
        on_posts(len(batch))
    batch.clear()


def ingest(store: Store, paths: Iterable[str | os.PathLike], *, encoding: str | None = None,
           format: str | None = None, channel: str | None = None, on_file: Callable[[FileReport], None] | None = None,
           on_posts: Callable[[int], None] | None = None) -> IngestReport:
    report = IngestReport()
    for path in walk(list(paths)):
        file_report = ingest_file(store, path, encoding=encoding, format=format, channel=channel, on_posts=on_posts)
        report.files.append(file_report)
        if on_file:
            on_file(file_report)
    return report
