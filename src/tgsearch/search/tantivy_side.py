"""The embedded backend's lexical side: runs the search plan (search/ir.py) on the tantivy index.

What the engine asks of a lexical side (the PostgreSQL twin is pg/lexical_sql.py):
    analyzer, hwm(), searcher() -> a snapshot to search,
    compile(query, filters, snap) -> (compiled, Highlight), count(compiled, snap),
    retrieve(query, filters, *, limit, offset, sort, compiled, searcher) -> Candidates,
    matching(compiled, ids, snap) -> set, or_ids(compiled, ids) -> compiled,
    facet_counts(snap, compiled, sizes) -> {"channel"|"publication"|"month": [(key, n)], "span": (n, lo, hi)},
    histogram(snap, compiled, step, offset, min_count) -> [(start ts, n)].
"""

from __future__ import annotations

from typing import Callable

import tantivy

from ..index.lexical import LexicalIndex
from . import ir
from .lexical import Candidates, Compiler, Filters, Highlight, Weights
from .query import Query, positive_terms

Occur = tantivy.Occur


class _Stats:
    def __init__(self, searcher: tantivy.Searcher):
        self.searcher = searcher

    def doc_freq(self, field: str, term: str) -> int:
        return self.searcher.doc_freq(field, term)

    def terms_with_prefix(self, field: str, prefix: str, limit: int) -> list[tuple[str, int]]:
        return self.searcher.terms_with_prefix(field, prefix, limit=limit)


def to_tantivy(node, index: LexicalIndex) -> tantivy.Query:
    """The tantivy query for a plan tree."""
    schema = index.schema
    t = lambda n: to_tantivy(n, index)  # noqa: E731
    if isinstance(node, ir.Term):
        return tantivy.Query.term_query(schema, node.field, node.value)
    if isinstance(node, ir.TermSet):
        return tantivy.Query.term_set_query(schema, node.field, list(node.values))
    if isinstance(node, ir.Phrase):
        return tantivy.Query.phrase_query(schema, node.field, list(node.terms))
    if isinstance(node, ir.Range):
        return tantivy.Query.range_query(schema, "ts", tantivy.FieldType.Integer, node.lo, node.hi)
    if isinstance(node, ir.DisMax):
        return tantivy.Query.disjunction_max_query([t(c) for c in node.children])
    if isinstance(node, ir.Bool):
        return tantivy.Query.boolean_query([(Occur.Must, t(c)) for c in node.must] +
                                           [(Occur.Should, t(c)) for c in node.should] +
                                           [(Occur.MustNot, t(c)) for c in node.must_not])
    if isinstance(node, ir.Boost):
        return tantivy.Query.boost_query(t(node.child), node.factor)
    if isinstance(node, ir.Const):
        return tantivy.Query.const_score_query(t(node.child), node.score)
    if isinstance(node, ir.All):
        return index.all_posts()
    if isinstance(node, ir.Empty):
        return tantivy.Query.empty_query()
    raise TypeError(node)  # pragma: no cover


class TantivySide:
    name = "lexical"

    def __init__(self, index: LexicalIndex, resolve: Callable[[str, str], list[str]], weights: Weights | None = None):
        self.index = index
        self.analyzer = index.analyzer
        self.resolve = resolve
        self.weights = weights or Weights()

    def hwm(self) -> int:
        return self.index.hwm()

    def searcher(self):
        return self.index.searcher()

    def compile(self, query: Query, filters: Filters, searcher=None) -> tuple[tantivy.Query, Highlight]:
        compiler = Compiler(self.analyzer, _Stats(searcher or self.index.searcher()), self.resolve, self.weights)
        return to_tantivy(compiler.compile(query, filters), self.index), compiler.highlight

    def count(self, compiled: tantivy.Query, searcher) -> int:
        return searcher.search(compiled, 1, count=True).count

    def or_ids(self, compiled: tantivy.Query, ids: list[str]) -> tantivy.Query:
        """The compiled query's posts plus these ids (hybrid extras, for counting)."""
        return tantivy.Query.boolean_query([
            (Occur.Should, compiled), (Occur.Should, tantivy.Query.term_set_query(self.index.schema, "id", list(ids)))])

    def matching(self, compiled: tantivy.Query, ids: list[str], searcher) -> set[str]:
        """The posts among `ids` that the compiled query matches."""
        if not ids:
            return set()
        both = tantivy.Query.boolean_query([
            (Occur.Must, compiled),
            (Occur.Must, tantivy.Query.term_set_query(self.index.schema, "id", list(ids))),
        ])
        hits = searcher.search(both, len(ids), count=False).hits
        return {searcher.doc(addr).to_dict()["id"][0] for _, addr in hits}

    def retrieve(self, query: Query, filters: Filters, *, limit: int, offset: int = 0, sort: str = "relevance",
                 compiled: tantivy.Query | None = None, searcher=None) -> Candidates:
        searcher = searcher or self.index.searcher()
        if compiled is None:
            compiled, _ = self.compile(query, filters, searcher)
        if sort == "relevance" and next(positive_terms(query.root), None) is None:
            sort = "date"  # only filters: nothing to rank by, newest first
        kwargs = {}
        if sort in ("date", "date_asc"):
            kwargs = {"order_by_field": "ts", "order": tantivy.Order.Desc if sort == "date" else tantivy.Order.Asc}
        result = searcher.search(compiled, max(limit, 1), count=True, offset=offset, **kwargs)
        hits = result.hits[:limit] if limit > 0 else []
        ids = [searcher.doc(addr).to_dict()["id"][0] for _, addr in hits]
        # Sorted by date there is no relevance score to report (the sort key is the date).
        scores = [0.0] * len(hits) if kwargs else [float(s) for s, _ in hits]
        return Candidates(self.name, ids, scores, result.count)

    # -- counting ------------------------------------------------------------------------------
    def facet_counts(self, searcher, compiled, sizes: dict[str, int]) -> dict:
        aggs = {f: {"terms": {"field": f, "size": n}} for f, n in sizes.items()}
        aggs["span"] = {"stats": {"field": "ts"}}
        res = searcher.aggregate(compiled, aggs)
        out = {f: [(b["key"], b["doc_count"]) for b in res[f]["buckets"]] for f in sizes}
        span = res["span"]
        out["span"] = (int(span.get("count") or 0), span.get("min"), span.get("max"))
        return out

    def histogram(self, searcher, compiled, step: int, offset: int, min_count: int = 0) -> list[tuple[int, int]]:
        res = searcher.aggregate(compiled, {"t": {"histogram": {"field": "ts", "interval": step, "offset": offset,
                                                                "min_doc_count": min_count}}})
        return [(int(b["key"]), b["doc_count"]) for b in res["t"]["buckets"]]
