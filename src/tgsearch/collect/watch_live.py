"""The Telegram side of `tgsearch watch`: one client, connected for as long as the watch runs.

It lives on its own asyncio loop in a thread. Live events (new messages, albums, edits,
deletions) of the sources file's `sync` channels are stored as they come (collect/tg_live.py);
the scheduled syncs of those channels run through the same client (`run`), so one session file is
used by one connection. A live event never moves a sync cursor: after downtime the next scheduled
sync (due at once when overdue) reads everything since the cursor.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Callable

from ..errors import SyncError


class LiveListener:
    def __init__(self, backend, on_problem: Callable[[str], None] | None = None):
        self.backend = backend
        self.on_problem = on_problem
        self.loop = asyncio.new_event_loop()
        self.client = None
        self.handlers: list = []
        self.channels: tuple[str, ...] = ()
        self._thread = threading.Thread(target=self._run_loop, name="tgsearch-telegram", daemon=True)

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro, timeout: float | None = None):
        """Run a coroutine on the client's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> bool:
        """Connect the data folder's client; False (with the problem reported) when it cannot be
        used: no API credentials, not logged in, Telegram unreachable."""
        from . import telegram

        self._thread.start()

        async def connect():
            client = telegram.client_factory(self.backend.root)
            client.flood_sleep_threshold = 0
            if not client.is_connected():
                await client.connect()
            if not await client.is_user_authorized():
                await client.disconnect()
                raise SyncError(f"{self.backend.root}: not logged in to Telegram; run `tgsearch login --db "
                                f"{self.backend.root}` (live events and syncs are off until then)")
            await client.get_me()     # the server starts sending this session's updates
            return client

        try:
            self.client = self.run(connect(), timeout=120)
            return True
        except SyncError as e:
            problem = e.message
        except Exception as e:  # noqa: BLE001 - network and Telethon errors: the watch goes on without live events
            problem = f"Telegram: cannot connect for live events ({type(e).__name__}: {e}); scheduled syncs still run"
        if self.on_problem:
            self.on_problem(problem)
        self.stop()
        return False

    def follow(self, channels: list[str]) -> None:
        """Listen to these channels (the sync sources now); re-registered when the list changes."""
        wanted = tuple(sorted(channels))
        if self.client is None or wanted == self.channels:
            return
        from .telegram import attach_live

        async def swap():
            for callback, event in self.handlers:
                self.client.remove_event_handler(callback, event)
            self.handlers = attach_live(self.client, self.backend, list(wanted)) if wanted else []

        self.run(swap(), timeout=60)
        self.channels = wanted

    def stop(self) -> None:
        if self.client is not None and self.loop.is_running():
            try:
                self.run(self.client.disconnect(), timeout=30)
            except Exception:  # noqa: BLE001 - shutting down
                pass
            self.client = None
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(30)
