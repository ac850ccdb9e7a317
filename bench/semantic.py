"""Semantic and hybrid search: quality and speed through the real ingest + API path.

Parts (run all, or pick with --part):

  xquad  XQuAD-ru (240 paragraphs as posts, 1,190 questions) -> JSONL -> ingest -> vectors for each
         model -> GET /api/search (FastAPI app in process) in modes lexical / semantic / hybrid, and
         hybrid with plain RRF(k=60) instead of tgsearch's fusion. Recall@1/5/10, MRR@10, p50/p95 ms.
  cross  The 22k-post corpus + ../shared/seeds, ingested with the CLI (`tgsearch ingest`, vectors
         filled by the background process): time until lexical search is ready, time until every
         post has a vector, posts/s. Then the English query set (bench/queries/en.jsonl) and the
         Russian paraphrase set (bench/queries/paraphrase.jsonl): Recall@10 for lexical / semantic /
         hybrid; hybrid API latency p50/p95 over those queries plus bench/queries/dev.jsonl (each
         query once, query-vector cache emptied first: every timing includes embedding the query); RSS of the serving process.
  quant  On the cross corpus: usearch index quantization i8 / f16 / f32, searched through the HNSW
         graph and exhaustively, vs exact float32 search (top-10 overlap, Recall@10 of the query
         sets, search ms, build time, file size).

Expected posts: an `expect` id list or an `expect_text` substring (every post containing it is
relevant); posts whose text is an exact copy of a relevant post's (cross-posts) count as relevant.

  scale  (only when asked) the vector index alone at 1M vectors (real vectors + noise): build time,
         file size, RSS growth, graph search time, overlap with exhaustive search.

Run: .venv/bin/python -m bench.semantic [--part xquad,cross,quant,scale] [--models use-multilingual-v3,e5-small-4bit]
     [--workdir DIR (keeps the cross corpus between runs)] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TGSEARCH_SHARED", REPO.parent / "shared"))
NEWS = SHARED / "data" / "tg-news-posts-ru" / "raw"
SEEDS = SHARED / "seeds"
QUERIES = REPO / "bench" / "queries"
MODES = ("lexical", "semantic", "hybrid")
DEFAULT_MODELS = ("use-multilingual-v3", "e5-small-4bit")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def client_for(backend):
    from fastapi.testclient import TestClient

    from tgsearch.api.app import create_app

    return TestClient(create_app(backend))


def api_search(client, q: str, mode: str, limit: int = 10) -> tuple[list[str], float]:
    started = time.perf_counter()
    response = client.get("/api/search", params={"q": q, "mode": mode, "limit": limit})
    took = (time.perf_counter() - started) * 1000
    if response.status_code == 400:  # e.g. an unclosed quote in a question: search its words
        started = time.perf_counter()
        response = client.get("/api/search", params={"q": q.replace('"', " "), "mode": mode, "limit": limit})
        took = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return [h["id"] for h in response.json()["hits"]], took


def rank_metrics(ranks: list[int | None]) -> dict:
    n = len(ranks) or 1
    out = {f"recall@{k}": sum(1 for r in ranks if r is not None and r <= k) / n for k in (1, 5, 10)}
    out["mrr@10"] = sum(1 / r for r in ranks if r is not None and r <= 10) / n
    out["queries"] = len(ranks)
    return out


def first_rank(ids: list[str], relevant: set[str]) -> int | None:
    for i, pid in enumerate(ids):
        if pid in relevant:
            return i + 1
    return None


def forget_query_vectors(client) -> None:
    """Empty the semantic retriever's query-vector cache (timings then include the embedding)."""
    engine = client.app.state.backend.engine
    retriever = engine.retrievers.get("semantic")
    if retriever is not None:
        retriever._cache.clear()


def run_modes(client, queries: list[tuple[str, set[str]]], modes=MODES, rrf: bool = False) -> dict:
    from tgsearch.search import engine, fusion

    out = {}
    variants = [(m, m) for m in modes]
    if rrf:
        variants.append(("hybrid-rrf", "hybrid"))
    for label, mode in variants:
        forget_query_vectors(client)   # every mode's latency includes embedding its queries
        saved = engine.fuse
        if label == "hybrid-rrf":
            engine.fuse = fusion.rrf   # the engine calls the `fuse` it imported from search.fusion
        try:
            ranks, times = [], []
            for q, relevant in queries:
                ids, took = api_search(client, q, mode)
                ranks.append(first_rank(ids, relevant))
                times.append(took)
        finally:
            engine.fuse = saved
        res = rank_metrics(ranks)
        res.update({"p50_ms": pct(times, 50), "p95_ms": pct(times, 95)})
        out[label] = res
    return out


# -- xquad -------------------------------------------------------------------------------------
def part_xquad(models: list[str], workdir: Path) -> dict:
    from bench.xquad import XQUAD, load

    from tgsearch.backend import EmbeddedBackend

    if not XQUAD.exists():
        return {"skipped": f"{XQUAD} not found"}
    posts, questions = load()
    src = workdir / "xquad.jsonl"
    with src.open("w", encoding="utf-8") as f:
        for post in posts:
            f.write(json.dumps(post, ensure_ascii=False) + "\n")
    backend = EmbeddedBackend(workdir / "xquad-db", vectors="off")
    started = time.perf_counter()
    backend.ingest([src])
    out: dict = {"posts": len(posts), "questions": len(questions), "ingest_s": time.perf_counter() - started}
    queries = [(q, {rel}) for q, rel in questions]
    for model in models:
        started = time.perf_counter()
        n = backend.reindex_vectors(model)
        fill_s = time.perf_counter() - started
        client = client_for(backend)
        res = run_modes(client, queries, rrf=True)
        res["fill"] = {"posts": n, "seconds": fill_s, "posts_per_s": n / fill_s}
        out[model] = res
        print(f"xquad {model}: " + "  ".join(
            f"{m} R@5 {r['recall@5']:.4f} MRR {r['mrr@10']:.4f}" for m, r in res.items() if m != "fill"), flush=True)
    backend.close()
    return out


# -- cross-lingual / paraphrase ----------------------------------------------------------------
def load_queries(name: str) -> list[dict]:
    path = QUERIES / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


_WS = re.compile(r"\s+")


def _key(text: str) -> str:
    return _WS.sub(" ", text).strip().lower()[:300]


def resolve(store, items: list[dict]) -> list[tuple[str, set[str]]]:
    """(query, relevant ids): expect ids, expect_text substrings, and exact cross-posted copies."""
    texts = {}
    for post in store.iter_posts(order="id"):
        texts[post.id] = (post.title + "\n" + post.text)
    by_key: dict[str, set[str]] = {}
    for pid, text in texts.items():
        by_key.setdefault(_key(text), set()).add(pid)
    out = []
    for item in items:
        relevant = set(item.get("expect", []))
        if item.get("expect_text"):
            relevant |= {pid for pid, text in texts.items() if item["expect_text"] in text}
        missing = [pid for pid in relevant if pid not in texts]
        if not relevant or missing:
            raise SystemExit(f"query {item['query']!r}: expected post(s) not in the corpus {missing or item}")
        for pid in list(relevant):
            relevant |= by_key.get(_key(texts[pid]), set())
        out.append((item["query"], relevant))
    return out


def wait_vectors(db: Path, model: str, timeout: float = 7200) -> float:
    from tgsearch.index.vectors import vector_status
    from tgsearch.store import Store

    store = Store(db, create=False)
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < timeout:
            if vector_status(store, model)["complete"]:
                return time.perf_counter() - started
            time.sleep(0.5)
    finally:
        store.close()
    raise SystemExit(f"vectors for {model} not complete after {timeout} s")


def build_cross(workdir: Path) -> tuple[Path, dict]:
    """Ingest the 22k corpus + seeds with the CLI (vectors in the background process); timed."""
    db = workdir / "cross-db"
    marker = db / "bench-built.json"
    if marker.exists():
        return db, json.loads(marker.read_text())
    if db.exists():
        shutil.rmtree(db)
    env = dict(os.environ, TGSEARCH_VECTORS="process")
    cli = [sys.executable, "-m", "tgsearch.cli"] if not shutil.which("tgsearch") else [shutil.which("tgsearch")]
    cli = [str(Path(sys.executable).parent / "tgsearch")] if (Path(sys.executable).parent / "tgsearch").exists() else cli
    started = time.perf_counter()
    subprocess.run(cli + ["ingest", str(NEWS), str(SEEDS), "--db", str(db), "-q"], env=env, check=False,
                   stdout=subprocess.DEVNULL)
    lexical_ready = time.perf_counter() - started
    vectors_after = wait_vectors(db, "use-multilingual-v3")
    total = time.perf_counter() - started
    from tgsearch.store import Store

    store = Store(db, create=False)
    n = store.count()
    store.close()
    filler = {}
    log = db / "index" / "vectors" / "use-multilingual-v3" / "fill.log"
    deadline = time.perf_counter() + 120   # the summary line follows the graph save
    while not filler and time.perf_counter() < deadline:
        for line in log.read_text().splitlines() if log.exists() else []:
            if line.startswith("{"):
                filler = json.loads(line)   # the filler's own summary: wall, CPU seconds, posts/CPU-s
        if not filler:
            time.sleep(0.5)
    info = {"posts": n, "lexical_ready_s": lexical_ready, "vectors_complete_s": total, "filler": filler,
            "vectors_after_lexical_s": vectors_after, "end_to_end_posts_per_s": n / total,
            "vector_fill_posts_per_s": n / vectors_after, "load_average_at_end": os.getloadavg()}
    marker.write_text(json.dumps(info))
    return db, info


def _fresh_lexical(backend) -> None:
    """A kept work folder may hold a lexical index from an older analyzer: rebuild it then."""
    from tgsearch.errors import IndexMismatchError
    from tgsearch.search.types import SearchRequest

    try:
        backend.search(SearchRequest(q="проверка", mode="lexical", limit=1))
    except IndexMismatchError:
        backend.reindex()


def part_cross(workdir: Path) -> dict:
    from tgsearch.backend import EmbeddedBackend

    if not NEWS.exists():
        return {"skipped": f"{NEWS} not found"}
    db, build = build_cross(workdir)
    print(f"cross corpus: {build}", flush=True)
    backend = EmbeddedBackend(db, create=False, vectors="off")
    _fresh_lexical(backend)
    client = client_for(backend)
    out: dict = {"model": backend.vectors.model, "build": build}
    for name in ("en.jsonl", "paraphrase.jsonl"):
        queries = resolve(backend.store, load_queries(name))
        res = run_modes(client, queries, rrf=True)
        out[name] = res
        print(f"{name}: " + "  ".join(f"{m} R@10 {r['recall@10']:.3f}" for m, r in res.items()), flush=True)
    # latency: every query once in hybrid mode (fresh texts: no query-vector cache hits)
    lat_queries = [q["q"] for q in load_queries("dev.jsonl")] if (QUERIES / "dev.jsonl").exists() else []
    lat_queries += [x["query"] for x in load_queries("en.jsonl") + load_queries("paraphrase.jsonl")]
    forget_query_vectors(client)
    times = [api_search(client, q, "hybrid", limit=20)[1] for q in lat_queries]
    out["hybrid_latency"] = {"queries": len(times), "p50_ms": pct(times, 50), "p95_ms": pct(times, 95),
                             "p99_ms": pct(times, 99), "max_ms": max(times)}
    out["rss_mb"] = rss_mb()
    print(f"hybrid API latency: {out['hybrid_latency']}  RSS {out['rss_mb']:.0f} MB", flush=True)
    backend.close()
    return out


# -- quantization ------------------------------------------------------------------------------
def part_quant(workdir: Path) -> dict:
    from tgsearch.index.vectors import HNSW, VectorIndex
    from tgsearch.store import Store

    db, _ = build_cross(workdir)
    store = Store(db, create=False)
    vi = VectorIndex(store, "use-multilingual-v3")
    labels, vecs = [], []
    for lab, v in vi.vstore.iter_entries(0):
        labels.append(lab)
        vecs.append(v)
    labels = np.concatenate(labels)
    mat = np.vstack(vecs)
    owners = vi.vstore.labels_to_posts([int(x) for x in labels])
    owner = np.array([owners[int(x)][0] for x in labels])
    items = load_queries("en.jsonl") + load_queries("paraphrase.jsonl")
    qs = resolve(store, items)
    qvecs = vi.embedder.embed_queries([q for q, _ in qs])
    rng = np.random.default_rng(0)
    probe = mat[rng.choice(len(mat), 500, replace=False)]
    allq = np.vstack([qvecs, probe])

    def exact_top(q: np.ndarray, k: int = 10) -> list[int]:
        sims = mat @ q
        return [int(labels[i]) for i in np.argsort(-sims)[:k]]

    truth = [exact_top(q) for q in allq]
    out = {"vectors": int(len(mat)), "queries": int(len(allq))}
    for quant in ("i8", "f16", "f32"):
        g = HNSW(vi.dir / f"bench-{quant}", vi.vstore, quant)
        g.dir.mkdir(exist_ok=True)
        started = time.perf_counter()
        g.sync(save=True)
        build_s = time.perf_counter() - started
        out[quant] = {"build_s": build_s, "file_mb": g.path.stat().st_size / 2**20}
        for how, exact in (("graph", False), ("exhaustive", True)):
            overlap, hits, times = [], 0, []
            for i, q in enumerate(allq):
                t0 = time.perf_counter()
                keys, _ = g.search(q, 10, exact=exact)
                times.append((time.perf_counter() - t0) * 1000)
                overlap.append(len(set(int(k) for k in keys) & set(truth[i])) / 10)
            for i, (_, relevant) in enumerate(qs):
                keys, _ = g.search(qvecs[i], 40, exact=exact)
                posts = list(dict.fromkeys(owner[np.searchsorted(labels, keys)]))[:10]
                hits += any(p in relevant for p in posts)
            out[quant][how] = {"top10_overlap_with_exact_f32": float(np.mean(overlap)),
                               "recall@10_query_sets": hits / len(qs), "search_p50_ms": pct(times, 50)}
        shutil.rmtree(g.dir)
        print(f"quant {quant}: {out[quant]}", flush=True)
    exact_hits = 0
    for i, (_, relevant) in enumerate(qs):
        sims = mat @ qvecs[i]
        posts = list(dict.fromkeys(owner[np.argsort(-sims)[:40]]))[:10]
        exact_hits += any(p in relevant for p in posts)
    out["exact"] = {"recall@10_query_sets": exact_hits / len(qs)}
    vi.close()
    store.close()
    return out


def part_scale(workdir: Path, n: int = 1_000_000) -> dict:
    """The vector index alone at `n` vectors: real USE vectors of the cross corpus plus noise (the
    store and the embedding are not part of it). Build time, file size, RSS growth, graph search
    time and its top-10 overlap with exhaustive search."""
    from usearch.index import Index

    from tgsearch.index.vectors import VectorIndex
    from tgsearch.store import Store

    db, _ = build_cross(workdir)
    store = Store(db, create=False)
    vi = VectorIndex(store, "use-multilingual-v3")
    base = np.vstack([v for _, v in vi.vstore.iter_entries(0)])
    rng = np.random.default_rng(0)
    rss_before = rss_mb()
    index = Index(ndim=base.shape[1], metric="cos", dtype="f16", connectivity=16, expansion_add=128,
                  expansion_search=96)
    started = time.perf_counter()
    step = 50_000
    for start in range(0, n, step):
        count = min(step, n - start)
        chunk = base[rng.integers(0, len(base), count)] + rng.normal(0, 0.03, (count, base.shape[1])).astype(np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        index.add(np.arange(start, start + count, dtype=np.uint64), chunk, threads=os.cpu_count() or 1)
    build_s = time.perf_counter() - started
    path = workdir / "scale.usearch"
    index.save(str(path))
    queries = base[rng.integers(0, len(base), 200)] + rng.normal(0, 0.03, (200, base.shape[1])).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    times, overlap = [], []
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        graph = index.search(q, 10)
        times.append((time.perf_counter() - t0) * 1000)
        if i < 50:
            exact = index.search(q, 10, exact=True)
            overlap.append(len(set(np.asarray(graph.keys).tolist()) & set(np.asarray(exact.keys).tolist())) / 10)
    out = {"vectors": n, "dtype": "f16", "build_s": build_s, "vectors_per_s": n / build_s,
           "file_mb": path.stat().st_size / 2**20, "rss_growth_mb": rss_mb() - rss_before,
           "graph_search_p50_ms": pct(times, 50), "graph_search_p95_ms": pct(times, 95),
           "top10_overlap_graph_vs_exhaustive": float(np.mean(overlap))}
    path.unlink()
    vi.close()
    store.close()
    print(f"scale: {out}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.semantic")
    parser.add_argument("--part", default="xquad,cross,quant")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.part.split(",") if p.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    tmp = None
    if args.workdir:
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="tgsearch-semantic-")
        workdir = Path(tmp.name)
    results: dict = {"machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}}
    try:
        if "xquad" in parts:
            results["xquad"] = part_xquad(models, workdir)
        if "cross" in parts:
            results["cross"] = part_cross(workdir)
        if "quant" in parts:
            results["quant"] = part_quant(workdir)
        if "scale" in parts:   # not in the default run: minutes of CPU
            results["scale"] = part_scale(workdir)
    finally:
        if tmp is not None:
            tmp.cleanup()
    results["machine"]["load_average_at_end"] = os.getloadavg()
    text = json.dumps(results, ensure_ascii=False, indent=1, default=float)
    if args.json:
        Path(args.json).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
