"""Export posts as JSON Lines or CSV with every field of the Post record."""

from __future__ import annotations

import csv
import io
import json
from typing import Iterable, Iterator, TextIO

from .post import FIELD_NAMES, Post

FORMATS = ("jsonl", "csv")


def post_row(post: Post) -> dict:
    return post.to_dict()


def write_jsonl(posts: Iterable[Post], out: TextIO) -> int:
    n = 0
    for post in posts:
        out.write(json.dumps(post.to_dict(), ensure_ascii=False) + "\n")
        n += 1
    return n


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def write_csv(posts: Iterable[Post], out: TextIO) -> int:
    writer = csv.writer(out)
    writer.writerow(FIELD_NAMES)
    n = 0
    for post in posts:
        d = post.to_dict()
        writer.writerow([_csv_value(d.get(name)) for name in FIELD_NAMES])
        n += 1
    return n


def iter_chunks(posts: Iterable[Post], fmt: str) -> Iterator[str]:
    """Streamed export for HTTP responses."""
    buf = io.StringIO()
    if fmt == "csv":
        writer = csv.writer(buf)
        writer.writerow(FIELD_NAMES)
    for post in posts:
        if fmt == "csv":
            d = post.to_dict()
            writer.writerow([_csv_value(d.get(name)) for name in FIELD_NAMES])
        else:
            buf.write(json.dumps(post.to_dict(), ensure_ascii=False) + "\n")
        if buf.tell() > 64 * 1024:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    if buf.tell():
        yield buf.getvalue()
