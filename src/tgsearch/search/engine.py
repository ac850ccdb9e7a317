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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Iterator

from ..errors import QueryError
from ..post import iso
from ..store import Store
from .fusion import fuse
from .grouping import GroupCache, group
from .lexical import Filters, Highlight, Weights
from .query import Query, parse
from .snippet import Highlighter
from .types import MODES, SORTS, Hit, SearchRequest, SearchResult

MAX_LIMIT = 200
MAX_OFFSET = 1_000_000  # deeper pages are refused by the API; the engine clamps as a backstop
FUSION_DEPTH = 100      # lexical and semantic candidates fused in hybrid mode (the rest: BM25 order)
SEMANTIC_HEAD = 20      # semantic-only hits kept beside lexical matches (fusion.FLOOR_RANK)
SEMANTIC_RESULTS = 500  # semantic mode: the nearest posts (after filters) form the result set
FACET_SIZE = 50
ENTITY_FACET_POSTS = 1_000    # person/org/place facets count over the first this many results
INTERVALS = ("auto", "day", "week", "month")

# a result's retrievers: shared tuples, so a long result list adds no objects for the cyclic collector
LEXICAL, SEMANTIC = ("lexical",), ("semantic",)
_AHEAD = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tgsearch-semantic")


def _passage(post, found: list[str], spans: dict | None) -> str:
    """A semantic-only hit shows the passage closest to the query (no words to highlight)."""
    span = (spans or {}).get(post.id)
    if span is None or "lexical" in found or not post.text:
        return ""
    return post.text[span[0]:span[1]]


@dataclass
class _Plan:
    """A parsed, compiled search: what ranking and facet counting share."""

    req: SearchRequest
    query: Query
    filters: Filters
    searcher: object                                # the lexical side's snapshot (tantivy searcher, SQL connection)
    compiled: object                                # the lexical side's compiled query
    highlight: Highlight
    names: list[str]
    spans: dict = field(default_factory=dict)       # semantic hits: the passage closest to the query
    full: list | None = None                        # the whole ranked result set, when a step needed it
    hybrid_base: tuple | None = None                # hybrid: the retrievers' candidates, fused once
    counted: object = None                          # what facets count (the compiled query + extras)
    ahead: dict = field(default_factory=dict)       # hybrid: retriever name -> Future of its candidates

    def __post_init__(self):
        if self.counted is None:
            self.counted = self.compiled


class Engine:
    def __init__(self, store: Store, lexical, weights: Weights | None = None):
        """`lexical`: a lexical side (search/tantivy_side.py, pg/lexical_sql.py), or a LexicalIndex
        (wrapped in a TantivySide); `store` the posts (Store or PgStore)."""
        self.store = store
        if not hasattr(lexical, "facet_counts"):
            from .tantivy_side import TantivySide

            lexical = TantivySide(lexical, self.resolve, weights)
        self.analyzer = lexical.analyzer
        self.lexical = lexical
        self.retrievers: dict[str, object] = {"lexical": self.lexical}
        self._names: dict[str, dict[str, list[str]]] = {}
        self._titles: dict[str, str] = {}
        self._names_version = -1
        self.stories = None        # set by the backend: .placements(ids) -> {id: {...}}, .hwm()
        self._groups = GroupCache()

    def add_retriever(self, retriever) -> None:
        self.retrievers[retriever.name] = retriever

    # -- channel / publication names -----------------------------------------------------------
    def resolve(self, field: str, value: str) -> list[str]:
        """Stored values a channel:/publication: filter means (slug or title, case-insensitive);
        for person:/org:/place:, the ids of the posts naming that entity (any form of the name)."""
        if field in ("person", "org", "place"):
            return self.stories.posts_with_entity(field, value) if self.stories is not None else []
        version = self.store.names_version()
        if version != self._names_version:
            names: dict[str, dict[str, list[str]]] = {"channel": {}, "publication": {}}
            titles = self.store.channel_titles()
            for slug, title in self.store.channel_names():
                for key in {slug.lower(), (title or "").lower()} - {""}:
                    names["channel"].setdefault(key, []).append(slug)
            for slug, title in titles.items():
                names["channel"].setdefault(title.lower(), []).append(slug)
            for pub in self.store.publications():
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
        plan = self.plan(req)
        limit = max(0, min(int(req.limit), MAX_LIMIT))
        offset = max(0, min(int(req.offset), MAX_OFFSET))
        grouped = req.group == "story" and self.stories is not None and self.stories.hwm() > 0
        if grouped:
            groups, total_posts = self.grouped(plan)
            chosen = groups[offset:offset + limit]
            page, total = [g.item for g in chosen], len(groups)
        else:
            page, total = self.ranked(plan, offset, offset + limit)
            total_posts = total
        for pending in plan.ahead.values():      # not needed (a cached grouped list answered)
            pending.cancel()
        hits = self.hits(page, plan.highlight, plan.spans)
        self.mark_stories(hits, {g.item[0]: g.matching for g in chosen} if grouped else {})
        result = SearchResult(query=req.q, total=total, took_ms=0.0, hits=hits, mode=req.mode,
                              limit=limit, offset=offset, notice="; ".join(plan.query.notices),
                              group="story" if grouped else "none", total_posts=total_posts)
        if req.facets:
            counted = plan.counted
            if plan.full is not None and hasattr(self.lexical, "ids_query"):
                # the whole result set is at hand: count over its ids (cheaper than running the query again)
                counted = self.lexical.ids_query([pid for pid, _, _ in plan.full], plan.compiled)
            result.facets, result.timeline, result.interval = self.facets(plan.searcher, counted, req.interval)
            if self.stories is not None and self.stories.hwm() > 0:
                result.facets.update(self.entity_facets(plan))
        result.took_ms = (time.perf_counter() - started) * 1000
        return result

    def grouped(self, plan: "_Plan") -> tuple[list, int]:
        """(the whole result set folded by story, the number of posts in it), cached briefly."""
        req = plan.req
        key = (req.q, req.mode, req.sort, req.channels, req.since, req.until, req.kind, req.publication,
               self.lexical.hwm(), self.store.max_version(), self.stories.hwm(), tuple(self.retrievers),
               FUSION_DEPTH, SEMANTIC_HEAD, SEMANTIC_RESULTS)
        hit = self._groups.get(key)
        if hit is None:
            full, total_posts = self.ranked(plan, 0, None)
            plan.full = full
            hit = (group(full, self.stories.placements([pid for pid, _, _ in full])), total_posts)
            self._groups.put(key, hit)
        return hit

    def mark_stories(self, hits: list[Hit], matching: dict[str, int]) -> None:
        """Fill the hits' story fields (when stories are known)."""
        if self.stories is None or not hits:
            return
        placed = self.stories.placements([h.id for h in hits])
        for h in hits:
            p = placed.get(h.id)
            if p:
                h.story, h.story_size, h.story_channels = p["story"], p["story_size"], p["story_channels"]
                h.copy_of = p["copy_of"]
            h.story_matching = matching.get(h.id, 1)

    def iter_ids(self, req: SearchRequest, batch: int = 1000) -> tuple[int, Iterator[list[str]]]:
        """(total, batches of post ids): every result of a search, in its order, for export."""
        plan = self.plan(req)
        page, total = self.ranked(plan, 0, None)
        ids = [pid for pid, _, _ in page]

        def chunks():
            for i in range(0, len(ids), batch):
                yield ids[i:i + batch]
        return total, chunks()

    def plan(self, req: SearchRequest) -> "_Plan":
        if req.sort not in SORTS:
            raise QueryError(f"sort must be one of {', '.join(SORTS)}, not {req.sort!r}", req.q)
        if req.mode not in MODES:
            raise QueryError(f"mode must be one of {', '.join(MODES)}, not {req.mode!r}", req.q)
        if req.interval not in INTERVALS:
            raise QueryError(f"interval must be one of {', '.join(INTERVALS)}, not {req.interval!r}", req.q)
        query = parse(req.q)
        filters = Filters(channels=tuple(req.channels), since=req.since, until=req.until,
                          kind=req.kind or None, publication=req.publication or None)
        names = self.mode_retrievers(req.mode, query)
        ahead = {}
        if len(names) > 1 and getattr(self.lexical, "concurrent_retrievers", False):
            # a lexical side that waits on a server (PostgreSQL): the other retrievers' candidates are
            # asked for now, while the query compiles and the lexical side ranks
            ahead = {name: _AHEAD.submit(self.retrievers[name].retrieve, query, filters, limit=FUSION_DEPTH,
                                         sort="relevance") for name in names if name != "lexical"}
        try:
            searcher = self.lexical.searcher()
            compiled, highlight = self.lexical.compile(query, filters, searcher)
        except BaseException:
            for f in ahead.values():
                f.cancel()
            raise
        return _Plan(req, query, filters, searcher, compiled, highlight, names, ahead=ahead)

    def ranked(self, plan: "_Plan", start: int, stop: int | None) -> tuple[list, int]:
        """Results [start, stop) of the whole ordered result set (stop None: to the end), and the
        total. Every post counted in the total is reachable by some (start, stop)."""
        names, sort = plan.names, plan.req.sort
        if names == ["lexical"]:
            if stop is None:
                stop = self.lexical.count(plan.compiled, plan.searcher)
            cands = self.lexical.retrieve(plan.query, plan.filters, limit=stop - start, offset=start, sort=sort,
                                          compiled=plan.compiled, searcher=plan.searcher)
            return [(pid, score, LEXICAL) for pid, score in zip(cands.ids, cands.scores)], cands.total
        if names == ["semantic"]:
            sem = self.retrievers["semantic"].retrieve(plan.query, plan.filters, limit=SEMANTIC_RESULTS, sort=sort)
            plan.spans.update(sem.passages or {})
            merged = [(p, s, SEMANTIC) for p, s in zip(sem.ids, sem.scores)]
            if sort in ("date", "date_asc"):
                merged = self.by_date(merged, newest_first=sort == "date")
            return merged[start:stop], len(merged)
        return self.hybrid(plan, start, stop)

    def hybrid(self, plan: "_Plan", start: int, stop: int | None) -> tuple[list, int]:
        """Lexical matches plus the semantic head. The whole result set is every lexical match and
        the head's posts that match no word ("extras"); relevance order is the fused order over the
        top FUSION_DEPTH lexical hits and the head, then the remaining lexical hits in BM25 order."""
        sort = plan.req.sort
        if plan.hybrid_base is None:      # the retrievers' answers, once per plan (a page, then facets)
            every = None
            if stop is None and getattr(self.lexical, "retrieves_all", False):
                # the whole set is wanted (stories, export): every lexical match in one go, the fused
                # window from its head, the tail from the rest
                every = self.lexical.retrieve(plan.query, plan.filters, limit=None, sort="relevance",
                                              compiled=plan.compiled, searcher=plan.searcher)
                lexical = replace(every, ids=every.ids[:FUSION_DEPTH], scores=every.scores[:FUSION_DEPTH])
            else:
                lexical = self.lexical.retrieve(plan.query, plan.filters, limit=FUSION_DEPTH, sort="relevance",
                                                compiled=plan.compiled, searcher=plan.searcher)
            lists = [lexical]
            for name in plan.names:
                if name != "lexical":
                    pending: Future | None = plan.ahead.pop(name, None)
                    cands = pending.result() if pending is not None else \
                        self.retrievers[name].retrieve(plan.query, plan.filters, limit=FUSION_DEPTH, sort="relevance")
                    plan.spans.update(getattr(cands, "passages", None) or {})
                    lists.append(cands)
            head = list(dict.fromkeys(pid for c in lists[1:] for pid in c.ids[:SEMANTIC_HEAD]))
            in_lexical = set(lexical.ids)
            if every is not None:       # every lexical match is at hand: no need to ask which of the head match
                every_ids = set(every.ids)
                matching = {p for p in head if p in every_ids}
            else:
                matching = in_lexical.intersection(head) | \
                    self.lexical.matching(plan.compiled, [p for p in head if p not in in_lexical], plan.searcher)
            extras = [pid for pid in head if pid not in matching]
            if extras:
                # facets and the timeline count the same posts as the total
                plan.counted = self.lexical.or_ids(plan.compiled, extras)
            plan.hybrid_base = (lexical, lists, head, in_lexical, matching, extras, every)
        lexical, lists, head, in_lexical, matching, extras, every = plan.hybrid_base
        total = lexical.total + len(extras)
        if stop is None:
            stop = total
        if sort in ("date", "date_asc"):
            # Newest (or oldest) first over the whole set: the lexical matches in date order, the
            # extras merged in by their dates.
            lex = self.lexical.retrieve(plan.query, plan.filters, limit=stop, sort=sort,
                                        compiled=plan.compiled, searcher=plan.searcher)
            merged = [(p, 0.0, ["lexical"] + (["semantic"] if p in head else [])) for p in lex.ids]
            merged += [(p, 0.0, ["semantic"]) for p in extras]
            return self.by_date(merged, newest_first=sort == "date")[start:stop], total
        in_window = in_lexical | set(head)
        window = []
        for pid, score, found in (fuse(lists) if len(lists) > 1 else
                                  [(p, s, ["lexical"]) for p, s in zip(lexical.ids, lexical.scores)]):
            if pid in in_window:
                labels = (["lexical"] if pid in matching or pid in in_lexical else []) + \
                         [f for f in found if f != "lexical"]
                window.append((pid, score, labels))
        if stop <= len(window):
            return window[start:stop], total
        # Past the fused window: the remaining lexical hits in BM25 order, without the head's
        # lexical matches already placed in the window.
        placed = [pid for pid in head if pid in matching and pid not in in_lexical]
        need = stop - len(window) + len(placed)
        if every is not None:
            n = len(lexical.ids)
            tail = replace(every, ids=every.ids[n:n + need], scores=every.scores[n:n + need])
        else:
            tail = self.lexical.retrieve(plan.query, plan.filters, limit=need, offset=len(lexical.ids),
                                         sort="relevance", compiled=plan.compiled, searcher=plan.searcher)
        seen = set(placed)
        rest = [(p, s, LEXICAL) for p, s in zip(tail.ids, tail.scores) if p not in seen]
        return (window + rest)[start:stop], total

    def mode_retrievers(self, mode: str, query: Query) -> list[str]:
        if mode == "lexical" or query.root is None:
            return ["lexical"]
        if mode == "semantic":
            if "semantic" not in self.retrievers:
                raise QueryError("semantic search is not available in this data folder (no vector index)", query.text)
            return ["semantic"]
        return list(self.retrievers)

    def by_date(self, merged: list, newest_first: bool) -> list:
        dates = self.store.dates([p for p, _, _ in merged])
        missing = "" if newest_first else "\uffff"     # undated posts last either way
        return sorted(merged, key=lambda item: dates.get(item[0]) or missing, reverse=newest_first)

    def hits(self, page: list[tuple[str, float, list[str]]], highlight: Highlight,
             spans: dict[str, tuple[int, int]] | None = None) -> list[Hit]:
        posts = self.store.get_many([p for p, _, _ in page])
        hl = Highlighter(self.analyzer, highlight)
        out = []
        for pid, score, found in page:
            post = posts.get(pid)
            if post is None or post.deleted:  # deleted after indexing; the next catch-up drops it
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
    def facets(self, searcher, compiled, interval: str):
        res = self.lexical.facet_counts(searcher, compiled, {"channel": FACET_SIZE, "publication": FACET_SIZE,
                                                             "month": 1000})
        titles = self.channel_titles()
        facets = {
            "channel": [{"value": k, "label": titles.get(k) or k, "count": n} for k, n in res["channel"]],
            "publication": [{"value": k, "label": k, "count": n} for k, n in res["publication"] if k],
            "month": sorted(({"value": k, "label": k, "count": n} for k, n in res["month"] if k),
                            key=lambda m: m["value"]),
        }
        count, lo, hi = res["span"]
        if not count:
            return facets, [], interval if interval != "auto" else "day"
        lo, hi = int(lo), int(hi)
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
        timeline = []
        for key, n in self.lexical.histogram(searcher, compiled, step, offset, 0):
            start = datetime.fromtimestamp(key, tz=timezone.utc)
            end = start + timedelta(seconds=step - 1)
            timeline.append({"start": start.date().isoformat(), "end": end.date().isoformat(), "count": n})
        return facets, timeline, interval

    def entity_facets(self, plan: "_Plan") -> dict[str, list[dict]]:
        """person / org / place facets over the first ENTITY_FACET_POSTS results in the result
        order (all of them when fewer match): reading every match's entities grows with the number of
        matches, too slow for a page on a broad query."""
        page = plan.full[:ENTITY_FACET_POSTS] if plan.full is not None else self.ranked(plan, 0, ENTITY_FACET_POSTS)[0]
        return self.stories.entity_facets([pid for pid, _, _ in page], FACET_SIZE)

    def channel_titles(self) -> dict[str, str]:
        self.resolve("channel", "")  # refresh the name tables
        return self._titles
