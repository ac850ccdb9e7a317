"""Collector speed: crawling a loopback t.me stand-in, and a counters-only refresh of the 22k corpus.

Run: TGSEARCH_VECTORS=off .venv/bin/python -m bench.collect_speed [--channels N] [--messages M] [--new K]
     (part of `make bench`; needs nothing from the internet)

1. Crawl: tests/tme_standin.py serves N channels x M messages (t.me markup, 20 a page, the site's
   "earlier messages" pagination) on 127.0.0.1; `tgsearch.collect.crawl.crawl` (delay 0) reads them
   all into a fresh data folder (vectors off). Reported: pages/s and posts/s into the store (the
   crawl's wall time up to its last channel), the lexical index catch-up that `crawl` runs at the
   end (timed separately), then K new messages per channel and a second, incremental crawl's
   request count and time. The stand-in runs in a thread of this process, so it shares the GIL and
   the figures include serving the pages.
2. Counters-only refresh: ingest ../shared/data/tg-news-posts-ru/raw (vectors off), then a copy
   (written to a temporary folder) where every post carries a view count, then a copy where every
   view count moved again. Each refresh must report refreshed = every post and updated = new = 0, and
   must leave the lexical index alone: index hwm and store max version unchanged, and the tantivy
   directory's files (names, sizes, mtimes) unchanged. Exit 1 if any check fails. Skipped, with the
   reason, when the corpus is absent. The telethon-json reader reads no reactions (the corpus has
   none either), so only views change here; reaction refreshes go through the same `Store.upsert`
   path (hash unchanged, counters updated in place).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "data" / "tg-news-posts-ru" / "raw"


def machine() -> None:
    print(f"machine: {platform.machine()} {platform.processor() or ''}".rstrip()
          + f", {os.cpu_count()} cores (usable {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'})"
          + f", {platform.system()} {platform.release()}")
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    print(f"TGSEARCH_VECTORS={os.environ.get('TGSEARCH_VECTORS', '(unset)')}; backends here use vectors='off'")


# -- 1. crawl --------------------------------------------------------------------------------------
def bench_crawl(n_channels: int, n_messages: int, n_new: int) -> bool:
    sys.path.insert(0, str(REPO / "tests"))
    from tme_standin import Standin, serve

    from tgsearch.backend import EmbeddedBackend
    from tgsearch.collect.crawl import CrawlConfig, crawl

    standin = Standin()
    names = [f"bench{i:02d}news" for i in range(n_channels)]
    for name in names:
        standin.add_channel(name, n_messages)
    server, thread = serve(standin)
    ok = True
    try:
        with tempfile.TemporaryDirectory() as tmp:
            backend = EmbeddedBackend(Path(tmp) / "db", vectors="off")
            try:
                config = CrawlConfig(base_url=standin.base_url, delay=0, backoff=0)

                def run() -> tuple[list, float, float, int]:
                    last = []
                    before = len(standin.log)
                    t0 = time.perf_counter()
                    reports = crawl(backend, names, config, on_channel=lambda r: last.append(time.perf_counter()))
                    end = time.perf_counter()
                    crawl_s = (last[-1] if last else end) - t0
                    return reports, crawl_s, end - t0 - crawl_s, len(standin.log) - before

                reports, crawl_s, index_s, requests = run()
                pages = sum(r.pages for r in reports)
                posts = sum(r.posts for r in reports)
                new = sum(r.new for r in reports)
                errors = [r.error for r in reports if r.error]
                stored = backend.store.max_version()
                print(f"crawl: {n_channels} channels x {n_messages} messages on {standin.base_url} (delay 0)")
                print(f"  first crawl: {requests} requests, {pages} pages, {posts} posts ({new} new), "
                      f"{crawl_s:.2f} s -> {pages / crawl_s:.0f} pages/s, {posts / crawl_s:.0f} posts/s into the store")
                print(f"  index catch-up at the end of crawl: {index_s:.2f} s ({posts / index_s:.0f} posts/s); "
                      f"crawl + index {crawl_s + index_s:.2f} s -> {posts / (crawl_s + index_s):.0f} posts/s")
                expect = n_channels * n_messages
                if errors or new != expect or not all(r.complete for r in reports) or backend.index.hwm() != stored:
                    print(f"  CHECK FAILED: expected {expect} new posts, complete, no errors, index caught up "
                          f"(errors {errors[:3]}, hwm {backend.index.hwm()} vs store {stored})")
                    ok = False

                for name in names:
                    standin.post(name, n_new)
                reports, crawl_s, index_s, requests = run()
                pages = sum(r.pages for r in reports)
                new = sum(r.new for r in reports)
                page_requests = sum(1 for t in standin.log[-requests:] if t.startswith("/s/")) if requests else 0
                print(f"  incremental crawl ({n_new} new messages per channel): {requests} requests "
                      f"({page_requests} pages, {requests - page_requests} robots.txt), {new} new posts, "
                      f"crawl {crawl_s * 1000:.0f} ms + index {index_s * 1000:.0f} ms")
                # the head page(s), and when the news fit the head page, the page under it (recheck)
                expect_pages = n_channels * (1 + n_new // 20 + (config.recheck_pages if n_new < 20 else 0))
                print(f"  ({n_channels * config.recheck_pages if n_new < 20 else 0} of the page requests re-read "
                      "the page under the head for edits and view counts)")
                if new != n_channels * n_new or page_requests != expect_pages:
                    print(f"  CHECK FAILED: expected {n_channels * n_new} new posts from {expect_pages} page requests")
                    ok = False
            finally:
                backend.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    return ok


# -- 2. counters-only refresh --------------------------------------------------------------------
def tantivy_files(path: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(path))] = (st.st_size, st.st_mtime_ns)
    return out


def copy_with_views(src: Path, dst: Path, views) -> int:
    """Every JSON file of `src` to `dst`, each record given views = views(record); returns records."""
    dst.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in sorted(src.iterdir()):
        if f.suffix != ".json":
            continue
        records = json.loads(f.read_text(encoding="utf-8"))
        for r in records:
            r["views"] = views(r)
            n += 1
        (dst / f.name).write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return n


def bench_refresh() -> bool:
    if not CORPUS.exists():
        print(f"refresh: skipped, {CORPUS} not found (the 22k corpus is not on this machine)")
        return True
    from tgsearch.backend import EmbeddedBackend

    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        backend = EmbeddedBackend(tmp / "db", vectors="off")
        try:
            t0 = time.perf_counter()
            first = backend.ingest([CORPUS])
            first_s = time.perf_counter() - t0
            s = first.to_dict()
            print(f"refresh: 22k corpus {CORPUS}")
            print(f"  first ingest (store + first index build): {s['posts']} posts, new {s['new']}, "
                  f"{first_s:.2f} s -> {s['posts'] / first_s:.0f} posts/s")
            rounds = [("views added (none before)", lambda r: 1000 + r["message_id"] % 997),
                      ("every view count moved", lambda r: 5000 + r["message_id"] % 991)]
            for i, (what, views) in enumerate(rounds):
                copy = tmp / f"copy{i}"
                n = copy_with_views(CORPUS, copy, views)
                index = backend.index
                hwm, top = index.hwm(), backend.store.max_version()
                files = tantivy_files(index.path)
                t0 = time.perf_counter()
                report = backend.ingest([copy])
                took = time.perf_counter() - t0
                s = report.to_dict()
                hwm2, top2 = index.hwm(), backend.store.max_version()
                files2 = tantivy_files(index.path)
                print(f"  refresh {i + 1} ({what}; {n} records rewritten): posts {s['posts']}, new {s['new']}, "
                      f"updated {s['updated']}, refreshed {s['refreshed']}, unchanged {s['unchanged']}; "
                      f"{took:.2f} s -> {s['posts'] / took:.0f} posts/s")
                checks = [
                    (f"refreshed == {first.posts}", s["refreshed"] == first.posts == 22099),
                    ("updated == 0 and new == 0", s["updated"] == 0 and s["new"] == 0),
                    (f"index hwm unchanged ({hwm} -> {hwm2})", hwm == hwm2),
                    (f"store max version unchanged ({top} -> {top2})", top == top2 and hwm2 >= top2),
                    (f"tantivy files unchanged ({len(files)} files, names/sizes/mtimes)", files == files2),
                ]
                sample = backend.get(next(iter(backend.store.iter_posts())).id)
                mid = sample.message_ids[0] if sample.message_ids else 0
                checks.append((f"stored views are the new ones ({sample.id}: {sample.views})",
                               sample.views == views({"message_id": mid})))
                for label, good in checks:
                    print(f"    {'ok  ' if good else 'FAIL'} {label}")
                    ok = ok and good
        finally:
            backend.close()
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.collect_speed", description=__doc__.split("\n")[0])
    ap.add_argument("--channels", type=int, default=10, help="stand-in channels (default 10)")
    ap.add_argument("--messages", type=int, default=600, help="messages per channel (default 600)")
    ap.add_argument("--new", type=int, default=5, help="new messages per channel before the second crawl")
    ap.add_argument("--skip-crawl", action="store_true")
    ap.add_argument("--skip-refresh", action="store_true")
    args = ap.parse_args(argv)
    print("collect_speed")
    machine()
    ok = True
    if not args.skip_crawl:
        ok = bench_crawl(args.channels, args.messages, args.new) and ok
    if not args.skip_refresh:
        ok = bench_refresh() and ok
    print("collect_speed:", "all checks passed" if ok else "CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
