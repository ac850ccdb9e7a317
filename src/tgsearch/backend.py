"""The Backend protocol and the embedded (one data folder, no server) implementation.

The CLI, API and web UI talk only to a Backend. A server backend implements the
same protocol; one contract test suite runs against every backend.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Protocol, runtime_checkable

from .alerts.backend_api import AlertsAPI
from .collect.backend_api import CollectAPI
from .errors import StoreError
from .ingest import FileReport, IngestReport, ingest
from .post import Post
from .store import Store

if TYPE_CHECKING:
    from .search.types import SearchResult


@runtime_checkable
class Backend(Protocol):
    """What the API, UI, CLI (and later collectors and alerts) may use; nothing else (and `root`,
    where the backend has a data folder, for messages)."""

    # write
    def ingest(self, paths: Iterable[str | os.PathLike], **options) -> IngestReport: ...
    def mark_deleted(self, ids: Iterable[str]) -> int: ...
    def rename_channel(self, channel: str, title: str) -> int: ...
    # read
    def get(self, post_id: str) -> Post: ...
    def get_many(self, ids: list[str]) -> list[Post]: ...
    def articles_for(self, post_id: str) -> list[Post]: ...
    def citing_posts(self, article_id: str) -> list[Post]: ...
    def iter_posts(self, *, deleted: bool = False) -> Iterator[Post]: ...
    def search(self, req) -> "SearchResult": ...
    def search_all(self, req) -> tuple[int, Iterator[Post]]: ...
    def similar(self, post_id: str, limit: int = 10) -> "SearchResult": ...
    def channels(self) -> list[dict]: ...
    def stats(self) -> dict: ...
    def health(self) -> dict: ...
    def check(self) -> dict: ...
    def semantic_available(self) -> bool: ...
    def export_fields(self, ids: list[str]) -> dict[str, dict]: ...
    def story(self, story_id: int) -> dict: ...
    def stories_search(self, req, limit: int = 20, offset: int = 0) -> dict: ...
    def trends(self, queries: list[str], interval: str = "month", **options) -> dict: ...
    # derived data and lifecycle
    def reindex(self, on_progress=None) -> int: ...
    def reindex_vectors(self, model: str, on_progress=None) -> int: ...
    def reindex_stories(self, on_progress=None) -> tuple[int, dict]: ...
    def warm_up(self) -> None: ...
    def close(self) -> None: ...


class BackendBase(AlertsAPI, CollectAPI):
    """What every backend does the same way over its `store` (Store or PgStore), its search `engine`
    (search/engine.py with that backend's lexical side and retrievers) and its story index
    (`stories.index`): reads, search, export fields, stories, trends."""

    def mark_deleted(self, ids: Iterable[str]) -> int:
        """Mark posts deleted at the source: kept, hidden from search and export."""
        self._writable()
        n = self.store.mark_deleted(ids)
        if n:
            self.after_write()
        return n

    def rename_channel(self, channel: str, title: str) -> int:
        self._writable()
        return self.store.rename_channel(channel, title)

    def search(self, req):
        """Run a SearchRequest; returns a SearchResult (see tgsearch.search.types)."""
        return self.engine.search(req)

    def search_all(self, req) -> tuple[int, Iterator[Post]]:
        """(total, every post of the result set in its order), streamed (export): the same posts
        paging through `search` reaches, however many."""
        total, batches = self.engine.iter_ids(req)

        def posts() -> Iterator[Post]:
            for ids in batches:
                yield from self.get_many(ids)
        return total, posts()

    def get_many(self, ids: list[str]) -> list[Post]:
        """Live posts (not deleted) of `ids`, in that order; unknown ids are skipped."""
        found = self.store.get_many(list(ids))
        return [found[i] for i in ids if i in found and not found[i].deleted]

    def articles_for(self, post_id: str) -> list[Post]:
        """The live articles fetched from a post's links (`tgsearch fetch-articles`), in link order;
        NotFoundError for an unknown post."""
        return self.get_many(self.store.articles_for(post_id))

    def citing_posts(self, article_id: str) -> list[Post]:
        """The live posts linking to a fetched article, newest first."""
        return self.get_many(self.store.citing_posts(article_id))

    def citations(self, ids: list[str]) -> dict[str, dict[str, list[str]]]:
        """id -> {"articles": ids of the live articles the post links to, "cited_by": ids of the
        live posts citing it (an article)} for a batch of ids, in a few queries (exports)."""
        return self.store.citations(list(ids))

    def export_fields(self, ids: list[str]) -> dict[str, dict]:
        """id -> the derived export fields of a batch of posts: `citations` plus "story",
        "copy_of" and "entities" (when stories are built)."""
        ids = list(ids)
        out = self.store.citations(ids)
        index = self.stories.index
        placed, ents = index.placements(ids), index.entities_of(ids)
        for pid in ids:
            p = placed.get(pid) or {}
            out[pid].update(story=p.get("story"), copy_of=p.get("copy_of"), entities=ents.get(pid, []))
        return out

    def story(self, story_id: int) -> dict:
        """A story: its row, its posts in time order (each with its delay after the first post and,
        for a copy, after its original), channels in the order they carried it, and entities.
        NotFoundError when unknown."""
        from .errors import NotFoundError

        index = self.stories.index
        s = index.story(int(story_id))
        if s is None:
            raise NotFoundError(f"no story {story_id}")
        ids = [p["id"] for p in s["posts"]]
        posts = self.store.get_many(ids)
        first = posts.get(s["first_post"])
        t0 = first.date if first and first.date else None
        out_posts, channels = [], {}
        for row in s["posts"]:
            post = posts.get(row["id"])
            if post is None or post.deleted:
                continue
            original = posts.get(row["copy_of"]) if row["copy_of"] else None
            delay = (post.date - t0).total_seconds() if t0 and post.date else None
            copy_delay = (post.date - original.date).total_seconds() if original and original.date and post.date else None
            out_posts.append({"post": post, "copy_of": row["copy_of"], "delay_seconds": delay,
                              "copy_delay_seconds": copy_delay, "score": row["score"], "matched": row["matched"]})
            ch = channels.setdefault(post.channel, {"channel": post.channel, "title": post.channel_title or post.channel,
                                                    "first": post.date, "posts": 0, "copies": 0})
            ch["posts"] += 1
            ch["copies"] += bool(row["copy_of"])
        entity_counts: dict[tuple, int] = {}
        for ents in index.entities_of(ids).values():
            for e in ents:
                key = (e["type"], e["name"])
                entity_counts[key] = entity_counts.get(key, 0) + 1
        title_post = posts.get(s["title_post"]) or first
        return {**s, "title": (title_post.title or title_post.text[:140]) if title_post else "",
                "posts": out_posts, "channels_list": list(channels.values()),
                "entities": [{"type": t, "name": n, "posts": c} for (t, n), c in
                             sorted(entity_counts.items(), key=lambda x: (-x[1], x[0]))]}

    def stories_search(self, req, limit: int = 20, offset: int = 0) -> dict:
        """Stories with a post matching a search, newest activity first: {"total", "stories"}."""
        from dataclasses import replace

        engine = self.engine
        if engine.stories is None:
            return {"total": 0, "stories": []}
        groups, _ = engine.grouped(engine.plan(replace(req, group="story", facets=False)))
        matching = {g.story: g.matching for g in groups if g.story is not None}
        rows = self.stories.index.story_rows(list(matching))
        rows.sort(key=lambda r: (r["last_date"] or "", r["id"]), reverse=True)
        page = rows[offset:offset + limit]
        heads = self.store.get_many([r["title_post"] for r in page] + [r["first_post"] for r in page])
        for r in page:
            t = heads.get(r["title_post"])
            r["title"] = (t.title or t.text[:140]) if t else ""
            f = heads.get(r["first_post"])
            r["first_channel"] = f.channel if f else ""
            r["matching"] = matching.get(r["id"], 0)
        return {"total": len(rows), "stories": page}

    def trends(self, queries: list[str], interval: str = "month", **options) -> dict:
        """Counts per day/week/month for each query, over the same result sets as `search`
        (options: since, until, channels, mode, kind, publication, unit); see search/trends.py."""
        from .search.trends import trends

        return trends(self.engine, list(queries), interval, **options)

    def reindex_stories(self, on_progress=None) -> tuple[int, dict]:
        """Place every post again (stories, copies, entities) from scratch: (posts placed, the
        stories' status). `on_progress(done, total)`."""
        self._writable()
        total = self.store.count()
        n = self.stories.rebuild(on_progress=(lambda done, hwm: on_progress(min(done, total), total))
                                 if on_progress else None)
        return n, self.stories.status()

    def channels(self) -> list[dict]:
        """Every channel: slug, title shown, post count, first and last date."""
        return self.store.stats()["channels"]

    def similar(self, post_id: str, limit: int = 10):
        """Posts closest in meaning to a post (a SearchResult; NotFoundError for an unknown post)."""
        from .search.semantic import similar

        return similar(self.engine, post_id, limit)

    def warm_up(self) -> None:
        """Open the index and load the query embedder before the first request needs them
        (with a worker, the index catches up in the background meanwhile)."""
        from .search.types import SearchRequest

        self.search(SearchRequest(q="Казахстан", limit=1))

    def get(self, post_id: str) -> Post:
        return self.store.get(post_id)

    def iter_posts(self, *, deleted: bool = False) -> Iterator[Post]:
        return self.store.iter_posts(deleted=deleted)

    def sources(self) -> list[dict]:
        """Each entry of the sources file (`<db>/sources.toml`, collect/sources.py) with its last
        recorded run: {"key", "kind", "channel", "interval", "base_url", "allow_hosts", "last_run"
        (finished, else started, ISO), "posts" (added by it), "error" ('' = none), "next_run" (ISO;
        None = due now, never run), "cursor" (crawl sources: the store's crawl cursor; sync sources:
        its sync cursor as {"newest": last id stored, "oldest": None, "complete", ...}; else None)}."""
        from datetime import timedelta

        from .collect import sources as sources_file
        from .post import iso, parse_datetime

        runs = self.store.source_runs()
        out = []
        for src in sources_file.load(self.root):
            run = runs.get(src.key)
            last = (run["finished_at"] or run["started_at"]) if run else None
            next_run = None
            if run and run["started_at"]:
                try:
                    next_run = iso(parse_datetime(run["started_at"]) + timedelta(seconds=src.interval))
                except (TypeError, ValueError):
                    next_run = None
            cursor = self.store.get_cursor(src.channel) if src.kind == "crawl" else None
            if src.kind == "sync":
                sync = self.store.get_sync_cursor(src.channel)
                cursor = None if sync is None else {"newest": sync["last_id"], "oldest": None,
                                                    "complete": sync["complete"], "last_id": sync["last_id"]}
            out.append({**src.to_dict(), "key": src.key, "channel": src.channel, "base_url": src.base_url,
                        "allow_hosts": list(src.allow_hosts), "last_run": last,
                        "posts": run["posts"] if run else 0, "error": run["error"] if run else "",
                        "next_run": next_run,
                        "cursor": cursor})
        return out


class EmbeddedBackend(BackendBase):
    """SQLite store plus the derived indexes in one data folder.

    Who does the derived work (catching the lexical index up, filling vectors):
    - default: a write (`ingest`) brings the lexical index up to date before it returns, and
      vectors follow according to `vectors` / ``TGSEARCH_VECTORS`` (index/vector_service.py:
      by default a detached filler process that completes them after the command exits);
      opening the index catches it up.
    - ``worker=True`` (`tgsearch serve`): one background thread does it all (tgsearch.worker),
      woken by writes and on a timer; `close()` stops it.
    - ``read_only=True`` (the CLI's search, stats, export, show, check): nothing is written and no
      process is started (no index build, no vector filler); searches answer from what is
      indexed, and `stats` and `check` say how far the indexes are behind the store (`ingest`,
      `serve` or `reindex` catch them up).
    """

    def __init__(self, root: str | os.PathLike | None = None, *, create: bool = True, analyzer=None,
                 vectors: str | None = None, read_only: bool = False, worker: bool = False):
        if read_only and worker:
            raise ValueError("a read-only backend has no background worker")
        self.read_only = read_only
        self.store = Store(root, create=create and not read_only)
        self.root: Path = self.store.root
        self.where = str(self.root)       # for messages: the folder (a server backend: its URL without password)
        self._analyzer = analyzer
        self._index = None
        self._engine = None
        self._open_lock = threading.RLock()
        from .index.guard import DataFolder
        from .index.vector_service import VectorService

        # The folder as found now: writers create files only inside it, and stop when it goes.
        self.folder = None if read_only else DataFolder(self.root)
        # vectors: process | thread | sync | off (env TGSEARCH_VECTORS); see index/vector_service.py
        self.vectors = VectorService(self.store, vectors, read_only=read_only, folder=self.folder)
        from .index.story_service import StoryService

        # stories, copies, entities: process | sync | off (env TGSEARCH_STORIES); index/story_service.py
        self.stories = StoryService(self.store, self._story_analyzer, read_only=read_only)
        self.worker = None
        if worker:
            from .worker import Worker

            self.worker = Worker(self)   # set before it starts: `index` asks whether there is one
            self.worker.start()

    # -- collect -----------------------------------------------------------------------------
    def ingest(self, paths, *, encoding: str | None = None, format: str | None = None, channel: str | None = None,
               on_file: Callable[[FileReport], None] | None = None,
               on_posts: Callable[[int], None] | None = None) -> IngestReport:
        self._writable()
        report = ingest(self.store, paths, encoding=encoding, format=format, channel=channel,
                        on_file=on_file, on_posts=on_posts)
        self.after_write()
        return report

    def _story_analyzer(self):
        if self._analyzer is not None:
            return self._analyzer
        from .analyze.analyzer import default_analyzer

        return default_analyzer()

    def _writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.root}: opened read-only; writes go through ingest or serve")

    def semantic_available(self) -> bool:
        """Whether the folder has (or is filling) vectors: semantic and hybrid search use them."""
        return self.vectors.available()

    def after_write(self, *, wait: bool = True, busy_wait: float | None = None) -> None:
        """Bring derived indexes up to the store: the lexical index before returning (with a
        worker: unless `wait` is False), the vectors per the vectors mode or in the worker.

        When another process holds the index (a running `serve` catching up), wait up to
        `busy_wait` seconds (env TGSEARCH_INDEX_WAIT, default 60) for it, then IndexBusyError."""
        self._writable()
        if self.worker is not None:
            if wait:
                self.worker.wait_indexed(self.store.max_version())
            else:
                self.worker.poke()
            return
        from .index.lexical import IndexBusyError

        if busy_wait is None:
            busy_wait = float(os.environ.get("TGSEARCH_INDEX_WAIT", "60"))
        deadline = time.monotonic() + busy_wait
        while True:
            try:
                self.index.catch_up(self.store)
                break
            except IndexBusyError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
        self.vectors.after_write()
        self.stories.after_write()

    # -- search (lexical index and engine) ---------------------------------------------------
    @property
    def index(self):
        """The lexical index, opened on first use (and then caught up with the store, unless
        read-only or the worker does it)."""
        if self._index is None:
            with self._open_lock:
                if self._index is None:
                    from .index.lexical import IndexBusyError, LexicalIndex

                    index = LexicalIndex(self.root, self._analyzer, read_only=self.read_only)
                    if not self.read_only and self.worker is None:
                        try:
                            index.catch_up(self.store)
                        except IndexBusyError:
                            pass  # another process (an ingest) is writing it and will bring it up to date
                    self._index = index
        return self._index

    @property
    def engine(self):
        if self._engine is None:
            from .search.engine import Engine

            self._engine = Engine(self.store, self.index)
            from .search.semantic import attach

            attach(self._engine, self.vectors)
            from .index.stories import FILE as STORIES_FILE

            if self.stories.mode != "off" or (self.root / STORIES_FILE).exists():
                self._engine.stories = self.stories.index
        return self._engine

    def health(self) -> dict:
        index = self.index
        return {"status": "ok", "indexed": index.count(), "hwm": index.hwm()}

    def reindex(self, on_progress=None) -> int:
        """Build the lexical index again from the store, beside the live one (which keeps
        answering searches, here and in other processes) and swap it in when complete, holding
        the index's writer lock; a build that fails or is killed leaves the old index. Also
        replaces an index built by another analyzer."""
        if self.read_only:
            raise StoreError(f"{self.root}: opened read-only; cannot reindex")
        from .index.lexical import LexicalIndex

        with self._open_lock:
            index = LexicalIndex(self.root, self._analyzer, open_existing=False)
            n = index.rebuild(self.store, on_progress=on_progress)
            self._index, self._engine = index, None
        return n

    def reindex_vectors(self, model: str, on_progress=None) -> int:
        """Switch the folder's embedding model and rebuild its vectors (synchronously)."""
        if self.read_only:
            raise StoreError(f"{self.root}: opened read-only; cannot reindex")
        n = self.vectors.switch(model, on_batch=on_progress)
        self._engine = None
        return n

    def check(self) -> dict:
        """Store/index drift: counts, ids missing on either side, high-water marks (`behind`:
        store versions not indexed yet)."""
        return self.index.check(self.store)

    # -- read --------------------------------------------------------------------------------
    def stats(self) -> dict:
        data = self.store.stats()
        index = self.index
        hwm, top = index.hwm(), self.store.max_version()
        data["index"] = {"indexed": index.count(), "hwm": hwm, "store_version": top, "behind": max(0, top - hwm),
                         "analyzer": f"{index.analyzer.name} {index.analyzer.version}"}
        data["vectors"] = self.vectors.status()
        data["stories"] = self.stories.status()
        if self.worker is not None:
            data["worker"] = self.worker.status()
        return data

    def close(self) -> None:
        """Stop the background worker (if any) and close the store."""
        if self.worker is not None:
            self.worker.stop()
        self.vectors.close()
        self.stories.close()
        self.store.close()
        if self.folder is not None:
            self.folder.close()


def is_url(db) -> bool:
    return isinstance(db, str) and db.startswith(("postgresql://", "postgres://"))


def state_dir(db) -> Path:
    """The folder for a deployment's local files (sources file, Telegram session, watch lock): the
    data folder itself, or for a postgresql:// database TGSEARCH_STATE (default ./tgsearch-state)."""
    if is_url(db):
        return Path(os.environ.get("TGSEARCH_STATE") or "./tgsearch-state")
    return Path(db if db is not None else (os.environ.get("TGSEARCH_DB") or "./tgsearch-data"))


def open_backend(root: str | os.PathLike | None = None, *, create: bool = True, read_only: bool | None = None,
                 worker: bool = False, read_replica: str | None = None):
    """The CLI's backend: a data folder (EmbeddedBackend) or a ``postgresql://`` URL (pg/backend.py).
    `read_only` defaults to ``not create``: the commands that open an existing folder without
    writing (search, stats, export, show, check) get a read-only backend that starts no process;
    a command that writes to an existing folder passes read_only=False."""
    read_only = (not create) if read_only is None else read_only
    if root is None:
        root = os.environ.get("TGSEARCH_DB") or None
    if is_url(root):
        from .pg.backend import PgBackend

        return PgBackend(str(root), create=create, read_only=read_only, worker=worker, read_replica=read_replica)
    if read_replica:
        raise StoreError("--read-replica needs a postgresql:// database (--db URL)")
    return EmbeddedBackend(root, create=create, read_only=read_only, worker=worker)
