"""The server backend: the store, lexical index, vectors and stories in one PostgreSQL database.

`open_backend("postgresql://...")` (the CLI's `--db URL`, `TGSEARCH_DB`) gives a `PgBackend`; it
implements the same Backend protocol as the embedded one (one contract suite runs on both):
- posts: pg/store.py (monthly partitions; versions from a sequence; readers of changes follow
  transaction ids, so concurrent writers never make a reader skip a row);
- lexical: pg/lexical_sql.py, written in the post's own transaction (always current), searched
  through the same engine (search/engine.py) as the embedded backend;
- vectors: pg/vectors.py (pgvector), caught up after each write (`vectors`: "sync", the default, or
  "off"; TGSEARCH_VECTORS), and by the worker of `serve`;
- stories, copies, entities: pg/stories.py, caught up the same way (TGSEARCH_STORIES).
Derived work that another process is doing (an advisory lock per kind) is left to it.
Many processes may read and write one database at once; `read_replica` sends searches to a
streaming replica while writes go to the primary.
"""

from __future__ import annotations

import os
import threading
from typing import Callable

from ..backend import BackendBase, state_dir
from ..errors import StoreError
from ..index.vector_fill import _worker_embed, _worker_init, default_workers
from ..ingest import FileReport, IngestReport, ingest
from . import lexical_sql
from .store import PgStore

LOCK_VECTORS = 7_301_001      # advisory lock keys: one catch-up writer per kind
LOCK_SCHEMA = 7_301_000
BATCH = 256
POOL_FROM = 2000          # posts behind from which vectors are embedded in worker processes
SPAWN_FROM = 1000         # a serve/watch worker leaves a backlog this big to the detached catch-up process
EXACT_BELOW = 5000        # passages: below this an exact scan (deterministic), above it the HNSW index


def _vector_index(conn, model: str | None, **kw):
    """A pgvector index; an exact scan reads every vector from the server per query, so HNSW
    answers above EXACT_BELOW passages."""
    from .vectors import PgVectorIndex

    index = PgVectorIndex(conn, model, **kw)
    index.exact_below = EXACT_BELOW
    return index


def _mode(env: str, given: str | None) -> str:
    """off | sync (in the writing command) | process (default: a detached catch-up process)."""
    mode = (given or os.environ.get(env) or "process").lower()
    return mode if mode in ("off", "sync") else "process"


class PgBackend(BackendBase):
    def __init__(self, url: str, *, create: bool = True, read_only: bool = False, worker: bool = False,
                 analyzer=None, vectors: str | None = None, stories: str | None = None,
                 read_replica: str | None = None):
        self.url = url
        self.read_only = read_only
        # local files of this deployment (sources file, Telegram session, watch lock): TGSEARCH_STATE
        self.root = state_dir(url)
        self._analyzer = analyzer
        self.store = PgStore(url, create=create and not read_only, on_write=self._on_write)
        self.where = self.store.where
        # searches read from a replica when given (a streaming standby: read-only, slightly behind)
        self.reader = PgStore(read_replica, create=False) if read_replica else self.store
        if not read_only:
            self._ensure_schema()
        self.vectors_mode = _mode("TGSEARCH_VECTORS", vectors)
        self.stories_mode = _mode("TGSEARCH_STORIES", stories)
        self._vectors = None
        self._engine = None
        self._stories = None
        self._open_lock = threading.RLock()
        self._proc = None
        self.worker = None
        if worker:
            from .worker import PgWorker

            self.worker = PgWorker(self).start()

    # -- schema and the write hook -------------------------------------------------------------
    def _ensure_schema(self) -> None:
        conn = self.store.conn
        if lexical_sql.schema_complete(conn):
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_SCHEMA,))
            lexical_sql.ensure_schema(conn)

    @property
    def analyzer(self):
        if self._analyzer is None:
            from ..analyze.analyzer import default_analyzer

            self._analyzer = default_analyzer()
        return self._analyzer

    def _on_write(self, cur, changed: list, deleted_ids: list[str]) -> None:
        lexical_sql.write(cur, changed, deleted_ids, self.analyzer)

    def _writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.where}: opened read-only")

    # -- writes --------------------------------------------------------------------------------
    def ingest(self, paths, *, encoding: str | None = None, format: str | None = None, channel: str | None = None,
               on_file: Callable[[FileReport], None] | None = None,
               on_posts: Callable[[int], None] | None = None, on_derived=None) -> IngestReport:
        self._writable()
        report = ingest(self.store, paths, encoding=encoding, format=format, channel=channel,
                        on_file=on_file, on_posts=on_posts)
        self.after_write(on_progress=on_derived)
        return report

    def after_write(self, *, wait: bool = True, on_progress=None, **_) -> None:
        """Lexical rows are already written (searchable now); vectors and stories follow: in the
        worker (serve, watch), in this command ("sync"), or in a detached catch-up process ("process",
        the default: `tgsearch ingest` returns when the posts are stored and searchable)."""
        self._writable()
        if self.worker is not None:
            self.worker.poke()
            return
        self.catch_up(on_progress=on_progress, modes=("sync",))
        if "process" in (self.vectors_mode, self.stories_mode):
            from .catchup import spawn

            self._proc = spawn(self.url, self._proc)

    def catch_up(self, on_progress=None, stop: threading.Event | None = None, modes=("sync", "process")) -> dict:
        """Vectors then stories for every post written since their marks (each skipped while another
        process holds its lock: it is doing that work)."""
        done = {}
        if self.vectors_mode in modes:
            done["vectors"] = self._catch_up_vectors(on_progress, stop)
        if self.stories_mode in modes:
            done["stories"] = self.stories.catch_up(on_progress=on_progress, stop=stop)
        return done

    def backlog(self, upto: int) -> int:
        """Posts behind the derived data ("process" kinds), counted no further than `upto`."""
        behind = 0
        if self.vectors_mode == "process":
            mark = int(self.store.get_meta(f"vectors_mark:{self.vectors.model}") or 0)
            behind = self.store.count_changed(mark, upto)
        if self.stories_mode == "process" and behind < upto:
            behind = max(behind, self.store.count_changed(self.stories.index.mark(), upto))
        return behind

    def hand_off(self) -> bool:
        """A worker's round with a big backlog (a first load): the detached catch-up process does it
        at low priority, so the searches of this process keep the CPU; True when it is at it."""
        if "process" not in (self.vectors_mode, self.stories_mode) or self.read_only:
            return False
        if self.backlog(SPAWN_FROM) < SPAWN_FROM:
            return False
        from .stories import LOCK as LOCK_STORIES

        if not (self._lock_held(LOCK_VECTORS) or self._lock_held(LOCK_STORIES)):
            from .catchup import spawn

            self._proc = spawn(self.url, self._proc)
        return True

    def _lock_held(self, key: int) -> bool:
        # advisory locks live on the primary (a replica's pg_locks does not show them)
        return bool(self.store.conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                             "AND objid = %s AND granted", (key,)).fetchone()[0])

    def _try_lock(self, conn, key: int) -> bool:
        return bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0])

    def _catch_up_vectors(self, on_progress=None, stop=None) -> int | None:
        vectors = self.vectors
        conn = self.store.conn
        if not self._try_lock(conn, LOCK_VECTORS):
            return None
        pool = None
        try:
            key = f"vectors_mark:{vectors.model}"
            mark = int(self.store.get_meta(key) or 0)
            until = self.store.snapshot_mark()
            workers = default_workers()
            if workers > 1 and self.store.count_changed(mark) >= POOL_FROM:
                import multiprocessing

                # a big backlog (a first ingest): embedding processes with one BLAS thread each
                pool = multiprocessing.get_context("spawn").Pool(
                    workers, initializer=_worker_init, initargs=(vectors.model, 1, os.getpid()))
            done, pending = 0, []

            def write(item) -> None:
                nonlocal done
                posts, todo, result = item
                vecs = result.get() if pool is not None else result
                vectors.write_embedded(posts, todo, vecs)
                done += len(posts)
                if on_progress:
                    on_progress("vectors", done)

            batch: list = []

            def submit(batch) -> None:
                posts, todo = vectors.passages(batch)
                texts = [p.text for _, p in todo]
                if pool is not None:
                    pending.append((posts, todo, pool.apply_async(_worker_embed, (texts,))))
                    while len(pending) > workers or (pending and pending[0][2].ready()):
                        write(pending.pop(0))
                else:
                    write((posts, todo, vectors._embed(texts)))

            for post in self.store.iter_changed(mark, until):
                batch.append(post)
                if len(batch) >= BATCH:
                    submit(batch)
                    batch = []
                    if stop is not None and stop.is_set():
                        while pending:
                            write(pending.pop(0))
                        return done      # the mark stays: the next catch-up redoes what is left
            if batch:
                submit(batch)
            while pending:
                write(pending.pop(0))
            self.store.set_meta(key, str(until))
            return done
        finally:
            if pool is not None:
                pool.terminate()
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_VECTORS,))

    def vacuum(self) -> None:
        """VACUUM ANALYZE the search tables (index-only scans of the postings need the visibility map;
        autovacuum does the same later)."""
        for table in ("lex_postings", "lex_docs", "lex_terms", "posts"):
            self.store.conn.execute(f"VACUUM (ANALYZE) {table}")

    # -- derived parts -------------------------------------------------------------------------
    @property
    def vectors(self):
        if self._vectors is None:
            with self._open_lock:
                if self._vectors is None:
                    model = self.store.get_meta("vectors_model") or None
                    self._vectors = _vector_index(lambda: self.store.conn, model)
                    if model is None and not self.read_only:
                        self.store.set_meta("vectors_model", self._vectors.model)
        return self._vectors

    @property
    def stories(self):
        if self._stories is None:
            with self._open_lock:
                if self._stories is None:
                    from .stories import PgStoryService

                    self._stories = PgStoryService(self, self.stories_mode)
        return self._stories

    def semantic_available(self) -> bool:
        if self.vectors_mode == "off":
            return False
        try:      # vectors, or posts they are being made for
            return self.vectors.count_posts() > 0 or self.reader.count() > 0
        except StoreError:
            return False

    @property
    def engine(self):
        if self._engine is None:
            with self._open_lock:
                if self._engine is None:
                    from ..search.engine import Engine
                    from ..search.semantic import SemanticRetriever

                    reader = self.reader
                    lexical = lexical_sql.PgLexical(lambda: reader.conn, self.analyzer, None, hwm=reader.max_version)
                    engine = Engine(reader, lexical)
                    lexical.resolve = engine.resolve
                    if self.semantic_available():
                        vectors = self.vectors
                        if reader is not self.store:     # searches read the replica's vectors
                            vectors = _vector_index(lambda: reader.conn, vectors.model, embedder=vectors.embedder)
                        engine.add_retriever(SemanticRetriever(reader, vectors, resolve=engine.resolve))
                    if self.stories_mode != "off" or self.stories.index.hwm() > 0:
                        engine.stories = self.stories.index
                    self._engine = engine
        return self._engine

    # -- state ---------------------------------------------------------------------------------
    def health(self) -> dict:
        n = self.reader.conn.execute("SELECT coalesce(sum(docs), 0) FROM lex_stats").fetchone()[0]   # kept by the writers
        return {"status": "ok", "indexed": int(n), "hwm": self.reader.max_version()}

    def check(self) -> dict:
        """Posts against their lexical rows (written in one transaction, so they agree unless a
        table was changed by hand; `tgsearch reindex` rewrites them)."""
        conn = self.reader.conn
        live = set(self.reader.ids_and_versions())
        indexed = {r[0] for r in conn.execute("SELECT post_id FROM lex_docs")}
        missing, extra = sorted(live - indexed), sorted(indexed - live)
        top = self.reader.max_version()
        return {"store_posts": len(live), "indexed_posts": len(indexed), "hwm": top, "store_version": top,
                "behind": 0, "missing": missing[:20], "missing_count": len(missing), "extra": extra[:20],
                "extra_count": len(extra), "analyzer": f"{self.analyzer.name} {self.analyzer.version}",
                "ok": not missing and not extra}

    def stats(self) -> dict:
        data = self.reader.stats()
        top = self.reader.max_version()
        n = self.reader.conn.execute("SELECT count(*) FROM lex_docs").fetchone()[0]
        data["index"] = {"indexed": int(n), "hwm": top, "store_version": top, "behind": 0,
                         "analyzer": f"{self.analyzer.name} {self.analyzer.version}"}
        if self.vectors_mode != "off":
            v = self.vectors.status()
            mark = int(self.store.get_meta(f"vectors_mark:{self.vectors.model}") or 0)
            behind = self.store.count_changed(mark)
            if self._lock_held(LOCK_VECTORS):     # a catch-up is running: its mark moves at the end
                behind = min(behind, max(0, data["posts"] - v["posts_with_vectors"]))
            data["vectors"] = {**v, "posts": data["posts"], "behind": behind, "complete": behind == 0}
        else:
            data["vectors"] = {"model": None, "complete": False}
        data["stories"] = self.stories.status()
        data["backend"] = "postgresql"
        if self.worker is not None:
            data["worker"] = self.worker.status()
        return data

    def reindex(self, on_progress=None) -> int:
        """Rewrite every post's lexical rows (one transaction per batch; searches keep answering)."""
        self._writable()
        done, batch = 0, []
        conn = self.store.conn

        def flush():
            with conn.transaction():
                with conn.cursor() as cur:
                    lexical_sql.write(cur, batch, [], self.analyzer)

        for post in self.store.iter_posts(order="id"):
            batch.append(post)
            if len(batch) >= 1000:
                flush()
                done += len(batch)
                batch = []
                if on_progress:
                    on_progress(done, None)
        if batch:
            flush()
            done += len(batch)
        with conn.transaction():
            conn.execute("DELETE FROM lex_docs d WHERE NOT EXISTS (SELECT 1 FROM posts p WHERE p.id = d.post_id "
                         "AND NOT p.deleted)")
            conn.execute("DELETE FROM lex_postings l WHERE NOT EXISTS (SELECT 1 FROM lex_docs d WHERE d.post_id = l.post_id)")
            lexical_sql.rebuild_stats(conn)
        self._engine = None
        return done

    def reindex_vectors(self, model: str, on_progress=None) -> int:
        self._writable()
        index = _vector_index(lambda: self.store.conn, model)
        self.store.set_meta(f"vectors_mark:{index.model}", "0")
        self.store.set_meta("vectors_model", index.model)
        self._vectors, self._engine = index, None
        return self._catch_up_vectors(on_progress) or 0

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self._stories is not None:
            self._stories.close()
        if self._vectors is not None:
            self._vectors.close()
        if self.reader is not self.store:
            self.reader.close()
        self.store.close()
