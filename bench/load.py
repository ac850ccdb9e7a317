"""Open-loop load on a real `tgsearch serve` over loopback: offered vs achieved rate, 503s, latency.

Run: .venv/bin/python -m bench.load [--db DATA_FOLDER] [--rates 10,20,40,80] [--duration 10]
                                     [--path /api/search] [--mode hybrid] [--serve-arg=--concurrency=0 ...]
Without --db it ingests ../shared/data/tg-news-posts-ru/raw into a temporary folder first, without
vectors (hybrid is then lexical only; pass a folder with vectors to load the real hybrid search).

Requests leave on a fixed schedule (Poisson arrivals at the offered rate, seeded), whether or not
earlier ones have answered: an open loop, as independent users are. Latency runs from the
scheduled send time, so a client falling behind cannot hide queueing. Queries: bench/queries/dev.jsonl
round-robin. The server runs as `python -m tgsearch.cli serve` with TGSEARCH_VECTORS=off (no
background embedding competing) and its default limits unless --serve-arg says otherwise. The
load generator shares the machine's cores with the server: its own CPU time is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "data" / "tg-news-posts-ru" / "raw"
QUERIES = REPO / "bench" / "queries" / "dev.jsonl"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: Path, serve_args: list[str]) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    env = {**os.environ, "TGSEARCH_VECTORS": "off"}
    env.pop("TGSEARCH_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "tgsearch.cli", "serve", "--db", str(db), "--port", str(port),
                             *serve_args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            if httpx.get(base + "/api/health", timeout=5).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("serve did not come up within 300 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the server process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class Connections:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: a few hundred microseconds of CPU
    per request, so the load generator does not eat the cores the server needs (httpx cost ~12 ms
    a request here). A request takes an idle connection or opens a new one (open loop)."""

    IDLE_MAX = 3.0      # seconds; uvicorn closes keep-alive connections idle for 5 s

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def get(self, target: str) -> int:
        conn = None
        while self.idle and conn is None:
            reader, writer, since = self.idle.pop()
            if time.monotonic() - since < self.IDLE_MAX:
                conn = (reader, writer)
            else:                                # the server may have closed it (keep-alive timeout)
                writer.close()
        reader, writer = conn or await asyncio.open_connection(self.host, self.port)
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode("ascii"))
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" in headers:
            await reader.readexactly(int(headers["content-length"]))
        else:                                   # chunked (streamed pages): read to the last chunk
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        if headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self.idle.append((reader, writer, time.monotonic()))
        return status

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()


async def offer(base: str, path: str, params: list[dict], rate: float, duration: float, seed: int) -> dict:
    """Send requests at `rate`/s (Poisson) for `duration` seconds; wait for every answer."""
    from urllib.parse import urlencode, urlsplit

    rng = random.Random(seed)
    results: list[tuple[int | str, float]] = []
    url = urlsplit(base)
    pool = Connections(url.hostname, url.port)
    targets = [path + "?" + urlencode(p) for p in params]

    async def one(scheduled: float, target: str):
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            status: int | str = await asyncio.wait_for(pool.get(target), 120)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as e:
            status = type(e).__name__
        results.append((status, time.perf_counter() - scheduled))

    start = time.perf_counter() + 0.2
    t, i, tasks = 0.0, 0, []
    while True:
        t += rng.expovariate(rate)
        if t >= duration:
            break
        tasks.append(asyncio.create_task(one(start + t, targets[i % len(targets)])))
        i += 1
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    pool.close()
    ok = [lat * 1000 for status, lat in results if status == 200]
    shed = [lat * 1000 for status, lat in results if status == 503]
    return {
        "offered/s": round(rate, 1),
        "sent": len(results),
        "ok/s": round(len(ok) / wall, 1),
        "503": len(shed),
        "other": ",".join(f"{k}x{v}" for k, v in sorted(Counter(str(st) for st, _ in results if st not in (200, 503)).items()))
                 or 0,
        "p50 ms": round(percentile(ok, 50), 1),
        "p99 ms": round(percentile(ok, 99), 1),
        "503 p50 ms": round(percentile(shed, 50), 1),
        "wall s": round(wall, 1),
    }


def run(db: Path, rates: list[float], duration: float, path: str, mode: str, serve_args: list[str]) -> list[dict]:
    import httpx

    queries = [json.loads(line)["q"] for line in QUERIES.read_text(encoding="utf-8").splitlines() if line.strip()]
    params = [{"q": q, "mode": mode} if path == "/api/search" else {"q": q} for q in queries]
    proc, base = start_server(db, serve_args)
    try:
        probe = httpx.get(base + "/api/search", params={"q": queries[0], "mode": mode, "limit": 20}, timeout=60).json()
        retrievers = sorted({r for h in probe.get("hits", []) for r in h.get("retrievers", [])})
        for q in queries:                       # warm up: caches, first compile of each path
            httpx.get(base + path, params={"q": q, "mode": mode} if path == "/api/search" else {"q": q}, timeout=60)
        print(f"server: {base} {' '.join(serve_args)}; {path} mode={mode}; retrievers in hits: {', '.join(retrievers)}",
              flush=True)
        rows = []
        for n, rate in enumerate(rates):
            cpu0, client0 = server_cpu_seconds(proc.pid), resource.getrusage(resource.RUSAGE_SELF)
            row = asyncio.run(offer(base, path, params, rate, duration, seed=n))
            client1 = resource.getrusage(resource.RUSAGE_SELF)
            row["server cpu s"] = round(server_cpu_seconds(proc.pid) - cpu0, 1)
            row["client cpu s"] = round(client1.ru_utime + client1.ru_stime - client0.ru_utime - client0.ru_stime, 1)
            rows.append(row)
            print("  " + "  ".join(f"{k}: {v}" for k, v in row.items()), flush=True)
            time.sleep(1.0)                      # let the queue drain between rates
    finally:
        stop_server(proc)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="data folder to serve (default: ingest the corpus into a temp folder)")
    parser.add_argument("--rates", default="10,20,40,80", help="offered request rates per second, comma-separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per rate")
    parser.add_argument("--path", default="/api/search", help="/api/search (JSON) or / (the search page)")
    parser.add_argument("--mode", default="hybrid", help="search mode for /api/search")
    parser.add_argument("--serve-arg", action="append", default=[], help="extra `serve` argument (repeatable)")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}", flush=True)
    if args.db:
        run(args.db, rates, args.duration, args.path, args.mode, args.serve_arg)
        return 0
    if not CORPUS.exists():
        print(f"corpus not found: {CORPUS} (put ../shared beside the checkout or pass --db)")
        return 1
    from tgsearch.backend import EmbeddedBackend

    with tempfile.TemporaryDirectory() as tmp:
        backend = EmbeddedBackend(Path(tmp) / "db", vectors="off")
        backend.ingest([CORPUS])
        print(f"ingested {backend.store.count()} posts into a temporary folder (no vectors)", flush=True)
        backend.close()
        run(Path(tmp) / "db", rates, args.duration, args.path, args.mode, args.serve_arg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
