"""The search engine: parse → retrievers → fusion → page → posts → snippets (+ facets).

A retriever has a `name` and
    retrieve(query: Query, filters: Filters, *, limit, offset=0, sort="relevance") -> Candidates
returning ranked post ids with scores and its total match count; it applies the filters
itself. The lexical retriever is always present; others (the vector retriever) are
registered with `Engine.add_retriever`. With more than one retriever in a mode, their
candidate lists are fused by `search.fusion.fuse`.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import tantivy

from ..errors import QueryError
from ..index.lexical import LexicalIndex
from ..post import iso
from ..store import Store
from .fusion import fuse
from .lexical import Filters, Highlight, LexicalRetriever, Weights
from .query import Query, parse
from .snippet import Highlighter
from .types import MODES, SORTS, Hit, SearchRequest, SearchResult

MAX_LIMIT = 200
FUSION_DEPTH = 100
SEMANTIC_HEAD = 20      # semantic-only hits kept beside lexical matches (fusion.FLOOR_RANK)
FACET_SIZE = 50
INTERVALS = ("auto", "day", "week", "month")


def _passage(post, found: list[str], spans: dict | None) -> str:
    """A semantic-only hit shows the passage closest to the query (no words to highlight)."""
    span = (spans or {}).get(post.id)
    if span is None or "lexical" in found or not post.text:
        return ""
    return post.text[span[0]:span[1]]


class Engine:
    def __init__(self, store: Store, index: LexicalIndex, weights: Weights | None = None):
        self.store = store
        self.index = index
        self.analyzer = index.analyzer
        self.lexical = LexicalRetriever(index, self.resolve, weights)
        self.retrievers: dict[str, object] = {"lexical": self.lexical}
        self._names: dict[str, dict[str, list[str]]] = {}
        self._titles: dict[str, str] = {}
        self._names_version = -1

    def add_retriever(self, retriever) -> None:
        self.retrievers[retriever.name] = retriever

    # -- channel / publication names -----------------------------------------------------------
    def resolve(self, field: str, value: str) -> list[str]:
        """Stored values a channel:/publication: filter means (slug or title, case-insensitive)."""
        version = self.store.max_version()
        if version != self._names_version:
            names: dict[str, dict[str, list[str]]] = {"channel": {}, "publication": {}}
            titles: dict[str, str] = {}
            for slug, title in self.store.conn.execute("SELECT DISTINCT channel, channel_title FROM posts"):
                if title or slug not in titles:
                    titles[slug] = title or slug
                for key in {slug.lower(), (title or "").lower()} - {""}:
                    names["channel"].setdefault(key, []).append(slug)
            for (pub,) in self.store.conn.execute("SELECT DISTINCT publication FROM posts WHERE publication != ''"):
                names["publication"].setdefault(pub.lower(), []).append(pub)
            self._names, self._titles, self._names_version = names, titles, version
        table = self._names.get(field, {})
        key = value.strip().lstrip("@").lower()
        if key in table:
            return sorted(set(table[key]))
        # No exact name: fall back to every name containing it ("channel:naked").
        return sorted({v for name, vals in table.items() if key and key in name for v in vals})

    # -- search --------------------------------------------------------------------------------
    def search(self, req: SearchRequest) -> SearchResult:
        started = time.perf_counter()
        if req.sort not in SORTS:
            raise QueryError(f"sort must be one of {', '.join(SORTS)}, not {req.sort!r}", req.q)
        if req.mode not in MODES:
            raise QueryError(f"mode must be one of {', '.join(MODES)}, not {req.mode!r}", req.q)
        if req.interval not in INTERVALS:
            raise QueryError(f"interval must be one of {', '.join(INTERVALS)}, not {req.interval!r}", req.q)
        limit = max(0, min(int(req.limit), MAX_LIMIT))
        offset = max(0, int(req.offset))
        query = parse(req.q)
        filters = Filters(channels=tuple(req.channels), since=req.since, until=req.until,
                          kind=req.kind or None, publication=req.publication or None)
        searcher = self.index.searcher()
        compiled, highlight = self.lexical.compile(query, filters, searcher)

        names = self.mode_retrievers(req.mode, query)
        spans: dict[str, tuple[int, int]] = {}   # semantic hits: the passage closest to the query
        if names == ["lexical"]:
            cands = self.lexical.retrieve(query, filters, limit=limit, offset=offset, sort=req.sort,
                                          compiled=compiled, searcher=searcher)
            page = [(pid, score, ["lexical"]) for pid, score in zip(cands.ids, cands.scores)]
            total = cands.total
        else:
            depth = max(FUSION_DEPTH, offset + limit)
            lists = []
            for name in names:
                r = self.retrievers[name]
                if name == "lexical":
                    lists.append(r.retrieve(query, filters, limit=depth, sort=req.sort, compiled=compiled, searcher=searcher))
                else:
                    lists.append(r.retrieve(query, filters, limit=depth, sort=req.sort))
                    spans.update(getattr(lists[-1], "passages", None) or {})
            fused = lists[0] if len(lists) == 1 else None
            if fused is not None:
                merged = [(p, s, [fused.retriever]) for p, s in zip(fused.ids, fused.scores)]
            else:
                merged = fuse(lists)
            lexical = next((c for c in lists if c.retriever == "lexical"), None)
            if lexical is not None and len(lists) > 1:
                # Nearest neighbours always exist: beside lexical matches (or instead of them, when
                # the words occur nowhere), only the semantic list's head counts as a result, so
                # totals and facets mean "relevant posts"; semantic mode pages further.
                head = {pid for c in lists if c.retriever != "lexical" for pid in c.ids[:SEMANTIC_HEAD]}
                merged = [m for m in merged if "lexical" in m[2] or m[0] in head]
                extra = [m[0] for m in merged if "lexical" not in m[2]]
                total = lexical.total + len(extra)
                if extra:
                    compiled = tantivy.Query.boolean_query([
                        (tantivy.Occur.Should, compiled),
                        (tantivy.Occur.Should, tantivy.Query.term_set_query(self.index.schema, "id", extra)),
                    ])
            else:
                total = max([len(merged)] + [c.total for c in lists if c.retriever == "lexical"])
            if req.sort in ("date", "date_asc"):
                merged = self.by_date(merged, newest_first=req.sort == "date")
            page = merged[offset:offset + limit]

        hits = self.hits(page, highlight, spans)
        result = SearchResult(query=req.q, total=total, took_ms=0.0, hits=hits, mode=req.mode,
                              limit=limit, offset=offset)
        if req.facets:
            result.facets, result.timeline, result.interval = self.facets(searcher, compiled, req.interval)
        result.took_ms = (time.perf_counter() - started) * 1000
        return result

    def mode_retrievers(self, mode: str, query: Query) -> list[str]:
        if mode == "lexical" or query.root is None:
            return ["lexical"]
        if mode == "semantic":
            if "semantic" not in self.retrievers:
                raise QueryError("semantic search is not available in this data folder (no vector index)", query.text)
            return ["semantic"]
        return list(self.retrievers)

    def by_date(self, merged: list, newest_first: bool) -> list:
        posts = self.store.get_many([p for p, _, _ in merged])
        def key(item):
            post = posts.get(item[0])
            return post.date.timestamp() if post is not None and post.date else float("-inf")
        return sorted(merged, key=key, reverse=newest_first)

    def hits(self, page: list[tuple[str, float, list[str]]], highlight: Highlight,
             spans: dict[str, tuple[int, int]] | None = None) -> list[Hit]:
        posts = self.store.get_many([p for p, _, _ in page])
        hl = Highlighter(self.analyzer, highlight)
        out = []
        for pid, score, found in page:
            post = posts.get(pid)
            if post is None:  # deleted from the store after indexing; the next catch-up drops it
                continue
            out.append(Hit(
                id=post.id, channel=post.channel, channel_title=post.channel_title, date=iso(post.date),
                title=post.title, text=post.text, snippet=hl.snippet(_passage(post, found, spans) or post.text or post.title),
                url=post.url, source_url=post.source_url, score=round(float(score), 4), kind=post.kind,
                publication=post.publication, author=post.author, forwarded_from=post.forwarded_from,
                views=post.views, retrievers=list(found),
            ))
        return out

    # -- facets and timeline -------------------------------------------------------------------
    def facets(self, searcher: tantivy.Searcher, compiled: tantivy.Query, interval: str):
        aggs = {
            "channel": {"terms": {"field": "channel", "size": FACET_SIZE}},
            "publication": {"terms": {"field": "publication", "size": FACET_SIZE}},
            "month": {"terms": {"field": "month", "size": 1000}},
            "span": {"stats": {"field": "ts"}},
        }
        res = searcher.aggregate(compiled, aggs)
        titles = self.channel_titles()
        facets = {
            "channel": [{"value": b["key"], "label": titles.get(b["key"]) or b["key"], "count": b["doc_count"]}
                        for b in res["channel"]["buckets"]],
            "publication": [{"value": b["key"], "label": b["key"], "count": b["doc_count"]}
                            for b in res["publication"]["buckets"] if b["key"]],
            "month": sorted(({"value": b["key"], "label": b["key"], "count": b["doc_count"]}
                             for b in res["month"]["buckets"]), key=lambda m: m["value"]),
        }
        span = res["span"]
        if not span.get("count"):
            return facets, [], interval if interval != "auto" else "day"
        lo, hi = int(span["min"]), int(span["max"])
        if interval == "auto":
            days = (hi - lo) / 86400
            interval = "day" if days <= 62 else "week" if days <= 730 else "month"
        if interval == "month":
            timeline = []
            for m in facets["month"]:
                y, mo = map(int, m["value"].split("-"))
                start = datetime(y, mo, 1, tzinfo=timezone.utc)
                nxt = datetime(y + mo // 12, mo % 12 + 1, 1, tzinfo=timezone.utc)
                timeline.append({"start": start.date().isoformat(),
                                 "end": (nxt - timedelta(days=1)).date().isoformat(), "count": m["count"]})
            return facets, timeline, interval
        step = 86400 if interval == "day" else 7 * 86400
        # The epoch was a Thursday: offset weeks by 4 days so they start on Monday.
        offset = 0 if interval == "day" else 4 * 86400
        hist = searcher.aggregate(compiled, {"t": {"histogram": {"field": "ts", "interval": step, "offset": offset,
                                                                 "min_doc_count": 0}}})
        timeline = []
        for b in hist["t"]["buckets"]:
            start = datetime.fromtimestamp(int(b["key"]), tz=timezone.utc)
            end = start + timedelta(seconds=step - 1)
            timeline.append({"start": start.date().isoformat(), "end": end.date().isoformat(), "count": b["doc_count"]})
        return facets, timeline, interval

    def channel_titles(self) -> dict[str, str]:
        self.resolve("channel", "")  # refresh the name tables
        return self._titles
