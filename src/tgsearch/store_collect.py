"""What the collectors keep in the store besides posts: crawl cursors (`tgsearch crawl`), sync
cursors (`tgsearch sync`) and the outcome of every fetched link (`tgsearch fetch-articles`). A mixin
of `Store` (its tables are in store.MIGRATIONS 4, 5, 6 and 7); every method uses `self.conn`."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Iterator

from .errors import NotFoundError
from .post import iso


def _now() -> str:
    return iso(datetime.now(timezone.utc))


class CollectState:
    # -- crawl cursors -------------------------------------------------------------------------
    def get_cursor(self, channel: str) -> dict | None:
        """{"newest", "oldest", "complete"} for a crawled channel, None before its first crawl."""
        row = self.conn.execute("SELECT newest, oldest, complete FROM crawl_cursors WHERE channel = ?", (channel,)).fetchone()
        return None if row is None else {"newest": row[0], "oldest": row[1], "complete": bool(row[2])}

    def set_cursor(self, channel: str, *, newest: int | None, oldest: int | None, complete: bool) -> None:
        self.conn.execute("INSERT INTO crawl_cursors(channel, newest, oldest, complete, updated_at) VALUES(?, ?, ?, ?, ?) "
                          "ON CONFLICT(channel) DO UPDATE SET newest=excluded.newest, oldest=excluded.oldest, "
                          "complete=excluded.complete, updated_at=excluded.updated_at",
                          (channel, newest, oldest, int(complete), _now()))

    # -- sync cursors (tgsearch sync, the Telegram API) -------------------------------------------
    def get_sync_cursor(self, channel: str) -> dict | None:
        """{"last_id", "peer_id", "access_hash", "complete", "updated_at"} for a synced channel,
        None before its first sync. Every message of the channel up to `last_id` is stored;
        `complete`: a sync has read the history up to the newest message at least once."""
        row = self.conn.execute("SELECT last_id, peer_id, access_hash, complete, updated_at FROM sync_cursors "
                                "WHERE channel = ?", (channel,)).fetchone()
        return None if row is None else {"last_id": row[0], "peer_id": row[1], "access_hash": row[2],
                                         "complete": bool(row[3]), "updated_at": row[4]}

    def set_sync_cursor(self, channel: str, *, last_id: int, complete: bool, peer_id: int | None = None,
                        access_hash: int | None = None) -> None:
        """Move a channel's sync cursor (only after the messages up to `last_id` are stored); a
        peer id or access hash left None keeps the one recorded."""
        self.conn.execute("INSERT INTO sync_cursors(channel, last_id, peer_id, access_hash, complete, updated_at) "
                          "VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(channel) DO UPDATE SET last_id=excluded.last_id, "
                          "peer_id=COALESCE(excluded.peer_id, peer_id), "
                          "access_hash=COALESCE(excluded.access_hash, access_hash), "
                          "complete=excluded.complete, updated_at=excluded.updated_at",
                          (channel, int(last_id), peer_id, access_hash, int(complete), _now()))

    def sync_channel_of_peer(self, peer_id: int) -> str | None:
        """The channel whose sync cursor records this (marked) peer id, if any."""
        row = self.conn.execute("SELECT channel FROM sync_cursors WHERE peer_id = ?", (peer_id,)).fetchone()
        return row[0] if row else None

    def recent_messages(self, channel: str, n: int, *, up_to: int | None = None) -> list[tuple[str, tuple[int, ...]]]:
        """(post id, message ids) of a channel's `n` most recent live posts (those with message
        ids, highest first; only posts whose first message id is <= `up_to` when given)."""
        rows = self.conn.execute(
            "SELECT id, message_ids FROM posts WHERE channel = ? AND deleted = 0 AND kind = 'post' "
            "AND message_ids != '[]' AND (? IS NULL OR json_extract(message_ids, '$[0]') <= ?) "
            "ORDER BY json_extract(message_ids, '$[0]') DESC LIMIT ?", (channel, up_to, up_to, n)).fetchall()
        return [(r[0], tuple(json.loads(r[1]))) for r in rows]

    def posts_with_message(self, channel: str, message_ids) -> list[tuple[str, tuple[int, ...]]]:
        """(post id, message ids) of the channel's live posts holding any of these message ids."""
        wanted = [int(m) for m in message_ids]
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        rows = self.conn.execute(
            "SELECT p.id, p.message_ids FROM posts p WHERE p.channel = ? AND p.deleted = 0 AND EXISTS ("
            f"SELECT 1 FROM json_each(p.message_ids) j WHERE j.value IN ({marks}))", [channel, *wanted]).fetchall()
        return [(r[0], tuple(json.loads(r[1]))) for r in rows]

    # -- fetched links (tgsearch fetch-articles) -------------------------------------------------
    def pending_links(self, *, retry_failed: bool = False) -> Iterator[str]:
        """http(s) links of live posts (not articles: their links are not followed) without a
        recorded outcome, each once, the link of the most recent post first; with
        `retry_failed`, also links whose fetch failed (never refused ones)."""
        done = "status != 'failed'" if retry_failed else "1"
        cursor = self.conn.execute(
            "SELECT j.value FROM posts p, json_each(p.links) j "
            "WHERE p.deleted = 0 AND p.kind != 'article' AND j.type = 'text' "
            "AND (j.value LIKE 'http://%' OR j.value LIKE 'https://%') "
            f"AND j.value NOT IN (SELECT url FROM links WHERE {done}) "
            "ORDER BY p.date IS NULL, p.date DESC, p.version DESC, j.key")
        seen: set[str] = set()
        for (url,) in cursor:
            if url not in seen:
                seen.add(url)
                yield url

    def record_link(self, url: str, status: str, *, reason: str = "", article_id: str | None = None) -> None:
        """Record a link's outcome: 'fetched' (with the article's id), 'refused' or 'failed'."""
        if status not in ("fetched", "refused", "failed"):
            raise ValueError(f"unknown link status {status!r}")
        self.conn.execute("INSERT INTO links(url, status, reason, article_id, fetched_at) VALUES(?, ?, ?, ?, ?) "
                          "ON CONFLICT(url) DO UPDATE SET status=excluded.status, reason=excluded.reason, "
                          "article_id=excluded.article_id, fetched_at=excluded.fetched_at",
                          (url, status, reason, article_id, _now()))

    def link_outcomes(self) -> dict[str, dict]:
        """url -> {"status", "reason", "article_id", "fetched_at"} for every recorded link."""
        return {r[0]: {"status": r[1], "reason": r[2], "article_id": r[3], "fetched_at": r[4]}
                for r in self.conn.execute("SELECT url, status, reason, article_id, fetched_at FROM links ORDER BY url")}

    def articles_for(self, post_id: str) -> list[str]:
        """Ids of the fetched articles a post links to, in the post's link order."""
        row = self.conn.execute("SELECT links FROM posts WHERE id = ?", (post_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no post with id {post_id!r}")
        urls = json.loads(row[0])
        found = {}
        for start in range(0, len(urls), 500):
            chunk = urls[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for url, article_id in self.conn.execute(
                    f"SELECT url, article_id FROM links WHERE status = 'fetched' AND url IN ({marks})", chunk):
                found[url] = article_id
        return list(dict.fromkeys(found[u] for u in urls if u in found and found[u] != post_id))

    def citing_posts(self, article_id: str) -> list[str]:
        """Ids of the live posts linking to an article (by any URL fetched as it), newest first."""
        return [r[0] for r in self.conn.execute(
            "SELECT p.id FROM posts p WHERE p.deleted = 0 AND p.id != ? AND EXISTS ("
            "SELECT 1 FROM json_each(p.links) j JOIN links l ON l.url = j.value "
            "WHERE l.article_id = ? AND l.status = 'fetched') ORDER BY p.date DESC, p.id", (article_id, article_id))]

    def citations(self, ids: list[str]) -> dict[str, dict[str, list[str]]]:
        """For each of `ids` (unknown ones included, with empty lists): {"articles": ids of the live
        fetched articles the post links to, in link order; "cited_by": ids of the live posts
        linking to it (when it is a fetched article), newest first}. Two queries per 500 ids (one
        when none of them is a fetched article), for streamed exports."""
        out: dict[str, dict[str, list[str]]] = {i: {"articles": [], "cited_by": []} for i in ids}
        ids = list(out)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            # Articles each post links to (live ones, not the post itself), in link order.
            for pid, article_id in self.conn.execute(
                    "SELECT p.id, l.article_id FROM posts p, json_each(p.links) j "
                    "JOIN links l ON l.url = j.value AND l.status = 'fetched' "
                    "JOIN posts a ON a.id = l.article_id AND a.deleted = 0 "
                    f"WHERE p.id IN ({marks}) AND l.article_id != p.id ORDER BY p.id, j.key", chunk):
                if article_id not in out[pid]["articles"]:
                    out[pid]["articles"].append(article_id)
            # Posts citing each article: one pass over the posts' links, only if the chunk has any.
            urls: dict[str, list[str]] = {}
            for url, article_id in self.conn.execute(
                    f"SELECT url, article_id FROM links WHERE status = 'fetched' AND article_id IN ({marks})", chunk):
                urls.setdefault(url, []).append(article_id)
            if not urls:
                continue
            umarks = ",".join("?" * len(urls))
            citing: dict[str, dict[str, tuple]] = {}
            for pid, d, url in self.conn.execute(
                    "SELECT p.id, p.date, j.value FROM posts p, json_each(p.links) j "
                    f"WHERE p.deleted = 0 AND p.links != '[]' AND j.type = 'text' AND j.value IN ({umarks})",
                    list(urls)):
                for article_id in urls[url]:
                    if article_id != pid:
                        citing.setdefault(article_id, {})[pid] = (d or "", pid)
            for article_id, posts in citing.items():
                # newest first (as citing_posts: date descending, then id); undated last
                dated = sorted((p for p in posts.values() if p[0]), key=lambda p: p[1])
                dated.sort(key=lambda p: p[0], reverse=True)
                out[article_id]["cited_by"] = [p[1] for p in dated] + sorted(p[1] for p in posts.values() if not p[0])
        return out

    # -- runs of the sources file's entries (tgsearch watch) ------------------------------------
    def record_source_run(self, key: str, started_at: str, finished_at: str | None, posts: int, error: str = "") -> None:
        """Record the last run of a source (its `Source.key`): ISO times, posts added, error ('' = none)."""
        self.conn.execute("INSERT INTO source_runs(key, started_at, finished_at, posts, error) VALUES(?, ?, ?, ?, ?) "
                          "ON CONFLICT(key) DO UPDATE SET started_at=excluded.started_at, "
                          "finished_at=excluded.finished_at, posts=excluded.posts, error=excluded.error",
                          (key, started_at, finished_at, int(posts), error or ""))

    def source_runs(self) -> dict[str, dict]:
        """key -> {"started_at", "finished_at", "posts", "error"} of each source's last recorded run."""
        return {r[0]: {"started_at": r[1], "finished_at": r[2], "posts": r[3], "error": r[4]}
                for r in self.conn.execute("SELECT key, started_at, finished_at, posts, error FROM source_runs ORDER BY key")}
