"""The lexical index: a tantivy index derived from the store, in <db>/index/lexical/.

Text is analyzed in Python (lemmas and normalized forms from tgsearch.analyze) and
handed to tantivy as whitespace-separated terms, so phrases work on lemmas and on
exact forms alike. The high-water mark (the highest store version indexed) lives in
a special document inside the index, so it is committed atomically with the posts
it covers: after a crash the index catches up from exactly where its last commit
ended. Posts are replaced by id, so catching up twice never duplicates a post.

Building a whole index (`rebuild`, or a first catch-up into an empty index) runs in
parallel shards: each worker process analyzes a contiguous slice of the store and writes
its own tantivy segments into a scratch index; the parent then joins the shards' segments
into one index by listing them all in one `meta.json` (tantivy's on-disk catalogue of
segments) and swaps it in place of the old index. The only work left serial is that file
move. Before, one writer in the parent took every analyzed post from the workers: the
pickling and the single writer's final commit kept the build under 10,000 posts/s on two
cores (bench.search_speed). Incremental catch-up still goes through one writer, since it
must delete the old version of each replaced post.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import shutil
import sqlite3
import warnings
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
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
POOL_MIN = 4000          # below this many posts, analyzing in-process beats starting workers
WRITER_HEAP = 256_000_000
SHARD_HEAP = 128_000_000  # per shard writer: two at once during a parallel build
BUILD_PREFIX = ".lexical-build-"  # scratch folders of a parallel build, beside the index


class IndexBusyError(StoreError):
    """Another process holds the index writer lock."""


class ShardJoinError(StoreError):
    """The shards of a parallel build could not be joined (an unexpected tantivy index layout);
    the build falls back to one writer."""


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


def _ranges(versions: list[int], start: int, size: int) -> list[tuple[int, int]]:
    out, lo = [], start
    for i in range(size - 1, len(versions), size):
        out.append((lo, versions[i]))
        lo = versions[i]
    if versions and lo < versions[-1]:
        out.append((lo, versions[-1]))
    return out


def _bounded(pool, db_path: str, ranges: list[tuple[int, int]], depth: int):
    """Results in order, with at most `depth` batches in flight (bounded memory at 1M posts)."""
    pending = []
    for lo, hi in ranges:
        pending.append(pool.submit(_analyze_range, db_path, lo, hi))
        if len(pending) >= depth:
            yield pending.pop(0).result()
    for fut in pending:
        yield fut.result()


# -- parallel build: one scratch index per worker, joined by their segment lists -----------------
# Shared with the forked workers of a parallel build (set before forking; synchronized
# multiprocessing objects cannot travel as task arguments): posts analyzed so far, and for
# each pair of workers the [first, last] batch indexes not yet claimed.
_progress = None
_claims: list = []


def _open_tantivy(path: Path) -> tantivy.Index:
    index = tantivy.Index(build_schema(), path=str(path), reuse=True)
    index.register_tokenizer(WS, _ws_analyzer())
    return index


def _build_shard(path: str, db_path: str, ranges: list[tuple[int, int]], pair: int, forward: bool,
                 hwm: int | None) -> int:
    """In a worker: analyze batches of `ranges` and write them into a new index at `path`.

    Two workers share one run of batches and eat it from both ends (batches are claimed one
    at a time through a shared pair of bounds), so they finish together however the text
    length varies along the store, and each still sees neighbouring posts (one channel's
    vocabulary) in a row, which keeps their analyzer caches' overlap small.
    """
    Path(path).mkdir(parents=True)
    writer = _open_tantivy(Path(path)).writer(SHARD_HEAP, 1)
    done = 0
    while (i := _claim(_claims[pair], forward)) is not None:
        batch = _analyze_range(db_path, *ranges[i])
        for a in batch:
            if not a.deleted:
                writer.add_document(to_document(a))
                done += 1
        with _progress.get_lock():
            _progress.value += len(batch)
    if hwm is not None:
        writer.add_document(tantivy.Document(id=META_ID, hwm=hwm))
    writer.commit()
    writer.wait_merging_threads()
    return done


def _claim(bounds, forward: bool) -> int | None:
    """The next batch index from the front (or the back) of a shared [first, last] run."""
    with bounds.get_lock():
        first, last = bounds[0], bounds[1]
        if first > last:
            return None
        if forward:
            bounds[0] = first + 1
            return first
        bounds[1] = last - 1
        return last


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ShardJoinError(f"{path}: unreadable while joining index shards ({e})") from e


def _write_json(path: Path, value) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value), encoding="utf-8")
    os.replace(tmp, path)


def join_shards(target: Path, shards: list[Path]) -> int:
    """Move the segments of each shard index into `target` and list them in its meta.json.

    All indexes share one schema and settings (checked), so a segment is valid in any of
    them; `.managed.json` learns the moved files so tantivy deletes them after later merges.
    Returns the joined index's document count.
    """
    meta = _read_json(target / "meta.json")
    managed = _read_json(target / ".managed.json")
    if not (isinstance(meta.get("segments"), list) and isinstance(meta.get("opstamp"), int)
            and isinstance(managed, list)):
        raise ShardJoinError(f"{target}: unknown tantivy index layout; cannot join shards")
    for shard in shards:
        other = _read_json(shard / "meta.json")
        if other.get("schema") != meta.get("schema") or other.get("index_settings") != meta.get("index_settings"):
            raise ShardJoinError(f"{shard}: index shard built with another schema; cannot join it")
        for segment in other["segments"]:
            stem = segment["segment_id"].replace("-", "") + "."
            for f in shard.iterdir():
                if f.name.startswith(stem):
                    os.replace(f, target / f.name)
                    managed.append(f.name)
            meta["segments"].append(segment)
        meta["opstamp"] = max(meta["opstamp"], other["opstamp"])
    _write_json(target / ".managed.json", sorted(set(managed)))
    _write_json(target / "meta.json", meta)
    return sum(s["max_doc"] for s in meta["segments"])


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
            self.index = _open_tantivy(self.path)
        except (OSError, ValueError) as e:
            raise StoreError(f"{self.path}: cannot open the lexical index ({e}); run `tgsearch reindex`") from e
        if not ident_file.exists():
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
    def catch_up(self, store: Store, *, on_progress=None) -> int:
        """Index every post written after our high-water mark; returns how many."""
        start = self.hwm()
        if store.max_version() <= start:
            return 0
        if start == 0 and self.count() == 0:  # a first build: as fast as a rebuild
            done = self._try_parallel(store, on_progress)
            if done is not None:
                return done
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
        done = self._try_parallel(store, on_progress)
        if done is not None:
            return done
        writer = self.open_writer()
        writer.delete_all_documents()
        writer.commit()
        writer = None
        self.index.reload()
        return self._write(store, 0, replace=False, on_progress=on_progress)

    def _try_parallel(self, store: Store, on_progress) -> int | None:
        """Build the whole index in shards if it is big enough; None: use one writer."""
        versions = self._versions(store, 0)
        if not self._parallel(versions):
            return None
        try:
            return self._build_parallel(store, versions, on_progress=on_progress)
        except ShardJoinError as e:
            warnings.warn(f"{e}; building the index with one writer instead", RuntimeWarning, stacklevel=3)
            return None

    def _versions(self, store: Store, start: int) -> list[int]:
        return store.versions_since(start)

    def _parallel(self, versions: list[int]) -> bool:
        return self.workers > 1 and len(versions) >= POOL_MIN

    def _lock(self) -> int:
        """Take the index's writer lock (the file lock tantivy's own writers take) without
        starting a tantivy writer, so that worker processes never fork off a writer thread."""
        fd = os.open(self.path / ".tantivy-writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(fd)
            raise IndexBusyError(f"{self.path}: another tgsearch process is writing this index; "
                                 "run the command again when it has finished") from e
        return fd

    def _build_parallel(self, store: Store, versions: list[int], *, on_progress=None) -> int:
        """Build the whole index in worker shards, join them and swap the result in place of
        the current index (which keeps answering until then; see the module docstring)."""
        global _worker_analyzer, _progress
        lock = self._lock()
        scratch = self.path.parent / f"{BUILD_PREFIX}{os.getpid()}"
        for stale in self.path.parent.glob(BUILD_PREFIX + "*"):  # left by a killed build
            shutil.rmtree(stale, ignore_errors=True)
        ranges = _ranges(versions, 0, BATCH)
        workers = min(self.workers, len(ranges))
        pairs = (workers + 1) // 2
        shards = [scratch / str(k) for k in range(workers)]
        _worker_analyzer = self.analyzer
        ctx = multiprocessing.get_context("fork")
        _progress = ctx.Value("q", 0)
        _claims[:] = [ctx.Array("q", [len(ranges) * p // pairs, len(ranges) * (p + 1) // pairs - 1])
                      for p in range(pairs)]
        try:
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                futures = [pool.submit(_build_shard, str(shard), str(store.path), ranges, k // 2, k % 2 == 0,
                                       versions[-1] if k == 0 else None)
                           for k, shard in enumerate(shards)]
                pending = set(futures)
                try:
                    while pending:
                        finished, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
                        for f in finished:
                            f.result()   # a worker's error stops the build here; the old index stays
                        if on_progress:
                            on_progress(_progress.value)
                except BaseException:
                    for bounds in _claims:   # the other workers stop after their current batch
                        with bounds.get_lock():
                            bounds[0], bounds[1] = 1, 0
                    raise
            done = sum(f.result() for f in futures)
            joined = join_shards(shards[0], shards[1:])
            if joined != done + 1 or _open_tantivy(shards[0]).searcher().num_docs != joined:
                raise ShardJoinError(f"{self.path}: joined index holds {joined} documents, expected {done + 1}")
            _write_json(shards[0] / IDENTITY_FILE, self.identity)
            os.rename(self.path, scratch / "old")
            os.rename(shards[0], self.path)
        finally:
            _progress = None
            _claims.clear()
            os.close(lock)
            shutil.rmtree(scratch, ignore_errors=True)
        self._open()
        return done

    def _write(self, store: Store, start: int, *, replace: bool, on_progress=None) -> int:
        versions = self._versions(store, start)
        if not versions:
            return 0
        ranges = _ranges(versions, start, BATCH)
        global _worker_analyzer
        _worker_analyzer = self.analyzer
        db_path = str(store.path)
        pool = None
        if self._parallel(versions):
            pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"))
            pool.submit(int).result()  # fork the workers now, before this process starts a writer thread
        try:
            if pool is None:
                batches = (_analyze_range(db_path, lo, hi) for lo, hi in ranges)
            else:
                batches = _bounded(pool, db_path, ranges, self.workers * 3)
            writer = self.open_writer()
            done = 0
            try:
                for batch in batches:
                    for a in batch:
                        if replace or a.deleted:
                            writer.delete_documents_by_term("id", a.id)
                        if not a.deleted:
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
