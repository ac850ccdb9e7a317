"""Compare lexical ranking weights on XQuAD-ru and the development query set.

Run: .venv/bin/python -m bench.tune_lexical [--db DEV_DB] "coverage=1,exact=0.05" "coverage=10,exact=0.05" ...
Each argument is a set of `search.lexical.Weights` fields; prints XQuAD Recall@5 / MRR@10 / Recall@1
and dev success@1 / precision@5 for each. Without --db the dev set's corpus (22k + seeds) is ingested
into a temporary folder first.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench import dev_queries, xquad


def parse_weights(spec: str) -> dict:
    out = {}
    for part in filter(None, spec.split(",")):
        key, value = part.split("=")
        out[key.strip()] = float(value)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    from tgsearch.backend import EmbeddedBackend
    from tgsearch.search.engine import Engine
    from tgsearch.search.lexical import Weights
    from tgsearch.sources import walk

    db = None
    if "--db" in argv:
        i = argv.index("--db")
        db = argv[i + 1]
        del argv[i:i + 2]
    specs = argv or ["coverage=1,exact=0.05"]
    with tempfile.TemporaryDirectory(prefix="tgsearch-tune-") as tmp:
        posts, questions = xquad.load()
        (Path(tmp) / "xquad").mkdir()
        bx = xquad.build(Path(tmp) / "xquad", posts)
        if db:
            bd = EmbeddedBackend(db, create=False, vectors="off")
        else:
            bd = EmbeddedBackend(Path(tmp) / "dev", vectors="off")
            corpus, seeds = dev_queries.SHARED / "data" / "tg-news-posts-ru" / "raw", dev_queries.SHARED / "seeds"
            bd.ingest(list(walk([str(corpus), str(seeds)])))
        queries = dev_queries.load()
        for spec in specs:
            w = Weights(**parse_weights(spec))
            bx._engine = Engine(bx.store, bx.index, w)
            bd._engine = Engine(bd.store, bd.index, w)
            m, _ = xquad.evaluate(bx, questions)
            d, _ = dev_queries.evaluate(bd, queries)
            print(f"{spec:<32} xquad R@5 {m['recall@5']:.4f} MRR@10 {m['mrr@10']:.4f} R@1 {m['recall@1']:.4f}  "
                  f"dev s@1 {d['success@1']:.3f} p@5 {d['precision@5']:.3f}", flush=True)
        bx.close()
        bd.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
