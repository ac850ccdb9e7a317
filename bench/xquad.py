"""Lexical ranking quality on XQuAD-ru through the real ingest and search path.

Each of the 240 paragraphs becomes a post (JSON Lines in a temporary folder →
`ingest` → lexical index); each of the 1,190 questions is a query (mode=lexical) whose
one relevant post is its paragraph. Reports Recall@1/5/10, MRR@10 and nDCG@10.

Run: .venv/bin/python -m bench.xquad [--json]
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
XQUAD = Path(os.environ.get("TGSEARCH_SHARED", REPO.parent / "shared")) / "data" / "xquad-ru" / "xquad.ru.json"


def load(path: Path = XQUAD) -> tuple[list[dict], list[tuple[str, str]]]:
    """(posts as JSONL records, [(question, relevant post id)])."""
    data = json.loads(path.read_text(encoding="utf-8"))
    posts, questions = [], []
    n = 0
    for article in data["data"]:
        for para in article["paragraphs"]:
            pid = f"p{n}"
            n += 1
            posts.append({"id": pid, "channel": "xquad", "text": para["context"],
                          "date": f"2025-01-{1 + n % 28:02d}T12:00:00Z"})
            for qa in para["qas"]:
                questions.append((qa["question"], f"xquad/{pid}"))
    return posts, questions


def metrics(ranks: list[int | None], k: int = 10) -> dict:
    """ranks: 1-based rank of the relevant post, None when it is not in the top k."""
    n = len(ranks)
    def recall(at: int) -> float:
        return sum(1 for r in ranks if r is not None and r <= at) / n
    mrr = sum(1 / r for r in ranks if r is not None and r <= k) / n
    ndcg = sum(1 / math.log2(r + 1) for r in ranks if r is not None and r <= k) / n  # one relevant doc: IDCG = 1
    return {"queries": n, "recall@1": recall(1), "recall@5": recall(5), "recall@10": recall(10),
            "mrr@10": mrr, "ndcg@10": ndcg}


def evaluate(backend, questions: list[tuple[str, str]], k: int = 10) -> tuple[dict, list]:
    from tgsearch.search.types import SearchRequest

    from tgsearch.errors import QueryError

    ranks, misses = [], []
    repaired = 0
    for question, relevant in questions:
        try:
            result = backend.search(SearchRequest(q=question, limit=k, mode="lexical"))
        except QueryError:
            # A question that is not a valid query (e.g. an unclosed "): search its words.
            repaired += 1
            result = backend.search(SearchRequest(q=question.replace('"', " "), limit=k, mode="lexical"))
        ids = [h.id for h in result.hits]
        rank = ids.index(relevant) + 1 if relevant in ids else None
        ranks.append(rank)
        if rank != 1:
            misses.append((question, relevant, rank, ids[:3]))
    out = metrics(ranks, k)
    out["repaired_queries"] = repaired
    return out, misses


def build(workdir: Path, posts: list[dict]):
    from tgsearch.backend import EmbeddedBackend

    src = workdir / "xquad.jsonl"
    with src.open("w", encoding="utf-8") as f:
        for post in posts:
            f.write(json.dumps(post, ensure_ascii=False) + "\n")
    backend = EmbeddedBackend(workdir / "db", vectors="off")  # lexical only: no background filler
    report = backend.ingest([src])
    if report.failed_files:
        raise SystemExit(f"ingest failed: {report.errors[:3]}")
    return backend


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not XQUAD.exists():
        print(f"xquad: skipped, {XQUAD} not found (put ../shared beside the checkout)")
        return 0
    posts, questions = load()
    with tempfile.TemporaryDirectory(prefix="tgsearch-xquad-") as tmp:
        started = time.perf_counter()
        backend = build(Path(tmp), posts)
        built = time.perf_counter() - started
        started = time.perf_counter()
        result, misses = evaluate(backend, questions)
        took = time.perf_counter() - started
        backend.close()
    result.update({"posts": len(posts), "build_s": round(built, 2), "search_s": round(took, 2)})
    if "--json" in argv:
        print(json.dumps(result))
    else:
        print(f"xquad-ru lexical: {len(posts)} posts, {len(questions)} questions "
              f"(ingest+index {built:.1f} s, searches {took:.1f} s; "
              f"{result['repaired_queries']} question(s) with an unclosed quote searched without it)")
        for key in ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"):
            print(f"  {key:<10} {result[key]:.4f}")
        if "--misses" in argv:
            for q, rel, rank, top in misses[:40]:
                print(f"  rank={rank} {q}  want={rel} got={top}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
