"""The PostgreSQL backend's lexical side: the project's own analyzer, BM25, in SQL.

Each post's analyzed terms (index/lexical.py: `analyze_post`, the same lemmas, exact forms and
transliterations as the embedded index) are written in the same transaction as the post:
- `lex_docs`: one row per live post: the filter columns, field lengths, and `tsvector`s of its terms
  with positions (phrases: `<->`), made from our terms, not PostgreSQL's stemmer;
- `lex_postings(field, term, post_id, tf, dl)`: what BM25 needs, read by index-only scans;
- `lex_terms(field, term, df)` and `lex_stats`: document frequencies and collection sizes, changed by
  each write in its own transaction (a search reads them instead of counting postings); prefix
  queries list their terms from lex_terms.
A search plan (search/ir.py) becomes one SQL statement (pg/lexical_plan.py): each node a CTE (post_id, s),
combined as tantivy combines queries, with tantivy's BM25 (k1 1.2, b 0.75, Lucene idf); document
counts and average lengths are read at most every STATS_TTL seconds per process. Deleted posts
leave these tables (the post row stays in `posts`, marked).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ..index.lexical import analyze_post
from ..search import ir
from ..search.lexical import Candidates, Compiler, Filters, Highlight, Weights
from ..search.query import Query, positive_terms
from .lexical_plan import FIELDS, SqlPlan

MAX_TERM = 120          # as the embedded index (tantivy remove_long)
STATS_TTL = 2.0
WEEK_OFFSET = 4 * 86400   # weeks start on Monday (the epoch was a Thursday), as the engine's timeline

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS lex_docs (
        post_id text PRIMARY KEY,
        channel text NOT NULL,
        publication text NOT NULL DEFAULT '',
        kind text NOT NULL,
        month text,
        ts bigint,
        has_link boolean NOT NULL DEFAULT false,
        len_body integer NOT NULL DEFAULT 0,
        len_title integer NOT NULL DEFAULT 0,
        len_exact integer NOT NULL DEFAULT 0,
        body tsvector,
        title tsvector,
        exact tsvector)""",
    "CREATE INDEX IF NOT EXISTS lex_docs_channel ON lex_docs(channel)",
    "CREATE INDEX IF NOT EXISTS lex_docs_ts ON lex_docs(ts)",
    "CREATE INDEX IF NOT EXISTS lex_docs_body ON lex_docs USING gin(body)",
    "CREATE INDEX IF NOT EXISTS lex_docs_exact ON lex_docs USING gin(exact)",
    """CREATE TABLE IF NOT EXISTS lex_postings (
        field smallint NOT NULL,
        term text COLLATE "C" NOT NULL,
        post_id text NOT NULL,
        tf integer NOT NULL,
        dl integer NOT NULL,
        PRIMARY KEY (field, term, post_id) INCLUDE (tf, dl))""",      # BM25 reads the index only
    "CREATE INDEX IF NOT EXISTS lex_postings_post ON lex_postings(post_id)",
    # document frequencies and collection sizes, kept by the writers (a search reads a few rows
    # instead of counting postings); lex_stats has a few slots so writers seldom wait on one row
    """CREATE TABLE IF NOT EXISTS lex_terms (
        field smallint NOT NULL,
        term text COLLATE "C" NOT NULL,
        df integer NOT NULL,
        PRIMARY KEY (field, term)) WITH (fillfactor = 80)""",      # df not in the key: updates stay HOT
    """CREATE TABLE IF NOT EXISTS lex_stats (
        slot smallint PRIMARY KEY,
        docs bigint NOT NULL DEFAULT 0,
        len_body bigint NOT NULL DEFAULT 0,
        len_title bigint NOT NULL DEFAULT 0,
        len_exact bigint NOT NULL DEFAULT 0)""",
]
STATS_SLOTS = 8


def rebuild_stats(conn) -> None:
    """Count lex_terms and lex_stats afresh from the postings (a new schema, after `reindex`); in the
    caller's transaction."""
    conn.execute("LOCK TABLE lex_terms, lex_stats IN EXCLUSIVE MODE")
    conn.execute("DELETE FROM lex_terms")
    conn.execute("INSERT INTO lex_terms (field, term, df) SELECT field, term, count(*) FROM lex_postings "
                 "GROUP BY field, term")
    conn.execute("DELETE FROM lex_stats")
    conn.execute("INSERT INTO lex_stats (slot, docs, len_body, len_title, len_exact) SELECT 0, count(*), "
                 "coalesce(sum(len_body), 0), coalesce(sum(len_title), 0), coalesce(sum(len_exact), 0) FROM lex_docs")


RELATIONS = ("lex_docs", "lex_docs_channel", "lex_docs_ts", "lex_docs_body", "lex_docs_exact", "lex_postings",
             "lex_postings_post", "lex_terms", "lex_stats")


def schema_complete(conn) -> bool:
    """Every lexical table and index exists (pg/schema.py `have_relations`)."""
    from .schema import have_relations

    return have_relations(conn, RELATIONS)


def ensure_schema(conn) -> None:
    """The lexical tables (idempotent; the caller holds the schema lock). A database made before
    lex_terms existed gets its counts from the postings once."""
    fresh = conn.execute("SELECT to_regclass('lex_terms') IS NULL").fetchone()[0]
    for statement in SCHEMA:
        conn.execute(statement)
    if fresh:
        rebuild_stats(conn)


def _tsvector(terms: list[str]) -> str:
    """A tsvector literal of terms at their positions (1-based; PostgreSQL keeps positions < 16384)."""
    pos: dict[str, list[int]] = {}
    for i, t in enumerate(terms, 1):
        if len(t) <= MAX_TERM:
            pos.setdefault(t, []).append(min(i, 16383))
    out = []
    for t, ps in pos.items():
        lex = t.replace("\\", "\\\\").replace("'", "''")
        out.append(f"'{lex}':{','.join(map(str, ps[:256]))}")
    return " ".join(out)


def write(cur, posts: list, deleted_ids: list[str], analyzer) -> None:
    """Replace the lexical rows of `posts` (new or changed content) and drop `deleted_ids`; runs
    inside the store's write transaction (PgStore on_write)."""
    drop = [p.id for p in posts] + list(deleted_ids)
    df: dict[tuple[int, str], int] = {}
    sizes = [0, 0, 0, 0]             # docs, body, title, exact lengths: this write's change
    if drop:
        for fld, term in cur.execute("DELETE FROM lex_postings WHERE post_id = ANY(%s) RETURNING field, term",
                                     (drop,)).fetchall():
            df[(fld, term)] = df.get((fld, term), 0) - 1
        for lb, lt, le in cur.execute("DELETE FROM lex_docs WHERE post_id = ANY(%s) "
                                      "RETURNING len_body, len_title, len_exact", (drop,)).fetchall():
            sizes = [sizes[0] - 1, sizes[1] - lb, sizes[2] - lt, sizes[3] - le]
    docs, postings = [], []
    for post in posts:
        if post.deleted:
            continue
        a = analyze_post(analyzer, post)
        title = a.title.split()
        body = ([] if a.title_in_body or not a.title else title) + a.body.split()
        exact = ([] if a.title_in_body or not a.title else a.exact_title.split()) + a.exact_body.split()
        fields = {"body": body, "title": title, "exact": exact}
        for name, toks in fields.items():
            toks = [t for t in toks if len(t) <= MAX_TERM]
            counts: dict[str, int] = {}
            for t in toks:
                counts[t] = counts.get(t, 0) + 1
            code = FIELDS[name]
            for t, n in counts.items():
                postings.append((code, t, post.id, n, len(toks)))
                df[(code, t)] = df.get((code, t), 0) + 1
        sizes = [sizes[0] + 1, sizes[1] + len(body), sizes[2] + len(title), sizes[3] + len(exact)]
        docs.append((post.id, a.channel, a.publication or "", a.kind, a.month or None, a.ts, bool(a.has_link),
                     len(body), len(title), len(exact), _tsvector(body), _tsvector(title), _tsvector(exact)))
    if docs:
        with cur.copy("COPY lex_docs (post_id, channel, publication, kind, month, ts, has_link, len_body, len_title, "
                      "len_exact, body, title, exact) FROM STDIN") as copy:
            for row in docs:
                copy.write_row(row)
    if postings:
        with cur.copy("COPY lex_postings (field, term, post_id, tf, dl) FROM STDIN") as copy:
            for row in postings:
                copy.write_row(row)
    _count(cur, df, sizes)


def _count(cur, df: dict, sizes: list[int]) -> None:
    """Add a write's change to the document frequencies and collection sizes. Last in the write's
    transaction (the rows stay locked until it commits), terms in one order (writers never deadlock)."""
    changed = sorted((k, n) for k, n in df.items() if n)
    if changed:
        cur.execute("INSERT INTO lex_terms AS t (field, term, df) SELECT f, x, n FROM unnest(%s::smallint[], "
                    "%s::text[], %s::int[]) AS u(f, x, n) ORDER BY f, x "
                    "ON CONFLICT (field, term) DO UPDATE SET df = t.df + excluded.df",
                    ([k[0] for k, _ in changed], [k[1] for k, _ in changed], [n for _, n in changed]))
    if any(sizes):
        cur.execute("INSERT INTO lex_stats AS s (slot, docs, len_body, len_title, len_exact) "
                    "VALUES ((txid_current() %% %s)::smallint, %s, %s, %s, %s) ON CONFLICT (slot) DO UPDATE SET "
                    "docs = s.docs + excluded.docs, len_body = s.len_body + excluded.len_body, "
                    "len_title = s.len_title + excluded.len_title, len_exact = s.len_exact + excluded.len_exact",
                    (STATS_SLOTS, *sizes))


# -- reading ---------------------------------------------------------------------------------------
@dataclass
class Snapshot:
    """What one search reads: a connection, the collection statistics, cached document frequencies."""

    conn: object
    docs: int
    avg: dict[str, float]
    df: dict = field(default_factory=dict)
    shared: "DfCache | None" = None                # across searches: terms known to exist
    hist: dict = field(default_factory=dict)      # plan node -> {step: [(start, n)]} from facet_counts

    def doc_freq(self, fld: str, term: str) -> int:
        key = (fld, term)
        if key not in self.df:
            known = self.shared.get(key) if self.shared is not None else None
            if known is not None:
                self.df[key] = known
            else:
                row = self.conn.execute("SELECT df FROM lex_terms WHERE field = %s AND term = %s",
                                        (FIELDS[fld], term)).fetchone() if fld in FIELDS else None
                self.df[key] = max(int(row[0]), 0) if row else 0
                if self.shared is not None:
                    self.shared.put(key, self.df[key])
        return self.df[key]

    def prefetch(self, keys) -> None:
        """Document frequencies of many (field, term) pairs in one query (those a compile will ask)."""
        want = [k for k in dict.fromkeys(keys) if k not in self.df and k[0] in FIELDS]
        if self.shared is not None:
            for k in list(want):
                known = self.shared.get(k)
                if known is not None:
                    self.df[k] = known
                    want.remove(k)
        if not want:
            return
        found = {(f, t): int(n) for f, t, n in self.conn.execute(
            "SELECT p.field, p.term, p.df FROM lex_terms p JOIN unnest(%s::smallint[], %s::text[]) AS q(f, t) "
            "ON p.field = q.f AND p.term = q.t",
            ([FIELDS[f] for f, _ in want], [t for _, t in want])).fetchall()}
        for fld, term in want:
            n = found.get((FIELDS[fld], term), 0)
            self.df[(fld, term)] = n
            if self.shared is not None:
                self.shared.put((fld, term), n)

    def terms_with_prefix(self, fld: str, prefix: str, limit: int) -> list[tuple[str, int]]:
        code, hi = FIELDS[fld], prefix + "\U0010ffff"
        rows = self.conn.execute(
            "SELECT term, df FROM lex_terms WHERE field = %s AND term >= %s AND term < %s AND df > 0 "
            "ORDER BY term LIMIT %s", (code, prefix, hi, limit)).fetchall()
        for t, n in rows:
            self.df.setdefault((fld, t), int(n))
        return [(t, int(n)) for t, n in rows]


class DfCache:
    """Document frequencies of terms that exist, shared by a process's searches for `ttl` seconds (as
    long as the collection statistics: two servers on one database rank alike a moment after a write).
    Only counts above zero are kept: whether a term exists decides which word forms a query looks
    for, and a term that appears must be found at once (an alert check runs right after a write);
    a slightly old count only moves a score a little."""

    def __init__(self, ttl: float = STATS_TTL, size: int = 200_000):
        self.ttl, self.size = ttl, size
        self._d: dict = {}
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            hit = self._d.get(key)
        if hit is None or time.monotonic() - hit[1] > self.ttl:
            return None
        return hit[0]

    def put(self, key, value: int) -> None:
        if value <= 0:
            return
        with self._lock:
            if len(self._d) >= self.size:
                self._d.clear()
            self._d[key] = (value, time.monotonic())


@dataclass(frozen=True)
class Compiled:
    node: object
    snap: Snapshot


class PgLexical:
    """The lexical side of the PostgreSQL backend (the engine's contract: search/tantivy_side.py)."""

    name = "lexical"
    retrieves_all = True       # retrieve(limit=None): every match, one query
    concurrent_retrievers = True   # the engine asks the vectors while this side's SQL runs

    def __init__(self, conn: Callable[[], object], analyzer, resolve: Callable[[str, str], list[str]],
                 weights: Weights | None = None, hwm: Callable[[], int] | None = None):
        self.conn = conn                 # -> this thread's psycopg connection (autocommit reads)
        self.analyzer = analyzer
        self.resolve = resolve
        self.weights = weights or Weights()
        self._hwm = hwm or (lambda: 0)
        self._stats: tuple[float, int, dict] | None = None
        self._lock = threading.Lock()
        self.df_cache = DfCache()

    def hwm(self) -> int:
        """The lexical rows are written with the posts: always up to the store."""
        return self._hwm()

    def _collection(self) -> tuple[int, dict]:
        with self._lock:
            if self._stats and time.monotonic() - self._stats[0] < STATS_TTL:
                return self._stats[1], self._stats[2]
        row = self.conn().execute("SELECT sum(docs), sum(len_body), sum(len_title), sum(len_exact) "
                                  "FROM lex_stats").fetchone()
        docs = int(row[0] or 0)
        avg = {name: (float(row[i]) / docs if docs and row[i] else 1.0)
               for i, name in ((1, "body"), (2, "title"), (3, "exact"))}
        with self._lock:
            self._stats = (time.monotonic(), docs, avg)
        return docs, avg

    def searcher(self) -> Snapshot:
        docs, avg = self._collection()
        return Snapshot(self.conn(), docs, avg, shared=self.df_cache)

    def compile(self, query: Query, filters: Filters, searcher: Snapshot | None = None) -> tuple[Compiled, Highlight]:
        snap = searcher or self.searcher()
        snap.prefetch(self._likely_terms(query))
        compiler = Compiler(self.analyzer, snap, self.resolve, self.weights)
        return Compiled(compiler.compile(query, filters), snap), compiler.highlight

    def _likely_terms(self, query: Query) -> list[tuple[str, str]]:
        """The (field, term) pairs the compiler will ask the frequency of (search/lexical.py `word`,
        `phrase`), so that one query fetches them all."""
        from ..search.query import Not, Or, Phrase, Seq, Word

        out: list[tuple[str, str]] = []
        an = self.analyzer

        def visit(node) -> None:
            if isinstance(node, (Seq, Or)):
                for c in node.children:
                    visit(c)
            elif isinstance(node, Not):
                visit(node.child)
            elif isinstance(node, Word) and not node.prefix:
                toks = an.tokens(node.text)
                if not toks:
                    return
                norm = toks[0].norm
                out.append(("exact", norm))
                if node.exact:
                    return
                lemmas = list(dict.fromkeys(an.query_lemmas(node.text) or [an.lemma(norm)]))
                for lem in lemmas:
                    out.extend((("body", lem), ("title", lem)))
                out.extend((("body", "#" + norm), ("body", "#" + lemmas[0])))
            elif isinstance(node, Phrase) and not node.exact:
                for lem in an.index_terms(node.text):
                    out.extend((("body", lem), ("title", lem)))

        try:
            visit(query.root)
        except Exception:  # noqa: BLE001 - a guess only: the compiler asks what it needs anyway
            return []
        return out

    def _sql(self, compiled: Compiled) -> tuple[SqlPlan, str]:
        plan = SqlPlan(compiled.snap)
        return plan, plan.add(compiled.node)

    def count(self, compiled: Compiled, searcher=None) -> int:
        plan, root = self._sql(compiled)
        return int(compiled.snap.conn.execute(f"{plan.with_clause()}SELECT count(*) FROM {root}", plan.params).fetchone()[0])

    def ids_query(self, ids: list[str], compiled: Compiled) -> Compiled:
        """These posts (a result set already computed), for counting facets over them."""
        return Compiled(ir.TermSet("id", tuple(ids)), compiled.snap)

    def or_ids(self, compiled: Compiled, ids: list[str]) -> Compiled:
        return Compiled(ir.Bool(should=(compiled.node, ir.TermSet("id", tuple(ids)))), compiled.snap)

    def matching(self, compiled: Compiled, ids: list[str], searcher=None) -> set[str]:
        if not ids:
            return set()
        plan = SqlPlan(compiled.snap, only=list(ids))
        root = plan.add(compiled.node)
        rows = compiled.snap.conn.execute(f"{plan.with_clause()}SELECT post_id FROM {root}", plan.params).fetchall()
        return {r[0] for r in rows}

    def retrieve(self, query: Query, filters: Filters, *, limit: int, offset: int = 0, sort: str = "relevance",
                 compiled: Compiled | None = None, searcher=None) -> Candidates:
        if compiled is None:
            compiled, _ = self.compile(query, filters, searcher)
        if sort == "relevance" and next(positive_terms(query.root), None) is None:
            sort = "date"
        plan, root = self._sql(compiled)
        if sort in ("date", "date_asc"):
            order = "d.ts DESC NULLS LAST, r.post_id" if sort == "date" else "d.ts ASC NULLS LAST, r.post_id"
            sql = (f"{plan.with_clause()}SELECT r.post_id, 0.0::float8, count(*) OVER () FROM {root} r "
                   f"JOIN lex_docs d ON d.post_id = r.post_id ORDER BY {order} LIMIT %s OFFSET %s")
        else:
            sql = (f"{plan.with_clause()}SELECT r.post_id, r.s, count(*) OVER () FROM {root} r "
                   f"ORDER BY r.s DESC, r.post_id LIMIT %s OFFSET %s")
        if limit is None:       # every match
            sql = sql.replace(" LIMIT %s OFFSET %s", " OFFSET %s")
            rows = compiled.snap.conn.execute(sql, plan.params + [max(offset, 0)]).fetchall()
        else:
            rows = compiled.snap.conn.execute(sql, plan.params + [max(limit, 0), max(offset, 0)]).fetchall() \
                if limit > 0 else []
        total = int(rows[0][2]) if rows else self.count(compiled)
        return Candidates(self.name, [r[0] for r in rows], [float(r[1]) for r in rows], total)

    # -- counting ------------------------------------------------------------------------------
    def facet_counts(self, searcher, compiled: Compiled, sizes: dict[str, int]) -> dict:
        """Facets, the span of dates, and the day and week histograms in one evaluation of the query
        (kept on the snapshot for `histogram`)."""
        plan, root = self._sql(compiled)
        cols = [f for f in sizes]
        day, week = "floor(d.ts / 86400.0)::bigint", f"floor((d.ts - {WEEK_OFFSET}) / {7 * 86400}.0)::bigint"
        keys = [f"d.{c}" for c in cols] + [day, week]
        sets = ", ".join(f"({k})" for k in keys) + ", ()"
        sql = (f"{plan.with_clause()}SELECT {', '.join(keys)}, count(*), count(d.ts), min(d.ts), "
               f"max(d.ts), GROUPING({', '.join(keys)}) FROM {root} r "
               f"JOIN lex_docs d ON d.post_id = r.post_id GROUP BY GROUPING SETS ({sets})")
        out: dict = {c: [] for c in cols}
        out["span"] = (0, None, None)
        hist: dict[int, list] = {86400: [], 7 * 86400: []}
        n = len(keys)
        full = (1 << n) - 1
        for row in compiled.snap.conn.execute(sql, plan.params).fetchall():
            grouping = row[-1]
            if grouping == full:
                out["span"] = (int(row[n + 1]), row[n + 2], row[n + 3])
                continue
            for i in range(n):
                if not grouping & (1 << (n - 1 - i)) and row[i] is not None:
                    if i < len(cols):
                        out[cols[i]].append((row[i], int(row[n])))
                    elif i == len(cols):
                        hist[86400].append((int(row[i]) * 86400, int(row[n])))
                    else:
                        hist[7 * 86400].append((int(row[i]) * 7 * 86400 + WEEK_OFFSET, int(row[n])))
        for c in cols:
            out[c] = sorted(out[c], key=lambda kv: (-kv[1], kv[0]))[:sizes[c]]
        compiled.snap.hist[compiled.node] = {step: sorted(v) for step, v in hist.items()}
        return out

    def histogram(self, searcher, compiled: Compiled, step: int, offset: int, min_count: int = 0) -> list[tuple[int, int]]:
        cached = compiled.snap.hist.get(compiled.node, {}).get(step)
        if cached is not None and offset == (WEEK_OFFSET if step == 7 * 86400 else 0):
            got = cached
        else:
            plan, root = self._sql(compiled)
            sql = (f"{plan.with_clause()}SELECT floor((d.ts - %s)::float8 / %s)::bigint * %s + %s AS k, count(*) "
                   f"FROM {root} r JOIN lex_docs d ON d.post_id = r.post_id WHERE d.ts IS NOT NULL GROUP BY k ORDER BY k")
            rows = compiled.snap.conn.execute(sql, plan.params + [offset, step, step, offset]).fetchall()
            got = [(int(k), int(n)) for k, n in rows]
        if min_count > 0 or not got:
            return [(k, n) for k, n in got if n >= min_count]
        filled, by = [], dict(got)
        for k in range(got[0][0], got[-1][0] + step, step):
            filled.append((k, by.get(k, 0)))
        return filled
