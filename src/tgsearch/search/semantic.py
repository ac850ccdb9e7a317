"""The semantic retriever: a query's meaning -> nearest posts in the vector index.

`SemanticRetriever` plugs into the engine beside the lexical retriever (same `retrieve`
contract). It embeds the query's positive words and phrases (operators and field filters are
syntax, not meaning), searches the usearch graph, maps passages back to posts (a post scores
as its best passage) and applies the filters itself by over-fetching and checking the posts'
metadata. Its candidates also carry the query vector and an exact scorer, so fusion can give
every lexical candidate its true cosine (re-ranking over the stored vectors) instead of
treating "not in the semantic top-k" as "unrelated".

`similar(post_id)` finds posts close to a post (its passages' mean vector as the query).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from typing import Callable

import numpy as np

from ..errors import NotFoundError
from ..index.vectors import VectorIndex
from ..post import Post
from ..store import Store
from .lexical import Candidates, Filters
from .query import Filter, Not, Or, Query, Seq, positive_terms

OVERFETCH = 8          # filtered searches look this many times deeper before filtering
MAX_FETCH = 4000

_LATIN = re.compile(r"[A-Za-z]")
_CYR = re.compile(r"[\u0400-\u04FF]")


@dataclass
class SemanticCandidates(Candidates):
    """Semantic candidates plus what fusion needs to score any post exactly."""

    text: str = ""
    qvec: np.ndarray | None = None
    scorer: Callable[[list[str]], dict[str, float]] | None = None
    passages: dict[str, tuple[int, int]] = field(default_factory=dict)   # post id -> best passage span
    latin_share: float = 0.0
    model: str = ""


def semantic_text(query: Query) -> str:
    """The words a query means: its positive words and phrases, in order, without syntax."""
    return " ".join(t.text for t in positive_terms(query.root)).strip()


def query_filters(node, negated: bool = False) -> list[Filter]:
    """Field filters inside the query text that must hold (`channel:x since:...`), not under NOT/OR."""
    if node is None or negated:
        return []
    if isinstance(node, Filter):
        return [node]
    if isinstance(node, Seq):
        out = []
        for child in node.children:
            if not isinstance(child, (Not, Or)):
                out.extend(query_filters(child))
        return out
    return []


def latin_share(text: str) -> float:
    lat, cyr = len(_LATIN.findall(text)), len(_CYR.findall(text))
    return lat / (lat + cyr) if lat + cyr else 0.0


def _day_bounds(d: date, end: bool) -> datetime:
    return datetime.combine(d, time.max if end else time.min, tzinfo=timezone.utc)


class PostFilter:
    """The lexical filters (beside the query and inside it), checked on Post objects."""

    def __init__(self, filters: Filters | None, inline: list[Filter], resolve: Callable[[str, str], list[str]] | None):
        f = filters or Filters()
        self.channel_sets: list[set[str]] = []
        self.publication_sets: list[set[str]] = []
        self.since: list[datetime] = []
        self.until: list[datetime] = []
        self.kinds: list[str] = []
        self.has_link = bool(f.has_link)
        res = resolve or (lambda field, value: [value])
        if f.channels:
            self.channel_sets.append({s for c in f.channels for s in res("channel", c)})
        if f.publication:
            self.publication_sets.append(set(res("publication", f.publication)))
        if f.since:
            self.since.append(_day_bounds(f.since, False))
        if f.until:
            self.until.append(_day_bounds(f.until, True))
        if f.kind:
            self.kinds.append(f.kind)
        for flt in inline:
            if flt.name == "channel":
                self.channel_sets.append(set(res("channel", str(flt.value))))
            elif flt.name == "publication":
                self.publication_sets.append(set(res("publication", str(flt.value))))
            elif flt.name == "since":
                self.since.append(_day_bounds(flt.value, False))
            elif flt.name == "until":
                self.until.append(_day_bounds(flt.value, True))
            elif flt.name == "kind":
                self.kinds.append(str(flt.value))
            elif flt.name == "has":
                self.has_link = True

    @property
    def active(self) -> bool:
        return bool(self.channel_sets or self.publication_sets or self.since or self.until or self.kinds or self.has_link)

    def __call__(self, post) -> bool:
        """`post`: a Post or the Store.facts of one (the same attribute names)."""
        if any(post.channel not in s for s in self.channel_sets):
            return False
        if any(post.publication not in s for s in self.publication_sets):
            return False
        if (self.since or self.until) and post.date is None:
            return False
        if any(post.date < s for s in self.since) or any(post.date > u for u in self.until):
            return False
        if any(post.kind != k for k in self.kinds):
            return False
        if self.has_link and not post.links:
            return False
        return True


class SemanticRetriever:
    name = "semantic"

    def __init__(self, store: Store, vectors: VectorIndex, resolve: Callable[[str, str], list[str]] | None = None):
        self.store = store
        self.vectors = vectors
        self.resolve = resolve
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        return self.vectors.model

    def embed(self, text: str) -> np.ndarray:
        with self._lock:
            found = self._cache.get(text)
        if found is not None:
            return found
        vec = self.vectors.embed_query(text)
        with self._lock:
            if len(self._cache) > 2048:
                self._cache.clear()
            self._cache[text] = vec
        return vec

    def retrieve(self, query: Query, filters: Filters | None = None, *, limit: int, offset: int = 0,
                 sort: str = "relevance") -> SemanticCandidates:
        text = semantic_text(query)
        if not text:
            return SemanticCandidates(self.name, [], [], 0, text=text)
        qvec = self.embed(text)
        post_filter = PostFilter(filters, query_filters(query.root), self.resolve)
        want = limit + offset
        fetch = min(MAX_FETCH, want * (OVERFETCH if post_filter.active else 1))
        found = self.vectors.search_vector(qvec, limit=max(fetch, 1))
        # live posts only (a post deleted since its vectors were written is not a result), filtered
        if post_filter.active:
            facts = self.store.facts([pid for pid, _, _ in found])
            found = [f for f in found if f[0] in facts and post_filter(facts[f[0]])]
        else:
            live = self.store.live([pid for pid, _, _ in found])
            found = [f for f in found if f[0] in live]
        total = len(found[:want])
        found = found[offset:want]
        spans = {pid: span for pid, _, span in found}
        cands = SemanticCandidates(
            self.name, [f[0] for f in found], [f[1] for f in found], total, text=text, qvec=qvec,
            scorer=lambda ids: self.score(qvec, ids), passages=spans, latin_share=latin_share(text),
            model=self.model,
        )
        return cands

    def score(self, qvec: np.ndarray, post_ids: list[str]) -> dict[str, float]:
        """Exact cosine (best passage) for the given posts; posts without vectors are absent."""
        return {pid: s[0] for pid, s in self.vectors.score_posts(qvec, post_ids).items()}

    def best_passage(self, text: str, post_id: str) -> tuple[int, int] | None:
        """Character span of the post's passage closest to the query text (for snippets)."""
        if not text.strip():
            return None
        scored = self.vectors.score_posts(self.embed(text), [post_id]).get(post_id)
        return (scored[2], scored[3]) if scored else None

    def similar(self, post_id: str, limit: int = 10) -> list[tuple[str, float]]:
        """Posts closest in meaning to `post_id` (itself excluded), best first."""
        entries = self.vectors.vstore.post_vectors([post_id]).get(post_id)
        if not entries:
            self.store.get(post_id)  # NotFoundError for an unknown post
            raise NotFoundError(f"post {post_id!r} has no vectors yet (the vector index is still filling; try again later)")
        qvec = np.mean(np.stack([e[3] for e in entries]), axis=0)
        qvec /= np.linalg.norm(qvec) or 1.0
        found = self.vectors.search_vector(qvec, limit=limit + 1)
        return [(pid, sim) for pid, sim, _ in found if pid != post_id][:limit]


def attach(engine, service) -> SemanticRetriever | None:
    """Register the semantic retriever with an engine when the folder has (or is filling) vectors.

    Searching starts no filling: the backend decides where derived work runs (a write, the
    serve worker), and a read-only command never starts any."""
    if not service.available():
        return None
    retriever = SemanticRetriever(engine.store, service.index, resolve=engine.resolve)
    engine.add_retriever(retriever)
    threading.Thread(target=_warm, args=(retriever,), name="tgsearch-semantic-warmup", daemon=True).start()
    return retriever


def _warm(retriever: SemanticRetriever) -> None:
    """Load the model and the graph before the first query needs them (errors surface on use)."""
    try:
        retriever.vectors.refresh()
        retriever.vectors.embed_query("прогрев")
    except Exception:  # noqa: BLE001 - the first real query reports the problem
        pass


def similar(engine, post_id: str, limit: int = 10):
    """`GET /api/posts/{id}/similar`: a SearchResult of the posts closest in meaning to a post."""
    import time as _time

    from ..errors import QueryError
    from .lexical import Highlight
    from .types import SearchResult

    started = _time.perf_counter()
    retriever = engine.retrievers.get("semantic")
    engine.store.get(post_id)  # NotFoundError for an unknown post
    if retriever is None:
        raise QueryError("similar posts need the vector index, and this data folder has none "
                         "(run `tgsearch reindex --vectors use-multilingual-v3`)")
    found = retriever.similar(post_id, limit=max(1, min(int(limit), 200)))
    hits = engine.hits([(pid, sim, ["semantic"]) for pid, sim in found], Highlight())
    return SearchResult(query=f"similar:{post_id}", total=len(hits), took_ms=(_time.perf_counter() - started) * 1000,
                        hits=hits, mode="semantic", limit=limit)
