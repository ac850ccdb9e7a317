"""The lexical index: a tantivy index derived from the store, in <db>/index/lexical/.

Text is analyzed in Python (lemmas and normalized forms from tgsearch.analyze) and
handed to tantivy as whitespace-separated terms, so phrases work on lemmas and on
exact forms alike. The high-water mark (the highest store version indexed) lives in
a special document inside the index, so it is committed atomically with the posts
it covers: after a crash the index catches up from exactly where its last commit
ended. Posts are replaced by id, so catching up twice never duplicates a post.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sqlite3
from concurrent.futures import ProcessPoolExecutor
from typing import NamedTuple
from datetime import datetime, timezone
from pathlib import Path

import tantivy

from ..errors import IndexMismatchError, StoreError
from ..post import Post
from ..store import Store

SCHEMA_VERSION = 1
IDENTITY_FILE = "tgsearch-index.json"
META_ID = "\x00meta"
POST_KINDS = ("post", "article")
WS = "ws"  # our whitespace tokenizer: the analyzer has already split and normalized
BATCH = 250          # small batches keep both analysis workers and the writer busy (bench.search_speed)
WARM_BATCHES = 0     # measured: warming the parent first serialises more than it saves
POOL_MIN = 4000          # below this many posts, analyzing in-process beats starting workers
WRITER_HEAP = 256_000_000


class IndexBusyError(StoreError):
    """Another process holds the index writer lock."""


def build_schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("id", stored=True, tokenizer_name="raw")
    sb.add_text_field("body", tokenizer_name=WS)            # lemmas: title, then text
    sb.add_text_field("title", tokenizer_name=WS)           # lemmas of the title (boosted)
    sb.add_text_field("exact", tokenizer_name=WS)           # normalized forms: title, then text
    sb.add_text_field("channel", tokenizer_name="raw", fast=True)
    sb.add_text_field("publication", tokenizer_name="raw", fast=True)
    sb.add_text_field("kind", tokenizer_name="raw", fast=True)
    sb.add_text_field("month", tokenizer_name="raw", fast=True)
    sb.add_integer_field("ts", indexed=True, fast=True)
    sb.add_unsigned_field("has_link", indexed=True, fast=True)
    sb.add_integer_field("hwm", stored=True)
    return sb.build()


def _ws_analyzer() -> tantivy.TextAnalyzer:
    return tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).filter(tantivy.Filter.remove_long(120)).build()


class Analyzed(NamedTuple):
    """One post, analyzed: what goes into tantivy (a tuple: cheap to pickle back from workers)."""

    id: str
    title: str
    body: str
    exact_title: str
    exact_body: str
    channel: str
    publication: str
    kind: str
    ts: int | None
    has_link: bool


def _terms(analyzer, text: str) -> tuple[str, str]:
    if not text:
        return "", ""
    if hasattr(analyzer, "joined_terms"):  # one tokenization pass, already space-joined
        return analyzer.joined_terms(text)
    return " ".join(analyzer.index_terms(text)), " ".join(analyzer.exact_terms(text))


def _analyze(analyzer, pid, channel, title, text, publication, kind, date_iso, links_json) -> Analyzed:
    title_l, title_x = _terms(analyzer, title)
    body_l, body_x = _terms(analyzer, text)
    ts = None
    if date_iso:
        ts = int(datetime.fromisoformat(date_iso.replace("Z", "+00:00")).timestamp())
    return Analyzed(pid, title_l, body_l, title_x, body_x, channel, publication, kind, ts,
                    links_json not in ("", "[]") or "http://" in text or "https://" in text)


def analyze_post(analyzer, post: Post) -> Analyzed:
    d = post.to_dict()
    return _analyze(analyzer, post.id, post.channel, post.title, post.text, post.publication, post.kind,
                    d["date"], "[]" if not post.links else "[1]")


_COLUMNS = "id, channel, title, text, publication, kind, date, links"


def _analyze_range(db_path: str, lo: int, hi: int) -> list[Analyzed]:
    """Analyze the posts with lo < version <= hi, reading them straight from SQLite."""
    global _worker_conn
    key = (os.getpid(), db_path)   # never reuse a connection inherited across fork
    if _worker_conn is None or _worker_conn[0] != key:
        _worker_conn = (key, sqlite3.connect(db_path, timeout=30))
    rows = _worker_conn[1].execute(
        f"SELECT {_COLUMNS} FROM posts WHERE version > ? AND version <= ? ORDER BY version", (lo, hi)).fetchall()
    return [_analyze(_worker_analyzer, *row) for row in rows]


def to_document(a: Analyzed) -> tantivy.Document:
    doc = tantivy.Document()
    doc.add_text("id", a.id)
    if a.title:
        doc.add_text("title", a.title)
        doc.add_text("body", a.title)
        doc.add_text("exact", a.exact_title)
    doc.add_text("body", a.body)
    doc.add_text("exact", a.exact_body)
    doc.add_text("channel", a.channel)
    doc.add_text("publication", a.publication)
    doc.add_text("kind", a.kind)
    if a.ts is not None:
        doc.add_integer("ts", a.ts)
        doc.add_text("month", datetime.fromtimestamp(a.ts, tz=timezone.utc).strftime("%Y-%m"))
    doc.add_unsigned("has_link", int(a.has_link))
    return doc


# -- analysis worker pool (fork: workers inherit the parent's loaded analyzer) -----------------
_worker_analyzer = None
_worker_conn = None


def _ranges(versions: list[int], start: int, size: int) -> list[tuple[int, int]]:
    out, lo = [], start
    for i in range(size - 1, len(versions), size):
        out.append((lo, versions[i]))
        lo = versions[i]
    if versions and lo < versions[-1]:
        out.append((lo, versions[-1]))
    return out


def _warm_then_pool(pool, db_path: str, ranges: list[tuple[int, int]], depth: int):
    """The first WARM_BATCHES in this process, then the rest in the pool: the workers fork
    after it (ProcessPoolExecutor starts them on first submit) and inherit the analyzer's
    caches warmed with the common vocabulary, instead of each paying for it again."""
    for lo, hi in ranges[:WARM_BATCHES]:
        yield _analyze_range(db_path, lo, hi)
    yield from _bounded(pool, db_path, ranges[WARM_BATCHES:], depth)


def _bounded(pool, db_path: str, ranges: list[tuple[int, int]], depth: int):
    """Results in order, with at most `depth` batches in flight (bounded memory at 1M posts)."""
    pending = []
    for lo, hi in ranges:
        pending.append(pool.submit(_analyze_range, db_path, lo, hi))
        if len(pending) >= depth:
            yield pending.pop(0).result()
    for fut in pending:
        yield fut.result()


class LexicalIndex:
    """Open (creating or catching up as needed) the lexical index of a data folder."""

    def __init__(self, root: str | os.PathLike, analyzer=None, *, workers: int | None = None):
        if analyzer is None:
            from ..analyze.analyzer import default_analyzer
            analyzer = default_analyzer()
        self.analyzer = analyzer
        self.path = Path(root) / "index" / "lexical"
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self.schema = build_schema()
        self._open()

    # -- identity ------------------------------------------------------------------------------
    @property
    def identity(self) -> dict:
        return {"schema": SCHEMA_VERSION, "analyzer": self.analyzer.name,
                "analyzer_version": str(self.analyzer.version)}

    def _open(self) -> None:
        ident_file = self.path / IDENTITY_FILE
        if ident_file.exists():
            try:
                found = json.loads(ident_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise StoreError(f"{ident_file}: unreadable ({e}); run `tgsearch reindex`") from e
            if {k: str(found.get(k)) for k in self.identity} != {k: str(v) for k, v in self.identity.items()}:
                raise IndexMismatchError(
                    f"{self.path}: index built by analyzer {found.get('analyzer')} {found.get('analyzer_version')} "
                    f"(schema {found.get('schema')}), this tgsearch uses {self.analyzer.name} "
                    f"{self.analyzer.version} (schema {SCHEMA_VERSION}); run `tgsearch reindex`")
        elif self.path.exists():
            # Index files without our identity (interrupted creation): nothing to trust, start over.
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self.index = tantivy.Index(self.schema, path=str(self.path), reuse=True)
        except (OSError, ValueError) as e:
            raise StoreError(f"{self.path}: cannot open the lexical index ({e}); run `tgsearch reindex`") from e
        self.index.register_tokenizer(WS, _ws_analyzer())
        if not ident_file.exists():
            tmp = ident_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.identity), encoding="utf-8")
            os.replace(tmp, ident_file)
        self.index.reload()

    # -- state ---------------------------------------------------------------------------------
    def searcher(self) -> tantivy.Searcher:
        return self.index.searcher()

    def hwm(self) -> int:
        searcher = self.index.searcher()
        hits = searcher.search(tantivy.Query.term_query(self.schema, "id", META_ID), 1).hits
        if not hits:
            return 0
        return int(searcher.doc(hits[0][1]).to_dict().get("hwm", [0])[0])

    def count(self) -> int:
        return self.index.searcher().search(self.all_posts(), 1, count=True).count

    def all_posts(self) -> tantivy.Query:
        return tantivy.Query.term_set_query(self.schema, "kind", list(POST_KINDS))

    def indexed_ids(self) -> set[str]:
        searcher = self.index.searcher()
        n = searcher.num_docs
        hits = searcher.search(self.all_posts(), max(n, 1), count=False).hits
        return {searcher.doc(addr).to_dict()["id"][0] for _, addr in hits}

    # -- writing -------------------------------------------------------------------------------
    def catch_up(self, store: Store, *, on_progress=None) -> int:
        """Index every post written after our high-water mark; returns how many."""
        start = self.hwm()
        if store.max_version() <= start:
            return 0
        return self._write(store, start, replace=start > 0 or self.count() > 0, on_progress=on_progress)

    def open_writer(self) -> tantivy.IndexWriter:
        try:
            return self.index.writer(WRITER_HEAP, 1)
        except ValueError as e:
            if "LockBusy" in str(e):
                raise IndexBusyError(f"{self.path}: another tgsearch process is writing this index; "
                                     "run the command again when it has finished") from e
            raise StoreError(f"{self.path}: cannot write the lexical index ({e})") from e

    def rebuild(self, store: Store, *, on_progress=None) -> int:
        writer = self.open_writer()
        writer.delete_all_documents()
        writer.commit()
        writer = None
        self.index.reload()
        return self._write(store, 0, replace=False, on_progress=on_progress)

    def _write(self, store: Store, start: int, *, replace: bool, on_progress=None) -> int:
        versions = [v for (v,) in store.conn.execute("SELECT version FROM posts WHERE version > ? ORDER BY version", (start,))]
        if not versions:
            return 0
        ranges = _ranges(versions, start, BATCH)
        global _worker_analyzer
        _worker_analyzer = self.analyzer
        db_path = str(store.path)
        big = self.workers > 1 and len(versions) >= POOL_MIN
        pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork")) if big else None
        try:
            if pool is None:
                batches = (_analyze_range(db_path, lo, hi) for lo, hi in ranges)
            else:
                batches = _warm_then_pool(pool, db_path, ranges, self.workers * 3)
            writer = self.open_writer()
            done = 0
            try:
                for batch in batches:
                    for a in batch:
                        if replace:
                            writer.delete_documents_by_term("id", a.id)
                        writer.add_document(to_document(a))
                    done += len(batch)
                    if on_progress:
                        on_progress(done)
                writer.delete_documents_by_term("id", META_ID)
                writer.add_document(tantivy.Document(id=META_ID, hwm=versions[-1]))
                writer.commit()
                writer.wait_merging_threads()
            except BaseException:
                writer.rollback()
                raise
        finally:
            if pool is not None:
                pool.shutdown()
        self.index.reload()
        return done

    # -- drift ---------------------------------------------------------------------------------
    def check(self, store: Store) -> dict:
        """Compare the index with the store: counts, ids missing either side, high-water marks."""
        store_ids = set(store.ids_and_versions())
        index_ids = self.indexed_ids()
        missing = sorted(store_ids - index_ids)
        extra = sorted(index_ids - store_ids)
        hwm, top = self.hwm(), store.max_version()
        return {
            "store_posts": len(store_ids),
            "indexed_posts": len(index_ids),
            "hwm": hwm,
            "store_version": top,
            "behind": top - hwm if top > hwm else 0,
            "missing": missing[:20],
            "missing_count": len(missing),
            "extra": extra[:20],
            "extra_count": len(extra),
            "ok": not missing and not extra and hwm >= top,
            "analyzer": f"{self.analyzer.name} {self.analyzer.version}",
            "path": str(self.path),
        }
