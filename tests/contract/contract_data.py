"""Helpers for the contract suite: write invented posts as JSON Lines, search and collect ids,
page through a result set. Only the Backend protocol and the public search types are used."""

from __future__ import annotations

import json
from pathlib import Path

from tgsearch.search.types import SearchRequest


def write_jsonl(path: Path, posts: list[dict]) -> Path:
    """Write posts in the documented JSON Lines format (sources/jsonl.py); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for post in posts:
            f.write(json.dumps(post, ensure_ascii=False) + "\n")
    return path


def ingest_posts(backend, path: Path, posts: list[dict]):
    """Write `posts` to `path` and ingest it; the report must carry no errors."""
    report = backend.ingest([write_jsonl(path, posts)])
    assert not report.errors, report.errors
    return report


def counts(report) -> dict:
    return {name: report.total(name) for name in ("new", "updated", "refreshed", "unchanged")}


def search(backend, q="", **kw):
    kw.setdefault("mode", "lexical")
    kw.setdefault("limit", 100)
    kw.setdefault("group", "none")
    return backend.search(SearchRequest(q=q, **kw))


def ids(backend, q="", **kw) -> list[str]:
    return [h.id for h in search(backend, q, **kw).hits]


def page_through(backend, q, size, **kw) -> tuple[list[str], set[int], list]:
    """(ids in page order, the totals every page reported, the hits) of every page of a search."""
    seen, totals, hits, offset = [], set(), [], 0
    while True:
        res = backend.search(SearchRequest(q=q, limit=size, offset=offset, **kw))
        totals.add(res.total)
        if not res.hits:
            break
        assert len(res.hits) <= size
        seen += [h.id for h in res.hits]
        hits += res.hits
        offset += size
        assert offset < 2000, "paging never ends"
    return seen, totals, hits
