"""Export posts as JSON Lines or CSV with every field of the Post record, plus the derived fields
`articles` (ids of the fetched articles a post links to), `cited_by` (ids of the posts citing an
article), `story` (its story's id), `copy_of` (the post it repeats: its first poster) and
`entities` ([{"type": "person"|"org"|"place", "name"}]), computed per batch of posts so the export
stays streamed (`Backend.export_fields`)."""

from __future__ import annotations

import csv
import io
import json
from itertools import islice
from typing import Callable, Iterable, Iterator, TextIO

from .post import FIELD_NAMES, Post

FORMATS = ("jsonl", "csv")  # the web/API export
# The command line also writes press-digest posts in a digest channel's format (export_digest.py).
CLI_FORMATS = FORMATS + ("digest",)
CITATION_FIELDS = ("articles", "cited_by")
DERIVED_FIELDS = CITATION_FIELDS + ("story", "copy_of", "entities")
_EMPTY = {"articles": list, "cited_by": list, "story": lambda: None, "copy_of": lambda: None, "entities": list}
EXPORT_FIELDS = tuple(FIELD_NAMES) + DERIVED_FIELDS
BATCH = 500

# ids -> {id: {"articles": [...], "cited_by": [...], "story", "copy_of", "entities"}}
# (Backend.export_fields); None: no derived data
Citations = Callable[[list[str]], dict] | None


def _rows(posts: Iterable[Post], citations: Citations) -> Iterator[dict]:
    """Each post's fields plus the derived ones, looked up once per batch of posts."""
    posts = iter(posts)
    while True:
        batch = list(islice(posts, BATCH))
        if not batch:
            return
        found = citations([p.id for p in batch]) if citations is not None else {}
        for post in batch:
            d = post.to_dict()
            extra = found.get(post.id) or {}
            for name in DERIVED_FIELDS:
                value = extra.get(name)
                d[name] = _EMPTY[name]() if value is None else (list(value) if isinstance(value, (list, tuple)) else value)
            yield d


def post_row(post: Post) -> dict:
    return post.to_dict()


def write_jsonl(posts: Iterable[Post], out: TextIO, citations: Citations = None) -> int:
    n = 0
    for d in _rows(posts, citations):
        out.write(json.dumps(d, ensure_ascii=False) + "\n")
        n += 1
    return n


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def write_csv(posts: Iterable[Post], out: TextIO, citations: Citations = None) -> int:
    writer = csv.writer(out)
    writer.writerow(EXPORT_FIELDS)
    n = 0
    for d in _rows(posts, citations):
        writer.writerow([_csv_value(d.get(name)) for name in EXPORT_FIELDS])
        n += 1
    return n


def iter_chunks(posts: Iterable[Post], fmt: str, citations: Citations = None) -> Iterator[str]:
    """Streamed export for HTTP responses."""
    buf = io.StringIO()
    if fmt == "csv":
        writer = csv.writer(buf)
        writer.writerow(EXPORT_FIELDS)
    for d in _rows(posts, citations):
        if fmt == "csv":
            writer.writerow([_csv_value(d.get(name)) for name in EXPORT_FIELDS])
        else:
            buf.write(json.dumps(d, ensure_ascii=False) + "\n")
        if buf.tell() > 64 * 1024:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    if buf.tell():
        yield buf.getvalue()
