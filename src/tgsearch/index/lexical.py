"""The lexical index: a tantivy index derived from the store, in <db>/index/lexical/.

Text is analyzed in Python (lemmas and normalized forms from tgsearch.analyze) and
handed to tantivy as whitespace-separated terms, so phrases work on lemmas and on
exact forms alike. The high-water mark (the highest store version indexed) lives in
a special document inside the index, so it is committed atomically with the posts
it covers: after a crash the index catches up from exactly where its last commit
ended. Posts are replaced by id, so catching up twice never duplicates a post.

Building a whole index (`rebuild`, i.e. `tgsearch reindex`, or a first catch-up into an empty
index) never touches the live index: it is built beside it, holding the index's writer lock, and
swapped in when complete, so searches keep answering from the old index meanwhile and a build
that fails or is killed leaves it as it was. A big store is built in parallel shards whose
segments are joined into one index. Incremental catch-up goes through one writer, since it must
delete the old version of each replaced post. Worker processes die with the process that forked
them, so a killed build never leaves the index locked. See index/lexical_build.py.

Read-only (``read_only=True``, the CLI's search/stats/export/show/check): the index is opened as
it is, never created, caught up or written; a folder without an index searches an empty one.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
from typing import NamedTuple
from datetime import datetime, timezone
from pathlib import Path

import tantivy

from ..errors import IndexMismatchError, StoreError
from ..post import Post
from ..store import Store
from . import lexical_build as build
from .guard import rw_uri
from .lexical_build import ShardJoinError, _write_json  # noqa: F401 - ShardJoinError: part of this API

SCHEMA_VERSION = 1
IDENTITY_FILE = "tgsearch-index.json"
META_ID = "\x00meta"
POST_KINDS = ("post", "article")
WS = "ws"  # our whitespace tokenizer: the analyzer has already split and normalized
BATCH = 250          # small batches keep both analysis workers and the writer busy (bench.search_speed)
POOL_MIN = 4000          # below this many posts, analyzing in-process beats starting workers
WRITER_HEAP = 256_000_000
SHARD_HEAP = 128_000_000  # per shard writer: two at once during a parallel build
BUILD_PREFIX = ".lexical-build-"  # scratch folders of a whole-index build, beside the index
WRITER_LOCK = ".tantivy-writer.lock"  # tantivy's own writer lock file: our builds take it too


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
    title_in_body: bool  # the text starts with the title (a first line): the body has it already
    channel: str
    publication: str
    kind: str
    ts: int | None
    month: str          # "2025-05" (UTC), "" without a date
    has_link: bool
    deleted: bool = False   # deleted at the source: removed from the index, never added


def _terms(analyzer, text: str) -> tuple[str, str]:
    if not text:
        return "", ""
    if hasattr(analyzer, "joined_terms"):  # one tokenization pass, already space-joined
        return analyzer.joined_terms(text)
    return " ".join(analyzer.index_terms(text)), " ".join(analyzer.exact_terms(text))


def _analyze(analyzer, pid, channel, title, text, publication, kind, date_iso, links_json,
             preview_title: str = "", preview_description: str = "", deleted: int = 0) -> Analyzed:
    if deleted:
        return Analyzed(pid, "", "", "", "", False, channel, publication, kind, None, "", False, True)
    for extra in (preview_title, preview_description):   # the link preview is searchable text
        if extra:
            text = f"{text}\n{extra}" if text else extra
    title_l, title_x = _terms(analyzer, title)
    n = len(title)
    first_line = n > 0 and text.startswith(title) and text[n:n + 1] in ("\n", "")
    if first_line:
        # Most titles are the text's first line: analyze the rest only. A line break ends
        # every token, so the parts' terms put together are the whole text's terms.
        rest_l, rest_x = _terms(analyzer, text[n:])
        body_l, body_x = f"{title_l} {rest_l}", f"{title_x} {rest_x}"
    else:
        body_l, body_x = _terms(analyzer, text)
    ts, month = None, ""
    if date_iso:
        ts = int(datetime.fromisoformat(date_iso.replace("Z", "+00:00")).timestamp())
        # The store writes UTC as "…Z" (post.iso): the month is the string's head.
        month = date_iso[:7] if date_iso.endswith("Z") else \
            datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m")
    return Analyzed(pid, title_l, body_l, title_x, body_x, first_line,
                    channel, publication, kind, ts, month,
                    links_json not in ("", "[]") or "http://" in text or "https://" in text)


def analyze_post(analyzer, post: Post) -> Analyzed:
    d = post.to_dict()
    return _analyze(analyzer, post.id, post.channel, post.title, post.text, post.publication, post.kind,
                    d["date"], "[]" if not post.links else "[1]", post.preview_title, post.preview_description,
                    post.deleted)


_COLUMNS = "id, channel, title, text, publication, kind, date, links, preview_title, preview_description, deleted"


def _analyze_range(db_path: str, lo: int, hi: int) -> list[Analyzed]:
    """Analyze the posts with lo < version <= hi, reading them straight from SQLite."""
    global _worker_conn
    key = (os.getpid(), threading.get_ident(), db_path)   # never reuse one inherited across fork
    if _worker_conn is None or _worker_conn[0] != key:
        # Read by path in the forked workers (the store's own connections cannot cross a fork):
        # the one place outside store.py that reads `posts`. Never creates a missing store file.
        _worker_conn = (key, sqlite3.connect(rw_uri(db_path), uri=True, timeout=30))
    rows = _worker_conn[1].execute(
        f"SELECT {_COLUMNS} FROM posts WHERE version > ? AND version <= ? ORDER BY version", (lo, hi)).fetchall()
    return [_analyze(_worker_analyzer, *row) for row in rows]


def to_document(a: Analyzed) -> tantivy.Document:
    doc = tantivy.Document()
    doc.add_text("id", a.id)
    if a.title:
        doc.add_text("title", a.title)
        if not a.title_in_body:
            doc.add_text("body", a.title)
            doc.add_text("exact", a.exact_title)
    doc.add_text("body", a.body)
    doc.add_text("exact", a.exact_body)
    doc.add_text("channel", a.channel)
    doc.add_text("publication", a.publication)
    doc.add_text("kind", a.kind)
    if a.ts is not None:
        doc.add_integer("ts", a.ts)
        doc.add_text("month", a.month)
    doc.add_unsigned("has_link", int(a.has_link))
    return doc


# -- analysis worker pool (fork: workers inherit the parent's loaded analyzer) -----------------
_worker_analyzer = None
_worker_conn = None


def _open_tantivy(path: Path | None) -> tantivy.Index:
    """The tantivy index at `path` (created if absent), or an empty one in memory for None."""
    index = tantivy.Index(build_schema(), path=str(path), reuse=True) if path else tantivy.Index(build_schema())
    index.register_tokenizer(WS, _ws_analyzer())
    return index


def _mkdir_below(root: Path, path: Path) -> None:
    """Create `path` under `root` level by level; never `root` itself (a deleted data folder stays deleted)."""
    if not root.is_dir():
        raise StoreError(f"{root}: the data folder is gone")
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        try:
            current.mkdir()
        except FileExistsError:
            pass
        except FileNotFoundError as e:
            raise StoreError(f"{root}: the data folder is gone") from e


class LexicalIndex:
    """The lexical index of a data folder: opened (and created, unless read-only) as it is.

    `read_only`: never create, catch up or write (searching a folder without an index finds
    nothing). `open_existing=False`: do not open the index found there (it may have been built by
    another analyzer): for `rebuild`, which replaces it.
    """

    def __init__(self, root: str | os.PathLike, analyzer=None, *, workers: int | None = None,
                 read_only: bool = False, open_existing: bool = True):
        if analyzer is None:
            from ..analyze.analyzer import default_analyzer
            analyzer = default_analyzer()
        self.analyzer = analyzer
        self.root = Path(root)
        self.path = self.root / "index" / "lexical"
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self.read_only = read_only
        self.schema = build_schema()
        self.index = _open_tantivy(None)
        if open_existing:
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
        elif self.read_only:
            self.index = _open_tantivy(None)   # nothing built yet: nothing to search
            return
        elif self.path.exists():
            # Index files without our identity (interrupted creation): nothing to trust, start over,
            # unless a first build holds the lock (IndexBusyError): it will put an index here.
            lock = build.take_lock(self.path, self.path / WRITER_LOCK)
            try:
                shutil.rmtree(self.path)
            finally:
                os.close(lock)
        if self.read_only and not (self.path / "meta.json").exists():
            self.index = _open_tantivy(None)
            return
        if not self.read_only:
            _mkdir_below(self.root, self.path)
        try:
            self.index = _open_tantivy(self.path)
        except (OSError, ValueError) as e:
            raise StoreError(f"{self.path}: cannot open the lexical index ({e}); run `tgsearch reindex`") from e
        if not self.read_only and not ident_file.exists():
            _write_json(ident_file, self.identity)
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
    def _writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.path}: opened read-only; the index is only written by ingest, serve and reindex")

    def catch_up(self, store: Store, *, on_progress=None, stop: threading.Event | None = None) -> int:
        """Index every post written after our high-water mark; returns how many.

        A set `stop` ends an incremental catch-up after its current batch, committing what was
        done (the high-water mark then says where the next catch-up starts)."""
        self._writable()
        start = self.hwm()
        if store.max_version() <= start:
            return 0
        if start == 0 and self.count() == 0:  # a first build: as fast as a rebuild
            versions = store.versions_since(0)
            if self._parallel(versions):
                return build.build_beside(self, store, on_progress, versions)
        return self._write(store, start, replace=start > 0 or self.count() > 0, on_progress=on_progress, stop=stop)

    def open_writer(self) -> tantivy.IndexWriter:
        self._writable()
        try:
            writer = self.index.writer(WRITER_HEAP, 1)
        except ValueError as e:
            if "LockBusy" in str(e):
                raise build.busy_error(self.path, self.path / WRITER_LOCK) from e
            raise StoreError(f"{self.path}: cannot write the lexical index ({e})") from e
        try:
            fd = os.open(self.path / WRITER_LOCK, os.O_WRONLY)
        except OSError:
            return writer
        build.record_owner(fd)   # a flock belongs to tantivy's descriptor: closing ours keeps it
        os.close(fd)
        return writer

    def rebuild(self, store: Store, *, on_progress=None) -> int:
        """Build the whole index from the store beside the live one and swap it in (see the
        module docstring); the live index answers until then, and stays if the build fails."""
        return build.build_beside(self, store, on_progress)

    def _parallel(self, versions: list[int]) -> bool:
        return self.workers > 1 and len(versions) >= POOL_MIN

    def _write(self, store: Store, start: int, *, replace: bool, on_progress=None,
               stop: threading.Event | None = None) -> int:
        """Catch the live index up from `start` with one writer."""
        versions = store.versions_since(start)
        if not versions:
            return 0
        done = build.feed(self, self.open_writer, store, versions, start, replace=replace, on_progress=on_progress,
                          stop=stop)
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
