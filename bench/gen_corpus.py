"""Build a large synthetic corpus from the 22k corpus's sentences (for scale benchmarks).

Every post is 1–6 sentences drawn at random from the real posts, in a random channel
(of 300) on a random day of 2023–2025. Written as JSON Lines files (100k posts each)
into OUT, which should be a temporary folder: never commit the output.

Run: .venv/bin/python -m bench.gen_corpus OUT [--posts 1000000] [--seed 1]
then: tgsearch ingest OUT --db DB && python -m bench.search_speed --db DB
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("TGSEARCH_SHARED", REPO.parent / "shared")) / "data" / "tg-news-posts-ru" / "raw"
PER_FILE = 100_000


def sentences(corpus: Path = CORPUS) -> list[str]:
    from razdel import sentenize

    out = []
    for path in sorted(corpus.glob("*.json")):
        for post in json.loads(path.read_text(encoding="utf-8")):
            text = post.get("text")
            if isinstance(text, list):
                text = "".join(p if isinstance(p, str) else p.get("text", "") for p in text)
            for s in sentenize(text or ""):
                if len(s.text) >= 20:
                    out.append(s.text)
    return out


def generate(out: Path, n: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    pool = sentences()
    channels = [f"synth_{i:03d}" for i in range(300)]
    start = datetime(2023, 1, 1, tzinfo=timezone.utc)
    span = int(timedelta(days=3 * 365).total_seconds())
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    f = None
    for i in range(n):
        if i % PER_FILE == 0:
            if f:
                f.close()
            f = (out / f"synth_{i // PER_FILE:04d}.jsonl").open("w", encoding="utf-8")
        channel = rng.choice(channels)
        text = " ".join(rng.choice(pool) for _ in range(rng.randint(1, 6)))
        date = start + timedelta(seconds=rng.randrange(span))
        f.write(json.dumps({"id": i + 1, "channel": channel, "channel_title": channel.replace("_", " ").title(),
                            "date": date.isoformat().replace("+00:00", "Z"), "text": text}, ensure_ascii=False) + "\n")
        written += 1
    if f:
        f.close()
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.gen_corpus")
    ap.add_argument("out", type=Path)
    ap.add_argument("--posts", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    if not CORPUS.is_dir():
        print(f"gen_corpus: {CORPUS} not found")
        return 2
    n = generate(args.out, args.posts, args.seed)
    print(f"wrote {n} posts to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
