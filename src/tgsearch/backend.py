"""The Backend protocol and the embedded (one data folder, no server) implementation.

The CLI, API and web UI talk only to a Backend. A server backend implements the
same protocol; one contract test suite runs against every backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, runtime_checkable

from .ingest import FileReport, IngestReport, ingest
from .post import Post
from .store import Store


@runtime_checkable
class Backend(Protocol):
    """What the API, UI, CLI (and later collectors and alerts) may use; nothing else."""

    # write
    def ingest(self, paths: Iterable[str | os.PathLike], **options) -> IngestReport: ...
    def mark_deleted(self, ids: Iterable[str]) -> int: ...
    def rename_channel(self, channel: str, title: str) -> int: ...
    # read
    def get(self, post_id: str) -> Post: ...
    def get_many(self, ids: list[str]) -> list[Post]: ...
    def iter_posts(self, *, deleted: bool = False) -> Iterator[Post]: ...
    def search(self, req) -> "SearchResult": ...
    def search_all(self, req) -> tuple[int, Iterator[Post]]: ...
    def similar(self, post_id: str, limit: int = 10) -> "SearchResult": ...
    def channels(self) -> list[dict]: ...
    def stats(self) -> dict: ...
    def health(self) -> dict: ...
    def close(self) -> None: ...


class EmbeddedBackend:
    """SQLite store plus the derived indexes in one data folder."""

    def __init__(self, root: str | os.PathLike | None = None, *, create: bool = True, analyzer=None,
                 vectors: str | None = None):
        self.store = Store(root, create=create)
        self.root: Path = self.store.root
        self._analyzer = analyzer
        self._index = None
        self._engine = None
        from .index.vectors import VectorService

        # vectors: process | thread | sync | off (env TGSEARCH_VECTORS); see index/vectors.py
        self.vectors = VectorService(self.store, vectors)

    # -- collect -----------------------------------------------------------------------------
    def ingest(self, paths, *, encoding: str | None = None, format: str | None = None, channel: str | None = None,
               on_file: Callable[[FileReport], None] | None = None,
               on_posts: Callable[[int], None] | None = None) -> IngestReport:
        report = ingest(self.store, paths, encoding=encoding, format=format, channel=channel,
                        on_file=on_file, on_posts=on_posts)
        self.after_write()
        return report

    def after_write(self) -> None:
        """Bring derived indexes up to the store."""
        self.index.catch_up(self.store)
        self.vectors.after_write()

    # -- search (lexical index and engine) ---------------------------------------------------
    @property
    def index(self):
        """The lexical index, opened on first use and caught up with the store."""
        if self._index is None:
            from .index.lexical import LexicalIndex

            from .index.lexical import IndexBusyError

            index = LexicalIndex(self.root, self._analyzer)
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
        return self._engine

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

    def channels(self) -> list[dict]:
        """Every channel: slug, title shown, post count, first and last date."""
        return self.store.stats()["channels"]

    def health(self) -> dict:
        index = self.index
        return {"status": "ok", "indexed": index.count(), "hwm": index.hwm()}

    def mark_deleted(self, ids: Iterable[str]) -> int:
        """Mark posts deleted at the source: kept, hidden from search and export."""
        n = self.store.mark_deleted(ids)
        if n:
            self.after_write()
        return n

    def rename_channel(self, channel: str, title: str) -> int:
        return self.store.rename_channel(channel, title)

    def reindex(self, on_progress=None) -> int:
        """Throw the lexical index away and build it again from the store."""
        import shutil

        from .index.lexical import LexicalIndex

        self._index = self._engine = None
        path = self.root / "index" / "lexical"
        if path.exists():
            shutil.rmtree(path)
        index = LexicalIndex(self.root, self._analyzer)
        n = index.rebuild(self.store, on_progress=on_progress)
        self._index = index
        return n

    def similar(self, post_id: str, limit: int = 10):
        """Posts closest in meaning to a post (a SearchResult; NotFoundError for an unknown post)."""
        from .search.semantic import similar

        return similar(self.engine, post_id, limit)

    def reindex_vectors(self, model: str, on_progress=None) -> int:
        """Switch the folder's embedding model and rebuild its vectors (synchronously)."""
        n = self.vectors.switch(model, on_batch=on_progress)
        self._engine = None
        return n

    def warm_up(self) -> None:
        """Open the index and load the query embedder before the first request needs them."""
        from .search.types import SearchRequest

        self.search(SearchRequest(q="Казахстан", limit=1))

    def check(self) -> dict:
        """Store/index drift: counts, ids missing on either side, high-water marks."""
        return self.index.check(self.store)

    # -- read --------------------------------------------------------------------------------
    def get(self, post_id: str) -> Post:
        return self.store.get(post_id)

    def iter_posts(self, *, deleted: bool = False) -> Iterator[Post]:
        return self.store.iter_posts(deleted=deleted)

    def stats(self) -> dict:
        data = self.store.stats()
        index = self.index
        data["index"] = {"indexed": index.count(), "hwm": index.hwm(), "store_version": self.store.max_version(),
                         "analyzer": f"{index.analyzer.name} {index.analyzer.version}"}
        data["vectors"] = self.vectors.status()
        return data

    def close(self) -> None:
        self.vectors.close()
        self.store.close()


def open_backend(root: str | os.PathLike | None = None, *, create: bool = True) -> EmbeddedBackend:
    return EmbeddedBackend(root, create=create)
