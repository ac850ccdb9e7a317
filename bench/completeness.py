"""Completeness of results: every result counted in `total` is reachable by paging and present in
the export, in every mode and sort, through the real HTTP API (in-process ASGI client).

    python -m bench.completeness --db DIR [--q Россия --q Казахстан]

DIR: a data folder with vectors built (e.g. the 22k corpus: `tgsearch ingest
../shared/data/tg-news-posts-ru/raw --db DIR` then `python -m tgsearch.index.vectors fill --db DIR`).
Without --db (as in `make bench`) it is skipped: building 22k vectors takes minutes.
Prints one line per (query, mode, sort): the totals seen on every page, posts paged, distinct posts,
export rows, X-Total-Count, and whether export and paging give the same order; exit 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import json
import time


def check(client, q: str, mode: str, sort: str, page: int = 200) -> bool:
    seen, totals, offset = [], set(), 0
    started = time.perf_counter()
    while True:
        r = client.get("/api/search", params={"q": q, "mode": mode, "sort": sort, "limit": page, "offset": offset})
        body = r.json()
        totals.add(body["total"])
        if not body["hits"]:
            break
        seen += [h["id"] for h in body["hits"]]
        offset += page
    export = client.get("/api/export", params={"q": q, "mode": mode, "sort": sort, "format": "jsonl"})
    rows = [json.loads(line)["id"] for line in export.text.splitlines()]
    ok = len(totals) == 1 and len(seen) == len(set(seen)) == len(rows) == int(export.headers["x-total-count"]) \
        == totals.copy().pop() and rows == seen
    print(f"{q!r:12} {mode:8} {sort:9} totals={sorted(totals)} paged={len(seen)} distinct={len(set(seen))} "
          f"export={len(rows)} x-total-count={export.headers['x-total-count']} same-order={rows == seen} "
          f"{'ok' if ok else 'MISMATCH'} ({time.perf_counter() - started:.1f} s)", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.completeness")
    parser.add_argument("--db", default=None)
    parser.add_argument("--q", action="append", default=None)
    args = parser.parse_args(argv)
    if not args.db:
        print("skipped: give --db DIR (a data folder with vectors built)")
        return 0
    from fastapi.testclient import TestClient

    from tgsearch.api.app import create_app
    from tgsearch.backend import EmbeddedBackend

    backend = EmbeddedBackend(args.db, create=False)
    client = TestClient(create_app(backend))
    ok = True
    for q in args.q or ["Россия", "Казахстан"]:
        for mode in ("hybrid", "lexical", "semantic"):
            for sort in ("relevance", "date"):
                ok &= check(client, q, mode, sort)
    backend.close()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
