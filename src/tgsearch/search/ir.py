"""The lexical query plan every backend runs: a small tree of scoring operators.

`search.lexical.Compiler` turns a parsed query (search.query) plus filters into this tree; each
backend translates it into its engine's own query — tantivy queries in the embedded backend
(search/tantivy_side.py), SQL over the postings table in PostgreSQL (pg/lexical_sql.py) — so the query
language, word forms and ranking rules are one piece of code.

Scoring is BM25 (k1 1.2, b 0.75) per field, combined as tantivy combines queries:
- Term/Phrase: BM25 of the term (phrase: of its occurrences, idf summed over its terms);
- DisMax: the best child's score; Bool: the sum of the matching must and should children (a post
  must match every `must`, at least one `should` when there is no `must`, no `must_not`);
- Boost: the child's score times `factor`; Const: `score` for every post the child matches;
- TermSet, Range, All: filters scoring 1.0; Empty: matches nothing.
Nodes are frozen and hashable, so a translator can share one evaluation of a repeated subtree.
"""

from __future__ import annotations

from dataclasses import dataclass

K1 = 1.2
B = 0.75
TEXT_FIELDS = ("body", "title", "exact")


@dataclass(frozen=True)
class Term:
    field: str          # body | title | exact (scored); channel | publication | kind | has_link (filters)
    value: object


@dataclass(frozen=True)
class TermSet:
    field: str          # channel | publication | id
    values: tuple


@dataclass(frozen=True)
class Phrase:
    field: str          # body | title | exact
    terms: tuple[str, ...]


@dataclass(frozen=True)
class Range:
    lo: int | None      # unix seconds, inclusive
    hi: int | None


@dataclass(frozen=True)
class DisMax:
    children: tuple


@dataclass(frozen=True)
class Bool:
    must: tuple = ()
    should: tuple = ()
    must_not: tuple = ()


@dataclass(frozen=True)
class Boost:
    child: object
    factor: float


@dataclass(frozen=True)
class Const:
    child: object
    score: float


@dataclass(frozen=True)
class All:
    pass


@dataclass(frozen=True)
class Empty:
    pass


Node = Term | TermSet | Phrase | Range | DisMax | Bool | Boost | Const | All | Empty


def bm25_idf(doc_freq: int, docs: int) -> float:
    """tantivy's (Lucene's) BM25 idf."""
    import math

    return math.log(1.0 + (docs - doc_freq + 0.5) / (doc_freq + 0.5))
