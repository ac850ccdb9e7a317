"""Web UI server time on the 22k-post corpus: the search page (results + facets + timeline) and the post page.

Run: .venv/bin/python -m bench.web_speed [DATA_FOLDER]
Without DATA_FOLDER it ingests ../shared/data/tg-news-posts-ru/raw into a temporary folder first.
Requests go through the real app (`tgsearch.api.app.create_app`, which mounts the UI) in process, so the
figure is server time: routing, engine, template rendering; no network. Queries: bench/queries/dev.jsonl,
each as typed, then narrowed to its top channel, then sorted by date, then page 2. Target: ≤ 100 ms.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "data" / "tg-news-posts-ru" / "raw"
QUERIES = REPO / "bench" / "queries" / "dev.jsonl"
TARGET_MS = 100.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(folder: Path) -> dict:
    from fastapi.testclient import TestClient

    from tgsearch.api.app import create_app
    from tgsearch.backend import EmbeddedBackend
    from tgsearch.search.types import SearchRequest

    backend = EmbeddedBackend(folder)
    backend.index  # open and catch up, as `serve` does before taking requests
    queries = [json.loads(line)["q"] for line in QUERIES.read_text(encoding="utf-8").splitlines() if line.strip()]
    urls: list[str] = []
    with TestClient(create_app(backend)) as client:
        for q in queries:
            urls.append("/?" + urlencode({"q": q}))
            top = backend.search(SearchRequest(q=q, limit=1, facets=True)).facets.get("channel") or []
            if top:
                urls.append("/?" + urlencode({"q": q, "channel": top[0]["value"]}))
            urls.append("/?" + urlencode({"q": q, "sort": "date"}))
            urls.append("/?" + urlencode({"q": q, "page": 2}))
        urls.append("/")
        for url in urls[:5]:          # warm up: first template compile, index readers
            client.get(url)
        wall, total = [], []
        for _ in range(3):
            for url in urls:
                t0 = time.perf_counter()
                r = client.get(url)
                wall.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, (url, r.status_code)
                timing = dict(part.strip().split(";dur=") for part in r.headers["server-timing"].split(","))
                total.append(float(timing["total"]))
        post_ids = [p.id for _, p in zip(range(50), backend.iter_posts())]
        post_ms = []
        for pid in post_ids:
            t0 = time.perf_counter()
            assert client.get("/posts/" + pid.replace("/", "%2F")).status_code == 200
            post_ms.append((time.perf_counter() - t0) * 1000)
    posts = backend.store.count()
    backend.close()
    return {
        "posts": posts,
        "search pages timed": len(total),
        "search page, handler ms (median)": round(statistics.median(total), 1),
        "search page, handler ms (p95)": round(percentile(total, 95), 1),
        "search page, in-process request ms (median)": round(statistics.median(wall), 1),
        "search page, in-process request ms (p95)": round(percentile(wall, 95), 1),
        "post page, in-process request ms (median)": round(statistics.median(post_ms), 1),
        "target ms": TARGET_MS,
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
    }


def main() -> None:
    if len(sys.argv) > 1:
        result = run(Path(sys.argv[1]))
    else:
        if not CORPUS.exists():
            sys.exit(f"corpus not found: {CORPUS} (put ../shared beside the checkout or pass a data folder)")
        from tgsearch.backend import EmbeddedBackend

        with tempfile.TemporaryDirectory() as tmp:
            backend = EmbeddedBackend(Path(tmp) / "db", vectors="off")  # no filler competing for the CPU
            backend.ingest([CORPUS])
            backend.close()
            result = run(Path(tmp) / "db")
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
