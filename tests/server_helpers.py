"""A real server for tests: `tgsearch serve` in a subprocess, or the app under uvicorn in a thread,
on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen | None = None, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(base + "/api/health", timeout=5).status_code in (200, 401):   # 401: up, with a token
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base} did not come up within {timeout:.0f} s")


@contextlib.contextmanager
def running_serve(db: str | Path, *args: str, env: dict | None = None):
    """`python -m tgsearch.cli serve --db DB --port FREE ARGS...`; yields the base URL."""
    port = free_port()
    full_env = {**os.environ, "TGSEARCH_VECTORS": "off", **(env or {})}
    full_env.pop("TGSEARCH_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "tgsearch.cli", "serve", "--db", str(db), "--port", str(port), *args],
                            env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running_app(app):
    """The ASGI app under uvicorn in a thread of this process; yields the base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
