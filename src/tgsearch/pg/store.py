"""`PgStore`: the store on PostgreSQL, the twin of `tgsearch.store.Store` (same methods, same Posts).

Differences that matter to callers:
- Many processes may write at once. A write takes `pg_advisory_xact_lock(hashtextextended(id, 0))`
  for each id it writes (in hash order), so one id never gets two rows although the primary key is
  (id, month) (posts are partitioned by month).
- `version` comes from a sequence: unique and increasing per write, but transactions may commit out
  of version order, so a consumer that must see every write uses `snapshot_mark()` and
  `iter_changed(mark, until)` (transaction ids below the oldest running one) instead of
  `iter_since(version)`.
- `on_write(cur, changed, deleted_ids)` runs inside each write transaction (see PgStore.__init__).
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timezone
from typing import Callable, Iterable, Iterator

from ..errors import NotFoundError
from ..post import Post, iso
from ..store import Facts, UpsertResult
from .schema import ensure_months, existing_months, migrate
from .store_collect import PgCollectState
from .store_rows import (COLUMNS, SELECT, month_of, password_of, post_values, reactions_text, redact,
                         row_to_post, sql_type, translated)

OnWrite = Callable[[object, list, list], None]

_INSERT_COLS = COLUMNS + ("month", "hash")
_INSERT = (
    f"INSERT INTO posts ({', '.join(_INSERT_COLS)}, version) "
    f"SELECT {', '.join(('u.%s::jsonb' % c) if sql_type(c) == 'jsonb' else 'u.%s' % c for c in _INSERT_COLS)}, "
    "nextval('posts_version_seq') FROM unnest("
    + ", ".join("%s::" + ("text" if sql_type(c) == "jsonb" else sql_type(c)) + "[]" for c in COLUMNS)
    + ", %s::integer[], %s::text[]) AS u(" + ", ".join(_INSERT_COLS) + ")"
)
_EXISTING = "SELECT id, month, hash, edit_date, views, reactions, deleted FROM posts WHERE id = ANY(%s::text[])"
_LOCK_IDS = ("SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtextextended(i, 0) AS h "
             "FROM unnest(%s::text[]) AS i ORDER BY h OFFSET 0) AS s")
_BUMP = "version = nextval('posts_version_seq'), xid = pg_current_xact_id()"


def _occurrences(posts: list[Post]) -> list[list[Post]]:
    """The batch as groups without a repeated id (the k-th occurrence of each id in group k), so
    writing them in order is writing the posts one after the other."""
    seen: Counter = Counter()
    groups: list[list[Post]] = []
    for post in posts:
        k = seen[post.id]
        seen[post.id] += 1
        if k == len(groups):
            groups.append([])
        groups[k].append(post)
    return groups


class PgStore(PgCollectState):
    """The store in a PostgreSQL database (`url`: postgresql://...)."""

    root = None

    def __init__(self, url: str, *, create: bool = True, on_write: OnWrite | None = None):
        """`on_write(cur, changed, deleted_ids)`, if given, runs inside the write transaction of
        `upsert` / `mark_deleted` after the rows are written: `cur` is that transaction's psycopg
        cursor, `changed` the posts whose content was inserted or rewritten (not counters-only
        refreshes; a post undeleted by mark_deleted(..., False) too), `deleted_ids` the ids newly
        marked deleted. An exception from it rolls the whole write back."""
        self.url = url
        self.where = redact(url)
        self.on_write = on_write
        self._password = password_of(url)
        self._local = threading.local()
        self._all: list = []
        self._all_lock = threading.Lock()
        self._months: set[int] = set()
        with self._errors("opening the store"):
            conn = self._conn()
            migrate(conn, self.where, create=create)
            self._months = existing_months(conn)

    # -- connections -------------------------------------------------------------------------
    def _errors(self, what: str):
        return translated(self.where, what, self._password)

    def _connect(self):
        import psycopg

        with self._errors("connecting"):
            conn = psycopg.connect(self.url, autocommit=True)
            conn.execute("SET TIME ZONE 'UTC'")
        return conn

    def _conn(self):
        """This thread's connection (autocommit; explicit transactions for writes)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._connect()
            self._local.conn = conn
            with self._all_lock:
                # a server's worker threads come and go: close the connections of threads that ended
                alive = []
                for thread, c in self._all:
                    if thread.is_alive():
                        alive.append((thread, c))
                    else:
                        try:
                            c.close()
                        except Exception:  # noqa: BLE001 - best effort
                            pass
                alive.append((threading.current_thread(), conn))
                self._all = alive
        return conn

    @property
    def conn(self):
        return self._conn()

    def _q(self, sql: str, params=None, what: str = "a query") -> list[tuple]:
        with self._errors(what):
            cur = self._conn().execute(sql, params)
            return cur.fetchall() if cur.description is not None else []

    def _one(self, sql: str, params=None, what: str = "a query"):
        rows = self._q(sql, params, what)
        return rows[0] if rows else None

    def close_thread(self) -> None:
        """Close this thread's connection (a thread that ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            with self._all_lock:
                self._all = [(t, c) for t, c in self._all if c is not conn]
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - best effort
                pass
            self._local.conn = None

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        with self._all_lock:
            conns, self._all = [c for _, c in self._all], []
        for conn in conns:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._local = threading.local()

    def _ensure_months(self, months: set[int]) -> None:
        missing = months - self._months
        if missing:
            with self._errors("creating month partitions"):
                self._months |= ensure_months(self._conn(), missing)

    # -- meta --------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = %s", (key,))
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self._q("INSERT INTO meta(key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value), "writing meta")

    # -- writes ------------------------------------------------------------------------------
    def upsert(self, posts: Iterable[Post]) -> UpsertResult:
        """Insert new posts, update changed ones, leave equal ones alone; one transaction (as
        Store.upsert: counters-only changes are refreshed in place with the same version and xid;
        a post deleted in the store stays deleted)."""
        posts = list(posts)
        result = UpsertResult()
        if not posts:
            return result
        self._ensure_months({month_of(p.date) for p in posts})
        conn = self._conn()
        with self._errors("writing posts"):
            with conn.transaction():
                cur = conn.cursor()
                cur.execute(_LOCK_IDS, (sorted({p.id for p in posts}),))
                changed: dict[str, Post] = {}
                deleted_ids: list[str] = []
                for group in _occurrences(posts):
                    self._upsert_group(cur, group, result, changed, deleted_ids)
                if self.on_write is not None:
                    self.on_write(cur, list(changed.values()), deleted_ids)
        return result

    def _upsert_group(self, cur, posts: list[Post], result: UpsertResult, changed: dict, deleted_ids: list) -> None:
        existing = {r[0]: r[1:] for r in cur.execute(_EXISTING, ([p.id for p in posts],)).fetchall()}
        rows: list[list] = []
        removes: list[tuple[str, int]] = []
        counters: list[tuple[str, int, int | None, str]] = []
        deletions: list[tuple[str, int]] = []
        for post in posts:
            data = post.to_dict()
            digest = post.content_hash(data)
            old = existing.get(post.id)
            if old is not None:
                old_month, old_hash, old_edit, old_views, old_reactions, old_deleted = old
                if post.deleted and not old_deleted:
                    # A source says it is gone now: keep what the store holds, mark it.
                    deletions.append((post.id, old_month))
                    changed.pop(post.id, None)
                    deleted_ids.append(post.id)
                    result.updated += 1
                    continue
                if old_hash == digest:
                    reactions = reactions_text(post.reactions)
                    if (post.views, reactions) != (old_views, old_reactions):
                        counters.append((post.id, old_month, post.views, reactions))
                        result.refreshed += 1
                    else:
                        result.unchanged += 1
                    continue
                if old_edit is not None and (post.edit_date is None or post.edit_date < old_edit):
                    result.unchanged += 1  # the store already holds a later edit of this message
                    continue
                if old_deleted and not post.deleted:
                    post = post.evolve(deleted=True)
                removes.append((post.id, old_month))
                result.updated += 1
            else:
                result.new += 1
            rows.append(post_values(post) + [month_of(post.date), digest])
            changed[post.id] = post
        if removes:
            cur.execute("DELETE FROM posts p USING unnest(%s::text[], %s::integer[]) AS r(id, month) "
                        "WHERE p.id = r.id AND p.month = r.month",
                        ([r[0] for r in removes], [r[1] for r in removes]))
        if rows:
            cur.execute(_INSERT, [list(col) for col in zip(*rows)])
        if counters:
            cur.execute("UPDATE posts p SET views = u.views, reactions = u.reactions "
                        "FROM unnest(%s::text[], %s::integer[], %s::bigint[], %s::text[]) AS u(id, month, views, reactions) "
                        "WHERE p.id = u.id AND p.month = u.month", [list(col) for col in zip(*counters)])
        if deletions:
            cur.execute(f"UPDATE posts p SET deleted = true, {_BUMP} "
                        "FROM unnest(%s::text[], %s::integer[]) AS u(id, month) "
                        "WHERE p.id = u.id AND p.month = u.month", [list(col) for col in zip(*deletions)])

    def mark_deleted(self, ids: Iterable[str], deleted: bool = True) -> int:
        """Mark posts deleted at the source (kept, hidden from search and export), or not; a new
        version (and xid) each, so derived indexes catch up. Returns how many changed."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        conn = self._conn()
        with self._errors("marking posts deleted"):
            with conn.transaction():
                cur = conn.cursor()
                cur.execute(_LOCK_IDS, (sorted(ids),))
                rows = cur.execute(f"UPDATE posts SET deleted = %s, {_BUMP} WHERE id = ANY(%s::text[]) "
                                   f"AND deleted <> %s RETURNING {SELECT}", (deleted, ids, deleted)).fetchall()
                if self.on_write is not None:
                    if deleted:
                        self.on_write(cur, [], [r[0] for r in rows])
                    else:
                        self.on_write(cur, [row_to_post(r) for r in rows], [])
        return len(rows)

    # -- channel names -------------------------------------------------------------------------
    def rename_channel(self, channel: str, title: str) -> int:
        """Give a channel the title the UI shows (kept across re-ingests); returns its post count."""
        n = self._one("SELECT COUNT(*) FROM posts WHERE channel = %s", (channel,))[0]
        if not n:
            raise NotFoundError(f"no channel {channel!r} in {self.where} (see `tgsearch stats`)")
        self._q("INSERT INTO channel_names(channel, title) VALUES (%s, %s) "
                "ON CONFLICT (channel) DO UPDATE SET title = excluded.title", (channel, title), "renaming a channel")
        return n

    def names_version(self) -> tuple[int, str]:
        """Changes when a post is written or a channel renamed: what cached channel names key on."""
        row = self._one("SELECT (SELECT COALESCE(MAX(version), 0) FROM posts), "
                        "(SELECT COALESCE(md5(string_agg(channel || '=' || title, ',' ORDER BY channel)), '') "
                        "FROM channel_names)")
        return (int(row[0]), row[1])

    def channel_titles(self) -> dict[str, str]:
        """channel slug -> the title to show: the user's name for it, else the latest title a
        source gave, else the slug."""
        titles = {slug: title or slug for slug, title in
                  self._q('SELECT channel, MAX(channel_title COLLATE "C") FROM posts GROUP BY channel')}
        for slug, title in self._q("SELECT channel, title FROM channel_names"):
            if slug in titles:
                titles[slug] = title
        return titles

    def channel_names(self) -> list[tuple[str, str]]:
        """Every (channel slug, title a source gave it) pair in the store."""
        return [(r[0], r[1]) for r in self._q("SELECT DISTINCT channel, channel_title FROM posts")]

    def dates(self, ids: list[str]) -> dict[str, str]:
        """post id -> its ISO UTC date (posts without a date are absent)."""
        return {pid: iso(d) for pid, d in
                self._q("SELECT id, date FROM posts WHERE id = ANY(%s::text[]) AND date IS NOT NULL", (list(ids),))}

    def facts(self, ids: list[str]) -> dict[str, Facts]:
        """What filters look at (channel, publication, date, kind, links) for live posts, cheaply."""
        return {pid: Facts(channel, publication, d.astimezone(timezone.utc) if d else None, kind, links)
                for pid, channel, publication, d, kind, links in self._q(
                    "SELECT id, channel, publication, date, kind, links <> '[]'::jsonb FROM posts "
                    "WHERE id = ANY(%s::text[]) AND NOT deleted", (list(ids),))}

    def live(self, ids: list[str]) -> set[str]:
        """Those of `ids` that are in the store and not deleted."""
        return {r[0] for r in self._q("SELECT id FROM posts WHERE id = ANY(%s::text[]) AND NOT deleted", (list(ids),))}

    def publications(self) -> list[str]:
        return [p for (p,) in self._q("SELECT DISTINCT publication FROM posts WHERE publication <> ''")]

    def count_since(self, version: int) -> int:
        """How many posts were written after `version` (a derived index's backlog)."""
        return self._one("SELECT COUNT(*) FROM posts WHERE version > %s", (version,))[0]

    def versions_since(self, start: int) -> list[int]:
        return [v for (v,) in self._q("SELECT version FROM posts WHERE version > %s ORDER BY version", (start,))]

    def record_file(self, path: str, *, format: str, size: int | None, mtime_ns: int | None,
                    posts: int, status: str, error: str = "") -> None:
        self._q("INSERT INTO files(path, format, size, mtime_ns, posts, status, error, ingested_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, now()) ON CONFLICT (path) DO UPDATE SET format = excluded.format, "
                "size = excluded.size, mtime_ns = excluded.mtime_ns, posts = excluded.posts, status = excluded.status, "
                "error = excluded.error, ingested_at = excluded.ingested_at",
                (path, format, size, mtime_ns, posts, status, error), "recording a file")

    # -- reads -------------------------------------------------------------------------------
    def get(self, post_id: str) -> Post:
        row = self._one(f"SELECT {SELECT} FROM posts WHERE id = %s", (post_id,))
        if row is None:
            raise NotFoundError(f"no post with id {post_id!r}")
        return row_to_post(row)

    def get_many(self, ids: list[str]) -> dict[str, Post]:
        return {row[0]: row_to_post(row) for row in
                self._q(f"SELECT {SELECT} FROM posts WHERE id = ANY(%s::text[])", (list(ids),))}

    def count(self) -> int:
        return self._one("SELECT COUNT(*) FROM posts")[0]

    def max_version(self) -> int:
        return self._one("SELECT COALESCE(MAX(version), 0) FROM posts")[0]

    def iter_posts(self, *, order: str = "date", batch: int = 2000, deleted: bool = False) -> Iterator[Post]:
        """Every post (deleted ones only with `deleted=True`), read through a server-side cursor on
        a connection of its own (one snapshot; the thread's connection stays free)."""
        order_sql = {"date": "date NULLS FIRST, id", "id": "id", "version": "version"}[order]
        where = "" if deleted else "WHERE NOT deleted "
        conn = self._connect()
        try:
            with self._errors("reading posts"):
                with conn.transaction():
                    with conn.cursor(name="tgsearch_iter_posts") as cur:
                        cur.itersize = batch
                        cur.execute(f"SELECT {SELECT} FROM posts {where}ORDER BY {order_sql}")
                        while True:
                            rows = cur.fetchmany(batch)
                            if not rows:
                                return
                            for row in rows:
                                yield row_to_post(row)
        finally:
            conn.close()

    def iter_since(self, version: int, *, batch: int = 2000) -> Iterator[tuple[int, Post]]:
        """(version, post) for every post written after `version`, lowest version first. With
        concurrent writers a lower version may commit later: use iter_changed to miss nothing."""
        last = version
        while True:
            rows = self._q(f"SELECT version, {SELECT} FROM posts WHERE version > %s ORDER BY version LIMIT %s",
                           (last, batch))
            if not rows:
                return
            for row in rows:
                yield row[0], row_to_post(row[1:])
            last = rows[-1][0]

    def snapshot_mark(self) -> int:
        """The oldest transaction id still running (every transaction below it has ended)."""
        return int(self._one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")[0])

    def iter_changed(self, since_mark: int, until_mark: int, *, batch: int = 2000, versions: bool = False) -> Iterator:
        """Every post (deleted ones too) last written by a transaction in [since_mark, until_mark),
        by transaction then version. A consumer keeps a mark, takes `until = snapshot_mark()`,
        reads `iter_changed(mark, until)` and keeps `until`: it never skips a write, whatever the
        order transactions commit in (a post written again later comes again). `versions`: yield
        (version, post) pairs."""
        last_xid, last_version = int(since_mark), -1
        while True:
            rows = self._q(
                f"SELECT xid::text::bigint, version, {SELECT} FROM posts "
                "WHERE xid >= %s::text::xid8 AND xid < %s::text::xid8 "
                "AND (xid > %s::text::xid8 OR (xid = %s::text::xid8 AND version > %s)) "
                "ORDER BY xid, version LIMIT %s",
                (str(since_mark), str(until_mark), str(last_xid), str(last_xid), last_version, batch))
            if not rows:
                return
            for row in rows:
                yield (row[1], row_to_post(row[2:])) if versions else row_to_post(row[2:])
            last_xid, last_version = int(rows[-1][0]), rows[-1][1]

    def count_changed(self, since_mark: int, upto: int | None = None) -> int:
        """How many posts were last written by a transaction at or after `since_mark` (a backlog),
        counting no further than `upto` when given."""
        if upto is not None:
            return int(self._one("SELECT count(*) FROM (SELECT 1 FROM posts WHERE xid >= %s::text::xid8 LIMIT %s) s",
                                 (str(since_mark), int(upto)))[0])
        return int(self._one("SELECT count(*) FROM posts WHERE xid >= %s::text::xid8", (str(since_mark),))[0])

    def ids_and_versions(self, *, deleted: bool = False) -> dict[str, int]:
        where = "" if deleted else " WHERE NOT deleted"
        return {r[0]: r[1] for r in self._q("SELECT id, version FROM posts" + where)}

    def stats(self) -> dict:
        total, deleted, first, last = self._one(
            "SELECT COUNT(*) FILTER (WHERE NOT deleted), COUNT(*) FILTER (WHERE deleted), "
            "MIN(date) FILTER (WHERE NOT deleted), MAX(date) FILTER (WHERE NOT deleted) FROM posts")
        titles = self.channel_titles()
        channels = [
            {"channel": r[0], "title": titles.get(r[0], r[0]), "posts": r[1], "first": iso(r[2]), "last": iso(r[3])}
            for r in self._q("SELECT channel, COUNT(*), MIN(date), MAX(date) FROM posts WHERE NOT deleted "
                             "GROUP BY channel ORDER BY COUNT(*) DESC, channel")
        ]
        kinds = {r[0]: r[1] for r in self._q("SELECT kind, COUNT(*) FROM posts WHERE NOT deleted GROUP BY kind")}
        files = [{"path": r[0], "format": r[1], "posts": r[2], "status": r[3], "error": r[4]}
                 for r in self._q('SELECT path, format, posts, status, error FROM files ORDER BY path COLLATE "C"')]
        return {
            "posts": total,
            "deleted": deleted,
            "channels": channels,
            "kinds": kinds,
            "first_date": iso(first),
            "last_date": iso(last),
            "files": files,
            "db": self.where,
        }

