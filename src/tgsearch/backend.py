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
    def ingest(self, paths: Iterable[str | os.PathLike], **options) -> IngestReport: ...
    def get(self, post_id: str) -> Post: ...
    def iter_posts(self) -> Iterator[Post]: ...
    def stats(self) -> dict: ...
    def close(self) -> None: ...


class EmbeddedBackend:
    """SQLite store plus the derived indexes in one data folder."""

    def __init__(self, root: str | os.PathLike | None = None, *, create: bool = True):
        self.store = Store(root, create=create)
        self.root: Path = self.store.root

    # -- collect -----------------------------------------------------------------------------
    def ingest(self, paths, *, encoding: str | None = None, format: str | None = None,
               on_file: Callable[[FileReport], None] | None = None,
               on_posts: Callable[[int], None] | None = None) -> IngestReport:
        report = ingest(self.store, paths, encoding=encoding, format=format, on_file=on_file, on_posts=on_posts)
        self.after_write()
        return report

    def after_write(self) -> None:
        """Bring derived indexes up to the store (no-op until indexes exist)."""

    # -- read --------------------------------------------------------------------------------
    def get(self, post_id: str) -> Post:
        return self.store.get(post_id)

    def iter_posts(self) -> Iterator[Post]:
        return self.store.iter_posts()

    def stats(self) -> dict:
        return self.store.stats()

    def close(self) -> None:
        self.store.close()


def open_backend(root: str | os.PathLike | None = None, *, create: bool = True) -> EmbeddedBackend:
    return EmbeddedBackend(root, create=create)
