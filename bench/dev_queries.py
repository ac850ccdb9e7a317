"""The development query set (bench/queries/dev.jsonl) over the 22k corpus plus the seeds.

Each line: {"q": query, "expect": regex a relevant hit's title+text contains, "kind": category}
(or "ids": [post ids]). Reports, over the lexical top 5: success@1 (the first hit is
relevant), precision@5 (share of relevant hits among those returned) and queries with no hit.

Run: .venv/bin/python -m bench.dev_queries [--db DIR] [--show]
(without --db it ingests ../shared/data/tg-news-posts-ru/raw and ../shared/seeds into a temporary folder)
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TGSEARCH_SHARED", REPO.parent / "shared"))
QUERIES = Path(__file__).resolve().parent / "queries" / "dev.jsonl"


def load(path: Path = QUERIES) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def relevant(item: dict, hit) -> bool:
    if "ids" in item:
        return hit.id in item["ids"]
    return re.search(item["expect"], f"{hit.title}\n{hit.text}", re.I) is not None


def evaluate(backend, queries: list[dict], k: int = 5) -> tuple[dict, list[dict]]:
    from tgsearch.search.types import SearchRequest

    rows = []
    for item in queries:
        result = backend.search(SearchRequest(q=item["q"], limit=k, mode="lexical"))
        flags = [relevant(item, h) for h in result.hits]
        rows.append({"q": item["q"], "kind": item.get("kind", ""), "total": result.total,
                     "s1": bool(flags and flags[0]), "p5": sum(flags) / len(flags) if flags else 0.0,
                     "top": [h.snippet[:100] for h in result.hits[:2]]})
    n = len(rows)
    summary = {"queries": n, "success@1": sum(r["s1"] for r in rows) / n,
               "precision@5": sum(r["p5"] for r in rows) / n, "no_results": sum(1 for r in rows if not r["total"])}
    return summary, rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from tgsearch.backend import EmbeddedBackend

    queries = load()
    if "--db" in argv:
        backend = EmbeddedBackend(argv[argv.index("--db") + 1], create=False, vectors="off")
        summary, rows = evaluate(backend, queries)
    else:
        corpus, seeds = SHARED / "data" / "tg-news-posts-ru" / "raw", SHARED / "seeds"
        if not corpus.is_dir():
            print(f"dev queries: skipped, {corpus} not found")
            return 0
        with tempfile.TemporaryDirectory(prefix="tgsearch-dev-") as tmp:
            backend = EmbeddedBackend(Path(tmp) / "db", vectors="off")  # lexical only: no background filler
            from tgsearch.sources import walk

            backend.ingest(list(walk([str(corpus)] + ([str(seeds)] if seeds.is_dir() else []))))
            summary, rows = evaluate(backend, queries)
            backend.close()
    print(f"dev queries ({summary['queries']}, lexical, top 5): success@1 {summary['success@1']:.3f}  "
          f"precision@5 {summary['precision@5']:.3f}  no results: {summary['no_results']}")
    for r in rows:
        if "--show" in argv or not r["s1"] or r["p5"] < 1:
            print(f"  s1={int(r['s1'])} p5={r['p5']:.2f} total={r['total']:<5} [{r['kind']}] {r['q']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
