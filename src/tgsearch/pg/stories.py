"""Stories, copies and entities of the PostgreSQL backend: the embedded StoryIndex (index/stories.py)
with its tables in the database instead of `analysis.sqlite`.

The placing code is the same; what differs:
- its SQL runs through `_Conn`, which gives psycopg the sqlite3 surface StoryIndex uses (`?`
  placeholders, `with conn:` transactions, executescript);
- changes are read by transaction-id marks (PgStore.iter_changed), never skipping a write that
  commits late; the mark moves when a catch-up has placed everything up to it;
- one writer at a time across processes: a session advisory lock; a process whose in-memory
  state is older than the tables (another process placed posts since) reloads it first.
"""

from __future__ import annotations

import re
import threading
import time
import uuid

from ..index.stories import StoryIndex

LOCK = 7_301_002
HWM_TTL = 1.0
CACHE_POSTS = 300_000     # placements kept in memory up to this many placed posts
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS state(key text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE IF NOT EXISTS post_story(post_id text PRIMARY KEY, story bigint NOT NULL, copy_of text,
        score real NOT NULL, matched text, date text, channel text NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS post_story_story ON post_story(story)",
    "CREATE INDEX IF NOT EXISTS post_story_copy ON post_story(copy_of)",
    """CREATE TABLE IF NOT EXISTS stories(id bigint PRIMARY KEY, title_post text NOT NULL, first_post text NOT NULL,
        size integer NOT NULL, channels integer NOT NULL, first_date text, last_date text)""",
    "CREATE INDEX IF NOT EXISTS stories_last ON stories(last_date)",
    """CREATE TABLE IF NOT EXISTS entities(seq bigserial PRIMARY KEY, post_id text NOT NULL, type text NOT NULL,
        name text NOT NULL, key text NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS entities_post ON entities(post_id)",
    "CREATE INDEX IF NOT EXISTS entities_key ON entities(type, key)",
]
RELATIONS = ("state", "post_story", "post_story_story", "post_story_copy", "stories", "stories_last", "entities",
             "entities_post", "entities_key")
_REWRITES = [(re.compile(r"SUM\(size > 1\)"), "SUM((size > 1)::int)")]   # (entities are read by PgStoryIndex itself)


def _sql(sql: str) -> str:
    for pattern, repl in _REWRITES:
        sql = pattern.sub(repl, sql)
    return sql.replace("?", "%s")


class _Conn:
    """The sqlite3 connection surface StoryIndex uses, over this thread's psycopg connection."""

    def __init__(self, conn):
        self.conn = conn
        self._tx = []

    def execute(self, sql: str, params=()):
        return self.conn.execute(_sql(sql), tuple(params))

    def executemany(self, sql: str, rows) -> None:
        rows = list(rows)
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(_sql(sql), rows)

    def executescript(self, script: str) -> None:
        for statement in (s.strip() for s in script.split(";")):
            if statement:
                self.conn.execute(statement)

    def __enter__(self):
        tx = self.conn.transaction()
        tx.__enter__()
        self._tx.append(tx)
        return self

    def __exit__(self, *exc):
        return self._tx.pop().__exit__(*exc)


class PgStoryIndex(StoryIndex):
    def __init__(self, store, analyzer, *, entities=None, entity_model: str = "", read_only: bool = False):
        self.root = None
        self.path = None
        self.store = store
        self.analyzer = analyzer
        self.entity_fn = entities
        self.entity_model = entity_model
        self.vectors_fn = None
        self.read_only = read_only
        self._clusterer = None
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self.token = uuid.uuid4().hex       # who wrote the tables last: this process's state is current
        self._exist = None
        self._hwm: tuple[float, int] | None = None
        self._placed = None
        self._placed_lock = threading.Lock()
        self._mark_seen: tuple[float, str] | None = None
        self._until = None
        if not read_only:
            from .schema import have_relations

            conn = store.conn
            if not have_relations(conn, RELATIONS):
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK + 100,))
                    for statement in SCHEMA:
                        conn.execute(statement)
            if self._get("built_by") not in (None, self.built_by):
                self._reset()

    @property
    def conn(self):
        conn = self.store.conn
        if self.read_only and not self._tables_exist(conn):
            return None
        wrapped = getattr(self._local, "wrapped", None)
        if wrapped is None or wrapped.conn is not conn:
            wrapped = self._local.wrapped = _Conn(conn)
        return wrapped

    def _tables_exist(self, conn) -> bool:
        """(read-only) Whether the tables are there: once seen, for good; else asked again after a second."""
        now = time.monotonic()
        if self._exist is True or (self._exist is not None and now - self._exist < 1.0):
            return self._exist is True
        found = bool(conn.execute("SELECT to_regclass('post_story') IS NOT NULL").fetchone()[0])
        self._exist = True if found else now
        return found

    def hwm(self) -> int:
        """Read at most every HWM_TTL seconds by a process that does not write (searches ask on every call)."""
        if not self.read_only and self._write_lock.locked():
            return super().hwm()
        now = time.monotonic()
        if self._hwm is None or now - self._hwm[0] > HWM_TTL:
            self._hwm = (now, super().hwm())
        return self._hwm[1]

    def close(self) -> None:
        pass    # the store's connections

    def mark(self) -> int:
        return int(self._get("mark") or 0)

    def _changes(self, store, hwm: int):
        self._until = store.snapshot_mark()
        return store.iter_changed(self.mark(), self._until, versions=True)

    def _caught_up(self) -> None:
        if self._until is not None:
            self.conn.execute("INSERT INTO state(key, value) VALUES('mark', %s) ON CONFLICT(key) DO UPDATE "
                              "SET value = excluded.value", (str(self._until),))

    def backlog(self, store) -> int:
        return store.count_changed(self.mark())

    def catch_up(self, store, on_progress=None, stop: threading.Event | None = None) -> int | None:
        """Place what changed since the mark, unless another process is doing it (None)."""
        if self.read_only:
            return 0
        conn = self.store.conn
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK,)).fetchone()[0]:
            return None
        try:
            if self._get("writer") not in (None, self.token):
                self._clusterer = None          # another process placed posts: reload the state
            if self.backlog(store) == 0:
                return 0
            self.conn.execute("INSERT INTO state(key, value) VALUES('writer', %s) ON CONFLICT(key) DO UPDATE "
                              "SET value = excluded.value", (self.token,))
            done = super().catch_up(store, on_progress=on_progress, stop=stop)
            if done:
                self._hwm = self._mark_seen = self._placed = None     # this process's reads see its writes at once
            return done
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK,))

    # -- reads in one query each (the embedded index reads in chunks of SQLite parameters) ------
    def _placed_map(self):
        """Every placement, held in memory while there are at most CACHE_POSTS and reloaded when the
        stories change (their mark, read at most every HWM_TTL s): grouping a broad search by story
        looks up thousands of posts."""
        mark = (self.hwm(), self._get_cached_mark())
        cached = self._placed
        if cached is not None and cached[0] == mark:
            return cached[1]
        with self._placed_lock:
            cached = self._placed
            if cached is not None and cached[0] == mark:
                return cached[1]
            conn = self.store.conn
            if conn.execute("SELECT count(*) FROM post_story").fetchone()[0] > CACHE_POSTS:
                self._placed = None
                return None
            stories = {sid: (size, ch) for sid, size, ch in conn.execute("SELECT id, size, channels FROM stories")}
            placed = {}
            for pid, story, copy_of in conn.execute("SELECT post_id, story, copy_of FROM post_story"):
                size, ch = stories.get(story, (1, 1))
                placed[pid] = {"story": story, "copy_of": copy_of, "story_size": size, "story_channels": ch}
            self._placed = (mark, placed)
            return placed

    def _get_cached_mark(self) -> str:
        now = time.monotonic()
        if self._mark_seen is None or now - self._mark_seen[0] > HWM_TTL:
            self._mark_seen = (now, f"{self._get('mark')}/{self._get('writer')}")
        return self._mark_seen[1]

    def placements(self, ids: list[str]) -> dict[str, dict]:
        if self.conn is None or not ids:
            return {}
        placed = self._placed_map() if self.read_only or not self._write_lock.locked() else None
        if placed is not None:
            return {pid: placed[pid] for pid in ids if pid in placed}
        rows = self.store.conn.execute(
            "SELECT p.post_id, p.story, p.copy_of, s.size, s.channels FROM post_story p JOIN stories s ON s.id = p.story "
            "WHERE p.post_id = ANY(%s)", (list(ids),)).fetchall()
        return {pid: {"story": story, "copy_of": copy_of, "story_size": size, "story_channels": channels}
                for pid, story, copy_of, size, channels in rows}

    def _post_entities(self, ids: list[str]) -> dict[str, list[tuple[str, str, str]]]:
        out: dict[str, list] = {}
        if not ids:
            return out
        for pid, t, name, key in self.store.conn.execute(
                "SELECT post_id, type, name, key FROM entities WHERE post_id = ANY(%s) ORDER BY seq", (list(ids),)):
            out.setdefault(pid, []).append((t, name, key))
        return out

    def status(self, store) -> dict:
        out = super().status(store)
        if self.conn is not None:
            out["behind"] = self.backlog(store)
            out["complete"] = out["behind"] == 0
        return out


class PgStoryService:
    """The StoryService surface (index/story_service.py) for the PostgreSQL backend."""

    def __init__(self, backend, mode: str):
        self.backend = backend
        self.store = backend.store
        self.mode = mode
        self.read_only = backend.read_only
        self._index = None
        self._lock = threading.Lock()

    @property
    def index(self) -> PgStoryIndex:
        with self._lock:
            if self._index is None:
                from ..index.story_service import default_entities

                fn, model = default_entities()
                self._index = PgStoryIndex(self.store, self.backend.analyzer, entities=fn, entity_model=model,
                                           read_only=self.read_only)
            return self._index

    def catch_up(self, *, stop=None, on_progress=None) -> int | None:
        progress = (lambda done, _top: on_progress("stories", done)) if on_progress else None
        return self.index.catch_up(self.store, on_progress=progress, stop=stop)

    def wait_caught_up(self, timeout: float | None = None) -> bool:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.catch_up() is not None:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.2)

    def rebuild(self, on_progress=None) -> int:
        index = self.index
        with index._write_lock:
            index._reset()
        # on_progress(done, hwm), as the embedded StoryService's rebuild
        return index.catch_up(self.store, on_progress=on_progress) or 0

    def after_write(self) -> None:
        if self.mode != "off" and not self.read_only:
            self.catch_up()

    def status(self) -> dict:
        return self.index.status(self.store)

    def close(self) -> None:
        pass
