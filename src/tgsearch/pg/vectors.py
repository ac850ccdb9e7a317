"""The vector index on PostgreSQL + pgvector: the server backend's twin of `index.vectors.VectorIndex`.

Same passages (`index.vectors.passages_for`), same embedders, same similarity scale (cosine of
unit vectors), same reader surface as `VectorIndex` (`model`, `embed_query`, `search_vector`,
`score_posts`, `vstore.post_vectors`, `refresh`, `status`, `close`), so `search.semantic.
SemanticRetriever` runs on it unchanged. The backend drives catch-up: `write_posts` (replaces a
post's passages; a post deleted at the source loses them) and `delete_posts` are idempotent.

Schema (created at open with ``IF NOT EXISTS`` under ``pg_advisory_xact_lock``):

- ``vector_models(model text PRIMARY KEY, dim int, vec_type text, table_name text UNIQUE, created_at)``
  -- which model built which table. One table per model, so models never mix; opening a model
  whose recorded dimension differs from its embedder's raises `IndexMismatchError`.
- ``post_vectors_<model slug>_<hash>(post_id text, passage int, start int, "end" int,
  vec halfvec(DIM), PRIMARY KEY (post_id, passage))`` with
  ``USING hnsw (vec halfvec_cosine_ops) WITH (m = 16, ef_construction = 128)`` (usearch's settings
  in the embedded index).

Vectors are stored as ``halfvec`` (float16): exactly the values the embedded index stores (its
``entries.vec`` and default ``f16`` graph), so exact scores agree with it, and the HNSW graph is half
the size of a float32 one. On pgvector < 0.7 (no halfvec) the table uses ``vector`` instead.

Search: up to ``EXACT_BELOW`` passage vectors (as in the embedded index) the nearest passages are
found by an exact scan; above that through the HNSW index, with ``hnsw.ef_search`` sized for the
requested depth and pgvector's iterative scan (0.8+) so deep requests are not cut at ef_search.
Passages are over-fetched and folded to posts (a post scores as its best passage); the scores
returned are the float32 inner product of the stored vector with the query, the same number
`score_posts` gives (and the embedded index's `score_posts`).

Connections: ``PgVectorIndex(conn_factory, ...)`` takes either a callable returning a psycopg
connection for the current thread (the caller owns it; every operation runs in its own
``conn.transaction()`` block) or a ``postgresql://`` URL string, from which the index opens one
autocommit connection per thread and closes them in `close()`.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import weakref
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..analyze.embed import DEFAULT_MODEL, Embedder, get_embedder
from ..errors import IndexMismatchError, PostgresError
from ..index.vectors import EXACT_BELOW, Passage, passages_for
from ..post import Post

SCHEMA = 1
EMBED_BATCH = 64            # passages per embedder call
WRITE_POSTS = 500           # posts per write transaction
EF_MIN, EF_MAX = 40, 1000   # hnsw.ef_search bounds (pgvector refuses more than 1000)
HNSW_M, HNSW_EF_CONSTRUCTION = 16, 128
COUNT_TTL = 5.0             # seconds a cached passage count decides exact-vs-graph search
_LOCK_KEY = 0x7467735F766563   # "tgs_vec": serialises schema creation across processes

_MODELS_SQL = """
CREATE TABLE IF NOT EXISTS vector_models (
    model text PRIMARY KEY,
    dim integer NOT NULL,
    vec_type text NOT NULL,
    table_name text NOT NULL UNIQUE,
    schema integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


def table_name(model: str) -> str:
    """The per-model table: a readable slug plus a hash of the exact name (<= 63 bytes)."""
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:30]
    digest = hashlib.blake2b(model.encode(), digest_size=4).hexdigest()
    return f"post_vectors_{slug}_{digest}" if slug else f"post_vectors_{digest}"


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text or "")[:3])


def _pg_error(what: str, e: Exception) -> PostgresError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return PostgresError(f"vector index: {what}: {first}")


class _Connections:
    """The connection for the current thread: the caller's factory, or one per thread from a URL."""

    def __init__(self, source: "str | Callable[[], Any]"):
        self.url = source if isinstance(source, str) else None
        self.factory = None if isinstance(source, str) else source
        if self.factory is not None and not callable(self.factory):
            raise TypeError("PgVectorIndex needs a postgresql:// URL or a callable returning a psycopg connection")
        self._local = threading.local()
        self._own: list[Any] = []
        self._own_lock = threading.Lock()
        self._registered: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._registered_ids: set[int] = set()   # connections that cannot be weakly referenced
        self.closed = False

    def get(self):
        if self.closed:
            raise PostgresError("vector index: used after close()")
        if self.factory is not None:
            return self.factory()
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            import psycopg

            try:
                conn = psycopg.connect(self.url, autocommit=True)
            except psycopg.Error as e:
                raise _pg_error(f"cannot connect to {self._safe_url()}", e) from e
            self._local.conn = conn
            with self._own_lock:
                self._own.append(conn)
        return conn

    def _safe_url(self) -> str:
        return re.sub(r"//([^:@/]+):[^@/]*@", r"//\1:***@", self.url or "")

    def registered(self, conn) -> bool:
        try:
            return conn in self._registered
        except TypeError:
            return id(conn) in self._registered_ids

    def mark_registered(self, conn) -> None:
        try:
            self._registered.add(conn)
        except TypeError:
            self._registered_ids.add(id(conn))

    def close(self) -> None:
        self.closed = True
        with self._own_lock:
            own, self._own = self._own, []
        for conn in own:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


class PgVectorStore:
    """The rows of one model's table (the `vstore` of `PgVectorIndex`)."""

    def __init__(self, conns: _Connections, model: str, dim: int):
        self._conns = conns
        self.model = model
        self.dim = dim
        self.table = table_name(model)
        self.vec_type = "halfvec"
        self._open()

    # -- connections -----------------------------------------------------------------------
    def conn(self):
        conn = self._conns.get()
        if not self._conns.registered(conn):
            from pgvector.psycopg import register_vector

            try:
                register_vector(conn)
            except Exception as e:  # psycopg.Error or pgvector's ProgrammingError
                raise _pg_error("the pgvector types are missing (CREATE EXTENSION vector)", e) from e
            self._conns.mark_registered(conn)
        return conn

    def _ident(self):
        from psycopg import sql

        return sql.Identifier(self.table)

    def _open(self) -> None:
        import psycopg
        from psycopg import sql

        conn = self._conns.get()
        with conn.transaction():     # (a caller's connection may not be autocommit: leave no transaction open)
            standby = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        if standby:
            return self._open_standby(conn)
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                conn.execute(_MODELS_SQL)
                row = conn.execute("SELECT dim, vec_type, table_name FROM vector_models WHERE model = %s",
                                   (self.model,)).fetchone()
                if row is None:
                    version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
                    vec_type = "halfvec" if _version_tuple(version) >= (0, 7) else "vector"
                    conn.execute("INSERT INTO vector_models(model, dim, vec_type, table_name, schema) "
                                 "VALUES (%s, %s, %s, %s, %s)", (self.model, self.dim, vec_type, self.table, SCHEMA))
                    row = (self.dim, vec_type, self.table)
                dim, vec_type, table = row
                if int(dim) != self.dim:
                    raise IndexMismatchError(
                        f"vector index {table}: built by {self.model} with {dim} dims, but the embedder gives "
                        f"{self.dim}; run `tgsearch reindex --vectors {self.model}` to rebuild it"
                    )
                self.vec_type, self.table = vec_type, table
                ops = sql.SQL("halfvec_cosine_ops" if vec_type == "halfvec" else "vector_cosine_ops")
                conn.execute(sql.SQL(
                    'CREATE TABLE IF NOT EXISTS {t} (post_id text NOT NULL, passage integer NOT NULL, '
                    'start integer NOT NULL, "end" integer NOT NULL, vec {vt}({dim}) NOT NULL, '
                    'PRIMARY KEY (post_id, passage))'
                ).format(t=self._ident(), vt=sql.SQL(vec_type), dim=sql.Literal(self.dim)))
                conn.execute(sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {i} ON {t} USING hnsw (vec {ops}) WITH (m = {m}, ef_construction = {ef})"
                ).format(i=sql.Identifier(f"{self.table}_hnsw"), t=self._ident(), ops=ops,
                         m=sql.Literal(HNSW_M), ef=sql.Literal(HNSW_EF_CONSTRUCTION)))
        except psycopg.Error as e:
            raise _pg_error(f"cannot open the vectors of {self.model}", e) from e
        # the extension exists now: register its types on this connection
        self.conn()
        self.ext_version = self._scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")

    def _open_standby(self, conn) -> None:
        """On a read replica: read what the primary recorded, create nothing."""
        import psycopg

        try:
            row = conn.execute("SELECT dim, vec_type, table_name FROM vector_models WHERE model = %s",
                               (self.model,)).fetchone()
        except psycopg.Error as e:
            raise _pg_error(f"cannot open the vectors of {self.model} on the replica (none made on the primary?)", e) from e
        if row is None:
            raise IndexMismatchError(f"no {self.model} vectors on this replica: make them on the primary first")
        dim, vec_type, table = row
        if int(dim) != self.dim:
            raise IndexMismatchError(f"vector index {table}: built by {self.model} with {dim} dims, but the embedder "
                                     f"gives {self.dim}")
        self.vec_type, self.table = vec_type, table
        self.conn()
        self.ext_version = self._scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")

    def _scalar(self, query, params: Sequence | None = None):
        conn = self.conn()
        with conn.transaction():
            row = conn.execute(query, params).fetchone()
        return row[0] if row else None

    def to_db(self, vec: np.ndarray):
        from pgvector import HalfVector, Vector

        vec = np.asarray(vec, dtype=np.float32).reshape(-1)
        return HalfVector(vec) if self.vec_type == "halfvec" else Vector(vec)

    # -- writes ----------------------------------------------------------------------------
    def write(self, rows: list[tuple[str, Passage, np.ndarray]], post_ids: Iterable[str]) -> None:
        """Make the rows of `post_ids` exactly `rows` (posts without rows lose theirs), in one
        transaction. Upsert then cut the tail, so concurrent writers of one post leave one
        consistent version (the last to commit), never a mix of passages."""
        import psycopg
        from psycopg import sql

        counts: dict[str, int] = {pid: 0 for pid in post_ids}
        for pid, passage, _ in rows:
            counts[pid] = max(counts.get(pid, 0), passage.number + 1)
        if not counts:
            return
        conn = self.conn()
        insert = sql.SQL(
            'INSERT INTO {t} (post_id, passage, start, "end", vec) VALUES (%s, %s, %s, %s, %s) '
            'ON CONFLICT (post_id, passage) DO UPDATE SET start = EXCLUDED.start, "end" = EXCLUDED."end", '
            'vec = EXCLUDED.vec'
        ).format(t=self._ident())
        cut = sql.SQL(
            "DELETE FROM {t} AS v USING unnest(%s::text[], %s::int[]) AS n(pid, cnt) "
            "WHERE v.post_id = n.pid AND v.passage >= n.cnt"
        ).format(t=self._ident())
        ordered = sorted(rows, key=lambda r: (r[0], r[1].number))   # one lock order for every writer
        try:
            with conn.transaction():
                with conn.cursor() as cur:
                    if ordered:
                        cur.executemany(insert, [(pid, p.number, p.start, p.end, self.to_db(vec))
                                                 for pid, p, vec in ordered])
                    ids = sorted(counts)
                    cur.execute(cut, (ids, [counts[i] for i in ids]))
        except psycopg.Error as e:
            raise _pg_error("cannot write vectors", e) from e

    def delete_posts(self, post_ids: list[str]) -> None:
        import psycopg
        from psycopg import sql

        ids = sorted(set(post_ids))
        if not ids:
            return
        conn = self.conn()
        try:
            with conn.transaction():
                for i in range(0, len(ids), 10_000):
                    conn.execute(sql.SQL("DELETE FROM {t} WHERE post_id = ANY(%s)").format(t=self._ident()),
                                 (ids[i:i + 10_000],))
        except psycopg.Error as e:
            raise _pg_error("cannot delete vectors", e) from e

    # -- reads -----------------------------------------------------------------------------
    def count_posts(self) -> int:
        from psycopg import sql

        return int(self._scalar(sql.SQL("SELECT COUNT(DISTINCT post_id) FROM {t}").format(t=self._ident())))

    def count_entries(self) -> int:
        from psycopg import sql

        return int(self._scalar(sql.SQL("SELECT COUNT(*) FROM {t}").format(t=self._ident())))

    def count_entries_upto(self, bound: int) -> int:
        """How many passage vectors there are, counting no further than `bound` (cheap at any size)."""
        from psycopg import sql

        return int(self._scalar(sql.SQL("SELECT COUNT(*) FROM (SELECT 1 FROM {t} LIMIT %s) AS s").format(
            t=self._ident()), (int(bound),)))

    def post_vectors(self, post_ids: list[str]) -> dict[str, list[tuple[int, int, int, np.ndarray]]]:
        """post id -> [(passage, start, end, vector float32)] for the given posts that have vectors."""
        from psycopg import sql

        out: dict[str, list] = {}
        ids = list(dict.fromkeys(post_ids))
        if not ids:
            return out
        conn = self.conn()
        query = sql.SQL('SELECT post_id, passage, start, "end", vec FROM {t} WHERE post_id = ANY(%s) '
                        "ORDER BY post_id, passage").format(t=self._ident())
        with conn.transaction():
            for i in range(0, len(ids), 5_000):
                for pid, passage, start, end, vec in conn.execute(query, (ids[i:i + 5_000],), binary=True):
                    out.setdefault(pid, []).append((passage, start, end, vec.to_numpy().astype(np.float32)))
        return out

    def nearest(self, qvec: np.ndarray, count: int, *, exact: bool) -> list[tuple[str, float, int, int]]:
        """[(post id, similarity, start, end)] of the `count` passages nearest to the query, nearest
        first (similarity: float32 inner product with the stored vector, as `score_posts`)."""
        import psycopg
        from psycopg import sql
        from pgvector import Vector

        qvec = np.asarray(qvec, dtype=np.float32).reshape(-1)
        query = sql.SQL(
            'SELECT post_id, start, "end", -((vec::vector) <#> %s) AS sim FROM {t} '
            "ORDER BY vec <=> %s LIMIT %s"
        ).format(t=self._ident())
        conn = self.conn()
        try:
            with conn.transaction():
                if exact:
                    conn.execute("SET LOCAL enable_indexscan = off")
                else:
                    ef = max(EF_MIN, min(EF_MAX, 2 * count))
                    conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(ef)))
                    if count > ef and _version_tuple(self.ext_version) >= (0, 8):
                        # deeper than one graph search: keep scanning (results re-sorted below)
                        conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                rows = conn.execute(query, (Vector(qvec), self.to_db(qvec), count), binary=True).fetchall()
        except psycopg.Error as e:
            raise _pg_error("vector search failed", e) from e
        found = [(pid, float(sim), start, end) for pid, start, end, sim in rows]
        found.sort(key=lambda r: -r[1])
        return found

    def close(self) -> None:
        pass   # the connections belong to the index


class PgVectorIndex:
    """Passage vectors of one embedding model in PostgreSQL (pgvector), read and written."""

    def __init__(self, conn_factory: "str | Callable[[], Any]", model: str | None = None, *,
                 embedder: Embedder | None = None):
        self.model = model or (embedder.name if embedder is not None else None) \
            or os.environ.get("TGSEARCH_VECTORS_MODEL") or DEFAULT_MODEL
        self.embedder = embedder or get_embedder(self.model)
        if self.embedder.name != self.model:
            raise IndexMismatchError(f"embedder {self.embedder.name} cannot serve the {self.model} vector index")
        self._conns = _Connections(conn_factory)
        self.exact_below = EXACT_BELOW
        try:
            self.vstore = PgVectorStore(self._conns, self.model, self.embedder.dim)
        except BaseException:
            self._conns.close()
            raise
        self._count: tuple[float, int, int] | None = None   # (when, bound, count)

    # -- read side (what SemanticRetriever and the backend use) -------------------------------
    def refresh(self, **_: Any) -> None:
        """Nothing to load: every query reads the committed rows."""

    def embed_query(self, text: str) -> np.ndarray:
        return self.embedder.embed_queries([text])[0]

    def _entries(self) -> int:
        now = time.monotonic()
        bound = self.exact_below + 1
        cached = self._count
        if cached is None or now - cached[0] > COUNT_TTL or cached[1] != bound:
            cached = self._count = (now, bound, self.vstore.count_entries_upto(bound))
        return cached[2]

    def search_vector(self, qvec: np.ndarray, limit: int = 100) -> list[tuple[str, float, tuple[int, int]]]:
        """[(post id, best cosine, best passage's span in post.text)] for the posts nearest to a query
        vector, best first, each post once."""
        limit = max(1, int(limit))
        exact = self.exact_below > 0 and self._entries() <= self.exact_below
        count = limit * 2
        while True:
            rows = self.vstore.nearest(qvec, count, exact=exact)
            best: dict[str, tuple[float, tuple[int, int]]] = {}
            for pid, sim, start, end in rows:
                if pid not in best or sim > best[pid][0]:
                    best[pid] = (sim, (start, end))
            # every post found has its best passage among the rows (it is at least as near as the
            # one found), so the order is exact; fetch deeper only when posts are missing
            if len(best) >= limit or len(rows) < count:
                break
            count *= 2
        ranked = sorted(best.items(), key=lambda kv: -kv[1][0])[:limit]
        return [(pid, sim, span) for pid, (sim, span) in ranked]

    def score_posts(self, qvec: np.ndarray, post_ids: list[str]) -> dict[str, tuple[float, int, int, int]]:
        """Exact cosine of the query with given posts: post id -> (sim, passage, start, end), best passage."""
        qvec = np.asarray(qvec, dtype=np.float32).reshape(-1)
        out: dict[str, tuple[float, int, int, int]] = {}
        for pid, entries in self.vstore.post_vectors(post_ids).items():
            sims = np.stack([e[3] for e in entries]) @ qvec
            i = int(np.argmax(sims))
            out[pid] = (float(sims[i]), entries[i][0], entries[i][1], entries[i][2])
        return out

    def status(self) -> dict:
        """Model and counts. How far the vectors are behind the posts (`hwm`, `complete`) is the
        backend's to add: it drives the catch-up."""
        return {"model": self.model, "dim": self.embedder.dim, "posts_with_vectors": self.vstore.count_posts(),
                "vectors": self.vstore.count_entries(),
                "quant": "f16" if self.vstore.vec_type == "halfvec" else "f32",
                "table": self.vstore.table, "pgvector": self.vstore.ext_version}

    def close(self) -> None:
        self._conns.close()

    # -- write side (the backend's catch-up) --------------------------------------------------
    def write_posts(self, posts: list[Post]) -> int:
        """Embed the posts' passages and make them the posts' only rows; a post deleted at the
        source loses its rows. Idempotent. Returns how many passages were written."""
        written = 0
        latest: dict[str, Post] = {}
        for post in posts:
            latest[post.id] = post          # a post given twice: its last version
        batch = list(latest.values())
        for i in range(0, len(batch), WRITE_POSTS):
            chunk = batch[i:i + WRITE_POSTS]
            todo = [(post.id, p) for post in chunk if not post.deleted for p in passages_for(post)]
            vectors = self._embed([p.text for _, p in todo])
            self.vstore.write([(pid, p, vectors[j]) for j, (pid, p) in enumerate(todo)], [p.id for p in chunk])
            written += len(todo)
        self._count = None
        return written

    @staticmethod
    def passages(posts: list[Post]) -> tuple[list[Post], list[tuple[str, Passage]]]:
        """(the posts, each id once with its last version; (post id, passage) to embed) for a batch."""
        latest: dict[str, Post] = {}
        for post in posts:
            latest[post.id] = post
        batch = list(latest.values())
        return batch, [(post.id, p) for post in batch if not post.deleted for p in passages_for(post)]

    def write_embedded(self, posts: list[Post], todo: list[tuple[str, Passage]], vectors: np.ndarray) -> int:
        """Write passages embedded elsewhere (an embedding pool): `passages(posts)` and their vectors."""
        self.vstore.write([(pid, p, vectors[j]) for j, (pid, p) in enumerate(todo)], [p.id for p in posts])
        self._count = None
        return len(todo)

    def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.vstack([self.embedder.embed_documents(texts[i:i + EMBED_BATCH])
                          for i in range(0, len(texts), EMBED_BATCH)])

    def delete_posts(self, post_ids: Iterable[str]) -> None:
        self.vstore.delete_posts(list(post_ids))
        self._count = None

    def count_posts(self) -> int:
        return self.vstore.count_posts()
