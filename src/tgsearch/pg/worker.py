"""The PostgreSQL backend's background worker (in `serve`/`watch`): one thread catching vectors and
stories up with the posts, woken by this process's writes and every INTERVAL seconds (writes of
other processes). Lexical rows need no catching up: they are written with the posts."""

from __future__ import annotations

import threading

from ..errors import StoreError

INTERVAL = 5.0


class PgWorker:
    def __init__(self, backend, *, interval: float = INTERVAL):
        self.backend = backend
        self.interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.error: BaseException | None = None
        self.stopped: str | None = None

    def start(self) -> "PgWorker":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tgsearch-pg-worker", daemon=True)
            self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def poke(self) -> None:
        self._wake.set()

    def wait_indexed(self, version: int, timeout: float | None = None) -> None:
        """Posts are searchable when their transaction commits: nothing to wait for."""
        if not self.running and self.stopped:
            raise StoreError(f"{self.backend.where}: the background worker has stopped ({self.stopped})")

    def stop(self, timeout: float | None = 60.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    if not self.backend.hand_off():      # a big backlog goes to the catch-up process
                        self.backend.catch_up(stop=self._stop)
                    self.error = None
                except Exception as e:  # noqa: BLE001 - a server keeps serving; the error shows in stats
                    self.error = e
                self.rounds += 1
                if not self._stop.is_set():
                    self._wake.wait(self.interval)
            self.stopped = "stopped"
        finally:
            self.backend.store.close_thread()

    def status(self) -> dict:
        return {"running": self.running, "rounds": self.rounds, "indexed": None,
                "error": str(self.error) if self.error is not None else None, "stopped": self.stopped}
