"""Hostile inputs: time and peak memory of `tgsearch ingest` on generated files that used to blow up.

    python -m bench.hostile_inputs [--depths 20000,40000,100000] [--spans 8000,16000]

- a Telegram Desktop `result.json` whose one message `text` nests N levels deep (plus two good
  messages): the deep message is refused with one line, the others ingest;
- a saved t.me/s page whose message text sits inside N nested `<span>`s: read in full.

Each file is ingested by a fresh `tgsearch ingest` process (vectors off); its wall time, its peak RSS
(`getrusage(RUSAGE_SELF)` in that process) and the outcome are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def desktop_export(depth: int) -> str:
    good = [{"id": i, "type": "message", "date": "2024-03-01T10:00:00", "date_unixtime": "1709287200",
             "text": f"сообщение {i}"} for i in (1, 2)]
    messages = [json.dumps(m, ensure_ascii=False) for m in good]
    messages.insert(1, '{"id": 3, "type": "message", "date": "2024-03-01T10:00:00", "text": '
                    + "[" * depth + "]" * depth + "}")
    return '{"name": "Bench", "type": "public_channel", "id": 42, "messages": [' + ", ".join(messages) + "]}"


def tme_page(spans: int) -> str:
    return ('<html><body><div class="tgme_widget_message" data-post="deep_chan/5">' + "<span>" * spans
            + '<div class="tgme_widget_message_text">глубоко <b>вложенный</b> текст</div>' + "</span>" * spans
            + '<a class="tgme_widget_message_date"><time datetime="2024-05-01T09:30:00+00:00">9:30</time></a>'
            + "</div></body></html>")


_CHILD = """
import resource, runpy, sys
sys.argv = ["tgsearch", "ingest", sys.argv[1], "--db", sys.argv[2], "--json", "-q"]
try:
    runpy.run_module("tgsearch.cli", run_name="__main__")
finally:
    print("maxrss_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def run(path: Path, db: Path) -> tuple[float, float, str]:
    """Ingest `path` in a fresh process: (wall s, that process's peak RSS in MB, outcome)."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(db)], capture_output=True, text=True,
                          env={**os.environ, "TGSEARCH_VECTORS": "off"})
    wall = time.perf_counter() - started
    peak = next((int(line.split()[1]) / 1024 for line in proc.stderr.splitlines() if line.startswith("maxrss_kb")),
                float("nan"))
    try:
        summary = json.loads(proc.stdout)
        outcome = f"posts {summary['posts']}, errors {len(summary['errors'])}"
    except (ValueError, KeyError):
        outcome = f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"
    return wall, peak, outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile_inputs")
    parser.add_argument("--depths", default="20000,40000,100000")
    parser.add_argument("--spans", default="8000,16000")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tgsearch-hostile-") as tmp:
        root = Path(tmp)
        cases = [(f"result.json nested {int(d):,} deep", "result.json", desktop_export(int(d)))
                 for d in args.depths.split(",") if d]
        cases += [(f"t.me/s page, text inside {int(n):,} <span>s", "page.html", tme_page(int(n)))
                  for n in args.spans.split(",") if n]
        for k, (label, name, content) in enumerate(cases):
            folder = root / str(k)
            folder.mkdir()
            path = folder / name
            path.write_text(content, encoding="utf-8")
            wall, peak, outcome = run(path, root / f"db{k}")
            print(f"{label:40} {path.stat().st_size / 1024:8.0f} KB  {wall:6.2f} s  peak RSS {peak:7.0f} MB  {outcome}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
