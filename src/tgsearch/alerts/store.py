"""Saved searches and their alerts: `<db>/alerts.sqlite` (a data folder), or the same tables in the
PostgreSQL database (`PgAlertStore`; get either through `backend.alert_store()`, alerts/backend_api.py).

Tables:
- `searches`: a saved search (name unique, query, channels as JSON, webhook URL, created) and its
  check mark `mark` -- the backend's mark up to which posts were checked (a data folder: a store
  version; PostgreSQL: a transaction-id mark, see AlertsAPI.changed_since);
- `alerts`: one row per (search, story) that fired: the first matching post, when it fired;
  `story` is NULL only for a post the stories index does not place (stories off);
- `deliveries`: the webhook delivery of an alert: state (pending | delivered | failed), attempts,
  last status / error, next retry.

`record_check` writes a check's alerts, their deliveries and the moved mark in ONE transaction, so
a crash during a check neither loses nor repeats alerts. The SQL is written once, for SQLite; the
PostgreSQL store runs it through `_pg_sql` (`?` placeholders, no SQLite-only syntax besides that).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import AlertError, NotFoundError, StoreError

FILE = "alerts.sqlite"
NAME_RE = re.compile(r"^[\w.-]{1,64}$")
MAX_ATTEMPTS = 6          # webhook attempts per alert, across runs
BACKOFF = 60.0            # seconds before the 2nd attempt; doubles each time

SCHEMA = """
CREATE TABLE IF NOT EXISTS searches (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    query TEXT NOT NULL,
    channels TEXT NOT NULL DEFAULT '[]',
    webhook TEXT,
    created TEXT NOT NULL,
    mark INTEGER NOT NULL DEFAULT 0,
    checked TEXT
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    search INTEGER NOT NULL REFERENCES searches(id) ON DELETE CASCADE,
    story INTEGER,
    first_post TEXT NOT NULL,
    fired TEXT NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (search, story)
);
CREATE INDEX IF NOT EXISTS alerts_search ON alerts(search, id);
CREATE TABLE IF NOT EXISTS deliveries (
    alert INTEGER PRIMARY KEY REFERENCES alerts(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    status INTEGER,
    error TEXT,
    next_retry REAL NOT NULL DEFAULT 0,
    delivered TEXT
);
"""


PG_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS searches (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, query text NOT NULL,
        channels text NOT NULL DEFAULT '[]', webhook text, created text NOT NULL, mark bigint NOT NULL DEFAULT 0,
        checked text)""",
    """CREATE TABLE IF NOT EXISTS alerts (id bigserial PRIMARY KEY,
        search bigint NOT NULL REFERENCES searches(id) ON DELETE CASCADE, story bigint, first_post text NOT NULL,
        fired text NOT NULL, payload text NOT NULL, UNIQUE (search, story))""",
    "CREATE INDEX IF NOT EXISTS alerts_search ON alerts(search, id)",
    """CREATE TABLE IF NOT EXISTS deliveries (alert bigint PRIMARY KEY REFERENCES alerts(id) ON DELETE CASCADE,
        url text NOT NULL, state text NOT NULL DEFAULT 'pending', attempts integer NOT NULL DEFAULT 0, status integer,
        error text, next_retry double precision NOT NULL DEFAULT 0, delivered text)""",
]
PG_LOCK = 7_301_010       # advisory lock key: one schema creator at a time


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def check_webhook(url: str | None) -> str | None:
    """An operator-given webhook URL: http(s) with a host, else AlertError."""
    if url is None or url == "":
        return None
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise AlertError(f"webhook {url!r}: only http:// or https:// URLs with a host are accepted")
    return url.strip()


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise AlertError(f"alert name {name!r}: use 1-64 letters, digits, '_', '-' or '.'")
    return name


class AlertStore:
    """The alerts of a data folder (`<root>/alerts.sqlite`). Every query goes through `_all` /
    `_one` / `_run` and every transaction through `_transaction`, which `PgAlertStore` provides
    for PostgreSQL."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise StoreError(f"{self.root}: no data folder here; ingest or crawl something first")
        self.path = self.root / FILE
        self.conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.executescript(SCHEMA)
        self.lock = threading.RLock()

    def close(self) -> None:
        self.conn.close()

    # -- the SQL primitives (SQLite here) --------------------------------------------------------
    def _all(self, sql: str, params=()) -> list[dict]:
        return [dict(r) for r in self.conn.execute(sql, tuple(params))]

    def _one(self, sql: str, params=()) -> dict | None:
        row = self.conn.execute(sql, tuple(params)).fetchone()
        return dict(row) if row is not None else None

    def _run(self, sql: str, params=()) -> int:
        return self.conn.execute(sql, tuple(params)).rowcount

    @contextmanager
    def _transaction(self):
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- saved searches ------------------------------------------------------------------------
    def add(self, name: str, query: str, *, channels=(), webhook: str | None = None, mark: int = 0) -> dict:
        """Save a search; it checks posts written after `mark` (the backend's `alert_mark()` now:
        only new posts alert; 0: every post stored)."""
        check_name(name)
        if not (query or "").strip():
            raise AlertError(f"alert {name!r}: the query is empty")
        webhook = check_webhook(webhook)
        with self.lock:
            row = self._one("INSERT INTO searches (name, query, channels, webhook, created, mark) "
                            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING id",
                            (name, query.strip(), json.dumps(list(channels), ensure_ascii=False), webhook,
                             now_iso(), int(mark)))
        if row is None:
            raise AlertError(f"an alert named {name!r} exists already; remove it first or pick another name")
        return self.get(name)

    def remove(self, name: str) -> None:
        with self.lock:
            n = self._run("DELETE FROM searches WHERE name = ?", (name,))
        if n == 0:
            raise NotFoundError(f"no saved search named {name!r} (see `tgsearch alerts list`)")

    @staticmethod
    def _search(row: dict) -> dict:
        d = dict(row)
        d["channels"] = json.loads(d["channels"] or "[]")
        return d

    def get(self, name: str) -> dict:
        row = self._one("SELECT * FROM searches WHERE name = ?", (name,))
        if row is None:
            raise NotFoundError(f"no saved search named {name!r} (see `tgsearch alerts list`)")
        return self._search(row)

    def searches(self) -> list[dict]:
        rows = self._all(
            "SELECT s.*, (SELECT COUNT(*) FROM alerts a WHERE a.search = s.id) AS alerts FROM searches s ORDER BY name")
        return [self._search(r) for r in rows]

    # -- alerts --------------------------------------------------------------------------------
    def alerted(self, search_id: int) -> tuple[set[int], set[str]]:
        """(story ids already alerted, their first posts) for a search."""
        stories, posts = set(), set()
        for r in self._all("SELECT story, first_post FROM alerts WHERE search = ?", (search_id,)):
            if r["story"] is not None:
                stories.add(r["story"])
            posts.add(r["first_post"])
        return stories, posts

    def record_check(self, search_id: int, mark: int, alerts: list[dict], webhook: str | None,
                     before_commit=None) -> list[int]:
        """In one transaction: insert the alerts (dicts with story, first_post, fired, payload),
        a pending delivery for each when there is a webhook, and move the search's mark to `mark`
        (never back). `before_commit()` runs inside the transaction (tests use it to crash there)."""
        ids = []
        with self.lock, self._transaction():
            for a in alerts:
                row = self._one(
                    "INSERT INTO alerts (search, story, first_post, fired, payload) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (search, story) DO NOTHING RETURNING id",
                    (search_id, a["story"], a["first_post"], a["fired"], json.dumps(a["payload"], ensure_ascii=False)))
                if row is not None:
                    ids.append(row["id"])
                    if webhook:
                        self._run("INSERT INTO deliveries (alert, url) VALUES (?, ?)", (row["id"], webhook))
            self._run("UPDATE searches SET mark = CASE WHEN mark > ? THEN mark ELSE ? END, checked = ? WHERE id = ?",
                      (int(mark), int(mark), now_iso(), search_id))
            if before_commit is not None:
                before_commit()
        return ids

    def alerts(self, search_id: int, limit: int | None = None) -> list[dict]:
        """A search's alerts, newest first, each with its delivery (when it has a webhook)."""
        sql = ("SELECT a.*, d.state, d.attempts, d.status, d.error, d.next_retry, d.delivered FROM alerts a "
               "LEFT JOIN deliveries d ON d.alert = a.id WHERE a.search = ? ORDER BY a.id DESC")
        if limit:
            sql += f" LIMIT {int(limit)}"
        out = []
        for d in self._all(sql, (search_id,)):
            d["payload"] = json.loads(d["payload"])
            out.append(d)
        return out

    def get_alerts(self, ids: list[int]) -> list[dict]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self._all(f"SELECT * FROM alerts WHERE id IN ({marks}) ORDER BY id", list(ids))
        return [{**r, "payload": json.loads(r["payload"])} for r in rows]

    # -- deliveries ----------------------------------------------------------------------------
    def due_deliveries(self, now: float, search_ids: list[int] | None = None) -> list[dict]:
        sql = ("SELECT d.*, a.payload, a.search FROM deliveries d JOIN alerts a ON a.id = d.alert "
               "WHERE d.state = 'pending' AND d.next_retry <= ?")
        args: list = [now]
        if search_ids is not None:
            if not search_ids:
                return []
            sql += f" AND a.search IN ({','.join('?' * len(search_ids))})"
            args += list(search_ids)
        rows = self._all(sql + " ORDER BY d.alert", args)
        return [{**r, "payload": json.loads(r["payload"])} for r in rows]

    def delivery_result(self, alert_id: int, *, ok: bool, status: int | None, error: str | None, now: float) -> dict:
        """Record one attempt: delivered, or pending with the next retry after a backoff, or
        failed after MAX_ATTEMPTS."""
        with self.lock:
            row = self._one("SELECT attempts FROM deliveries WHERE alert = ?", (alert_id,))
            attempts = (row["attempts"] if row else 0) + 1
            if ok:
                state, next_retry = "delivered", 0.0
            elif attempts >= MAX_ATTEMPTS:
                state, next_retry = "failed", 0.0
            else:
                state, next_retry = "pending", now + BACKOFF * 2 ** (attempts - 1)
            self._run("UPDATE deliveries SET attempts = ?, state = ?, status = ?, error = ?, next_retry = ?, "
                      "delivered = ? WHERE alert = ?",
                      (attempts, state, status, error, next_retry, now_iso() if ok else None, alert_id))
        return {"alert": alert_id, "state": state, "attempts": attempts, "status": status, "error": error,
                "next_retry": next_retry}


def _pg_sql(sql: str) -> str:
    return sql.replace("?", "%s")


class PgAlertStore(AlertStore):
    """The same tables in the PostgreSQL database of a `PgStore`, over that store's connection of
    the calling thread (autocommit; `record_check` in one transaction). `create`: make the tables
    if missing (else `exists()` says whether they are there)."""

    def __init__(self, store, *, create: bool = True):
        self.root = None
        self.path = None
        self.store = store
        self.where = store.where
        self.lock = threading.RLock()
        if create:
            with self._errors("creating the alerts tables"):
                from ..pg.schema import have_relations

                conn = store.conn
                if not have_relations(conn, ("searches", "alerts", "alerts_search", "deliveries")):
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK,))
                        for statement in PG_SCHEMA:
                            conn.execute(statement)

    @staticmethod
    def exists(store) -> bool:
        """Whether the database has the alerts tables (a search was ever saved or listed)."""
        row = store.conn.execute("SELECT to_regclass('searches') IS NOT NULL").fetchone()
        return bool(row[0])

    def _errors(self, what: str):
        return self.store._errors(what)

    def close(self) -> None:
        pass            # the store's connections

    def _cursor(self):
        from psycopg.rows import dict_row

        return self.store.conn.cursor(row_factory=dict_row)

    def _all(self, sql: str, params=()) -> list[dict]:
        with self._errors("reading the alerts"), self._cursor() as cur:
            cur.execute(_pg_sql(sql), tuple(params))
            return list(cur.fetchall()) if cur.description is not None else []

    def _one(self, sql: str, params=()) -> dict | None:
        rows = self._all(sql, params)
        return rows[0] if rows else None

    def _run(self, sql: str, params=()) -> int:
        with self._errors("writing the alerts"), self._cursor() as cur:
            cur.execute(_pg_sql(sql), tuple(params))
            return cur.rowcount

    @contextmanager
    def _transaction(self):
        with self._errors("writing the alerts"), self.store.conn.transaction():
            yield
