"""The background worker: one long-lived thread doing a data folder's derived work.

`tgsearch serve` (and the live collection, `watch`, later) opens its backend with a worker
(``EmbeddedBackend(..., worker=True)``). The worker wakes when a write pokes it or every
`interval` seconds, brings the lexical index up to the store (one writer, in this process),
then fills missing vectors in this thread (no filler process, no embedding pool), a batch at a
time so that the next write's lexical catch-up never waits behind a long fill, then places new
posts in stories (index/stories.py: copies, stories, entities), a batch at a time as well. It is the only
thread of the process that writes the indexes.

It stops on `stop()` (the backend's `close()`, when the server shuts down), or by itself when
its data folder is deleted or replaced (index/guard.py): it never recreates it.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from .errors import StoreError, TgsearchError

if TYPE_CHECKING:
    from .backend import EmbeddedBackend

INTERVAL = 30.0   # seconds between rounds when nothing pokes the worker (writes from other processes)
GRAPH_SAVE_EVERY = 300.0   # at most this often, save the vector search graph for the next start


class Worker:
    """One thread catching a backend's indexes up with its store."""

    def __init__(self, backend: "EmbeddedBackend", *, interval: float = INTERVAL, vectors: bool = True):
        self.backend = backend
        self.interval = interval
        self.vectors = vectors and backend.vectors.mode != "off"
        self.stories = backend.stories.mode != "off"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._interrupt = threading.Event()   # a write is waiting: the vector fill yields after its batch
        self._done = threading.Condition()
        self._thread: threading.Thread | None = None
        self.rounds = 0          # finished rounds
        self._begun = 0          # rounds started
        self.indexed = -1        # the lexical index's high-water mark after the last round
        self.error: BaseException | None = None   # the last round's error (None when it went well)
        self.stopped: str | None = None           # why the thread ended
        self._graph_saved_at: float | None = None

    def start(self) -> "Worker":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tgsearch-worker", daemon=True)
            self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def poke(self) -> None:
        """The store changed: catch up now (a vector fill in progress yields after its batch)."""
        self._interrupt.set()
        self._wake.set()

    def wait_indexed(self, version: int, timeout: float | None = None) -> None:
        """Wait until the lexical index covers store `version` (a write made searchable).

        Raises the error of a round that started after this call and failed (e.g. the index is
        busy: another process is writing it), StoreError when the worker has stopped, and
        TimeoutError after `timeout` seconds."""
        with self._done:
            begun = self._begun   # a round numbered above this one started after the write
            self.poke()
            ok = self._done.wait_for(
                lambda: self.indexed >= version or not self.running or (self.rounds > begun and self.error),
                timeout)
            if self.indexed >= version:
                return
            if not ok:
                raise TimeoutError(f"{self.backend.root}: the index did not reach store version {version} in time")
            if self.error is not None:
                raise self.error
            raise StoreError(f"{self.backend.root}: the background worker has stopped ({self.stopped})")

    def stop(self, timeout: float | None = 60.0) -> None:
        """Stop after the current step and wait for the thread (the backend's `close()`)."""
        self._stop.set()
        self._interrupt.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # -- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        backend = self.backend
        try:
            while not self._stop.is_set():
                if not backend.folder.alive():
                    self.stopped = f"the data folder {backend.root} was deleted or replaced"
                    break
                self._wake.clear()
                self._interrupt.clear()
                self._round()
                if not self._stop.is_set():
                    self._wake.wait(self.interval)
            else:
                self.stopped = "stopped"
        finally:
            backend.store.close()   # this thread's store connection
            with self._done:
                self._done.notify_all()

    def _round(self) -> None:
        backend = self.backend
        error: BaseException | None = None
        indexed = self.indexed
        with self._done:
            self._begun += 1
        try:
            index = backend.index
            index.catch_up(backend.store, stop=self._stop)
            indexed = index.hwm()
        except TgsearchError as e:   # busy (another process writes it), a gone folder: next round
            error = e
        except Exception as e:  # noqa: BLE001 - a server keeps serving; the error shows in stats
            error = e
        with self._done:
            self.indexed, self.error = indexed, error
            self.rounds += 1
            self._done.notify_all()
        if self.vectors and error is None and not self._stop.is_set():
            try:
                # In this thread, one process: embedding pools are for `ingest`'s filler.
                filled = backend.vectors.fill(stop=self._interrupt, wait=False, workers=1, save_index=False)
                now = time.monotonic()
                if filled and (self._graph_saved_at is None or now - self._graph_saved_at >= GRAPH_SAVE_EVERY):
                    backend.vectors.save_graph()   # not after every small write: a big graph is slow to save
                    self._graph_saved_at = now
            except Exception as e:  # noqa: BLE001 - as above
                with self._done:
                    self.error = e
        if self.stories and error is None and not self._stop.is_set():
            try:
                # stories, copies, entities: a batch at a time, yielding to the next write
                backend.stories.catch_up(stop=self._interrupt)
            except Exception as e:  # noqa: BLE001 - as above
                with self._done:
                    self.error = e

    def status(self) -> dict:
        return {"running": self.running, "rounds": self.rounds, "indexed": self.indexed,
                "error": str(self.error) if self.error is not None else None, "stopped": self.stopped}
