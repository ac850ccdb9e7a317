"""Bounds of the HTTP surface: the largest numbers a request may carry, and how many heavy
requests (searches, exports, similar posts) run at once.

A search costs tens of milliseconds of CPU; past the cores, more of them at once only make each
slower, and an unbounded queue turns a burst into seconds of latency for everyone. `Limiter`
admits `concurrency` heavy requests at a time, lets at most `queue` more wait (each at most
`queue_wait` seconds), and answers the rest at once with 503 + Retry-After (JSON under /api, a
small page elsewhere). Light requests (a post by id, stats, health, static files) are not limited.

Configured by `tgsearch serve --concurrency N --queue N --queue-wait S` (env TGSEARCH_CONCURRENCY,
TGSEARCH_QUEUE, TGSEARCH_QUEUE_WAIT); concurrency 0 switches the limiter off.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from dataclasses import dataclass

from ..search.engine import MAX_LIMIT, MAX_OFFSET  # noqa: F401 - the API's bounds are the engine's
from ..web.auth import is_api, send_json, send_page

RETRY_AFTER = 1          # seconds a shed client is told to wait


def default_concurrency() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class LimitConfig:
    concurrency: int = 0          # 0 = no limit
    queue: int = 0
    queue_wait: float = 5.0

    @classmethod
    def default(cls) -> "LimitConfig":
        n = default_concurrency()
        return cls(concurrency=n, queue=4 * n, queue_wait=5.0)


def is_heavy(path: str) -> bool:
    """Requests that run the engine: the search page, /api/search, exports, similar posts and the
    post page (which shows similar posts)."""
    return (path in ("/", "/api/search", "/api/export")
            or (path.startswith("/api/posts/") and path.endswith("/similar"))
            or path.startswith("/posts/"))


def _grant(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(True)


class Limiter:
    """At most `concurrency` holders; up to `queue` waiters, first come first served. Works
    across event loops (a slot freed in one loop wakes a waiter in another), which in-process
    test clients need."""

    def __init__(self, config: LimitConfig):
        self.config = config
        self.active = 0
        self.shed = 0
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = deque()
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> bool:
        """True when the caller holds a slot (and must `release` it), False when shed."""
        if self.config.concurrency <= 0:
            return True
        with self._lock:
            if self.active < self.config.concurrency and not self._waiters:
                self.active += 1
                return True
            if len(self._waiters) >= self.config.queue:
                self.shed += 1
                return False
            loop = asyncio.get_running_loop()
            waiter = (loop, loop.create_future())
            self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter[1]), self.config.queue_wait)
            return True
        except asyncio.TimeoutError:
            return not self._give_up(waiter)
        except asyncio.CancelledError:       # the client went away while waiting
            if not self._give_up(waiter):
                self.release()
            raise

    def _give_up(self, waiter) -> bool:
        """Leave the queue; False when a slot was handed over just as the wait ended (the caller
        then holds it)."""
        with self._lock:
            try:
                self._waiters.remove(waiter)
            except ValueError:
                return False
            self.shed += 1
            return True

    def release(self) -> None:
        if self.config.concurrency <= 0:
            return
        with self._lock:
            while self._waiters:
                loop, future = self._waiters.popleft()
                try:
                    loop.call_soon_threadsafe(_grant, future)   # the slot passes to the waiter
                    return
                except RuntimeError:       # that waiter's loop is gone
                    continue
            self.active -= 1


class LimitMiddleware:
    """Pure ASGI middleware applying `limiter` to the heavy paths."""

    def __init__(self, app, limiter: Limiter):
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not is_heavy(scope.get("path", "")):
            return await self.app(scope, receive, send)
        if not await self.limiter.acquire():
            return await self._shed(scope, send)
        try:
            await self.app(scope, receive, send)
        finally:
            self.limiter.release()

    async def _shed(self, scope, send) -> None:
        message = (f"the server is busy ({self.limiter.config.concurrency} searches running, "
                   f"{self.limiter.config.queue} waiting); try again in {RETRY_AFTER} s")
        headers = [(b"retry-after", str(RETRY_AFTER).encode())]
        if is_api(scope.get("path", "")):
            await send_json(send, 503, {"error": "overloaded", "message": message}, headers)
        else:
            await send_page(send, 503, "Busy", message, headers)
