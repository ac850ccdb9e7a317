"""The vector index: passage embeddings of every post, derived from the store.

Layout, one folder per embedding model: ``<db>/index/vectors/<model>/``

- ``vectors.sqlite`` -- the durable part. ``entries`` holds one row per passage vector
  (label, post id, post version, passage number, character span in the post text, float16
  vector); ``meta`` holds the model name, dimension and the store high-water mark (the highest
  store ``version`` embedded). A batch of posts and the new high-water mark are committed in one
  transaction, so a filler killed at any point resumes exactly where the last commit left it:
  no post is missing and none is embedded twice.
- ``hnsw-<quant>.usearch`` + ``.json`` -- a usearch index over those vectors (``f16`` by default,
  ``TGSEARCH_VECTOR_QUANT=i8|f16|f32``; see docs/benchmarks.md), a cache rebuilt or topped up from
  ``vectors.sqlite`` on open. Up to ``EXACT_BELOW`` vectors it is searched exhaustively (exact and
  deterministic, a few ms); above that through its HNSW graph.

Filling is incremental (``Store.iter_since(high_water_mark)``) and can run in the background --
in a thread (`VectorFiller`) or a detached process (``python -m tgsearch.index.vectors fill``)
-- while lexical search serves at once. Readers (`VectorIndex`) pick up new rows as they land.

Per-post passage choice: a post up to ``SHORT_CHARS`` is one vector (title + text). A longer post
gets a title + lead passage and up to ``MAX_PASSAGES - 1`` further passages of about
``PASSAGE_CHARS`` cut at sentence ends; a post's score is its best passage's score, and the span
of that passage is what a semantic-only hit's snippet shows.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..analyze.embed import DEFAULT_MODEL, Embedder, clean_for_embedding, get_embedder
from ..errors import IndexMismatchError, StoreError
from ..post import Post
from ..store import Store, connect_wal

SCHEMA = 1
SHORT_CHARS = 1000
PASSAGE_CHARS = 600
MAX_PASSAGES = 4
DEFAULT_QUANT = "f16"      # i8 halves the graph but lost 5-7% top-10 overlap with exact search (docs/benchmarks.md)
SAVE_AFTER = 1_000          # a reader that added this many vectors to the graph saves it
EXACT_BELOW = 50_000        # up to this many vectors, search exhaustively (~1.5 ms at 24k): no graph misses
QUANTS = ("f32", "f16", "i8")
ACTIVE_META_KEY = "vectors_model"


def model_slug(model: str) -> str:
    """Folder name for a model: registered names as-is, anything else made filesystem-safe."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-")
    if slug != model:
        import hashlib

        slug = f"{slug[-60:]}-{hashlib.blake2b(model.encode(), digest_size=4).hexdigest()}"
    return slug


def vectors_dir(root: str | os.PathLike, model: str) -> Path:
    return Path(root) / "index" / "vectors" / model_slug(model)


def active_model(store: Store) -> str:
    """The embedding model the data folder uses (`tgsearch reindex --vectors MODEL` switches it)."""
    return os.environ.get("TGSEARCH_VECTORS_MODEL") or store.get_meta(ACTIVE_META_KEY) or DEFAULT_MODEL


# -- passages ---------------------------------------------------------------------------------
_SENTENCE_END = re.compile(r"(?<=[.!?…»\"])\s+|\n+")


@dataclass(frozen=True)
class Passage:
    number: int
    start: int          # character span in post.text (0, 0 for a title-only passage)
    end: int
    text: str           # what is embedded (title prepended to passage 0, URLs dropped)


def passages_for(post: Post, *, short: int = SHORT_CHARS, size: int = PASSAGE_CHARS,
                 limit: int = MAX_PASSAGES) -> list[Passage]:
    text = post.text or ""
    title = (post.title or "").strip()
    if len(text) + len(title) <= short:
        body = clean_for_embedding(f"{title}\n{text}" if title else text)
        return [Passage(0, 0, len(text), body or title or ".")]
    # Cut the text at sentence ends into chunks of about `size` characters.
    bounds = [0] + [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]
    chunks: list[tuple[int, int]] = []
    start = 0
    for b in bounds[1:]:
        if b - start >= size:
            chunks.append((start, b))
            start = b
    if start < len(text):
        if chunks and len(text) - start < size // 3:
            chunks[-1] = (chunks[-1][0], len(text))
        else:
            chunks.append((start, len(text)))
    out: list[Passage] = []
    for number, (a, b) in enumerate(chunks[:limit]):
        # a run-on chunk without sentence ends is capped so every passage stays passage-sized
        piece = text[a:b]
        body = clean_for_embedding(piece, max_chars=2 * size)
        if number == 0 and title:
            body = clean_for_embedding(title) + ". " + body
        out.append(Passage(number, a, b, body or "."))
    return out or [Passage(0, 0, len(text), clean_for_embedding(title) or ".")]


# -- durable store ----------------------------------------------------------------------------
_SQL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    label INTEGER PRIMARY KEY AUTOINCREMENT,
    post_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    passage INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    vec BLOB NOT NULL,
    UNIQUE(post_id, passage)
);
CREATE INDEX IF NOT EXISTS entries_post ON entries(post_id);
"""


class VectorStore:
    """vectors.sqlite of one model: entries + meta (model, dim, high-water mark)."""

    def __init__(self, directory: Path, model: str, dim: int, *, create: bool = True):
        self.dir = Path(directory)
        self.model = model
        self.dim = dim
        self.path = self.dir / "vectors.sqlite"
        if not self.path.exists() and not create:
            raise StoreError(f"{self.path}: no vector index for {model} here (run `tgsearch reindex --vectors {model}`)")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        conn = self.conn
        conn.executescript(_SQL)
        recorded_model = self.get_meta("model")
        recorded_dim = self.get_meta("dim")
        if recorded_model is None:
            conn.execute("BEGIN IMMEDIATE")
            if self.get_meta("model") is None:
                self._set_meta("model", model)
                self._set_meta("dim", str(dim))
                self._set_meta("schema", str(SCHEMA))
                self._set_meta("hwm", "0")
            conn.execute("COMMIT")
            recorded_model, recorded_dim = self.get_meta("model"), self.get_meta("dim")
        if recorded_model != model or int(recorded_dim) != dim:
            raise IndexMismatchError(
                f"{self.path}: vector index was built by {recorded_model} ({recorded_dim} dims), not {model} ({dim} dims); "
                f"run `tgsearch reindex --vectors {model}` to rebuild it"
            )

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_wal(self.path, timeout=60, what="vector store")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                          (key, value))

    @property
    def hwm(self) -> int:
        return int(self.get_meta("hwm") or 0)

    def write_batch(self, rows: list[tuple[str, int, Passage, np.ndarray]], hwm: int,
                    dropped: list[str] | tuple = ()) -> None:
        """Replace the entries of the batch's posts, drop those of its posts deleted at the source,
        and advance the high-water mark, atomically."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = sorted({r[0] for r in rows} | set(dropped))
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                conn.execute(f"DELETE FROM entries WHERE post_id IN ({','.join('?' * len(chunk))})", chunk)
            conn.executemany(
                "INSERT INTO entries(post_id, version, passage, start, end, vec) VALUES(?,?,?,?,?,?)",
                [(pid, ver, p.number, p.start, p.end, vec.astype(np.float16).tobytes()) for pid, ver, p, vec in rows],
            )
            if hwm > self.hwm:
                self._set_meta("hwm", str(hwm))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def delete_posts(self, post_ids: list[str]) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        for i in range(0, len(post_ids), 500):
            chunk = post_ids[i:i + 500]
            conn.execute(f"DELETE FROM entries WHERE post_id IN ({','.join('?' * len(chunk))})", chunk)
        conn.execute("COMMIT")

    def count_posts(self) -> int:
        return self.conn.execute("SELECT COUNT(DISTINCT post_id) FROM entries").fetchone()[0]

    def count_entries(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def max_label(self) -> int:
        return self.conn.execute("SELECT COALESCE(MAX(label), 0) FROM entries").fetchone()[0]

    def iter_entries(self, after_label: int = 0, batch: int = 20000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(labels, vectors float32) in label order, after `after_label`."""
        last = after_label
        while True:
            rows = self.conn.execute("SELECT label, vec FROM entries WHERE label > ? ORDER BY label LIMIT ?",
                                     (last, batch)).fetchall()
            if not rows:
                return
            labels = np.fromiter((r[0] for r in rows), dtype=np.uint64, count=len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float16).reshape(len(rows), self.dim)
            yield labels, vecs.astype(np.float32)
            last = int(labels[-1])

    def labels_to_posts(self, labels: list[int]) -> dict[int, tuple[str, int, int]]:
        """label -> (post id, passage start, passage end) for the labels that are still live."""
        out: dict[int, tuple[str, int, int]] = {}
        for i in range(0, len(labels), 500):
            chunk = labels[i:i + 500]
            for label, pid, start, end in self.conn.execute(
                f"SELECT label, post_id, start, end FROM entries WHERE label IN ({','.join('?' * len(chunk))})", chunk
            ):
                out[label] = (pid, start, end)
        return out

    def post_vectors(self, post_ids: list[str]) -> dict[str, list[tuple[int, int, int, np.ndarray]]]:
        """post id -> [(passage, start, end, vector float32)] for the given posts that have vectors."""
        out: dict[str, list] = {}
        for i in range(0, len(post_ids), 500):
            chunk = post_ids[i:i + 500]
            for pid, passage, start, end, vec in self.conn.execute(
                f"SELECT post_id, passage, start, end, vec FROM entries WHERE post_id IN ({','.join('?' * len(chunk))}) "
                "ORDER BY post_id, passage", chunk
            ):
                out.setdefault(pid, []).append((passage, start, end, np.frombuffer(vec, dtype=np.float16).astype(np.float32)))
        return out


# -- filling ----------------------------------------------------------------------------------
@contextmanager
def _fill_lock(directory: Path, wait: bool = True):
    """One filler per model folder (across processes); yields False when busy and not waiting."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "fill.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


_worker_embedder: Embedder | None = None


def _worker_init(model: str, threads: int) -> None:
    global _worker_embedder
    try:  # Linux: die with the filler (a killed filler must not leave workers embedding on)
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
        if os.getppid() == 1:
            os._exit(0)   # the filler died before we got here
    except (OSError, AttributeError):
        pass
    os.environ["TGSEARCH_EMBED_THREADS"] = str(threads)
    _worker_embedder = get_embedder(model)


def _worker_embed(texts: list[str]) -> np.ndarray:
    assert _worker_embedder is not None
    return _worker_embedder.embed_documents(texts)


def default_workers() -> int:
    value = os.environ.get("TGSEARCH_EMBED_WORKERS")
    if value and value.isdigit():
        return max(1, int(value))
    return max(1, min(2, os.cpu_count() or 1))


def fill(store: Store, model: str | None = None, *, embedder: Embedder | None = None, batch: int = 256,
         wait: bool = True, stop: threading.Event | None = None,
         on_batch: Callable[[int, int], None] | None = None, save_index: bool = True,
         workers: int | None = None) -> int:
    """Embed every post written since the index's high-water mark; returns how many were embedded.

    Safe to kill at any point and to re-run: each batch commits its vectors with the new
    high-water mark, in store-version order (also with `workers` > 1 embedding processes,
    whose results are written in order). Only one filler works per model folder; with
    `wait=False` a busy folder returns 0 at once.
    """
    workers = workers or default_workers()
    if workers > 1 and embedder is None and _backlog(store, model or active_model(store)) > 2 * batch:
        return _fill_parallel(store, model or active_model(store), batch=batch, wait=wait, stop=stop,
                              on_batch=on_batch, save_index=save_index, workers=workers)
    model = model or active_model(store)
    embedder = embedder or get_embedder(model)
    directory = vectors_dir(store.root, model)
    done = 0
    with _fill_lock(directory, wait=wait) as locked:
        if not locked:
            return 0
        vstore = VectorStore(directory, embedder.name, embedder.dim)
        try:
            pending: list[tuple[int, Post]] = []

            def flush() -> None:
                nonlocal done
                if not pending:
                    return
                rows = _rows(pending)
                vectors = embedder.embed_documents([r[2].text for r in rows]) if rows else []
                vstore.write_batch([(pid, ver, p, vec) for (pid, ver, p), vec in zip(rows, vectors)],
                                   hwm=max(v for v, _ in pending), dropped=[p.id for _, p in pending if p.deleted])
                done += len(pending)
                pending.clear()
                if on_batch:
                    on_batch(done, vstore.hwm)

            for version, post in store.iter_since(vstore.hwm, batch=batch):
                pending.append((version, post))
                if len(pending) >= batch:
                    flush()
                    if stop is not None and stop.is_set():
                        break
            else:
                flush()
            if save_index and done:
                HNSW(directory, vstore).sync(save=True)
        finally:
            vstore.close()
    return done


def _backlog(store: Store, model: str) -> int:
    """Posts written since the model's high-water mark (enough to be worth a process pool?)."""
    path = vectors_dir(store.root, model) / "vectors.sqlite"
    hwm = 0
    if path.exists():
        conn = sqlite3.connect(path, timeout=30)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='hwm'").fetchone()
            hwm = int(row[0]) if row else 0
        except sqlite3.Error:
            hwm = 0
        finally:
            conn.close()
    return store.conn.execute("SELECT COUNT(*) FROM posts WHERE version > ?", (hwm,)).fetchone()[0]


def _batches(store: Store, hwm: int, batch: int):
    pending: list[tuple[int, Post]] = []
    for version, post in store.iter_since(hwm, batch=batch):
        pending.append((version, post))
        if len(pending) >= batch:
            yield pending
            pending = []
    if pending:
        yield pending


def _fill_parallel(store: Store, model: str, *, batch: int, wait: bool, stop, on_batch, save_index: bool,
                   workers: int) -> int:
    """`fill` with several embedding processes (one BLAS thread each), written in version order."""
    import multiprocessing

    embedder = get_embedder(model)   # name and dim only: the model itself loads in the workers
    directory = vectors_dir(store.root, model)
    done = 0
    with _fill_lock(directory, wait=wait) as locked:
        if not locked:
            return 0
        vstore = VectorStore(directory, embedder.name, embedder.dim)
        ctx = multiprocessing.get_context("spawn")
        try:
            with ctx.Pool(workers, initializer=_worker_init, initargs=(model, 1)) as pool:
                def jobs():
                    for posts in _batches(store, vstore.hwm, batch):
                        yield posts, _rows(posts)

                pending = []
                for posts, rows in jobs():
                    pending.append((posts, rows, pool.apply_async(_worker_embed, ([r[2].text for r in rows],))))
                    while len(pending) > workers or (pending and pending[0][2].ready()):
                        done += _write(vstore, *pending.pop(0), on_batch=on_batch, done=done)
                    if stop is not None and stop.is_set():
                        break
                while pending:
                    done += _write(vstore, *pending.pop(0), on_batch=on_batch, done=done)
            if save_index and done:
                HNSW(directory, vstore).sync(save=True)
        finally:
            vstore.close()
    return done


def _rows(posts: list[tuple[int, Post]]) -> list[tuple[str, int, Passage]]:
    """(post id, version, passage) to embed for a batch; a post deleted at the source has none."""
    return [(post.id, version, p) for version, post in posts if not post.deleted for p in passages_for(post)]


def _write(vstore: VectorStore, posts, rows, result, *, on_batch, done: int) -> int:
    vectors = result.get()
    vstore.write_batch([(pid, ver, p, vec) for (pid, ver, p), vec in zip(rows, vectors)],
                       hwm=max(v for v, _ in posts), dropped=[p.id for _, p in posts if p.deleted])
    if on_batch:
        on_batch(done + len(posts), vstore.hwm)
    return len(posts)


class VectorFiller:
    """Background thread that keeps a model's vectors up with the store."""

    def __init__(self, store: Store, model: str | None = None, *, embedder: Embedder | None = None,
                 on_batch: Callable[[int, int], None] | None = None):
        self.store = store
        self.model = model or active_model(store)
        self.embedder = embedder
        self.on_batch = on_batch
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.filled = 0

    def start(self) -> "VectorFiller":
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="tgsearch-vector-filler", daemon=True)
            self._thread.start()
        self.poke()
        return self

    def poke(self) -> None:
        """New posts were written: fill them."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=5.0)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.filled += fill(self.store, self.model, embedder=self.embedder, stop=self._stop,
                                    on_batch=self.on_batch, wait=False, save_index=True)
                self.error = None
            except BaseException as e:  # noqa: BLE001 - keep serving; error is surfaced in stats
                self.error = e
                time.sleep(1.0)

    def stop(self, timeout: float | None = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def spawn_filler(root: str | os.PathLike, model: str | None = None, *, log: str | os.PathLike | None = None):
    """Start a detached `python -m tgsearch.index.vectors fill` process; returns its Popen."""
    import subprocess

    args = [sys.executable, "-m", "tgsearch.index.vectors", "fill", "--db", str(root), "--quiet"]
    if model:
        args += ["--model", model]
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(args, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        if log:
            out.close()


# -- the searchable graph ---------------------------------------------------------------------
class HNSW:
    """usearch graph over a VectorStore; loaded from its saved file and topped up from sqlite."""

    def __init__(self, directory: Path, vstore: VectorStore, quant: str | None = None):
        self.dir = directory
        self.vstore = vstore
        self.quant = quant or os.environ.get("TGSEARCH_VECTOR_QUANT") or DEFAULT_QUANT
        if self.quant not in QUANTS:
            raise StoreError(f"TGSEARCH_VECTOR_QUANT={self.quant!r}: choose one of {', '.join(QUANTS)}")
        self.index = None
        self.max_label = 0
        self._lock = threading.RLock()

    @property
    def path(self) -> Path:
        return self.dir / f"hnsw-{self.quant}.usearch"

    @property
    def info_path(self) -> Path:
        return self.dir / f"hnsw-{self.quant}.json"

    def _new(self):
        from usearch.index import Index

        return Index(ndim=self.vstore.dim, metric="cos", dtype=self.quant, connectivity=16,
                     expansion_add=128, expansion_search=96)

    def load(self) -> None:
        from usearch.index import Index

        with self._lock:
            self.index, self.max_label = self._new(), 0
            try:
                info = json.loads(self.info_path.read_text())
                if (info.get("model") == self.vstore.model and info.get("dim") == self.vstore.dim
                        and self.path.exists()):
                    index = Index.restore(str(self.path))
                    if index is not None and index.ndim == self.vstore.dim:
                        self.index, self.max_label = index, int(info.get("max_label", 0))
            except (OSError, ValueError, RuntimeError):
                pass  # a missing or torn cache file: rebuild from vectors.sqlite

    def sync(self, save: bool = False) -> int:
        """Add entries written since the last sync, drop deleted ones; returns how many were added."""
        with self._lock:
            if self.index is None:
                self.load()
            added = 0
            for labels, vecs in self.vstore.iter_entries(self.max_label):
                fresh = ~np.asarray(self.index.contains(labels), dtype=bool)
                if fresh.any():
                    self.index.add(labels[fresh], vecs[fresh], threads=2)
                    added += int(fresh.sum())
                self.max_label = int(labels[-1])
            live = self.vstore.count_entries()
            if len(self.index) != live:
                added += self._reconcile()
            # a reader that had to (re)build much of the graph keeps it for the next process
            if (save and (added or not self.path.exists())) or added >= SAVE_AFTER:
                self.save()
            return added

    def _reconcile(self) -> int:
        """Make the graph hold exactly the live entries: drop deleted ones, add any missing (a
        graph file saved by another process may lag its info file). Returns how many were added."""
        keys = np.asarray(self.index.keys, dtype=np.uint64)
        live = np.fromiter((r[0] for r in self.vstore.conn.execute("SELECT label FROM entries")), dtype=np.uint64)
        stale = np.setdiff1d(keys, live)
        if len(stale):
            self.index.remove(stale)
        missing = np.setdiff1d(live, keys)
        for i in range(0, len(missing), 500):
            chunk = [int(x) for x in missing[i:i + 500]]
            rows = self.vstore.conn.execute(
                f"SELECT label, vec FROM entries WHERE label IN ({','.join('?' * len(chunk))})", chunk).fetchall()
            if rows:
                labels = np.array([r[0] for r in rows], dtype=np.uint64)
                vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float16).reshape(len(rows), self.vstore.dim)
                self.index.add(labels, vecs.astype(np.float32))
        return len(missing)

    def save(self) -> None:
        tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        self.index.save(str(tmp))
        os.replace(tmp, self.path)
        info_tmp = self.info_path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.jtmp")
        info_tmp.write_text(json.dumps({"model": self.vstore.model, "dim": self.vstore.dim,
                                        "quant": self.quant, "max_label": self.max_label}))
        os.replace(info_tmp, self.info_path)

    def search(self, query: np.ndarray, count: int, exact: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(labels, cosine similarities) of the nearest passages (exhaustive up to EXACT_BELOW vectors)."""
        with self._lock:
            if self.index is None or len(self.index) == 0:
                return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.float32)
            count = min(count, len(self.index))
            if exact is None:
                exact = len(self.index) <= EXACT_BELOW
            matches = self.index.search(query.astype(np.float32), count, exact=exact)
            return np.asarray(matches.keys, dtype=np.uint64), 1.0 - np.asarray(matches.distances, dtype=np.float32)


class VectorIndex:
    """The reader side: query the vectors of one model in one data folder."""

    def __init__(self, store: Store, model: str | None = None, *, embedder: Embedder | None = None,
                 quant: str | None = None, create: bool = True):
        self.store = store
        self.model = model or active_model(store)
        self.embedder = embedder or get_embedder(self.model)
        if self.embedder.name != self.model:
            raise IndexMismatchError(f"embedder {self.embedder.name} cannot serve the {self.model} vector index")
        self.dir = vectors_dir(store.root, self.model)
        self.vstore = VectorStore(self.dir, self.embedder.name, self.embedder.dim, create=create)
        self.graph = HNSW(self.dir, self.vstore, quant)
        self._synced_at = 0.0
        self._seen_max_label = -1

    def refresh(self, *, min_interval: float = 0.5) -> None:
        """Pick up vectors a filler committed since the last look (cheap when nothing changed)."""
        now = time.monotonic()
        if now - self._synced_at < min_interval and self._seen_max_label >= 0:
            return
        self._synced_at = now
        max_label = self.vstore.max_label()
        count = self.vstore.count_entries()
        if max_label != self._seen_max_label or self.graph.index is None or len(self.graph.index) != count:
            self.graph.sync()
            self._seen_max_label = max_label

    def embed_query(self, text: str) -> np.ndarray:
        return self.embedder.embed_queries([text])[0]

    def search_vector(self, qvec: np.ndarray, limit: int = 100) -> list[tuple[str, float, tuple[int, int]]]:
        """[(post id, best cosine, best passage's span in post.text)] for the posts nearest to a query vector."""
        self.refresh()
        labels, sims = self.graph.search(qvec, count=limit * 2)
        if len(labels) == 0:
            return []
        owners = self.vstore.labels_to_posts([int(x) for x in labels])
        best: dict[str, tuple[float, tuple[int, int]]] = {}
        for label, sim in zip(labels, sims):
            owner = owners.get(int(label))
            if owner is None:
                continue  # deleted since the graph was built
            pid, start, end = owner
            if pid not in best or sim > best[pid][0]:
                best[pid] = (float(sim), (start, end))
        ranked = sorted(best.items(), key=lambda kv: -kv[1][0])[:limit]
        return [(pid, sim, span) for pid, (sim, span) in ranked]

    def score_posts(self, qvec: np.ndarray, post_ids: list[str]) -> dict[str, tuple[float, int, int, int]]:
        """Exact cosine of the query with given posts: post id -> (sim, passage, start, end), best passage."""
        out: dict[str, tuple[float, int, int, int]] = {}
        for pid, entries in self.vstore.post_vectors(post_ids).items():
            mat = np.stack([e[3] for e in entries])
            sims = mat @ qvec
            i = int(np.argmax(sims))
            out[pid] = (float(sims[i]), entries[i][0], entries[i][1], entries[i][2])
        return out

    def status(self) -> dict:
        total = self.store.count()
        with_vectors = self.vstore.count_posts()
        return {"model": self.model, "dim": self.embedder.dim, "posts_with_vectors": with_vectors,
                "posts": total, "vectors": self.vstore.count_entries(), "hwm": self.vstore.hwm,
                "store_version": self.store.max_version(), "complete": self.vstore.hwm >= self.store.max_version(),
                "quant": self.graph.quant}

    def close(self) -> None:
        self.vstore.close()


def vector_status(store: Store, model: str | None = None) -> dict:
    """How far the vectors of `model` are, without loading the model (for `tgsearch stats`)."""
    model = model or active_model(store)
    directory = vectors_dir(store.root, model)
    out = {"model": model, "posts": store.count(), "posts_with_vectors": 0, "vectors": 0, "complete": False}
    path = directory / "vectors.sqlite"
    if not path.exists():
        return out
    conn = sqlite3.connect(path, timeout=30)
    try:
        out["posts_with_vectors"] = conn.execute("SELECT COUNT(DISTINCT post_id) FROM entries").fetchone()[0]
        out["vectors"] = conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        row = conn.execute("SELECT value FROM meta WHERE key='hwm'").fetchone()
        hwm = int(row[0]) if row else 0
        out["complete"] = hwm >= store.max_version()
    except sqlite3.Error:
        pass
    finally:
        conn.close()
    return out


FILL_MODES = ("process", "thread", "sync", "off")


class VectorService:
    """The vector side of a data folder, as the backend sees it.

    `mode` (env ``TGSEARCH_VECTORS``) says how new posts get vectors after a write:
    ``process`` (default) -- a detached ``python -m tgsearch.index.vectors fill`` process, so
    lexical search serves at once and the vectors complete in the background, even after the
    CLI exits; ``thread`` -- a thread in this process; ``sync`` -- before the write returns;
    ``off`` -- not at all (vectors already on disk are still searched).
    """

    def __init__(self, store: Store, mode: str | None = None):
        self.store = store
        self.mode = (mode or os.environ.get("TGSEARCH_VECTORS") or "process").lower()
        if self.mode not in FILL_MODES:
            raise StoreError(f"TGSEARCH_VECTORS={self.mode!r}: choose one of {', '.join(FILL_MODES)}")
        self._index: VectorIndex | None = None
        self._filler: VectorFiller | None = None
        self._proc = None

    @property
    def model(self) -> str:
        return active_model(self.store)

    def available(self) -> bool:
        """Whether semantic search is on for this folder (filling, or vectors on disk)."""
        return self.mode != "off" or (vectors_dir(self.store.root, self.model) / "vectors.sqlite").exists()

    @property
    def index(self) -> VectorIndex:
        if self._index is None or self._index.model != self.model:
            self._index = VectorIndex(self.store, self.model)
        return self._index

    def complete(self) -> bool:
        return vector_status(self.store, self.model)["complete"]

    def after_write(self) -> None:
        """New posts are in the store: get them vectors according to the mode."""
        if self.mode == "off" or self.store.count() == 0:
            return
        if self.mode == "sync":
            fill(self.store, self.model)
        elif self.mode == "thread":
            if self._filler is None or self._filler.model != self.model:
                if self._filler is not None:
                    self._filler.stop()
                self._filler = VectorFiller(self.store, self.model)
            self._filler.start()
        elif not self.complete():
            if self._proc is None or self._proc.poll() is not None:
                directory = vectors_dir(self.store.root, self.model)
                directory.mkdir(parents=True, exist_ok=True)
                self._proc = spawn_filler(self.store.root, self.model, log=directory / "fill.log")

    def catch_up(self) -> None:
        """On open: resume an interrupted fill (a crash or a kill) in the background."""
        if self.mode in ("process", "thread") and self.store.count() and not self.complete():
            self.after_write()

    def fill(self, on_batch: Callable[[int, int], None] | None = None) -> int:
        """Embed everything missing now, in this process."""
        return fill(self.store, self.model, on_batch=on_batch)

    def switch(self, model: str, on_batch: Callable[[int, int], None] | None = None) -> int:
        """Make `model` the folder's embedding model and build its vectors from scratch."""
        embedder = get_embedder(model)   # unknown names fail before anything changes
        reset(self.store.root, embedder.name)
        self.store.set_meta(ACTIVE_META_KEY, embedder.name)
        self._index = None
        # By name, not with `embedder`: a large folder then embeds in worker processes (fill).
        return fill(self.store, embedder.name, on_batch=on_batch)

    def status(self) -> dict:
        out = vector_status(self.store, self.model)
        out["mode"] = self.mode
        if self._filler is not None and self._filler.error is not None:
            out["error"] = str(self._filler.error)
        return out

    def close(self) -> None:
        if self._filler is not None:
            self._filler.stop()
        if self._index is not None:
            self._index.close()


def reset(root: str | os.PathLike, model: str) -> None:
    """Delete a model's vector folder (it is derived; the next fill rebuilds it)."""
    import shutil

    directory = vectors_dir(root, model)
    if not directory.exists():
        return
    with _fill_lock(directory, wait=True):
        for child in directory.iterdir():
            if child.name not in ("fill.lock", "fill.log"):
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tgsearch.index.vectors",
                                     description="Fill the vector index of a data folder from its store.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fill", help="embed every post not yet embedded (resumable)")
    p.add_argument("--db", required=True)
    p.add_argument("--model", default=None)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--workers", type=int, default=None, help="embedding processes (default: TGSEARCH_EMBED_WORKERS or 2)")
    p.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    store = Store(args.db, create=False)
    started = time.perf_counter()

    def report(done: int, hwm: int) -> None:
        if not args.quiet:
            rate = done / max(time.perf_counter() - started, 1e-9)
            print(f"embedded {done} posts (store version {hwm}, {rate:.0f} posts/s)", flush=True)

    stop = threading.Event()

    def watch_folder() -> None:
        # A filler outlives the command that started it; when its data folder is deleted
        # (a temporary folder, `rm -r`), embedding the rest would only burn CPU for nothing.
        while not stop.wait(1.0):
            if not store.path.exists():
                stop.set()

    threading.Thread(target=watch_folder, daemon=True).start()
    try:
        n = fill(store, args.model, batch=args.batch, on_batch=report, workers=args.workers, stop=stop)
    except (OSError, sqlite3.Error, RuntimeError):  # RuntimeError: usearch saving its graph
        if not store.path.exists():
            return 0  # the folder went away mid-batch: nothing left to fill
        raise
    stop.set()
    import resource

    wall = time.perf_counter() - started
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)
    # one summary line, also in quiet mode (the background filler's log): what a bench reads
    print(json.dumps({"filled": n, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                      "posts_per_s": round(n / wall, 1) if wall else None,
                      "posts_per_cpu_s": round(n / cpu, 1) if cpu else None,
                      "load_average": os.getloadavg()}), flush=True)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
