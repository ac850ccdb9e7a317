"""Analyzer throughput on the 22k-post corpus (../shared/data/tg-news-posts-ru/raw).

Run: .venv/bin/python -m bench.bench_analyzer
Cold = a fresh Analyzer (empty caches, pymorphy3 already loaded); warm = the same texts again.
Reports posts/s and tokens/s for index_terms, exact_terms, terms (both at once) and tokens().
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("TGSEARCH_SHARED", REPO.parent / "shared")) / "data" / "tg-news-posts-ru" / "raw"


def load_texts(corpus: Path) -> list[str]:
    texts = []
    for path in sorted(corpus.glob("*.json")):
        for post in json.loads(path.read_text(encoding="utf-8")):
            text = post.get("text")
            if isinstance(text, list):  # Telegram export: list of str / {"text": ...} pieces
                text = "".join(p if isinstance(p, str) else p.get("text", "") for p in text)
            if text:
                texts.append(text)
    return texts


def timed(fn, texts: list[str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, tokens). The machine is shared, so CPU
    time is the figure that does not depend on what other processes do meanwhile."""
    w0, c0 = time.perf_counter(), time.process_time()
    count = 0
    for text in texts:
        count += len(fn(text))
    return time.perf_counter() - w0, time.process_time() - c0, count


def line(label: str, wall: float, cpu: float, posts: int, tokens: int) -> str:
    return (f"{label:<22} {posts / cpu:>9,.0f} posts/cpu-s {tokens / cpu:>11,.0f} tokens/cpu-s "
            f"{cpu * 1e6 / max(tokens, 1):5.2f} µs/token   (wall: {posts / wall:,.0f} posts/s)")


def main() -> int:
    if not CORPUS.is_dir():
        print(f"corpus not found: {CORPUS} (put ../shared beside the checkout)")
        return 2
    from tgsearch.analyze.analyzer import Analyzer

    texts = load_texts(CORPUS)
    chars = sum(map(len, texts))
    print(f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} cpus; {len(texts)} posts, {chars / len(texts):.0f} chars/post avg")
    t0 = time.perf_counter()
    analyzer = Analyzer()
    print(f"Analyzer() load: {time.perf_counter() - t0:.2f} s")

    for label, method in (("index_terms", "index_terms"), ("exact_terms", "exact_terms"),
                          ("terms (both)", "terms"), ("joined_terms (both)", "joined_terms")):
        analyzer = Analyzer()
        fn = getattr(analyzer, method)
        if method == "terms":
            fn = (lambda f: lambda t: f(t)[0])(fn)
        elif method == "joined_terms":
            fn = (lambda f: lambda t: range(f(t)[0].count(" ") + 1))(fn)
        for phase in ("cold", "warm"):
            wall, cpu, n = timed(fn, texts)
            print(line(f"{label} {phase}", wall, cpu, len(texts), n))
        sizes = analyzer.cache_size()
    print(f"cache after corpus: {sizes['surfaces']:,} surfaces, {sizes['chunks']:,} chunks, "
          f"{sizes['lemmas']:,} pymorphy lemmas")

    sample = texts[:5000]
    wall, cpu, n = timed(analyzer.tokens, sample)
    print(line("tokens() warm (5k)", wall, cpu, len(sample), n))

    words = [w for t in texts[:2000] for w in analyzer.exact_terms(t)]
    t0 = time.process_time()
    for w in words:
        analyzer.lemma(w)
    seconds = time.process_time() - t0
    print(f"lemma() cache hits      {len(words) / seconds:>12,.0f} words/cpu-s")

    queries = ["Токаеву", "Tokayev", "Усть-Каменогорске", "Nazarbayev", "Байконур", "санкции"]
    t0 = time.process_time()
    for q in queries * 50:
        analyzer.query_lemmas(q)
    print(f"query_lemmas            {(time.process_time() - t0) * 1e3 / (len(queries) * 50):9.3f} cpu-ms/word (warm)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
