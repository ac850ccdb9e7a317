"""Collect + clean + store throughput on the 22k-post Telethon corpus (../shared/data/tg-news-posts-ru).

Run: .venv/bin/python -m bench.ingest_speed   (part of `make bench`)
Ingests into a fresh temporary data folder, three times, and reports the median posts/s,
then re-ingests the same input (everything unchanged) and reports that rate too.
"""

from __future__ import annotations

import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "data" / "tg-news-posts-ru" / "raw"


def run_once(corpus: Path) -> tuple[int, float, float]:
    from tgsearch.ingest import ingest
    from tgsearch.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "db")
        t0 = time.perf_counter()
        report = ingest(store, [corpus])
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = ingest(store, [corpus])
        second = time.perf_counter() - t0
        assert again.total("unchanged") == report.posts
        store.close()
        return report.posts, first, second


def main() -> dict:
    if not CORPUS.exists():
        print(f"ingest_speed: skipped, {CORPUS} not found")
        return {}
    runs = [run_once(CORPUS) for _ in range(3)]
    posts = runs[0][0]
    first = statistics.median(r[1] for r in runs)
    second = statistics.median(r[2] for r in runs)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "posts": posts,
        "ingest_s": round(first, 3),
        "ingest_posts_per_s": round(posts / first),
        "reingest_posts_per_s": round(posts / second),
        "max_rss_mb": round(rss_mb),
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
    }
    print("ingest_speed (collect+clean+store, 22k corpus, median of 3):")
    for k, v in result.items():
        print(f"  {k}: {v}")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
