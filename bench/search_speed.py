"""Lexical indexing speed and search latency through the real HTTP server.

1. Ingest a corpus into a temporary store (or use --db DIR, already ingested), then time
   building the lexical index from the store (cold analyzer caches, `workers` processes).
2. Start `tgsearch serve` on a free loopback port, send `--queries` varied queries
   (words from random posts, pairs, phrases, prefixes, exclusions, OR, filters, date sort,
   facets) one after another over HTTP, and report p50/p95/p99 latency and the server's RSS.

Run: .venv/bin/python -m bench.search_speed [--corpus DIR | --db DIR] [--queries 300]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TGSEARCH_SHARED", REPO.parent / "shared"))
CORPUS = SHARED / "data" / "tg-news-posts-ru" / "raw"
WORD = re.compile(r"[А-Яа-яЁё]{5,}|[A-Za-z]{4,}")


def make_queries(store, n: int, seed: int = 7) -> list[dict]:
    """Varied queries built from random posts of the store (deterministic for a seed)."""
    rng = random.Random(seed)
    total = store.count()
    channels = sorted({c for c, _ in store.channel_names()})
    if getattr(store, "url", None):          # PostgreSQL: random posts by id
        ids = sorted(store.ids_and_versions())
        texts = [p.text for p in store.get_many([ids[rng.randrange(len(ids))] for _ in range(n * 3)]).values()]
    else:
        texts = [t for (t,) in store.conn.execute("SELECT text FROM posts WHERE rowid IN (%s)" % ",".join(
            str(rng.randint(1, total)) for _ in range(n * 3)))]
    words: list[list[str]] = []
    for text in texts:
        found = WORD.findall(text or "")
        if len(found) >= 3:
            words.append(found)
    out = []
    for i in range(n):
        w = words[i % len(words)]
        a, b, c = rng.sample(w, 3)
        kind = i % 10
        params: dict = {"mode": "lexical", "limit": 20}
        if kind in (0, 1, 2):
            params["q"] = a
        elif kind == 3:
            params["q"] = f"{a} {b}"
        elif kind == 4:
            params["q"] = f"{a} {b} {c}"
        elif kind == 5:
            i0 = w.index(a)
            params["q"] = f'"{" ".join(w[i0:i0 + 2])}"'
        elif kind == 6:
            params["q"] = f"{a[:4]}* -{b}"
        elif kind == 7:
            params["q"] = f"{a} OR {b}"
            params["sort"] = "date"
        elif kind == 8:
            params["q"] = f"{a} channel:{rng.choice(channels)}"
        else:
            params["q"] = f"{a} {b}"
            params["facets"] = "true"
        out.append(params)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def measure_http(db: Path, queries: list[dict]) -> dict:
    import httpx

    port = free_port()
    # Lexical latency only: keep the server from computing embeddings in the background meanwhile.
    env = {**os.environ, "TGSEARCH_VECTORS": "off"}
    server = subprocess.Popen([sys.executable, "-m", "tgsearch.cli", "serve", "--db", str(db), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=60) as client:
            deadline = time.time() + 600
            while True:
                try:
                    if client.get("/api/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"server did not start: {server.stderr.read().decode()[-2000:]}")
                time.sleep(0.2)
            for params in queries[:20]:   # warm-up: first requests load code paths and caches
                client.get("/api/search", params=params)
            latencies, totals = [], 0
            for params in queries:
                t0 = time.perf_counter()
                r = client.get("/api/search", params=params)
                latencies.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    raise SystemExit(f"{params}: HTTP {r.status_code} {r.text[:300]}")
                totals += r.json()["total"]
            rss = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"queries": len(queries), "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
            "p99_ms": percentile(latencies, 99), "max_ms": max(latencies), "server_rss_mb": rss,
            "mean_total_hits": totals / len(queries)}


def build(corpus: Path, db: Path) -> dict:
    from tgsearch.analyze.analyzer import default_analyzer
    from tgsearch.ingest import ingest
    from tgsearch.sources import walk
    from tgsearch.store import Store

    store = Store(db)
    t0 = time.perf_counter()
    ingest(store, list(walk([str(corpus)])))
    ingest_s = time.perf_counter() - t0
    print(f"  [ingest (store only) {store.count()} posts: {ingest_s:.1f} s]", file=sys.stderr, flush=True)
    return {"posts": store.count(), "ingest_s": ingest_s, **index_store(store, default_analyzer())}


def index_store(store, analyzer) -> dict:
    import shutil

    from tgsearch.index.lexical import LexicalIndex

    shutil.rmtree(Path(store.root) / "index" / "lexical", ignore_errors=True)   # as `tgsearch reindex`
    index = LexicalIndex(store.root, analyzer)
    c0, t0 = os.times(), time.perf_counter()
    n = index.rebuild(store)
    took, c1 = time.perf_counter() - t0, os.times()
    return {"indexed": n, "index_s": took, "index_posts_per_s": n / took,
            "index_cpu_main_s": c1.user + c1.system - c0.user - c0.system,
            "index_cpu_workers_s": c1.children_user + c1.children_system - c0.children_user - c0.children_system}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.search_speed")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help="folder to ingest (default: the 22k corpus)")
    ap.add_argument("--db", type=Path, default=None, help="an already ingested data folder (index is rebuilt)")
    ap.add_argument("--keep", type=Path, default=None, help="ingest --corpus into this folder (kept) instead of a temporary one")
    ap.add_argument("--pg-url", default=None, help="a PostgreSQL database already ingested (postgresql://...): "
                    "its search latency through `tgsearch serve --db URL`")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    from tgsearch.store import Store

    with tempfile.TemporaryDirectory(prefix="tgsearch-speed-") as tmp:
        if args.pg_url:
            from tgsearch.pg.store import PgStore

            store = PgStore(args.pg_url, create=False)
            result = {"posts": store.count(), "backend": "postgresql"}
            queries = make_queries(store, args.queries)
            store.close()
            result.update(measure_http(args.pg_url, queries))
            print(json.dumps(result) if args.json else
                  f"search speed (PostgreSQL): {result['posts']} posts; HTTP /api/search x{result['queries']}: "
                  f"p50 {result['p50_ms']:.1f} ms  p95 {result['p95_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms  "
                  f"max {result['max_ms']:.1f} ms; server RSS {result['server_rss_mb']:.0f} MB "
                  f"(mean total {result['mean_total_hits']:.0f})")
            return 0
        if args.db is not None:
            from tgsearch.analyze.analyzer import default_analyzer

            db = args.db
            store = Store(db, create=False)
            result = {"posts": store.count(), **index_store(store, default_analyzer())}
        else:
            if not args.corpus.is_dir():
                print(f"search speed: skipped, {args.corpus} not found")
                return 0
            db = args.keep or Path(tmp) / "db"
            result = build(args.corpus, db)
            store = Store(db, create=False)
        print(f"  [{result['posts']} posts: index build {result['index_s']:.1f} s = "
              f"{result['index_posts_per_s']:,.0f} posts/s]", file=sys.stderr, flush=True)
        queries = make_queries(store, args.queries)
        store.close()
        result.update(measure_http(db, queries))
    result["cpus"] = os.cpu_count()
    if args.json:
        print(json.dumps(result))
    else:
        print(f"search speed: {result['posts']} posts")
        if "ingest_s" in result:
            print(f"  ingest (store only)   {result['ingest_s']:.1f} s")
        print(f"  lexical index build   {result['index_s']:.1f} s = {result['index_posts_per_s']:,.0f} posts/s  "
              f"(CPU: main {result['index_cpu_main_s']:.1f} s, worker processes {result['index_cpu_workers_s']:.1f} s)")
        print(f"  HTTP /api/search x{result['queries']}: p50 {result['p50_ms']:.1f} ms  p95 {result['p95_ms']:.1f} ms  "
              f"p99 {result['p99_ms']:.1f} ms  max {result['max_ms']:.1f} ms  (mean total {result['mean_total_hits']:.0f})")
        print(f"  server RSS            {result['server_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
