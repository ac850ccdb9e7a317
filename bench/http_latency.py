"""Search latency of a running server over HTTP, with the API's defaults (`GET /api/search?q=…`:
hybrid, one hit per story, 10 hits, no facets), for the development queries and for the English and
paraphrase sets (long natural-language queries). Each query is sent once per pass (its embedding is
not cached yet on the first pass); two passes.

Run: tgsearch serve --db DB_OR_URL --port 8765 &   then
     .venv/bin/python -m bench.http_latency [--base http://127.0.0.1:8765] [--passes 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

QUERIES = Path(__file__).resolve().parent / "queries"


def _load(name: str, key: str) -> list[str]:
    return [json.loads(line)[key] for line in (QUERIES / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.http_latency")
    ap.add_argument("--base", default="http://127.0.0.1:8765")
    ap.add_argument("--passes", type=int, default=2)
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    import httpx

    sets = {"dev": _load("dev.jsonl", "q"),
            "en+paraphrase": _load("en.jsonl", "query") + _load("paraphrase.jsonl", "query")}
    try:
        client = httpx.Client(base_url=args.base, timeout=120)
        client.get("/api/health").raise_for_status()
    except httpx.HTTPError as e:
        print(f"http_latency: skipped, no server at {args.base} ({e}); start `tgsearch serve` first")
        return 0
    for n in range(1, args.passes + 1):
        for name, queries in sets.items():
            times = []
            for q in queries:
                started = time.perf_counter()
                r = client.get("/api/search", params={"q": q})
                times.append((time.perf_counter() - started) * 1000)
                if r.status_code not in (200, 400):
                    raise SystemExit(f"{q!r}: HTTP {r.status_code} {r.text[:200]}")
            times.sort()
            print(f"pass {n} {name}: {len(times)} queries  p50 {times[len(times) // 2]:.0f} ms  "
                  f"p95 {times[int(0.95 * (len(times) - 1))]:.0f} ms  max {times[-1]:.0f} ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
