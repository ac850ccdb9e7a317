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
in a thread or a detached process (``python -m tgsearch.index.vectors fill``) -- while lexical
search serves at once: see index/vector_fill.py, and index/vector_service.py for how the backend
drives it. Readers (`VectorIndex`) pick up new rows as they land; a read-only reader (the CLI's
read-only commands) creates and saves nothing.

Per-post passage choice: a post up to ``SHORT_CHARS`` is one vector (title + text). A longer post
gets a title + lead passage and up to ``MAX_PASSAGES - 1`` further passages of about
``PASSAGE_CHARS`` cut at sentence ends; a post's score is its best passage's score, and the span
of that passage is what a semantic-only hit's snippet shows.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from ..analyze.embed import DEFAULT_MODEL, Embedder, clean_for_embedding, get_embedder
from ..errors import IndexMismatchError, StoreError
from ..post import Post
from ..store import Store, ThreadConnections

if TYPE_CHECKING:
    from .guard import DataFolder

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

    def __init__(self, directory: Path, model: str, dim: int, *, create: bool = True,
                 folder: "DataFolder | None" = None):
        self.dir = Path(directory)
        self.model = model
        self.dim = dim
        self.path = self.dir / "vectors.sqlite"
        if not self.path.exists() and not create:
            raise StoreError(f"{self.path}: no vector index for {model} here (run `tgsearch reindex --vectors {model}`)")
        if folder is not None:
            folder.mkdirs(self.dir)   # inside the data folder as it was found; never recreates it
        elif create:
            self.dir.mkdir(parents=True, exist_ok=True)
        self._conns = ThreadConnections(self.path, timeout=60, what="vector store")
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
        return self._conns.get()

    def close(self) -> None:
        self._conns.close()

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


# -- the searchable graph ---------------------------------------------------------------------
class HNSW:
    """usearch graph over a VectorStore; loaded from its saved file and topped up from sqlite."""

    def __init__(self, directory: Path, vstore: VectorStore, quant: str | None = None, *, read_only: bool = False):
        self.dir = directory
        self.vstore = vstore
        self.read_only = read_only   # never save the graph (a read-only command)
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
            if not self.read_only and ((save and (added or not self.path.exists())) or added >= SAVE_AFTER):
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
                 quant: str | None = None, create: bool = True, read_only: bool = False,
                 folder: "DataFolder | None" = None):
        self.store = store
        self.model = model or active_model(store)
        self.embedder = embedder or get_embedder(self.model)
        if self.embedder.name != self.model:
            raise IndexMismatchError(f"embedder {self.embedder.name} cannot serve the {self.model} vector index")
        self.dir = vectors_dir(store.root, self.model)
        self.vstore = VectorStore(self.dir, self.embedder.name, self.embedder.dim, create=create and not read_only,
                                  folder=None if read_only else folder)
        self.graph = HNSW(self.dir, self.vstore, quant, read_only=read_only)
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
    """How far the vectors of `model` are, without loading the model (for `tgsearch stats`):
    `behind` is how many store versions are not embedded yet. Never creates a file."""
    model = model or active_model(store)
    directory = vectors_dir(store.root, model)
    top = store.max_version()
    out = {"model": model, "posts": store.count(), "posts_with_vectors": 0, "vectors": 0, "hwm": 0,
           "behind": top, "complete": False}
    path = directory / "vectors.sqlite"
    if not path.exists():
        return out
    try:
        conn = sqlite3.connect(Path(path).absolute().as_uri() + "?mode=rw", uri=True, timeout=30)
    except sqlite3.Error:
        return out
    try:
        out["posts_with_vectors"] = conn.execute("SELECT COUNT(DISTINCT post_id) FROM entries").fetchone()[0]
        out["vectors"] = conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        row = conn.execute("SELECT value FROM meta WHERE key='hwm'").fetchone()
        out["hwm"] = hwm = int(row[0]) if row else 0
        out["behind"] = max(0, top - hwm)
        out["complete"] = hwm >= top
    except sqlite3.Error:
        pass
    finally:
        conn.close()
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m tgsearch.index.vectors fill --db FOLDER`` (index/vector_fill.py)."""
    from .vector_fill import main as fill_main

    return fill_main(argv)


if __name__ == "__main__":
    sys.exit(main())
