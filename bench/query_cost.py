"""Where a search's time goes: per-query wall and CPU time of `Engine.search` in-process, and the
share of its stages from a cProfile run (cumulative time of the functions that make each stage).

    python -m bench.query_cost --db DIR [--mode hybrid] [--rounds 3] [--cold]

DIR: a data folder (with vectors built, for hybrid/semantic). Queries: bench/queries/dev.jsonl, each
run once to warm up, then `--rounds` times. `--cold` empties the query-embedding cache before each
search (every query embedded, as a new query would be). Without --db (as in `make bench`) it is
skipped.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time
from pathlib import Path

QUERIES = Path(__file__).resolve().parent / "queries" / "dev.jsonl"

# stage -> (file suffix, function name) whose cumulative time is the stage's
STAGES = {
    "parse + compile (lexical)": [("search/lexical.py", "compile"), ("search/query.py", "parse")],
    "lexical retrieve (tantivy)": [("search/lexical.py", "retrieve"), ("search/lexical.py", "matching")],
    "semantic: embed the query": [("index/vectors.py", "embed_query")],
    "semantic: vector search + labels": [("index/vectors.py", "search_vector")],
    "semantic: live posts / filters": [("tgsearch/store.py", "facts"), ("tgsearch/store.py", "live")],
    "fusion (exact cosine re-scoring)": [("search/fusion.py", "fuse")],
    "hits: fetch posts": [("tgsearch/store.py", "get_many")],
    "hits: snippets": [("search/snippet.py", "snippet")],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.query_cost")
    parser.add_argument("--db", default=None)
    parser.add_argument("--mode", default="hybrid")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold", action="store_true")
    args = parser.parse_args(argv)
    if not args.db:
        print("skipped: give --db DIR (a data folder, with vectors for hybrid/semantic)")
        return 0
    from tgsearch.backend import EmbeddedBackend
    from tgsearch.search.types import SearchRequest

    try:
        backend = EmbeddedBackend(args.db, create=False, read_only=True)
    except TypeError:   # a tgsearch before read-only backends (side-by-side runs of older code)
        backend = EmbeddedBackend(args.db, create=False)
    backend.warm_up()
    engine = backend.engine
    semantic = engine.retrievers.get("semantic")
    queries = [json.loads(line)["q"] for line in QUERIES.read_text(encoding="utf-8").splitlines() if line.strip()]

    def one(q: str) -> None:
        if args.cold and semantic is not None:
            semantic._cache.clear()
        engine.search(SearchRequest(q=q, mode=args.mode))

    for q in queries:
        one(q)
    n = args.rounds * len(queries)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.rounds):
        for q in queries:
            one(q)
    wall, cpu = (time.perf_counter() - wall) * 1000 / n, (time.process_time() - cpu) * 1000 / n
    print(f"{n} searches, mode={args.mode}, cold={args.cold}: {wall:.1f} ms wall, {cpu:.1f} ms CPU per query "
          f"(retrievers: {', '.join(engine.retrievers)})")
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.rounds):
        for q in queries:
            one(q)
    profile.disable()
    stats = pstats.Stats(profile).stats
    total = sum(tt for (_, _, tt, _, _) in stats.values()) * 1000 / n
    print(f"under cProfile: {total:.1f} ms per query; stage shares (cumulative time of its functions):")
    for stage, funcs in STAGES.items():
        spent = 0.0
        for (path, _, name), (_, _, _, ct, _) in stats.items():
            if any(path.endswith(suffix) and name == fn for suffix, fn in funcs):
                spent += ct
        spent = spent * 1000 / n
        print(f"  {stage:36} {spent:6.1f} ms  {100 * spent / total:4.0f} %")
    backend.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
