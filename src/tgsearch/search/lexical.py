"""The lexical side of search: compiles a parsed query and filters into the backend-neutral plan
(search/ir.py) that each backend runs (tantivy: search/tantivy_side.py; PostgreSQL: pg/lexical_sql.py).

Ranking: BM25 over lemmas (title counted twice: once in `body`, once boosted in
`title`), plus a small boost for the exact typed form. Plain juxtaposed words are
OR-ed, and every optional clause a post matches adds a constant `coverage` bonus,
so posts holding all the words rank first while a post missing one is still found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from typing import Callable

from ..errors import QueryError
from .query import Filter, Not, Or, Phrase, Query, Seq, Word
from .stopwords import STOP_LEMMAS

from . import ir


@dataclass
class Weights:
    # Tuned on bench/queries/dev.jsonl and XQuAD-ru (docs/benchmarks.md, "Search core").
    title: float = 1.5       # extra weight of a match in the title (first line for Telegram posts)
    exact: float = 0.05      # extra weight of the exact typed form
    coverage: float = 1.0    # constant bonus per plain query word matched: all-words posts first
    prefix_terms: int = 64


@dataclass
class Filters:
    """Filters given beside the query (API parameters / CLI options); all AND-ed."""

    channels: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None
    kind: str | None = None
    publication: str | None = None
    has_link: bool | None = None


@dataclass
class Highlight:
    """What a matching post's text may show: lemmas, exact forms and prefixes to <mark>."""

    lemmas: set[str] = field(default_factory=set)
    norms: set[str] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)


@dataclass
class Candidates:
    """A retriever's answer: ranked post ids with scores (or sort keys)."""

    retriever: str
    ids: list[str]
    scores: list[float]
    total: int


def day_start(d: date) -> int:
    return int(datetime.combine(d, time.min, tzinfo=timezone.utc).timestamp())


class Compiler:
    """Query AST + filters -> ir tree. `stats` answers `doc_freq(field, term)` and
    `terms_with_prefix(field, prefix, limit) -> [(term, df)]` on the snapshot being searched."""

    def __init__(self, analyzer, stats, resolve: Callable[[str, str], list[str]], weights: Weights | None = None):
        self.analyzer = analyzer
        self.stats = stats
        self.resolve = resolve          # (field, value) -> stored values (channel slugs, publications)
        self.w = weights or Weights()
        self.highlight = Highlight()
        self.text = ""

    # -- helpers -------------------------------------------------------------------------------
    def term(self, fld: str, value):
        return ir.Term(fld, value)

    def df(self, fld: str, value: str) -> int:
        return self.stats.doc_freq(fld, value)

    def any_of(self, queries: list):
        if len(queries) == 1:
            return queries[0]
        return ir.DisMax(tuple(queries))

    def should(self, queries: list):
        if len(queries) == 1:
            return queries[0]
        return ir.Bool(should=tuple(queries))

    def all_posts(self):
        return ir.All()

    # -- entry ---------------------------------------------------------------------------------
    def compile(self, query: Query, filters: Filters | None = None):
        self.text = query.text
        clauses: list[tuple] = []
        root = self.node(query.root) if query.root is not None else None
        if root is None and query.root is not None:
            root = ir.Empty()   # only punctuation was typed: nothing to find
        clauses.append(root if root is not None else self.all_posts())
        clauses.extend(self.filter_queries(filters or Filters()))
        if len(clauses) == 1:
            return clauses[0]
        return ir.Bool(must=tuple(clauses))

    def filter_queries(self, f: Filters) -> list:
        out = []
        if f.channels:
            slugs = sorted({s for c in f.channels for s in self.resolve("channel", c)})
            out.append(ir.TermSet("channel", tuple(slugs)) if slugs else ir.Empty())
        if f.publication:
            pubs = self.resolve("publication", f.publication)
            out.append(ir.TermSet("publication", tuple(pubs)) if pubs else ir.Empty())
        if f.since or f.until:
            out.append(self.date_range(f.since, f.until))
        if f.kind:
            out.append(self.term("kind", f.kind))
        if f.has_link:
            out.append(self.term("has_link", 1))
        return out

    def date_range(self, since: date | None, until: date | None):
        lo = day_start(since) if since else None
        hi = day_start(until) + 86399 if until else None
        return ir.Range(lo, hi)

    # -- nodes ---------------------------------------------------------------------------------
    def node(self, node):
        if isinstance(node, Word):
            return self.word(node)
        if isinstance(node, Phrase):
            return self.phrase(node.text, node.exact)
        if isinstance(node, Filter):
            return self.filter(node)
        if isinstance(node, Not):
            child = self.node(node.child)
            if child is None:
                return None
            return ir.Bool(must=(self.all_posts(),), must_not=(child,))
        if isinstance(node, Or):
            parts = [q for q in (self.node(c) for c in node.children) if q is not None]
            return self.should(parts) if parts else None
        if isinstance(node, Seq):
            return self.seq(node)
        raise TypeError(node)  # pragma: no cover

    def seq(self, node: Seq):
        must, must_not, should = [], [], []
        items = list(zip(node.children, node.required))
        content = [c for c, req in items if not isinstance(c, (Not, Filter))]
        if any(not self.is_stop(c) for c in content):
            # Function words do not count as query words when real words are present.
            items = [(c, req) for c, req in items if req or not self.is_stop(c)]
        optional = [c for c, req in items if not req and not isinstance(c, (Not, Filter))]
        for child, req in items:
            if isinstance(child, Not):
                q = self.node(child.child)
                if q is not None:
                    must_not.append(q)
                continue
            q = self.node(child)
            if q is None:
                continue
            if req or isinstance(child, Filter):
                must.append(q)
            else:
                should.append(q)
                if len(optional) > 1 and self.w.coverage:
                    should.append(ir.Const(q, self.w.coverage))
        content_required = any(req and not isinstance(c, (Not, Filter)) for c, req in items)
        if should and must and not content_required:
            # Only filters are required: at least one of the words must still match.
            must.append(ir.Bool(should=tuple(should)))
            should = []
        if not must and not should:
            if not must_not:
                return None
            must.append(self.all_posts())
        if len(must) + len(should) == 1 and not must_not:
            return (must + should)[0]
        return ir.Bool(tuple(must), tuple(should), tuple(must_not))

    def is_stop(self, node) -> bool:
        if not isinstance(node, Word) or node.exact or node.prefix:
            return False
        toks = self.analyzer.tokens(node.text)
        return len(toks) == 1 and self.analyzer.lemma(toks[0].norm) in STOP_LEMMAS

    def word(self, w: Word):
        toks = self.analyzer.tokens(w.text)
        if not toks:
            return None
        if len(toks) > 1 and not (toks[0].start == 0 and toks[0].end >= len(w.text.rstrip())):
            # Several words typed as one ("нефть,газ"): its parts in order.
            return self.phrase(w.text, w.exact)
        norm = toks[0].norm
        if w.prefix:
            return self.prefix(norm)
        if w.exact:
            self.highlight.norms.add(norm)
            return self.term("exact", norm)
        candidates = list(dict.fromkeys(self.analyzer.query_lemmas(w.text) or [self.analyzer.lemma(norm)]))
        lemmas = [lem for lem in candidates if self.df("body", lem) > 0] or candidates[:1]
        # A word also finds its hashtag (Казахстан → #Казахстан, #казахстан).
        tags = [tag for tag in dict.fromkeys(("#" + norm, "#" + lemmas[0])) if self.df("body", tag) > 0]
        self.highlight.norms.update(tags)
        lemmas += tags
        self.highlight.lemmas.update(lemmas)
        self.highlight.norms.add(norm)
        parts = [self.any_of([self.term("body", lem) for lem in lemmas])]
        titled = [lem for lem in lemmas if self.df("title", lem) > 0]
        if titled and self.w.title:
            parts.append(ir.Boost(self.any_of([self.term("title", lem) for lem in titled]), self.w.title))
        if self.w.exact and self.df("exact", norm) > 0:
            parts.append(ir.Boost(self.term("exact", norm), self.w.exact))
        return self.should(parts)

    def prefix(self, norm: str):
        self.highlight.prefixes.add(norm)
        terms = self.stats.terms_with_prefix("exact", norm, self.w.prefix_terms)
        if not terms:
            return ir.Empty()
        return self.any_of([self.term("exact", t) for t, _ in terms])

    def phrase(self, text: str, exact: bool):
        norms = self.analyzer.exact_terms(text)
        if not norms:
            return None
        self.highlight.norms.update(norms)
        if exact:
            return self.term("exact", norms[0]) if len(norms) == 1 else \
                ir.Phrase("exact", tuple(norms))
        lemmas = self.analyzer.index_terms(text)
        self.highlight.lemmas.update(lemmas)
        if len(lemmas) == 1:
            return self.word(Word(text, 0))
        parts = [ir.Phrase("body", tuple(lemmas))]
        if self.w.title and all(self.df("title", lem) > 0 for lem in lemmas):
            parts.append(ir.Boost(ir.Phrase("title", tuple(lemmas)), self.w.title))
        return self.should(parts)

    def filter(self, f: Filter):
        if f.name in ("channel", "publication"):
            values = self.resolve(f.name, f.value)
            return ir.TermSet(f.name, tuple(values)) if values else ir.Empty()
        if f.name in ("person", "org", "place"):
            ids = self.resolve(f.name, f.value)      # the posts naming it (stories' entities)
            return ir.TermSet("id", tuple(ids)) if ids else ir.Empty()
        if f.name == "since":
            return self.date_range(f.value, None)
        if f.name == "until":
            return self.date_range(None, f.value)
        if f.name == "kind":
            return self.term("kind", f.value)
        if f.name == "has":
            return self.term("has_link", 1)
        raise QueryError(f"unknown field {f.name!r}", self.text, f.pos)  # pragma: no cover - parser rejects


