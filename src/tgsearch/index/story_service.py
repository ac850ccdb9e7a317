"""Who places new posts in stories (index/stories.py), as the backend sees it.

`mode` (env ``TGSEARCH_STORIES``): ``process`` (default) -- after a write, a detached
``python -m tgsearch.index.story_service --db DIR`` process catches the stories up, so `ingest`
returns at once and stories complete in the background, even after the CLI exits; ``sync`` --
before the write returns; ``off`` -- not at all. A backend with a background worker (`serve`,
`watch`) catches up in that worker instead. One writer at a time: `<db>/analysis.lock` (an
advisory lock; the kernel drops it with its process); a writer that finds it taken leaves the
work to the holder (which loops until nothing is behind).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from ..errors import StoreError, TgsearchError
from .guard import file_lock
from .stories import FILE, StoryIndex

MODES = ("process", "sync", "off")
LOCK = "analysis.lock"


def writer_lock(root: Path, *, wait: bool = False):
    """The folder's stories writer lock: yields True holding it, False when another process has it."""
    return file_lock(Path(root) / LOCK, wait=wait)


def default_entities():
    """(texts -> per text [(type, name, key)], model name) when natasha is installed, else (None, '').
    TGSEARCH_ENTITIES=off turns entities off."""
    if os.environ.get("TGSEARCH_ENTITIES", "").lower() == "off":
        return None, ""
    import importlib.util

    if importlib.util.find_spec("natasha") is None:
        return None, ""
    return extract_entities, "natasha-slovnet"


def extract_entities(texts: list[str]) -> list[list[tuple[str, str, str]]]:
    """[(type, name, key)] per text (natasha); module-level, so worker processes can run it."""
    from ..analyze import entities as ner

    return [[(e.type, e.name, ner.entity_key(e.name)) for e in ents] for ents in ner.entities_many(texts)]


extract_entities.picklable = True


def lead_vectors(store):
    """ids -> {id: (model, unit vector of the post's first passage)} from the folder's active vector
    index, for the posts that have one (stories use them when there; they never wait for them)."""
    import sqlite3

    import numpy as np

    from .vectors import active_model, vectors_dir

    from ..analyze.stories import WEIGHTS

    def read(ids: list[str]) -> dict:
        model = active_model(store)
        if model not in WEIGHTS:       # a model the story weights were not fitted for: not used
            return {}
        path = vectors_dir(store.root, model) / "vectors.sqlite"
        if not path.exists() or not ids:
            return {}
        out = {}
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for pid, vec in conn.execute(
                        f"SELECT post_id, vec FROM entries WHERE passage = 0 AND post_id IN ({marks})", chunk):
                    v = np.frombuffer(vec, dtype=np.float16).astype(np.float32)
                    n = float(np.linalg.norm(v))
                    if n > 0:
                        out[pid] = (model, v / n)
        except sqlite3.Error:
            return {}
        finally:
            conn.close()
        return out

    return read


class StoryService:
    def __init__(self, store, analyzer_fn, mode: str | None = None, *, read_only: bool = False):
        self.store = store
        self.root = Path(store.root)
        self._analyzer_fn = analyzer_fn
        self.read_only = read_only
        self.mode = "off" if read_only else (mode or os.environ.get("TGSEARCH_STORIES") or "process").lower()
        if self.mode not in MODES:
            raise StoreError(f"TGSEARCH_STORIES={self.mode!r}: choose one of {', '.join(MODES)}")
        self._index: StoryIndex | None = None
        self._proc = None
        self._lock = threading.Lock()

    @property
    def index(self) -> StoryIndex:
        """The analysis database: read-only when this backend is, or when stories are off and the
        folder has none (reading creates nothing)."""
        with self._lock:
            if self._index is None:
                self._index = self._open(self.read_only or (self.mode == "off" and not (self.root / FILE).exists()))
            return self._index

    def _open(self, read_only: bool) -> StoryIndex:
        fn, model = default_entities()
        return StoryIndex(self.root, self._analyzer_fn(), entities=fn, entity_model=model, read_only=read_only,
                          vectors=None if os.environ.get("TGSEARCH_STORY_VECTORS", "").lower() == "off"
                          else lead_vectors(self.store))

    def _writable(self) -> StoryIndex:
        if self.read_only:
            raise StoreError(f"{self.root}: opened read-only; stories are written by ingest, serve, watch and reindex")
        index = self.index
        if index.read_only:
            with self._lock:
                self._index = index = self._open(False)
        return index

    def catch_up(self, *, stop: threading.Event | None = None, on_progress=None) -> int | None:
        """Catch up in this process if no other holds the writer lock (None: another does)."""
        index = self._writable()
        with writer_lock(self.root) as mine:
            if not mine:
                return None
            return index.catch_up(self.store, on_progress=on_progress, stop=stop)

    def wait_caught_up(self, timeout: float | None = None) -> bool:
        """Bring the stories up to the store now: in this process, or by waiting for the process
        that holds the writer lock (an `ingest`'s background one) and then doing what is left;
        at most `timeout` seconds (env TGSEARCH_STORIES_WAIT, default 300). True when caught up."""
        import time

        if self.mode == "off" or self.read_only:
            return False
        if timeout is None:
            timeout = float(os.environ.get("TGSEARCH_STORIES_WAIT", "300"))
        deadline = time.monotonic() + timeout
        while True:
            if self.catch_up() is not None and self.index.backlog(self.store) == 0:
                return True
            if time.monotonic() >= deadline:
                return self.index.backlog(self.store) == 0
            time.sleep(0.5)

    def rebuild(self, on_progress=None) -> int:
        index = self._writable()
        with writer_lock(self.root, wait=True):
            return index.rebuild(self.store, on_progress=on_progress)

    def after_write(self) -> None:
        if self.mode == "off" or self.read_only:
            return
        if self.mode == "sync":
            self.catch_up()
            return
        if self._proc is not None and self._proc.poll() is None:
            return
        if self.index.backlog(self.store) == 0:
            return
        import subprocess

        log = open(self.root / "analysis.log", "ab")
        try:
            self._proc = subprocess.Popen([sys.executable, "-m", "tgsearch.index.story_service", "--db", str(self.root)],
                                          stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()

    def status(self) -> dict:
        return self.index.status(self.store)

    def close(self) -> None:
        if self._index is not None:
            self._index.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m tgsearch.index.story_service --db DIR``: catch the stories up, then exit (loops
    while writes keep coming; stops when its data folder goes)."""
    import argparse

    from ..analyze.analyzer import default_analyzer
    from ..store import Store
    from .guard import DataFolder

    parser = argparse.ArgumentParser(prog="python -m tgsearch.index.story_service")
    parser.add_argument("--db", required=True)
    args = parser.parse_args(argv)
    try:
        folder = DataFolder(args.db)
        store = Store(args.db, create=False)
    except TgsearchError as e:
        print(f"error: {e.message}", file=sys.stderr, flush=True)
        return 1
    stop = threading.Event()
    folder.stop_when_gone(stop)
    service = StoryService(store, default_analyzer, "sync")
    started = time.perf_counter()
    total = 0
    try:
        while not stop.is_set():
            done = service.catch_up(stop=stop)
            if done is None:      # another writer holds the lock: it finishes the work
                break
            total += done
            if done == 0 or service.index.backlog(store) == 0:
                break
    finally:
        stop.set()
        service.close()
        folder.close()
    print(f"stories: placed {total} posts in {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
