"""Building a whole lexical index beside the live one, in parallel shards (index/lexical_build.py).

The shard path must give the same index as one writer: same posts, same high-water mark,
same hits and scores. It replaces the old index only when it has finished, so a failure or a
busy index leaves the old one answering.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tantivy

from search_corpus import POSTS, make_backend
from tgsearch.analyze.analyzer import Analyzer
from tgsearch.errors import StoreError
from tgsearch.index import lexical, lexical_build
from tgsearch.index.lexical import BUILD_PREFIX, IndexBusyError, LexicalIndex, ShardJoinError
from tgsearch.index.lexical_build import join_shards
from tgsearch.post import Post
from tgsearch.search.engine import Engine
from tgsearch.search.types import SearchRequest

QUERIES = ["уран", "переговоры", "парад", "Су-57", "нефть OR газ", '"красной площади"', "космос*",
           "Tokayev", "=нефть", "channel:tech_hall нейросеть"]


def many_posts(n: int) -> list[Post]:
    words = ["уран", "нефть", "газ", "парад", "переговоры", "Токаев", "Астана", "рудник", "вокзал", "дождь"]
    return [Post(id=f"gen/{i}", channel=f"ch{i % 3}", title=f"Заголовок {words[i % 10]} {i}" if i % 4 == 0 else "",
                 text=(f"Заголовок {words[i % 10]} {i}\n" if i % 4 == 0 else "")
                 + f"Пост {i}: {words[i % 10]} и {words[(i * 7) % 10]}, потом {words[(i * 3) % 10]}.",
                 message_ids=(i,))
            for i in range(n)]


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(lexical, "POOL_MIN", 1)
    monkeypatch.setattr(lexical, "BATCH", 3)


def hits(store, index, q):
    result = Engine(store, index).search(SearchRequest(q=q, mode="lexical", limit=100))
    return [(h.id, round(h.score, 4)) for h in result.hits]


def build(backend, root, workers):
    root.mkdir()                                   # an index lives in an existing data folder
    index = LexicalIndex(root, Analyzer(), workers=workers)
    n = index.rebuild(backend.store)
    return index, n


@pytest.mark.parametrize("workers", [2, 3])
def test_shards_give_the_same_index_as_one_writer(tmp_path, small_batches, workers):
    backend = make_backend(tmp_path)
    backend.store.upsert(many_posts(40))
    serial, n1 = build(backend, tmp_path / "serial", 1)
    sharded, n2 = build(backend, tmp_path / "sharded", workers)
    assert n1 == n2 == len(POSTS) + 40
    assert 1 <= sharded.searcher().num_segments <= workers   # a segment per shard that got posts
    assert sharded.indexed_ids() == serial.indexed_ids() == set(backend.store.ids_and_versions())
    assert sharded.hwm() == serial.hwm() == backend.store.max_version()
    assert sharded.count() == serial.count()
    for q in QUERIES:
        assert sorted(hits(backend.store, sharded, q)) == sorted(hits(backend.store, serial, q)), q
    assert hits(backend.store, sharded, "уран")          # the queries do find something
    assert sharded.check(backend.store)["ok"]
    assert not list((tmp_path / "sharded" / "index").glob(BUILD_PREFIX + "*"))  # scratch removed


def test_joined_index_lists_every_segment_file_and_keeps_taking_writes(tmp_path, small_batches):
    backend = make_backend(tmp_path)
    index = backend.index                                  # first build: the parallel path
    managed = set(json.loads((index.path / ".managed.json").read_text()))
    segment_files = {f.name for f in index.path.iterdir() if f.suffix in (".idx", ".term", ".pos", ".store")}
    assert segment_files and segment_files <= managed      # tantivy may delete them after merges

    old = backend.get("river_daily/5")                     # an edit deletes across shard segments
    backend.store.upsert([old.evolve(text="Истребитель показали на выставке вертолётов.")] + many_posts(5))
    backend.after_write()
    assert index.count() == len(POSTS) + 5
    result = backend.search(SearchRequest(q="Су-57", mode="lexical"))
    assert result.total == 0
    assert backend.check()["ok"]


def test_progress_reaches_every_post(tmp_path, small_batches):
    backend = make_backend(tmp_path)
    seen = []
    (tmp_path / "other").mkdir()
    index = LexicalIndex(tmp_path / "other", Analyzer(), workers=2)
    index.rebuild(backend.store, on_progress=seen.append)
    assert seen and seen[-1] == len(POSTS) and seen == sorted(seen)


def _failing_shard(*args):
    raise RuntimeError("disk full")


def test_a_failed_build_leaves_the_old_index_answering(tmp_path, small_batches, monkeypatch):
    backend = make_backend(tmp_path)
    index = backend.index
    before = hits(backend.store, index, "уран")
    monkeypatch.setattr(lexical_build, "_build_shard", _failing_shard)   # forked workers inherit it
    with pytest.raises(RuntimeError, match="disk full"):
        index.rebuild(backend.store)
    assert hits(backend.store, index, "уран") == before
    reopened = LexicalIndex(tmp_path / "db", index.analyzer)
    assert reopened.count() == len(POSTS) and reopened.check(backend.store)["ok"]
    assert not list((tmp_path / "db" / "index").glob(BUILD_PREFIX + "*"))


def test_a_busy_index_is_not_rebuilt(tmp_path, small_batches):
    backend = make_backend(tmp_path)
    index = backend.index
    holder = LexicalIndex(tmp_path / "db", index.analyzer)
    writer = holder.index.writer(50_000_000, 1)           # another process is writing
    with pytest.raises(IndexBusyError):
        index.rebuild(backend.store)
    del writer
    assert index.rebuild(backend.store) == len(POSTS)
    assert index.count() == len(POSTS)


def test_the_build_holds_tantivys_writer_lock(tmp_path, small_batches, monkeypatch):
    backend = make_backend(tmp_path)
    index = backend.index
    seen = []

    def shard_that_tries_the_lock(*args):
        try:
            LexicalIndex(tmp_path / "db", index.analyzer).index.writer(50_000_000, 1)
            seen.append("got the writer")
        except ValueError as e:
            seen.append(str(e))
        raise RuntimeError("stop here")

    monkeypatch.setattr(lexical_build, "_build_shard", shard_that_tries_the_lock)
    monkeypatch.setattr(lexical_build, "ProcessPoolExecutor", _InProcessPool)
    with pytest.raises(RuntimeError, match="stop here"):
        index.rebuild(backend.store)
    assert seen and all("LockBusy" in s for s in seen)


class _InProcessPool:
    """Runs tasks at once in this process (to observe the build's state from inside a task)."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        from concurrent.futures import Future

        future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(e)
        return future


def test_stale_scratch_folders_are_cleared(tmp_path, small_batches):
    backend = make_backend(tmp_path)
    stale = tmp_path / "db" / "index" / f"{BUILD_PREFIX}99999" / "0"
    stale.mkdir(parents=True)
    (stale / "meta.json").write_text("{}")
    backend.index.rebuild(backend.store)
    assert not stale.parent.exists()


def test_join_refuses_a_shard_with_another_schema(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for path in (a, b):
        path.mkdir()
    lexical._open_tantivy(a).writer(50_000_000, 1).commit()
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("id", stored=True)
    tantivy.Index(sb.build(), path=str(b)).writer(50_000_000, 1).commit()
    with pytest.raises(ShardJoinError, match="another schema"):
        join_shards(a, [b])
    assert issubclass(ShardJoinError, StoreError)


def _join_fails(target, shards):
    raise ShardJoinError(f"{target}: unknown tantivy index layout; cannot join shards")


def test_an_unjoinable_build_falls_back_to_one_writer(tmp_path, small_batches, monkeypatch):
    backend = make_backend(tmp_path)
    before = hits(backend.store, backend.index, "уран")
    monkeypatch.setattr(lexical_build, "join_shards", _join_fails)
    with pytest.warns(RuntimeWarning, match="one writer instead"):
        assert backend.index.rebuild(backend.store) == len(POSTS)
    assert backend.index.searcher().num_segments == 1
    assert hits(backend.store, backend.index, "уран") == before
    assert backend.check()["ok"]
    assert not list((tmp_path / "db" / "index").glob(BUILD_PREFIX + "*"))


def test_a_first_line_title_is_indexed_once_in_the_body():
    an = Analyzer()
    a = lexical._analyze(an, "c/1", "c", "Уран подорожал", "Уран подорожал\nЦены на уран выросли.", "", "post",
                         None, "[]")
    assert a.title_in_body and a.body.split() == an.index_terms("Уран подорожал\nЦены на уран выросли.")
    body = lexical.to_document(a).to_dict()["body"]
    assert len(body) == 1                       # the title is not added a second time
    b = lexical._analyze(an, "c/2", "c", "Газ", "Цены на газ", "", "article", None, "[]")
    assert not b.title_in_body and lexical.to_document(b).to_dict()["body"][0] == b.title


TITLE_CASES = [
    ("Касым-", "Касым-\n Жомарт Токаев"),
    ("Выросло на 15", "Выросло на 15\n000 тенге"),
    ("Заголовок", "Заголовок"),
    ("https://example.org/a", "https://example.org/a\nтекст"),
    ("#Казахстан и @channel", "#Казахстан и @channel\n— «Токаева», (Токаеву)."),
    ("1️⃣ Ударе́ние", "1️⃣ Ударе́ние\n\u00adмука́"),
]


@pytest.mark.parametrize("title,text", TITLE_CASES)
def test_title_and_rest_analyzed_apart_give_the_whole_texts_terms(title, text):
    an = Analyzer()
    a = lexical._analyze(an, "c/1", "c", title, text, "", "post", None, "[]")
    assert a.title_in_body
    assert a.body.split() == an.index_terms(text)
    assert a.exact_body.split() == an.exact_terms(text)


@pytest.mark.slow
def test_title_and_rest_apart_match_the_whole_text_on_the_22k_corpus():
    import sqlite3

    from testdata import shared_path
    from tgsearch.sources import walk
    from tgsearch.ingest import ingest
    from tgsearch.store import Store

    corpus = shared_path("data", "tg-news-posts-ru", "raw")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        ingest(store, list(walk([str(corpus)])))
        rows = sqlite3.connect(store.path).execute(f"SELECT {lexical._COLUMNS} FROM posts").fetchall()
    an, whole = Analyzer(), Analyzer()
    checked = 0
    for row in rows:
        a = lexical._analyze(an, *row)
        if a.title_in_body:
            checked += 1
            index, exact = whole.joined_terms(row[3])
            assert (a.body.split(), a.exact_body.split()) == (index.split(), exact.split()), row[0]
    assert checked > 10_000


_REAL_SHARD, _REAL_RANGE = lexical_build._build_shard, lexical._analyze_range
_second_shard_report: list[Path] = []   # set by the test before the workers fork


def _slow_range(*args):
    import time

    time.sleep(0.05)                        # 69 one-post batches: 3.5 s if nothing stops them
    return _REAL_RANGE(*args)


def _first_shard_fails(path, db_path, ranges, pair, forward, hwm):
    if forward:
        raise RuntimeError("disk full")
    _second_shard_report[0].write_text(str(_REAL_SHARD(path, db_path, ranges, pair, forward, hwm)))
    return 0


def test_a_failing_shard_stops_the_others(tmp_path, monkeypatch):
    monkeypatch.setattr(lexical, "POOL_MIN", 1)
    monkeypatch.setattr(lexical, "BATCH", 1)
    backend = make_backend(tmp_path)
    backend.store.upsert(many_posts(60))
    monkeypatch.setattr(lexical_build, "_build_shard", _first_shard_fails)
    monkeypatch.setattr(lexical, "_analyze_range", _slow_range)
    _second_shard_report[:] = [tmp_path / "second-shard.txt"]
    (tmp_path / "other").mkdir()
    index = LexicalIndex(tmp_path / "other", Analyzer(), workers=2)
    with pytest.raises(RuntimeError, match="disk full"):
        index.rebuild(backend.store)
    assert int((tmp_path / "second-shard.txt").read_text()) < 20   # stopped after a batch or two


KILL_SCRIPT = """
import sys
from tgsearch.index import lexical
from tgsearch.store import Store
lexical.POOL_MIN, lexical.BATCH = 1, 5
index = lexical.LexicalIndex(sys.argv[1], workers=2)
index.rebuild(Store(sys.argv[1], create=False))
"""


@pytest.mark.slow
def test_a_killed_build_leaves_a_working_index_that_catches_up(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    backend = make_backend(tmp_path)
    backend.store.upsert(many_posts(6000))
    backend.after_write()                          # the index is complete before the rebuild
    before = backend.index.count()
    backend.close()
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "db")], start_new_session=True)
    scratch = tmp_path / "db" / "index"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.rglob("*.idx") for p in scratch.glob(BUILD_PREFIX + "*")):
        time.sleep(0.01)                           # shards have flushed segments: mid-build
    assert proc.poll() is None, "the build ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)            # the parent and its workers
    proc.wait()
    from tgsearch.backend import EmbeddedBackend

    reopened = EmbeddedBackend(tmp_path / "db", create=False, vectors="off")
    assert reopened.index.count() == before        # the old index, untouched
    assert reopened.check()["ok"]
    assert reopened.index.rebuild(reopened.store) == before   # and the next build clears the scratch
    assert not list(scratch.glob(BUILD_PREFIX + "*"))
    assert reopened.check()["ok"]


def test_an_open_reader_follows_the_swapped_index(tmp_path, small_batches):
    import time

    reader = make_backend(tmp_path)                 # e.g. `tgsearch serve`, holding the index open
    assert reader.search(SearchRequest(q="уран", mode="lexical")).total == 1
    writer = LexicalIndex(tmp_path / "db", Analyzer(), workers=2)
    reader.store.upsert(many_posts(12))             # "уран" in 2 of them
    assert writer.rebuild(reader.store) == len(POSTS) + 12
    deadline = time.monotonic() + 10                 # tantivy's reader polls meta.json
    while time.monotonic() < deadline and reader.search(SearchRequest(q="уран", mode="lexical")).total != 3:
        time.sleep(0.1)
    assert reader.search(SearchRequest(q="уран", mode="lexical")).total == 3
    assert reader.index.count() == len(POSTS) + 12


# -- tgsearch reindex: beside the live index, swapped in, under the writer lock ------------------
@pytest.fixture(params=["one writer", "shards"])
def build_path(request, monkeypatch):
    if request.param == "shards":
        monkeypatch.setattr(lexical, "POOL_MIN", 1)
        monkeypatch.setattr(lexical, "BATCH", 3)
    return request.param


def test_a_search_during_reindex_answers_from_the_old_index(tmp_path, build_path):
    backend = make_backend(tmp_path)
    backend.store.upsert(many_posts(30))                    # "уран" in 3 of them; the index not told
    reader = LexicalIndex(tmp_path / "db", backend.index.analyzer)   # e.g. `tgsearch serve` meanwhile
    seen = []

    def during(done):
        fresh = LexicalIndex(tmp_path / "db", backend.index.analyzer, read_only=True)   # `tgsearch search`
        for index in (reader, fresh):
            seen.append((index.count(), [pid for pid, _ in hits(backend.store, index, "уран")]))

    assert backend.reindex(on_progress=during) == len(POSTS) + 30
    assert seen and all(found == (len(POSTS), ["steppe_news/1"]) for found in seen)
    reader.index.reload()
    assert reader.count() == len(POSTS) + 30                # the reader follows the swap
    assert len(hits(backend.store, reader, "уран")) == 4
    assert backend.check()["ok"]
    assert not list((tmp_path / "db" / "index").glob(BUILD_PREFIX + "*"))


def test_a_failing_reindex_leaves_the_old_index(tmp_path, build_path, monkeypatch):
    backend = make_backend(tmp_path)
    before = hits(backend.store, backend.index, "уран")
    calls = []

    def second_batch_fails(*args):
        calls.append(args)
        if len(calls) > 1:
            raise RuntimeError("disk full")
        return _REAL_RANGE(*args)

    monkeypatch.setattr(lexical, "_analyze_range", second_batch_fails)   # forked workers inherit it
    monkeypatch.setattr(lexical, "BATCH", 3)
    with pytest.raises(RuntimeError, match="disk full"):
        backend.reindex()
    reopened = LexicalIndex(tmp_path / "db", backend.index.analyzer)
    assert reopened.count() == len(POSTS) and reopened.check(backend.store)["ok"]
    assert hits(backend.store, reopened, "уран") == before
    assert not list((tmp_path / "db" / "index").glob(BUILD_PREFIX + "*"))


def test_reindex_refuses_an_index_another_writer_holds(tmp_path):
    backend = make_backend(tmp_path)
    holder = LexicalIndex(tmp_path / "db", backend.index.analyzer)
    writer = holder.open_writer()                           # an ingest is writing it
    with pytest.raises(IndexBusyError, match="is writing this index"):
        backend.reindex()
    assert holder.count() == len(POSTS)                     # nothing deleted under the writer
    writer.rollback()
    del writer
    assert backend.reindex() == len(POSTS)
    assert backend.check()["ok"]


HOLD_SCRIPT = """
import os, sys, time
from tgsearch.index.lexical import LexicalIndex
from tgsearch.index.lexical_build import take_lock
index = LexicalIndex(sys.argv[1])
fd = take_lock(index.path, index.path / ".tantivy-writer.lock")
if sys.argv[2] == "orphan":                 # a child inherits the lock, then its parent dies
    if os.fork() == 0:
        time.sleep(120)
        os._exit(0)
print("locked", flush=True)
if sys.argv[2] == "orphan":
    os._exit(0)
time.sleep(120)
"""


def _held(tmp_path, how):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", HOLD_SCRIPT, str(tmp_path / "db"), how],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_busy_index_names_the_process_holding_it(tmp_path):
    backend = make_backend(tmp_path)
    proc = _held(tmp_path, "holder")
    try:
        with pytest.raises(IndexBusyError) as info:
            backend.reindex()
        assert f"(pid {proc.pid})" in info.value.message
    finally:
        proc.kill()
        proc.wait()
    assert backend.reindex() == len(POSTS)                  # a lock dies with its holder


def test_a_lock_left_to_a_child_of_a_dead_writer_is_named_as_such(tmp_path):
    import os
    import signal

    from tgsearch.index.guard import lock_holders

    backend = make_backend(tmp_path)
    proc = _held(tmp_path, "orphan")
    proc.wait()                                             # the writer has exited; its child holds on
    lock = tmp_path / "db" / "index" / "lexical" / ".tantivy-writer.lock"
    orphans = lock_holders(lock)
    assert len(orphans) == 1
    try:
        with pytest.raises(IndexBusyError) as info:
            backend.reindex()
        message = info.value.message
        assert f"(pid {orphans[0]})" in message and f"pid {proc.pid}, which took the lock, has exited" in message
    finally:
        os.kill(orphans[0], signal.SIGKILL)
    deadline = __import__("time").monotonic() + 10
    while lock_holders(lock) and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.05)
    assert backend.reindex() == len(POSTS)


# -- a killed first build: its workers die with it -------------------------------------------------
INGEST_SCRIPT = """
import sys
from tgsearch.index import lexical
lexical.POOL_MIN, lexical.BATCH = 1, 5
from tgsearch.cli import main
main(sys.argv[1:])
"""


def _children(pid: int) -> set[int]:
    import os

    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    import os

    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_a_killed_first_build_leaves_no_worker_and_the_next_ingest_works(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from click.testing import CliRunner
    from tgsearch.cli import main

    src = tmp_path / "posts.jsonl"
    src.write_text("".join(json.dumps({"id": p.message_ids[0], "channel": p.channel, "text": p.text * 3},
                                      ensure_ascii=False) + "\n" for p in many_posts(6000)), encoding="utf-8")
    db = tmp_path / "db"
    cmd = [sys.executable, "-c", INGEST_SCRIPT, "ingest", str(src), "--db", str(db), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not list(
            (db / "index").glob(BUILD_PREFIX + "*/[01]")):
        time.sleep(0.005)                                # the shard workers have started writing
    workers = _children(proc.pid)
    assert proc.poll() is None and workers, proc.stderr.read().decode()[-500:] if proc.poll() is not None else ""
    os.kill(proc.pid, signal.SIGKILL)                    # the ingest alone, as `kill -9 <pid>`
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.05)
    survivors = [w for w in workers if _alive(w)]
    for w in survivors:
        os.kill(w, signal.SIGKILL)
    assert not survivors, "index-build workers outlived the killed ingest"

    again = subprocess.run([sys.executable, "-m", "tgsearch.cli", "ingest", str(src), "--db", str(db), "-q"],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    found = CliRunner().invoke(main, ["search", "уран", "--db", str(db), "--json", "--mode", "lexical"])
    assert json.loads(found.output)["total"] == 600        # every tenth post speaks of uranium
    assert CliRunner().invoke(main, ["check", "--db", str(db)]).exit_code == 0


def test_opening_a_folder_whose_first_build_is_running_does_not_delete_it(tmp_path, monkeypatch):
    from tgsearch.store import Store

    store = Store(tmp_path / "db")
    store.upsert(many_posts(12))
    opened = []

    def open_meanwhile(done):
        try:
            LexicalIndex(tmp_path / "db", Analyzer())   # e.g. another ingest opening the index
        except IndexBusyError as e:
            opened.append(e)

    index = LexicalIndex(tmp_path / "db", Analyzer(), open_existing=False)   # no index there yet
    assert index.rebuild(store, on_progress=open_meanwhile) == 12
    assert opened and all("is writing this index" in e.message for e in opened)
    assert index.count() == 12 and index.check(store)["ok"]
