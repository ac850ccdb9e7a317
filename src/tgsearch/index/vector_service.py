"""The vector side of a data folder, as the backend sees it (index/vectors.py, index/vector_fill.py)."""

from __future__ import annotations

import os
import threading
from typing import Callable

from ..analyze.embed import get_embedder
from ..errors import StoreError
from ..store import Store
from .guard import DataFolder
from .vector_fill import VectorFiller, fill, reset, spawn_filler
from .vectors import ACTIVE_META_KEY, HNSW, VectorIndex, VectorStore, active_model, vector_status, vectors_dir

FILL_MODES = ("process", "thread", "sync", "off")


class VectorService:
    """The vector side of a data folder, as the backend sees it.

    `mode` (env ``TGSEARCH_VECTORS``) says how new posts get vectors after a write:
    ``process`` (default) -- a detached ``python -m tgsearch.index.vectors fill`` process, so
    lexical search serves at once and the vectors complete in the background, even after the
    CLI exits; ``thread`` -- a thread in this process; ``sync`` -- before the write returns;
    ``off`` -- not at all (vectors already on disk are still searched). A backend with a
    background worker (`tgsearch serve`) fills in that worker instead (`fill(stop=...)`).

    `read_only`: never fill, never create anything (search the vectors on disk, if any).
    `folder`: the data folder as the backend found it (writers create files only inside it).
    """

    def __init__(self, store: Store, mode: str | None = None, *, read_only: bool = False,
                 folder: DataFolder | None = None):
        self.store = store
        self.read_only = read_only
        self.mode = "off" if read_only else (mode or os.environ.get("TGSEARCH_VECTORS") or "process").lower()
        if self.mode not in FILL_MODES:
            raise StoreError(f"TGSEARCH_VECTORS={self.mode!r}: choose one of {', '.join(FILL_MODES)}")
        self.folder = folder
        self._index: VectorIndex | None = None
        self._filler: VectorFiller | None = None
        self._proc = None
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        return active_model(self.store)

    def available(self) -> bool:
        """Whether semantic search is on for this folder (filling, or vectors on disk)."""
        return self.mode != "off" or (vectors_dir(self.store.root, self.model) / "vectors.sqlite").exists()

    @property
    def index(self) -> VectorIndex:
        with self._lock:
            if self._index is None or self._index.model != self.model:
                self._index = VectorIndex(self.store, self.model, create=not self.read_only,
                                          read_only=self.read_only, folder=self.folder)
            return self._index

    def complete(self) -> bool:
        return vector_status(self.store, self.model)["complete"]

    def _writable(self) -> DataFolder:
        if self.read_only or self.folder is None:
            raise StoreError(f"{self.store.root}: opened read-only; vectors are only written by ingest, serve and reindex")
        return self.folder

    def after_write(self) -> None:
        """New posts are in the store: get them vectors according to the mode."""
        if self.mode == "off" or self.store.count() == 0:
            return
        folder = self._writable()
        if self.mode == "sync":
            fill(self.store, self.model, folder=folder)
        elif self.mode == "thread":
            if self._filler is None or self._filler.model != self.model:
                if self._filler is not None:
                    self._filler.stop()
                self._filler = VectorFiller(self.store, self.model, folder=folder)
            self._filler.start()
        elif not self.complete():
            if self._proc is None or self._proc.poll() is not None:
                directory = folder.mkdirs(vectors_dir(self.store.root, self.model))
                self._proc = spawn_filler(self.store.root, self.model, log=directory / "fill.log")

    def fill(self, on_batch: Callable[[int, int], None] | None = None, *, stop: threading.Event | None = None,
             wait: bool = True, workers: int | None = None, save_index: bool = True) -> int:
        """Embed everything missing now, in this process (`workers` > 1: a pool of embedding
        processes for a big backlog); a set `stop` ends it after the current batch. `save_index`:
        save the search graph afterwards (a server's own reader keeps its graph up instead)."""
        return fill(self.store, self.model, on_batch=on_batch, stop=stop, wait=wait, workers=workers,
                    save_index=save_index, folder=self._writable())

    def save_graph(self) -> None:
        """Save the search graph for the next process: this process's loaded graph (topped up
        from vectors.sqlite) when there is one, else one built from the saved file and sqlite."""
        folder = self._writable()
        with self._lock:
            index = self._index if self._index is not None and self._index.model == self.model else None
        if index is not None:
            if folder.alive():
                index.graph.sync(save=True)
            return
        directory = vectors_dir(self.store.root, self.model)
        if not (directory / "vectors.sqlite").exists() or not folder.alive():
            return
        embedder = get_embedder(self.model)   # name and dim only: the model loads on first use
        vstore = VectorStore(directory, embedder.name, embedder.dim, folder=folder)
        try:
            HNSW(directory, vstore).sync(save=True)
        finally:
            vstore.close()

    def switch(self, model: str, on_batch: Callable[[int, int], None] | None = None) -> int:
        """Make `model` the folder's embedding model and build its vectors from scratch."""
        folder = self._writable()
        embedder = get_embedder(model)   # unknown names fail before anything changes
        reset(self.store.root, embedder.name)
        self.store.set_meta(ACTIVE_META_KEY, embedder.name)
        self._index = None
        # By name, not with `embedder`: a large folder then embeds in worker processes (fill).
        return fill(self.store, embedder.name, on_batch=on_batch, folder=folder)

    def status(self) -> dict:
        out = vector_status(self.store, self.model)
        out["mode"] = "read-only (this command fills nothing)" if self.read_only else self.mode
        if self._filler is not None and self._filler.error is not None:
            out["error"] = str(self._filler.error)
        return out

    def close(self) -> None:
        if self._filler is not None:
            self._filler.stop()
        if self._index is not None:
            self._index.close()
