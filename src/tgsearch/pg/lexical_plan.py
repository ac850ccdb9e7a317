"""A search plan (search/ir.py) as one SQL statement over the PostgreSQL lexical tables
(pg/lexical_sql.py): each node a CTE yielding (post_id, s), combined as tantivy combines queries, and
plain-word subtrees as one pass over the postings (`flatten`)."""

from __future__ import annotations

from ..search import ir

FIELDS = {"body": 1, "title": 2, "exact": 3}


def _tsquery_phrase(terms: tuple[str, ...]) -> str:
    return " <-> ".join("'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in terms)


LEAVES = (ir.Term, ir.TermSet, ir.Phrase, ir.Range, ir.All)


def flatten(n, factor: float = 1.0) -> list | None:
    """A scoring tree that is a sum of weighted bests of single terms — what plain words compile to
    (search/lexical.py `word`: the best of a word's lemmas in the body, plus the title, plus the exact
    form, plus a constant when it matches) — as slots [("bm25", 0, ((field, term, weight), ...)) |
    ("const", value, leaves)]: the tree's score is the sum over slots of the slot's best weighted BM25
    of its terms (or its constant when any of its terms is in the post), and a post matches when any
    term is in it. None when the tree has another shape (phrases, required or excluded parts, filters):
    then each node is its own SQL."""
    if isinstance(n, ir.Term):
        return [("bm25", 0.0, ((n.field, str(n.value), factor),))] if n.field in FIELDS else None
    if isinstance(n, ir.Boost):
        return flatten(n.child, factor * float(n.factor))
    if isinstance(n, ir.DisMax):
        leaves = []
        for c in n.children:
            sub = flatten(c, factor)
            if sub is None or len(sub) != 1 or sub[0][0] != "bm25":
                return None
            leaves.extend(sub[0][2])
        return [("bm25", 0.0, tuple(leaves))]
    if isinstance(n, ir.Const):
        sub = flatten(n.child, 1.0)
        if sub is None:
            return None
        return [("const", float(n.score) * factor, tuple(leaf for slot in sub for leaf in slot[2]))]
    if isinstance(n, ir.Bool) and not n.must and not n.must_not and n.should:
        out = []
        for c in n.should:
            sub = flatten(c, factor)
            if sub is None:
                return None
            out.extend(sub)
        return out
    return None


class SqlPlan:
    """One plan tree as SQL: CTEs n0, n1, ... each (post_id, s); `root` names the plan's own."""

    def __init__(self, snap, only: list[str] | None = None):
        self.snap = snap
        self.ctes: list[str] = []
        self.params: list = []
        self.names: dict = {}
        self.only = only        # evaluate for these posts only (every leaf restricted: AND/OR/NOT still exact)

    def add(self, node) -> str:
        if node in self.names:
            return self.names[node]
        sql, params = self.node(node)
        if self.only is not None and isinstance(node, LEAVES):
            sql, params = f"SELECT * FROM ({sql}) l WHERE l.post_id = ANY(%s)", params + [self.only]
        name = f"n{len(self.ctes)}"
        self.ctes.append(f"{name} AS ({sql})")
        self.params.extend(params)
        self.names[node] = name
        return name

    def with_clause(self) -> str:
        return "WITH " + ", ".join(self.ctes) + " " if self.ctes else ""

    def bm25(self, fld: str, idf: float, tf: str, dl: str) -> str:
        avg = self.snap.avg.get(fld) or 1.0
        return (f"({idf!r}::float8 * {tf} * {ir.K1 + 1}::float8 / ({tf} + {ir.K1}::float8 * "
                f"({1 - ir.B}::float8 + {ir.B}::float8 * {dl} / {avg!r}::float8)))")

    def node(self, n) -> tuple[str, list]:
        snap = self.snap
        slots = flatten(n) if not isinstance(n, ir.Term) else None
        if slots:
            return self.flat(slots)
        if isinstance(n, ir.Term):
            if n.field in FIELDS:
                idf = ir.bm25_idf(snap.doc_freq(n.field, str(n.value)), max(snap.docs, 1))
                return (f"SELECT post_id, {self.bm25(n.field, idf, 'tf', 'dl')} AS s FROM lex_postings "
                        f"WHERE field = %s AND term = %s", [FIELDS[n.field], str(n.value)])
            if n.field == "has_link":
                return "SELECT post_id, 1.0::float8 AS s FROM lex_docs WHERE has_link", []
            if n.field in ("channel", "publication", "kind", "month"):
                return f"SELECT post_id, 1.0::float8 AS s FROM lex_docs WHERE {n.field} = %s", [str(n.value)]
            if n.field == "id":
                return "SELECT post_id, 1.0::float8 AS s FROM lex_docs WHERE post_id = %s", [str(n.value)]
            raise ValueError(f"unknown field {n.field}")
        if isinstance(n, ir.TermSet):
            col = {"channel": "channel", "publication": "publication", "id": "post_id", "kind": "kind"}[n.field]
            return f"SELECT post_id, 1.0::float8 AS s FROM lex_docs WHERE {col} = ANY(%s)", [list(map(str, n.values))]
        if isinstance(n, ir.Phrase):
            idf = sum(ir.bm25_idf(snap.doc_freq(n.field, t), max(snap.docs, 1)) for t in n.terms)
            # a title phrase is in the body too (the body starts with the title): found by the body's index
            where = f"{n.field} @@ %s::tsquery" + (" AND body @@ %s::tsquery" if n.field == "title" else "")
            q = _tsquery_phrase(n.terms)
            return (f"SELECT post_id, {self.bm25(n.field, idf, '1.0::float8', 'len_' + n.field)} AS s FROM lex_docs "
                    f"WHERE {where}", [q, q] if n.field == "title" else [q])
        if isinstance(n, ir.Range):
            conds, params = [], []
            if n.lo is not None:
                conds.append("ts >= %s")
                params.append(n.lo)
            if n.hi is not None:
                conds.append("ts <= %s")
                params.append(n.hi)
            return "SELECT post_id, 1.0::float8 AS s FROM lex_docs WHERE " + (" AND ".join(conds) or "ts IS NOT NULL"), params
        if isinstance(n, ir.All):
            return "SELECT post_id, 1.0::float8 AS s FROM lex_docs", []
        if isinstance(n, ir.Empty):
            return "SELECT NULL::text AS post_id, 0.0::float8 AS s WHERE false", []
        if isinstance(n, ir.DisMax):
            parts = " UNION ALL ".join(f"SELECT post_id, s FROM {self.add(c)}" for c in n.children)
            return f"SELECT post_id, max(s) AS s FROM ({parts}) u GROUP BY post_id", []
        if isinstance(n, ir.Boost):
            return f"SELECT post_id, s * {float(n.factor)!r}::float8 AS s FROM {self.add(n.child)}", []
        if isinstance(n, ir.Const):
            return f"SELECT post_id, {float(n.score)!r}::float8 AS s FROM {self.add(n.child)}", []
        if isinstance(n, ir.Bool):
            return self.boolean(n), []
        raise TypeError(n)  # pragma: no cover

    def flat(self, slots: list) -> tuple[str, list]:
        """A sum of slots (see `flatten`) in one pass over the postings of all its terms: each slot's
        value per post (the best weighted BM25 of its terms, or its constant), summed per post."""
        rows, params = [], []
        avg = self.snap.avg
        docs = max(self.snap.docs, 1)
        for i, (kind, const, leaves) in enumerate(slots):
            for fld, term, w in leaves:
                idf = ir.bm25_idf(self.snap.doc_freq(fld, term), docs)
                rows.append("(%s::int, %s::smallint, %s::text, %s::float8, %s::float8, %s::float8, %s::float8)")
                params += [i, FIELDS[fld], term, float(w) * idf, float(const) if kind == "const" else -1.0,
                           float(avg.get(fld) or 1.0), 0.0]
        only = ""
        if self.only is not None:
            only = " AND l.post_id = ANY(%s)"
            params.append(self.only)
        k1, b = ir.K1, ir.B
        sql = (f"SELECT post_id, sum(v) AS s FROM (SELECT l.post_id, q.slot, max(CASE WHEN q.c >= 0 THEN q.c ELSE "
               f"q.w * l.tf * {k1 + 1}::float8 / (l.tf + {k1}::float8 * ({1 - b}::float8 + {b}::float8 * l.dl / q.avg)) END) AS v "
               f"FROM (VALUES {', '.join(rows)}) AS q(slot, field, term, w, c, avg, pad) "
               f"JOIN lex_postings l ON l.field = q.field AND l.term = q.term{only} GROUP BY l.post_id, q.slot) f "
               f"GROUP BY post_id")
        return sql, params

    def boolean(self, n: ir.Bool) -> str:
        must = [self.add(c) for c in n.must]
        should = [self.add(c) for c in n.should]
        nots = [self.add(c) for c in n.must_not]
        should_sum = None
        if should:
            parts = " UNION ALL ".join(f"SELECT post_id, s FROM {c}" for c in should)
            should_sum = f"SELECT post_id, sum(s) AS s FROM ({parts}) u GROUP BY post_id"
        exclude = ""
        if nots:
            ex = " UNION ".join(f"SELECT post_id FROM {c}" for c in nots)
            exclude = f" WHERE b.post_id NOT IN ({ex})"
        if not must:
            if should_sum is None:
                return "SELECT NULL::text AS post_id, 0.0::float8 AS s WHERE false"
            return f"SELECT b.post_id, b.s FROM ({should_sum}) b{exclude}"
        joins = " ".join(f"JOIN {c} ON {c}.post_id = {must[0]}.post_id" for c in must[1:])
        score = " + ".join(f"{c}.s" for c in must)
        if should_sum is not None:
            joins += f" LEFT JOIN ({should_sum}) sh ON sh.post_id = {must[0]}.post_id"
            score += " + COALESCE(sh.s, 0)"
        return f"SELECT b.post_id, b.s FROM (SELECT {must[0]}.post_id, {score} AS s FROM {must[0]} {joins}) b{exclude}"
