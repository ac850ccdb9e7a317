"""What the collectors need from a backend: the `CollectAPI` mixin both backends inherit
(EmbeddedBackend in backend.py, PgBackend in pg/backend.py). collect/crawl.py, telegram.py,
tg_live.py, articles.py and watch.py use these methods (and the Backend protocol's `get`,
`after_write`) and never reach the store themselves.

Each method hands the call to the backend's store (store.py + store_collect.py, or pg/store.py +
pg/store_collect.py, which keep the same collector state): the names are the store's, so a store
and a backend answer the same way (`articles.pending` takes either).

Writes refuse a read-only backend before writing (StoreError), as `BackendBase.mark_deleted` does.
Storing posts does not bring the derived indexes up by itself: a collector writes its batches,
then calls `after_write()` once (crawl, sync, fetch-articles), or asks `write_posts` /
`write_deleted` to run it after each write (live events).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Iterator

if TYPE_CHECKING:
    from ..post import Post
    from ..store import UpsertResult


class CollectAPI:
    """Mixed into a backend (`self.store`, `self._writable()`, `self.after_write(wait=...)`)."""

    # -- writing posts ---------------------------------------------------------------------------
    def write_posts(self, posts: Iterable["Post"], *, after_write: bool = False,
                    wait: bool = True) -> "UpsertResult":
        """Store collected posts (Store.upsert: a post's version moves only when its content
        changes; counters are refreshed in place) and return the counts. With `after_write`, the
        derived indexes are brought up (`self.after_write(wait=wait)`) when any post was given."""
        self._writable()
        posts = list(posts)
        result = self.store.upsert(posts)
        if after_write and posts:
            self.after_write(wait=wait)
        return result

    def write_deleted(self, ids: Iterable[str], *, after_write: bool = False, wait: bool = True) -> int:
        """Mark posts deleted at the source (kept, hidden from search); how many were not already.
        With `after_write`, the derived indexes are brought up when any was marked."""
        self._writable()
        n = self.store.mark_deleted(ids)
        if n and after_write:
            self.after_write(wait=wait)
        return n

    # -- crawl cursors (collect/crawl.py) --------------------------------------------------------
    def get_cursor(self, channel: str) -> dict | None:
        """A crawled channel's cursor {"newest", "oldest", "complete"} (every message from oldest
        to newest is stored), or None before its first crawl."""
        return self.store.get_cursor(channel)

    def set_cursor(self, channel: str, *, newest: int | None, oldest: int | None, complete: bool) -> None:
        """Move a channel's crawl cursor (after the posts it covers are stored)."""
        self._writable()
        self.store.set_cursor(channel, newest=newest, oldest=oldest, complete=complete)

    # -- sync cursors (collect/telegram.py, tg_live.py) ------------------------------------------
    def get_sync_cursor(self, channel: str) -> dict | None:
        """A synced channel's cursor {"last_id", "complete", "peer_id", "access_hash", ...}, or None."""
        return self.store.get_sync_cursor(channel)

    def set_sync_cursor(self, channel: str, *, last_id: int, complete: bool, peer_id: int | None = None,
                        access_hash: int | None = None) -> None:
        """Move a channel's sync cursor (after the messages up to `last_id` are stored); a peer id
        or access hash left None keeps the one recorded."""
        self._writable()
        self.store.set_sync_cursor(channel, last_id=last_id, complete=complete, peer_id=peer_id,
                                   access_hash=access_hash)

    def sync_channel_of_peer(self, peer_id: int) -> str | None:
        """The synced channel whose cursor records Telegram peer `peer_id`, or None."""
        return self.store.sync_channel_of_peer(peer_id)

    def recent_messages(self, channel: str, n: int, *, up_to: int | None = None) -> list[tuple[str, tuple[int, ...]]]:
        """[(post id, its message ids)] of a channel's `n` most recent live posts, highest first
        (only those whose first message id is <= `up_to` when given): what `sync` re-reads."""
        return self.store.recent_messages(channel, n, up_to=up_to)

    def posts_with_message(self, channel: str, message_ids) -> list[tuple[str, tuple[int, ...]]]:
        """[(post id, its message ids)] of a channel's live posts holding any of `message_ids`."""
        return self.store.posts_with_message(channel, message_ids)

    # -- links to fetch (collect/articles.py) ----------------------------------------------------
    def pending_links(self, *, retry_failed: bool = False) -> Iterator[str]:
        """http(s) links of live posts with no recorded outcome, each once, the link of the most
        recent post first; with `retry_failed`, also failed ones (never refused ones)."""
        return self.store.pending_links(retry_failed=retry_failed)

    def record_link(self, url: str, status: str, *, reason: str = "", article_id: str | None = None) -> None:
        """Record a link's outcome: fetched (with the article's id), refused or failed."""
        self._writable()
        self.store.record_link(url, status, reason=reason, article_id=article_id)

    def link_outcomes(self) -> dict[str, dict]:
        """url -> {"status", "reason", "article_id", "fetched_at"} for every recorded link."""
        return self.store.link_outcomes()

    # -- source runs (collect/watch.py) ----------------------------------------------------------
    def record_source_run(self, key: str, started_at: str, finished_at: str | None, posts: int,
                          error: str = "") -> None:
        """Record a source's run (`finished_at` None: started, not finished)."""
        self._writable()
        self.store.record_source_run(key, started_at, finished_at, posts, error)

    def source_runs(self) -> dict[str, dict]:
        """source key -> its last run {"started_at", "finished_at", "posts", "error"}."""
        return self.store.source_runs()
