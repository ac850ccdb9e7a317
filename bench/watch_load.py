"""`serve --watch` under live collection: searches during a 10k-post backfill, then a stand-in
producing posts for minutes (CPU and RSS over time, lag from posting to searchable).

Run: .venv/bin/python -m bench.watch_load [--minutes 10] [--rate 5] [--channels 5] [--backfill 10000]
     [--interval 5] [--vectors off|process|...]   (needs nothing from the internet; ~minutes + 2)

- tests/tme_standin.py serves `--channels` channels (t.me markup, 20 a page) on 127.0.0.1 in this
  process; `tgsearch serve --watch` runs as a subprocess on a fresh data folder whose sources file
  crawls each channel every `--interval` s (delay 0.2 s between requests).
- Phase 1, backfill: the channels start with `--backfill` posts in all. While the watch crawls
  them (`--delay` s between requests), one client thread searches back to back (a rotating set of words, hybrid mode, 20 hits);
  reported: backfill time, searches answered, their p50/p95, and any non-200 answer.
- Phase 2, live: a producer adds `--rate` posts/s (round robin over the channels) for `--minutes`.
  Every 5 s the newest produced post is followed until a search for its own phrase finds it: the
  lag from posting to searchable (it includes waiting for the source's next run, at most
  `--interval` s). The server process's CPU time and RSS are read from /proc every 30 s; the
  per-minute CPU % and RSS show whether they stay flat. Searches continue (`--search-rate` per s).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
WORDS = ["заседание", "бюджет", "комиссии", "сводка", "пункт", "канала", "заседание комиссии", "бюджету"]


def proc_sample(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process and its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return cpu, rss


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Searcher(threading.Thread):
    """Searches without pause; records latencies and non-200 answers."""

    def __init__(self, base: str):
        super().__init__(daemon=True)
        self.base = base
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.bad: list[str] = []
        self.pace = 0.0        # seconds between searches (0: none)

    def run(self) -> None:
        i = 0
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                q = WORDS[i % len(WORDS)]
                i += 1
                t0 = time.perf_counter()
                try:
                    r = client.get(self.base + "/api/search", params={"q": q, "limit": 20})
                    if r.status_code != 200:
                        self.bad.append(f"{r.status_code}")
                except httpx.HTTPError as e:
                    self.bad.append(type(e).__name__)
                self.latencies.append(time.perf_counter() - t0)
                if self.pace:
                    self.stop.wait(max(0.0, self.pace - (time.perf_counter() - t0)))

    def take(self) -> tuple[list[float], list[str]]:
        lat, bad = self.latencies, self.bad
        self.latencies, self.bad = [], []
        return lat, bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=5.0)
    ap.add_argument("--channels", type=int, default=5)
    ap.add_argument("--backfill", type=int, default=10000)
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument("--delay", type=float, default=0.2, help="seconds between a crawl's requests")
    ap.add_argument("--search-rate", type=float, default=5.0, help="searches/s in phase 2")
    ap.add_argument("--vectors", default=None, help="TGSEARCH_VECTORS for the server (default: the product's)")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(REPO / "tests"))
    from server_helpers import free_port, wait_healthy
    from tme_standin import Standin, serve

    from tgsearch.collect import sources as sources_file

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"settings: {args.channels} channels, backfill {args.backfill} posts, live {args.rate} posts/s for "
          f"{args.minutes} min, crawl interval {args.interval} s, delay {args.delay} s, "
          f"vectors {args.vectors or '(default)'}; phase 1 searches back to back, phase 2 {args.search_rate}/s")
    standin = Standin()
    names = [f"live{i:02d}news" for i in range(args.channels)]
    for name in names:
        standin.add_channel(name, max(1, args.backfill // args.channels))
    server, _ = serve(standin)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "db"
        for name in names:
            sources_file.add(db, sources_file.make("crawl", name, interval=args.interval, base_url=standin.base_url))
        env = {**os.environ}
        env.pop("TGSEARCH_TOKEN", None)
        if args.vectors:
            env["TGSEARCH_VECTORS"] = args.vectors
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([sys.executable, "-m", "tgsearch.cli", "serve", "--watch", "--db", str(db),
                                 "--port", str(port), "--crawl-delay", str(args.delay)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        searcher = Searcher(base)
        try:
            wait_healthy(base, proc)
            # -- phase 1: backfill while searching ------------------------------------------------
            total = sum(len(standin.channels[n]) for n in names)
            t0 = time.perf_counter()
            searcher.start()
            with httpx.Client(timeout=60) as client:
                while True:
                    r = client.get(base + "/api/stats")
                    if r.status_code == 200 and r.json().get("posts", 0) >= total:
                        break
                    if proc.poll() is not None:
                        raise RuntimeError("server exited during the backfill")
                    time.sleep(0.5)
                stored_s = time.perf_counter() - t0
                # searchable: the oldest post of the last channel
                last = standin.channels[names[-1]][0]
                while True:
                    r = client.get(base + "/api/search", params={"q": f'"пункт {last.id}"', "mode": "lexical"})
                    if any(h["id"] == f"{names[-1]}/{last.id}" for h in r.json().get("hits", [])):
                        break
                    time.sleep(0.2)
            backfill_s = time.perf_counter() - t0
            lat, bad = searcher.take()
            ok = ok and not bad
            print(f"\nphase 1, backfill of {total} posts while searching: stored in {stored_s:.1f} s, "
                  f"all searchable in {backfill_s:.1f} s; {len(lat)} searches, p50 {pct(lat, 50) * 1000:.0f} ms, "
                  f"p95 {pct(lat, 95) * 1000:.0f} ms, non-200: {len(bad)} {sorted(set(bad))}")

            # -- phase 2: live posts -------------------------------------------------------------------
            searcher.pace = 1 / args.search_rate if args.search_rate > 0 else 0.0
            stop = threading.Event()
            produced: list[tuple[str, int, float]] = []

            def produce() -> None:
                i, start = 0, time.monotonic()
                while not stop.is_set():
                    name = names[i % len(names)]
                    m = standin.post(name, 1)[0]
                    produced.append((name, m.id, time.monotonic()))
                    i += 1
                    wait = start + i / args.rate - time.monotonic()
                    if wait > 0:
                        stop.wait(wait)

            lags: list[float] = []

            def follow() -> None:
                with httpx.Client(timeout=60) as client:
                    while not stop.is_set():
                        if not produced:
                            stop.wait(0.5)
                            continue
                        name, mid, at = produced[-1]
                        while not stop.is_set():
                            r = client.get(base + "/api/search", params={"q": f'"пункт {mid}"', "mode": "lexical"})
                            if r.status_code == 200 and any(h["id"] == f"{name}/{mid}" for h in r.json()["hits"]):
                                lags.append(time.monotonic() - at)
                                break
                            stop.wait(0.1)
                        stop.wait(max(0.0, 5 - (time.monotonic() - at)))

            producer = threading.Thread(target=produce, daemon=True)
            follower = threading.Thread(target=follow, daemon=True)
            samples = [(time.monotonic(), *proc_sample(proc.pid))]
            producer.start()
            follower.start()
            end = time.monotonic() + args.minutes * 60
            print(f"\nphase 2, {args.rate} posts/s for {args.minutes} min (server process, per 30 s):")
            print("| t (s) | CPU % (of one core) | RSS MB | posts produced | searches p95 ms | non-200 |")
            print("|---|---|---|---|---|---|")
            while time.monotonic() < end:
                time.sleep(min(30, max(0.0, end - time.monotonic())))
                now, cpu, rss = time.monotonic(), *proc_sample(proc.pid)
                t_prev, cpu_prev, _ = samples[-1]
                samples.append((now, cpu, rss))
                lat, bad = searcher.take()
                ok = ok and not bad
                print(f"| {now - samples[0][0]:.0f} | {100 * (cpu - cpu_prev) / (now - t_prev):.0f} | "
                      f"{rss / 2**20:.0f} | {len(produced)} | {pct(lat, 95) * 1000:.0f} | {len(bad)} |", flush=True)
            stop.set()
            producer.join()
            follower.join()
            # let the last run land, then count
            time.sleep(args.interval + 5)
            with httpx.Client(timeout=60) as client:
                posts = client.get(base + "/api/stats").json().get("posts", 0)
            expected = total + len(produced)
            first_min = [s for s in samples if s[0] - samples[0][0] <= 90]
            rss_first, rss_last = first_min[-1][2], samples[-1][2]
            cpu_rates = [100 * (b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(samples, samples[1:])]
            print(f"\nlag posting -> searchable ({len(lags)} posts followed): p50 {pct(lags, 50):.1f} s, "
                  f"p95 {pct(lags, 95):.1f} s, max {max(lags) if lags else float('nan'):.1f} s "
                  f"(includes up to {args.interval} s waiting for the next crawl)")
            print(f"CPU % per 30 s: first {cpu_rates[0]:.0f}, median {statistics.median(cpu_rates):.0f}, "
                  f"last {cpu_rates[-1]:.0f}; RSS after ~1 min {rss_first / 2**20:.0f} MB, "
                  f"at the end {rss_last / 2**20:.0f} MB")
            print(f"posts stored {posts} of {expected} produced in all")
            ok = ok and posts == expected
        finally:
            searcher.stop.set()
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            server.shutdown()
    print("ok" if ok else "FAILED (non-200 answers or posts missing)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
