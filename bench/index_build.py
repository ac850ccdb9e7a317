"""Lexical index build alone, repeated: median CPU seconds and posts/s over several rebuilds.

The machine's speed drifts, so a change to the build is judged by the median CPU time of a few
rebuilds (every process counted: the parent and the shard workers) more than by one wall time.
Each rebuild starts with fresh analyzer caches in a new temporary index folder, reading the posts
of an already ingested data folder.

Run: .venv/bin/python -m bench.index_build --db DIR [--runs 6]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time


def measure(db: str, runs: int) -> dict:
    from tgsearch.analyze.analyzer import Analyzer
    from tgsearch.index.lexical import LexicalIndex
    from tgsearch.store import Store

    store = Store(db, create=False)
    cpu, rate = [], []
    for _ in range(runs):
        root = tempfile.mkdtemp(prefix="tgsearch-index-build-")
        try:
            index = LexicalIndex(root, Analyzer())
            c0, t0 = os.times(), time.perf_counter()
            n = index.rebuild(store)
            wall, c1 = time.perf_counter() - t0, os.times()
        finally:
            shutil.rmtree(root, ignore_errors=True)
        cpu.append(sum(c1[i] - c0[i] for i in range(4)))   # user + system, self + children
        rate.append(n / wall)
    store.close()
    return {"posts": n, "runs": runs, "cpu_s_median": statistics.median(cpu), "cpu_s_min": min(cpu),
            "posts_per_s_median": statistics.median(rate), "posts_per_s_min": min(rate),
            "posts_per_s_max": max(rate), "load_average": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.index_build", description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="an ingested data folder (its own index is not touched)")
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args(argv)
    r = measure(args.db, args.runs)
    print(f"index build, {r['posts']} posts, {r['runs']} rebuilds: CPU median {r['cpu_s_median']:.2f} s "
          f"(min {r['cpu_s_min']:.2f}); posts/s median {r['posts_per_s_median']:,.0f} "
          f"(min {r['posts_per_s_min']:,.0f}, max {r['posts_per_s_max']:,.0f}); load {r['load_average'][0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
