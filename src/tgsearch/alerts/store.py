"""Saved searches and their alerts: `<db>/alerts.sqlite`.

Tables:
- `searches`: a saved search (name unique, query, channels as JSON, webhook URL, created) and its
  check mark `mark` -- the store version up to which posts were checked;
- `alerts`: one row per (search, story) that fired: the first matching post, when it fired;
  `story` is NULL only for a post the stories index does not place (stories off);
- `deliveries`: the webhook delivery of an alert: state (pending | delivered | failed), attempts,
  last status / error, next retry.

`record_check` writes a check's alerts, their deliveries and the moved mark in ONE transaction, so
a crash during a check neither loses nor repeats alerts.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
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

    # -- saved searches ------------------------------------------------------------------------
    def add(self, name: str, query: str, *, channels=(), webhook: str | None = None, mark: int = 0) -> dict:
        """Save a search; it checks posts written after `mark` (the store version now: only new
        posts alert)."""
        check_name(name)
        if not (query or "").strip():
            raise AlertError(f"alert {name!r}: the query is empty")
        webhook = check_webhook(webhook)
        with self.lock:
            try:
                self.conn.execute("INSERT INTO searches (name, query, channels, webhook, created, mark) "
                                  "VALUES (?, ?, ?, ?, ?, ?)",
                                  (name, query.strip(), json.dumps(list(channels), ensure_ascii=False), webhook,
                                   now_iso(), int(mark)))
            except sqlite3.IntegrityError as e:
                raise AlertError(f"an alert named {name!r} exists already; remove it first or pick another name") from e
        return self.get(name)

    def remove(self, name: str) -> None:
        with self.lock:
            cur = self.conn.execute("DELETE FROM searches WHERE name = ?", (name,))
        if cur.rowcount == 0:
            raise NotFoundError(f"no saved search named {name!r} (see `tgsearch alerts list`)")

    @staticmethod
    def _search(row) -> dict:
        d = dict(row)
        d["channels"] = json.loads(d["channels"] or "[]")
        return d

    def get(self, name: str) -> dict:
        row = self.conn.execute("SELECT * FROM searches WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no saved search named {name!r} (see `tgsearch alerts list`)")
        return self._search(row)

    def searches(self) -> list[dict]:
        rows = self.conn.execute(
            "SELECT s.*, (SELECT COUNT(*) FROM alerts a WHERE a.search = s.id) AS alerts FROM searches s ORDER BY name")
        return [self._search(r) for r in rows]

    # -- alerts --------------------------------------------------------------------------------
    def alerted(self, search_id: int) -> tuple[set[int], set[str]]:
        """(story ids already alerted, their first posts) for a search."""
        stories, posts = set(), set()
        for story, post in self.conn.execute("SELECT story, first_post FROM alerts WHERE search = ?", (search_id,)):
            if story is not None:
                stories.add(story)
            posts.add(post)
        return stories, posts

    def record_check(self, search_id: int, mark: int, alerts: list[dict], webhook: str | None,
                     before_commit=None) -> list[int]:
        """In one transaction: insert the alerts (dicts with story, first_post, fired, payload),
        a pending delivery for each when there is a webhook, and move the search's mark to `mark`.
        `before_commit()` runs inside the transaction (tests use it to crash there)."""
        ids = []
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                for a in alerts:
                    cur = self.conn.execute(
                        "INSERT OR IGNORE INTO alerts (search, story, first_post, fired, payload) VALUES (?, ?, ?, ?, ?)",
                        (search_id, a["story"], a["first_post"], a["fired"], json.dumps(a["payload"], ensure_ascii=False)))
                    if cur.rowcount:
                        ids.append(cur.lastrowid)
                        if webhook:
                            self.conn.execute("INSERT INTO deliveries (alert, url) VALUES (?, ?)", (cur.lastrowid, webhook))
                self.conn.execute("UPDATE searches SET mark = MAX(mark, ?), checked = ? WHERE id = ?",
                                  (int(mark), now_iso(), search_id))
                if before_commit is not None:
                    before_commit()
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        return ids

    def alerts(self, search_id: int, limit: int | None = None) -> list[dict]:
        """A search's alerts, newest first, each with its delivery (when it has a webhook)."""
        sql = ("SELECT a.*, d.state, d.attempts, d.status, d.error, d.next_retry, d.delivered FROM alerts a "
               "LEFT JOIN deliveries d ON d.alert = a.id WHERE a.search = ? ORDER BY a.id DESC")
        if limit:
            sql += f" LIMIT {int(limit)}"
        out = []
        for row in self.conn.execute(sql, (search_id,)):
            d = dict(row)
            d["payload"] = json.loads(d["payload"])
            out.append(d)
        return out

    def get_alerts(self, ids: list[int]) -> list[dict]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(f"SELECT * FROM alerts WHERE id IN ({marks}) ORDER BY id", list(ids))
        return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]

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
        rows = self.conn.execute(sql + " ORDER BY d.alert", args).fetchall()
        return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]

    def delivery_result(self, alert_id: int, *, ok: bool, status: int | None, error: str | None, now: float) -> dict:
        """Record one attempt: delivered, or pending with the next retry after a backoff, or
        failed after MAX_ATTEMPTS."""
        with self.lock:
            row = self.conn.execute("SELECT attempts FROM deliveries WHERE alert = ?", (alert_id,)).fetchone()
            attempts = (row[0] if row else 0) + 1
            if ok:
                state, next_retry = "delivered", 0.0
            elif attempts >= MAX_ATTEMPTS:
                state, next_retry = "failed", 0.0
            else:
                state, next_retry = "pending", now + BACKOFF * 2 ** (attempts - 1)
            self.conn.execute("UPDATE deliveries SET attempts = ?, state = ?, status = ?, error = ?, next_retry = ?, "
                              "delivered = ? WHERE alert = ?",
                              (attempts, state, status, error, next_retry, now_iso() if ok else None, alert_id))
        return {"alert": alert_id, "state": state, "attempts": attempts, "status": status, "error": error,
                "next_retry": next_retry}
