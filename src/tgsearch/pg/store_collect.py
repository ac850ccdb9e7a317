"""What the collectors keep besides posts, on PostgreSQL: the twin of `tgsearch.store_collect.CollectState`
(crawl and sync cursors, fetched links and citations, runs of the sources file's entries). A mixin of
`PgStore`; every method goes through `self._q` (errors translated)."""

from __future__ import annotations

from typing import Iterator

from ..errors import NotFoundError
from ..post import iso


class PgCollectState:
    # -- crawl cursors -------------------------------------------------------------------------
    def get_cursor(self, channel: str) -> dict | None:
        """{"newest", "oldest", "complete"} for a crawled channel, None before its first crawl."""
        row = self._one("SELECT newest, oldest, complete FROM crawl_cursors WHERE channel = %s", (channel,))
        return None if row is None else {"newest": row[0], "oldest": row[1], "complete": bool(row[2])}

    def set_cursor(self, channel: str, *, newest: int | None, oldest: int | None, complete: bool) -> None:
        self._q("INSERT INTO crawl_cursors(channel, newest, oldest, complete, updated_at) VALUES (%s, %s, %s, %s, now()) "
                "ON CONFLICT (channel) DO UPDATE SET newest = excluded.newest, oldest = excluded.oldest, "
                "complete = excluded.complete, updated_at = excluded.updated_at",
                (channel, newest, oldest, bool(complete)), "writing a crawl cursor")

    # -- sync cursors (tgsearch sync, the Telegram API) -------------------------------------------
    def get_sync_cursor(self, channel: str) -> dict | None:
        """{"last_id", "peer_id", "access_hash", "complete", "updated_at"} for a synced channel,
        None before its first sync (as CollectState.get_sync_cursor)."""
        row = self._one("SELECT last_id, peer_id, access_hash, complete, updated_at FROM sync_cursors "
                        "WHERE channel = %s", (channel,))
        return None if row is None else {"last_id": row[0], "peer_id": row[1], "access_hash": row[2],
                                         "complete": bool(row[3]), "updated_at": iso(row[4])}

    def set_sync_cursor(self, channel: str, *, last_id: int, complete: bool, peer_id: int | None = None,
                        access_hash: int | None = None) -> None:
        """Move a channel's sync cursor; a peer id or access hash left None keeps the one recorded."""
        self._q("INSERT INTO sync_cursors AS s (channel, last_id, peer_id, access_hash, complete, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (channel) DO UPDATE SET last_id = excluded.last_id, "
                "peer_id = COALESCE(excluded.peer_id, s.peer_id), "
                "access_hash = COALESCE(excluded.access_hash, s.access_hash), "
                "complete = excluded.complete, updated_at = excluded.updated_at",
                (channel, int(last_id), peer_id, access_hash, bool(complete)), "writing a sync cursor")

    def sync_channel_of_peer(self, peer_id: int) -> str | None:
        """The channel whose sync cursor records this (marked) peer id, if any."""
        row = self._one("SELECT channel FROM sync_cursors WHERE peer_id = %s LIMIT 1", (peer_id,))
        return row[0] if row else None

    def recent_messages(self, channel: str, n: int, *, up_to: int | None = None) -> list[tuple[str, tuple[int, ...]]]:
        """(post id, message ids) of a channel's `n` most recent live posts (those with message
        ids, highest first; only posts whose first message id is <= `up_to` when given)."""
        rows = self._q(
            "SELECT id, message_ids FROM posts WHERE channel = %s AND NOT deleted AND kind = 'post' "
            "AND message_ids <> '[]'::jsonb AND (%s::bigint IS NULL OR (message_ids->>0)::numeric <= %s::bigint) "
            "ORDER BY (message_ids->>0)::numeric DESC LIMIT %s", (channel, up_to, up_to, n))
        return [(r[0], tuple(r[1])) for r in rows]

    def posts_with_message(self, channel: str, message_ids) -> list[tuple[str, tuple[int, ...]]]:
        """(post id, message ids) of the channel's live posts holding any of these message ids."""
        wanted = [int(m) for m in message_ids]
        if not wanted:
            return []
        rows = self._q(
            "SELECT p.id, p.message_ids FROM posts p WHERE p.channel = %s AND NOT p.deleted AND EXISTS ("
            "SELECT 1 FROM jsonb_array_elements_text(p.message_ids) AS j(v) WHERE j.v::numeric = ANY(%s::numeric[]))",
            (channel, wanted))
        return [(r[0], tuple(r[1])) for r in rows]

    # -- fetched links (tgsearch fetch-articles) -------------------------------------------------
    def pending_links(self, *, retry_failed: bool = False) -> Iterator[str]:
        """http(s) links of live posts (not articles) without a recorded outcome, each once, the
        link of the most recent post first; with `retry_failed`, also links whose fetch failed."""
        done = "l.status <> 'failed'" if retry_failed else "true"
        rows = self._q(
            "SELECT j.value FROM posts p, jsonb_array_elements_text(p.links) WITH ORDINALITY AS j(value, key) "
            "WHERE NOT p.deleted AND p.kind <> 'article' "
            "AND (j.value LIKE 'http://%%' OR j.value LIKE 'https://%%') "
            f"AND NOT EXISTS (SELECT 1 FROM links l WHERE l.url = j.value AND {done}) "
            "ORDER BY p.date IS NULL, p.date DESC, p.version DESC, j.key")
        seen: set[str] = set()
        for (url,) in rows:
            if url not in seen:
                seen.add(url)
                yield url

    def record_link(self, url: str, status: str, *, reason: str = "", article_id: str | None = None) -> None:
        """Record a link's outcome: 'fetched' (with the article's id), 'refused' or 'failed'."""
        if status not in ("fetched", "refused", "failed"):
            raise ValueError(f"unknown link status {status!r}")
        self._q("INSERT INTO links(url, status, reason, article_id, fetched_at) VALUES (%s, %s, %s, %s, now()) "
                "ON CONFLICT (url) DO UPDATE SET status = excluded.status, reason = excluded.reason, "
                "article_id = excluded.article_id, fetched_at = excluded.fetched_at",
                (url, status, reason, article_id), "recording a link")

    def link_outcomes(self) -> dict[str, dict]:
        """url -> {"status", "reason", "article_id", "fetched_at"} for every recorded link."""
        return {r[0]: {"status": r[1], "reason": r[2], "article_id": r[3], "fetched_at": iso(r[4])}
                for r in self._q("SELECT url, status, reason, article_id, fetched_at FROM links ORDER BY url")}

    def articles_for(self, post_id: str) -> list[str]:
        """Ids of the fetched articles a post links to, in the post's link order."""
        row = self._one("SELECT links FROM posts WHERE id = %s", (post_id,))
        if row is None:
            raise NotFoundError(f"no post with id {post_id!r}")
        urls = list(row[0])
        found = dict(self._q("SELECT url, article_id FROM links WHERE status = 'fetched' AND url = ANY(%s::text[])",
                             (urls,))) if urls else {}
        return list(dict.fromkeys(found[u] for u in urls if u in found and found[u] != post_id))

    def citing_posts(self, article_id: str) -> list[str]:
        """Ids of the live posts linking to an article (by any URL fetched as it), newest first."""
        return [r[0] for r in self._q(
            "SELECT p.id FROM posts p WHERE NOT p.deleted AND p.id <> %s AND EXISTS ("
            "SELECT 1 FROM jsonb_array_elements_text(p.links) AS j(value) JOIN links l ON l.url = j.value "
            "WHERE l.article_id = %s AND l.status = 'fetched') ORDER BY p.date DESC NULLS LAST, p.id",
            (article_id, article_id))]

    def citations(self, ids: list[str]) -> dict[str, dict[str, list[str]]]:
        """For each of `ids` (unknown ones included, with empty lists): {"articles": ids of the live
        fetched articles the post links to, in link order; "cited_by": ids of the live posts
        linking to it (when it is a fetched article), newest first} (as CollectState.citations)."""
        out: dict[str, dict[str, list[str]]] = {i: {"articles": [], "cited_by": []} for i in ids}
        ids = list(out)
        for start in range(0, len(ids), 2000):
            chunk = ids[start:start + 2000]
            for pid, article_id in self._q(
                    "SELECT p.id, l.article_id FROM posts p, "
                    "jsonb_array_elements_text(p.links) WITH ORDINALITY AS j(value, key) "
                    "JOIN links l ON l.url = j.value AND l.status = 'fetched' "
                    "WHERE p.id = ANY(%s::text[]) AND l.article_id <> p.id "
                    "AND EXISTS (SELECT 1 FROM posts a WHERE a.id = l.article_id AND NOT a.deleted) "
                    "ORDER BY p.id, j.key", (chunk,)):
                if article_id not in out[pid]["articles"]:
                    out[pid]["articles"].append(article_id)
            urls: dict[str, list[str]] = {}
            for url, article_id in self._q("SELECT url, article_id FROM links WHERE status = 'fetched' "
                                           "AND article_id = ANY(%s::text[])", (chunk,)):
                urls.setdefault(url, []).append(article_id)
            if not urls:
                continue
            citing: dict[str, dict[str, tuple]] = {}
            for pid, d, url in self._q(
                    "SELECT p.id, p.date, j.value FROM posts p, jsonb_array_elements_text(p.links) AS j(value) "
                    "WHERE NOT p.deleted AND p.links <> '[]'::jsonb AND j.value = ANY(%s::text[])", (list(urls),)):
                for article_id in urls[url]:
                    if article_id != pid:
                        citing.setdefault(article_id, {})[pid] = (iso(d) or "", pid)
            for article_id, posts in citing.items():
                dated = sorted((p for p in posts.values() if p[0]), key=lambda p: p[1])
                dated.sort(key=lambda p: p[0], reverse=True)
                out[article_id]["cited_by"] = [p[1] for p in dated] + sorted(p[1] for p in posts.values() if not p[0])
        return out

    # -- runs of the sources file's entries (tgsearch watch) ------------------------------------
    def record_source_run(self, key: str, started_at: str, finished_at: str | None, posts: int, error: str = "") -> None:
        """Record the last run of a source (its `Source.key`): ISO times, posts added, error ('' = none)."""
        self._q("INSERT INTO source_runs(key, started_at, finished_at, posts, error) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (key) DO UPDATE SET started_at = excluded.started_at, "
                "finished_at = excluded.finished_at, posts = excluded.posts, error = excluded.error",
                (key, started_at, finished_at, int(posts), error or ""), "recording a source run")

    def source_runs(self) -> dict[str, dict]:
        """key -> {"started_at", "finished_at", "posts", "error"} of each source's last recorded run."""
        return {r[0]: {"started_at": r[1], "finished_at": r[2], "posts": r[3], "error": r[4]}
                for r in self._q("SELECT key, started_at, finished_at, posts, error FROM source_runs ORDER BY key")}
