"""The store: one SQLite file (WAL), the source of truth for posts.

Indexes are derived from it. Every insert or update stamps the row with a new,
strictly increasing `version`, so a derived index can catch up from the highest
version it has seen (its high-water mark).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from .errors import NotFoundError, StoreError
from .post import Post, iso, parse_datetime
from .store_collect import CollectState

DB_FILE = "store.sqlite"

MIGRATIONS: list[str] = [
    # 1: posts, files, meta
    """
    CREATE TABLE posts (
        id TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        channel_title TEXT NOT NULL DEFAULT '',
        date TEXT,
        edit_date TEXT,
        title TEXT NOT NULL DEFAULT '',
        text TEXT NOT NULL DEFAULT '',
        source_url TEXT NOT NULL DEFAULT '',
        publication TEXT NOT NULL DEFAULT '',
        publication_country TEXT NOT NULL DEFAULT '',
        author TEXT NOT NULL DEFAULT '',
        forwarded_from TEXT NOT NULL DEFAULT '',
        reply_to INTEGER,
        views INTEGER,
        kind TEXT NOT NULL DEFAULT 'post',
        language TEXT NOT NULL DEFAULT '',
        origin_file TEXT NOT NULL DEFAULT '',
        message_ids TEXT NOT NULL DEFAULT '[]',
        links TEXT NOT NULL DEFAULT '[]',
        reactions TEXT NOT NULL DEFAULT '{}',
        media TEXT NOT NULL DEFAULT '[]',
        hash TEXT NOT NULL,
        version INTEGER NOT NULL,
        ingested_at TEXT NOT NULL
    );
    CREATE INDEX posts_version ON posts(version);
    CREATE INDEX posts_channel_date ON posts(channel, date);
    CREATE INDEX posts_date ON posts(date);
    CREATE TABLE files (
        path TEXT PRIMARY KEY,
        format TEXT NOT NULL DEFAULT '',
        size INTEGER,
        mtime_ns INTEGER,
        posts INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        error TEXT NOT NULL DEFAULT '',
        ingested_at TEXT NOT NULL
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: edited mark, link previews, deletion marks; channel names set by the user
    """
    ALTER TABLE posts ADD COLUMN edited INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE posts ADD COLUMN preview_site TEXT NOT NULL DEFAULT '';
    ALTER TABLE posts ADD COLUMN preview_title TEXT NOT NULL DEFAULT '';
    ALTER TABLE posts ADD COLUMN preview_description TEXT NOT NULL DEFAULT '';
    ALTER TABLE posts ADD COLUMN preview_url TEXT NOT NULL DEFAULT '';
    ALTER TABLE posts ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    UPDATE posts SET edited = 1 WHERE edit_date IS NOT NULL;
    CREATE TABLE channel_names (channel TEXT PRIMARY KEY, title TEXT NOT NULL);
    """,
    # 3: one channel-naming rule (sources.channel_name: lower case); see _lowercase_channels
    "_lowercase_channels",
    # 4: where `tgsearch crawl` is in each channel's history (newest id seen, oldest id reached)
    """
    CREATE TABLE IF NOT EXISTS crawl_cursors (
        channel TEXT PRIMARY KEY,
        newest INTEGER,
        oldest INTEGER,
        complete INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL
    );
    """,
    # 5: `tgsearch fetch-articles`: each link's outcome, recorded once (see Store.pending_links)
    """
    CREATE TABLE IF NOT EXISTS links (
        url TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        article_id TEXT,
        fetched_at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS links_article ON links(article_id);
    """,
    # 6: the last run of each entry of the sources file (collect/sources.py), for the Sources page
    """
    CREATE TABLE IF NOT EXISTS source_runs (
        key TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        posts INTEGER NOT NULL DEFAULT 0,
        error TEXT NOT NULL DEFAULT ''
    );
    """,
    # 7, 8: `tgsearch sync` (Telegram API): forwards' original date, forum topics, a cursor per channel
    # (every message up to last_id is stored; peer_id/access_hash spare a username lookup)
    "_sync_columns",
    """
    CREATE TABLE IF NOT EXISTS sync_cursors (
        channel TEXT PRIMARY KEY,
        last_id INTEGER NOT NULL DEFAULT 0,
        peer_id INTEGER,
        access_hash INTEGER,
        complete INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS sync_cursors_peer ON sync_cursors(peer_id);
    """,
]


def _lowercase_channels(conn: sqlite3.Connection) -> None:
    """Channels stored with capitals before the one naming rule (JSON Lines, Telethon and t.me/s
    usernames): each such post gets a copy under the lower-case channel and id, and the old row
    is marked deleted, so re-ingesting the same files finds the posts again (no duplicates) and
    derived indexes drop the old ids through the usual deletion path (new versions for both)."""
    version = conn.execute("SELECT COALESCE(MAX(version), 0) FROM posts").fetchone()[0]
    rows = conn.execute("SELECT * FROM posts WHERE channel != lower(channel) AND deleted = 0 "
                        "AND substr(id, 1, length(channel) + 1) = channel || '/' ORDER BY version").fetchall()
    names = [d[0] for d in conn.execute("SELECT * FROM posts LIMIT 0").description]
    for row in rows:
        data = dict(zip(names, row))
        new_id = data["channel"].lower() + data["id"][len(data["channel"]):]
        if conn.execute("SELECT 1 FROM posts WHERE id = ?", (new_id,)).fetchone() is None:
            version += 1
            data.update(id=new_id, channel=data["channel"].lower(), version=version)
            data["hash"] = row_to_post(data).content_hash()
            conn.execute(f"INSERT INTO posts({', '.join(data)}) VALUES({', '.join('?' * len(data))})", list(data.values()))
        version += 1
        conn.execute("UPDATE posts SET deleted = 1, version = ? WHERE id = ?", (version, row[0]))

def _sync_columns(conn: sqlite3.Connection) -> None:
    """Posts' forward_date and topic_id columns (added once: a migration may run again)."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(posts)")}
    for name, kind in (("forward_date", "TEXT"), ("topic_id", "INTEGER")):
        if name not in have:
            conn.execute(f"ALTER TABLE posts ADD COLUMN {name} {kind}")


_COLUMNS = (
    "id", "channel", "channel_title", "date", "edit_date", "title", "text", "source_url",
    "publication", "publication_country", "author", "forwarded_from", "reply_to", "views",
    "kind", "language", "origin_file", "message_ids", "links", "reactions", "media",
    "edited", "preview_site", "preview_title", "preview_description", "preview_url", "deleted",
    "forward_date", "topic_id",
)
_JSON_COLUMNS = ("message_ids", "links", "reactions", "media")
_REACTIONS = _COLUMNS.index("reactions")


class Facts(NamedTuple):
    """The filterable facts of a post (see Store.facts)."""

    channel: str
    publication: str
    date: datetime | None
    kind: str
    links: bool


@dataclass
class UpsertResult:
    new: int = 0
    updated: int = 0        # text or fields changed: a new version, derived data redone
    refreshed: int = 0      # only counters (views, reactions) changed: updated in place, same version
    unchanged: int = 0

    def add(self, other: "UpsertResult") -> None:
        self.new += other.new
        self.updated += other.updated
        self.refreshed += other.refreshed
        self.unchanged += other.unchanged


def default_db_dir() -> Path:
    return Path(os.environ.get("TGSEARCH_DB") or "./tgsearch-data")


def connect_wal(path: Path, *, timeout: float, what: str) -> sqlite3.Connection:
    """An autocommit connection to a WAL-mode SQLite file, usable from any thread."""
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as e:
        raise StoreError(f"{path}: cannot open the {what} ({e})") from e
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class ThreadConnections:
    """One WAL connection per thread to one SQLite file, opened on first use (`setup` runs on each
    new one); `close()` closes the calling thread's."""

    def __init__(self, path: Path, *, timeout: float, what: str, setup=None):
        self.path, self.timeout, self.what, self.setup = path, timeout, what, setup
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_wal(self.path, timeout=self.timeout, what=self.what)
            if self.setup is not None:
                self.setup(conn)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _store_setup(conn: sqlite3.Connection) -> None:
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys=ON")


def _now() -> str:
    return iso(datetime.now(timezone.utc))


def post_to_row(post: Post, d: dict | None = None) -> tuple:
    d = d if d is not None else post.to_dict()
    row = []
    for col in _COLUMNS:
        value = d[col]
        if col in _JSON_COLUMNS:
            value = json.dumps(value, ensure_ascii=False)
        row.append(value)
    return tuple(row)


_LATE_COLUMNS = ("forward_date", "topic_id")  # migration 7: absent from rows read by earlier migrations


def row_to_post(row: sqlite3.Row) -> Post:
    data = {col: row[col] for col in _COLUMNS[:-len(_LATE_COLUMNS)]}
    for col in _LATE_COLUMNS:
        try:
            data[col] = row[col]
        except (IndexError, KeyError):
            data[col] = None
    data["message_ids"] = tuple(json.loads(data["message_ids"]))
    data["links"] = tuple(json.loads(data["links"]))
    data["media"] = tuple(json.loads(data["media"]))
    data["reactions"] = json.loads(data["reactions"])
    data["date"] = parse_datetime(data["date"]) if data["date"] else None
    data["edit_date"] = parse_datetime(data["edit_date"]) if data["edit_date"] else None
    data["forward_date"] = parse_datetime(data["forward_date"]) if data["forward_date"] else None
    data["edited"] = bool(data["edited"])
    data["deleted"] = bool(data["deleted"])
    return Post.stored(data)


class Store(CollectState):
    """A data folder holding the SQLite store (and, beside it, the derived indexes)."""

    def __init__(self, root: str | os.PathLike | None = None, *, create: bool = True):
        self.root = Path(root) if root is not None else default_db_dir()
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        elif not (self.root / DB_FILE).exists():
            raise StoreError(f"{self.root}: no tgsearch data folder here (run `tgsearch ingest PATH --db {self.root}` first)")
        self.path = self.root / DB_FILE
        self._conns = ThreadConnections(self.path, timeout=30, what="store", setup=_store_setup)
        self._migrate()

    # -- connections -------------------------------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        return self._conns.get()

    def close(self) -> None:
        self._conns.close()

    def _migrate(self) -> None:
        conn = self.conn
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current > len(MIGRATIONS):
            raise StoreError(f"{self.path}: store schema {current} is newer than this tgsearch ({len(MIGRATIONS)}); upgrade tgsearch")
        for number in range(current, len(MIGRATIONS)):
            try:
                conn.execute("BEGIN IMMEDIATE")
                if MIGRATIONS[number].startswith("_"):
                    globals()[MIGRATIONS[number]](conn)
                else:
                    for statement in _split_sql(MIGRATIONS[number]):
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number + 1}")
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                conn.execute("ROLLBACK")
                raise StoreError(f"{self.path}: migration {number + 1} failed ({e})") from e

    # -- meta --------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    # -- writes ------------------------------------------------------------------------------
    def upsert(self, posts: Iterable[Post]) -> UpsertResult:
        """Insert new posts, update changed ones, leave equal ones alone; one transaction.

        A post whose text and fields are unchanged but whose counters (views, reactions) moved is
        refreshed in place: its version stays, so no derived index redoes it. A post deleted at
        the source stays deleted when a source delivers it again (only `mark_deleted` changes that).
        """
        posts = list(posts)
        result = UpsertResult()
        if not posts:
            return result
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("SELECT COALESCE(MAX(version), 0) FROM posts").fetchone()[0]
            ids = [p.id for p in posts]
            existing: dict[str, tuple] = {}
            for chunk_start in range(0, len(ids), 500):
                chunk = ids[chunk_start:chunk_start + 500]
                marks = ",".join("?" * len(chunk))
                for row in conn.execute(f"SELECT id, hash, edit_date, views, reactions, deleted FROM posts "
                                        f"WHERE id IN ({marks})", chunk):
                    existing[row[0]] = (row[1], row[2], row[3], row[4], row[5])
            now = _now()
            inserts, updates, counters, deletions = [], [], [], []
            for post in posts:
                data = post.to_dict()
                digest = post.content_hash(data)
                old = existing.get(post.id)
                if old is not None:
                    old_hash, old_edit, old_views, old_reactions, old_deleted = old
                    if old_deleted and not post.deleted:
                        data["deleted"] = True
                    if post.deleted and not old_deleted:
                        # A source says it is gone now: keep what the store holds, mark it (a new
                        # version, so derived indexes drop it).
                        version += 1
                        deletions.append((version, post.id))
                        existing[post.id] = (old_hash, old_edit, old_views, old_reactions, True)
                        result.updated += 1
                        continue
                    if old_hash == digest:
                        reactions = json.dumps(data["reactions"], ensure_ascii=False) if data["reactions"] else "{}"
                        if (data["views"], reactions) != (old_views, old_reactions):
                            counters.append((data["views"], reactions, post.id))
                            existing[post.id] = (digest, old_edit, data["views"], reactions, old_deleted)
                            result.refreshed += 1
                        else:
                            result.unchanged += 1
                        continue
                    new_edit = iso(post.edit_date)
                    if old_edit and (new_edit is None or new_edit < old_edit):
                        # The store already holds a later edit of this message.
                        result.unchanged += 1
                        continue
                    version += 1
                    row = post_to_row(post, data)
                    updates.append(row + (digest, version, now))
                    existing[post.id] = (digest, new_edit, data["views"], row[_REACTIONS], data["deleted"])
                    result.updated += 1
                else:
                    version += 1
                    row = post_to_row(post, data)
                    inserts.append(row + (digest, version, now))
                    existing[post.id] = (digest, data["edit_date"], data["views"], row[_REACTIONS], data["deleted"])
                    result.new += 1
            cols = ", ".join(_COLUMNS + ("hash", "version", "ingested_at"))
            marks = ", ".join("?" * (len(_COLUMNS) + 3))
            if inserts:
                conn.executemany(f"INSERT INTO posts({cols}) VALUES({marks})", inserts)
            if updates:
                conn.executemany(f"INSERT OR REPLACE INTO posts({cols}) VALUES({marks})", updates)
            if counters:
                conn.executemany("UPDATE posts SET views=?, reactions=? WHERE id=?", counters)
            if deletions:
                conn.executemany("UPDATE posts SET deleted=1, version=? WHERE id=?", deletions)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return result

    def mark_deleted(self, ids: Iterable[str], deleted: bool = True) -> int:
        """Mark posts deleted at the source (kept, hidden from search and export); a new version
        each, so derived indexes drop them. Returns how many changed."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("SELECT COALESCE(MAX(version), 0) FROM posts").fetchone()[0]
            changed = 0
            for pid in ids:
                cur = conn.execute("UPDATE posts SET deleted=?, version=? WHERE id=? AND deleted!=?",
                                   (int(deleted), version + 1, pid, int(deleted)))
                if cur.rowcount:
                    version += 1
                    changed += 1
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return changed

    # -- channel names -------------------------------------------------------------------------
    def rename_channel(self, channel: str, title: str) -> int:
        """Give a channel the title the UI shows (kept across re-ingests); returns its post count."""
        n = self.conn.execute("SELECT COUNT(*) FROM posts WHERE channel=?", (channel,)).fetchone()[0]
        if not n:
            raise NotFoundError(f"no channel {channel!r} in {self.root} (see `tgsearch stats`)")
        with self.conn:
            self.conn.execute("INSERT INTO channel_names(channel, title) VALUES(?, ?) "
                              "ON CONFLICT(channel) DO UPDATE SET title=excluded.title", (channel, title))
            self.conn.execute("INSERT INTO meta(key, value) VALUES('renames', '1') "
                              "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")
        return n

    def names_version(self) -> tuple[int, str]:
        """Changes when a post is written or a channel renamed: what cached channel names key on."""
        row = self.conn.execute("SELECT (SELECT COALESCE(MAX(version), 0) FROM posts), "
                                "(SELECT value FROM meta WHERE key = 'renames')").fetchone()
        return (row[0], row[1] or "")

    def channel_titles(self) -> dict[str, str]:
        """channel slug -> the title to show: the user's name for it, else the latest title a
        source gave, else the slug."""
        titles: dict[str, str] = {}
        for slug, title in self.conn.execute("SELECT channel, MAX(channel_title) FROM posts GROUP BY channel"):
            titles[slug] = title or slug
        for slug, title in self.conn.execute("SELECT channel, title FROM channel_names"):
            if slug in titles:
                titles[slug] = title
        return titles

    def channel_names(self) -> list[tuple[str, str]]:
        """Every (channel slug, title a source gave it) pair in the store."""
        return [(r[0], r[1]) for r in self.conn.execute("SELECT DISTINCT channel, channel_title FROM posts")]

    def dates(self, ids: list[str]) -> dict[str, str]:
        """post id -> its ISO UTC date (posts without a date are absent)."""
        out: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for pid, d in self.conn.execute(f"SELECT id, date FROM posts WHERE id IN ({marks}) AND date IS NOT NULL", chunk):
                out[pid] = d
        return out

    def facts(self, ids: list[str]) -> dict[str, "Facts"]:
        """What filters look at (channel, publication, date, kind, links) for live posts, cheaply."""
        out: dict[str, Facts] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for pid, channel, publication, d, kind, links in self.conn.execute(
                    f"SELECT id, channel, publication, date, kind, links FROM posts WHERE id IN ({marks}) AND deleted = 0",
                    chunk):
                out[pid] = Facts(channel, publication, parse_datetime(d) if d else None, kind, links != "[]")
        return out

    def live(self, ids: list[str]) -> set[str]:
        """Those of `ids` that are in the store and not deleted."""
        out: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            out.update(r[0] for r in self.conn.execute(f"SELECT id FROM posts WHERE id IN ({marks}) AND deleted = 0", chunk))
        return out

    def publications(self) -> list[str]:
        return [p for (p,) in self.conn.execute("SELECT DISTINCT publication FROM posts WHERE publication != ''")]

    def count_since(self, version: int) -> int:
        """How many posts were written after `version` (a derived index's backlog)."""
        return self.conn.execute("SELECT COUNT(*) FROM posts WHERE version > ?", (version,)).fetchone()[0]

    def versions_since(self, start: int) -> list[int]:
        return [v for (v,) in self.conn.execute("SELECT version FROM posts WHERE version > ? ORDER BY version", (start,))]

    def record_file(self, path: str, *, format: str, size: int | None, mtime_ns: int | None,
                    posts: int, status: str, error: str = "") -> None:
        self.conn.execute(
            "INSERT INTO files(path, format, size, mtime_ns, posts, status, error, ingested_at) VALUES(?,?,?,?,?,?,?,?) "
            "ON CONFLICT(path) DO UPDATE SET format=excluded.format, size=excluded.size, mtime_ns=excluded.mtime_ns, "
            "posts=excluded.posts, status=excluded.status, error=excluded.error, ingested_at=excluded.ingested_at",
            (path, format, size, mtime_ns, posts, status, error, _now()),
        )

    # -- reads -------------------------------------------------------------------------------
    def get(self, post_id: str) -> Post:
        row = self.conn.execute("SELECT * FROM posts WHERE id=?", (post_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no post with id {post_id!r}")
        return row_to_post(row)

    def get_many(self, ids: list[str]) -> dict[str, Post]:
        out: dict[str, Post] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(f"SELECT * FROM posts WHERE id IN ({marks})", chunk):
                out[row["id"]] = row_to_post(row)
        return out

    def count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM posts").fetchone()[0]

    def max_version(self) -> int:
        return self.conn.execute("SELECT COALESCE(MAX(version), 0) FROM posts").fetchone()[0]

    def iter_posts(self, *, order: str = "date", batch: int = 2000, deleted: bool = False) -> Iterator[Post]:
        """Every post (deleted ones only with `deleted=True`)."""
        order_sql = {"date": "date, id", "id": "id", "version": "version"}[order]
        where = "" if deleted else "WHERE deleted = 0 "
        cursor = self.conn.execute(f"SELECT * FROM posts {where}ORDER BY {order_sql}")
        while True:
            rows = cursor.fetchmany(batch)
            if not rows:
                return
            for row in rows:
                yield row_to_post(row)

    def iter_since(self, version: int, *, batch: int = 2000) -> Iterator[tuple[int, Post]]:
        """(version, post) for every post written after `version`, oldest write first."""
        last = version
        while True:
            rows = self.conn.execute(
                "SELECT * FROM posts WHERE version > ? ORDER BY version LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield row["version"], row_to_post(row)
            last = rows[-1]["version"]

    def ids_and_versions(self, *, deleted: bool = False) -> dict[str, int]:
        where = "" if deleted else " WHERE deleted = 0"
        return {r[0]: r[1] for r in self.conn.execute("SELECT id, version FROM posts" + where)}

    def stats(self) -> dict:
        conn = self.conn
        total = conn.execute("SELECT COUNT(*) FROM posts WHERE deleted = 0").fetchone()[0]
        deleted = conn.execute("SELECT COUNT(*) FROM posts WHERE deleted != 0").fetchone()[0]
        titles = self.channel_titles()
        channels = [
            {"channel": r[0], "title": titles.get(r[0], r[0]), "posts": r[1], "first": r[2], "last": r[3]}
            for r in conn.execute(
                "SELECT channel, COUNT(*), MIN(date), MAX(date) FROM posts WHERE deleted = 0 "
                "GROUP BY channel ORDER BY COUNT(*) DESC, channel"
            )
        ]
        kinds = {r[0]: r[1] for r in conn.execute("SELECT kind, COUNT(*) FROM posts WHERE deleted = 0 GROUP BY kind")}
        first, last = conn.execute("SELECT MIN(date), MAX(date) FROM posts WHERE deleted = 0").fetchone()
        files = [dict(r) for r in conn.execute("SELECT path, format, posts, status, error FROM files ORDER BY path")]
        return {
            "posts": total,
            "deleted": deleted,
            "channels": channels,
            "kinds": kinds,
            "first_date": first,
            "last_date": last,
            "files": files,
            "db": str(self.root),
        }


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
