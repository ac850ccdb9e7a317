"""Where derived work runs: read-only commands start nothing and write nothing; `serve`'s one
background worker thread (tgsearch/worker.py) indexes writes, stops on close and when its data
folder goes."""

from __future__ import annotations

import json
import multiprocessing.process
import os
import shutil
import subprocess
import threading
import time

import pytest
from click.testing import CliRunner

from search_corpus import POSTS, make_backend, write_corpus
from tgsearch.backend import EmbeddedBackend
from tgsearch.cli import main
from tgsearch.errors import StoreError
from tgsearch.index import lexical
from tgsearch.index.lexical import IndexBusyError, LexicalIndex
from tgsearch.index.vectors import vector_status, vectors_dir
from tgsearch.post import Post
from tgsearch.search.types import SearchRequest

MODEL = "use-multilingual-v3"


def drill_posts(start: int, n: int) -> list[Post]:
    return [Post(id=f"drill/{i}", channel="drill", text=f"Буровая вышка номер {i} заработала на шельфе.",
                 message_ids=(i,)) for i in range(start, start + n)]


def lexical_ids(backend, q: str) -> set[str]:
    return {h.id for h in backend.search(SearchRequest(q=q, mode="lexical", limit=100)).hits}


@pytest.fixture
def no_processes(monkeypatch):
    """Starting any process (a forked pool, a filler, a spawned pool) is recorded and refused."""
    started: list[str] = []

    def refuse(what):
        def start(*args, **kwargs):
            started.append(what)
            raise AssertionError(f"{what} started")
        return start

    monkeypatch.setattr(os, "fork", refuse("os.fork"))
    monkeypatch.setattr(subprocess, "Popen", refuse("subprocess.Popen"))
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse("multiprocessing process"))
    return started


def files_under(path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")} if path.exists() else set()


def test_read_only_commands_start_no_process_and_write_nothing(tmp_path, monkeypatch, no_processes):
    backend = make_backend(tmp_path)                 # indexed: the corpus
    backend.store.upsert(drill_posts(0, 30))         # written since, the index not told (a killed ingest)
    backend.close()
    db = str(tmp_path / "db")
    monkeypatch.setenv("TGSEARCH_VECTORS", "process")   # the default: an ingest would start a filler
    monkeypatch.setattr(lexical, "POOL_MIN", 1)          # a catch-up would fork analysis workers
    monkeypatch.setattr(lexical, "BATCH", 2)
    index_files = files_under(tmp_path / "db" / "index")
    runner = CliRunner()

    found = runner.invoke(main, ["search", "уран", "--db", db, "--json", "--mode", "lexical"])
    assert found.exit_code == 0, found.output
    assert [h["id"] for h in json.loads(found.output)["hits"]] == ["steppe_news/1"]   # what is indexed
    behind = runner.invoke(main, ["search", "буровая", "--db", db, "--json"])          # hybrid, as typed
    assert behind.exit_code == 0, behind.output
    assert json.loads(behind.output)["total"] == 0                                     # not indexed yet
    stats = runner.invoke(main, ["stats", "--db", db, "--json"])
    assert stats.exit_code == 0, stats.output
    index, vectors = json.loads(stats.output)["index"], json.loads(stats.output)["vectors"]
    assert index["behind"] == 30 and index["indexed"] == len(POSTS)
    assert vectors["behind"] == len(POSTS) + 30 and not vectors["complete"]   # never filled (vectors were off)
    assert runner.invoke(main, ["export", "--db", db]).exit_code == 0
    assert runner.invoke(main, ["show", "drill/3", "--db", db]).exit_code == 0
    check = runner.invoke(main, ["check", "--db", db, "--json"])
    assert check.exit_code == 3 and json.loads(check.output)["behind"] == 30

    assert no_processes == []
    assert files_under(tmp_path / "db" / "index") == index_files   # no vector folder, no index files
    assert not vectors_dir(tmp_path / "db", MODEL).exists()


def test_a_folder_without_an_index_is_searched_read_only_without_making_one(tmp_path, no_processes):
    from tgsearch.store import Store

    store = Store(tmp_path / "db")
    store.upsert(drill_posts(0, 5))
    store.close()
    reader = EmbeddedBackend(tmp_path / "db", create=False, read_only=True)
    assert reader.search(SearchRequest(q="буровая", mode="lexical")).total == 0
    assert reader.stats()["index"]["behind"] == 5
    assert not reader.check()["ok"]
    with pytest.raises(StoreError, match="read-only"):
        reader.reindex()
    with pytest.raises(StoreError, match="read-only"):
        reader.index.catch_up(reader.store)
    reader.close()
    assert not (tmp_path / "db" / "index").exists()
    assert no_processes == []


def worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "tgsearch-worker" and t.is_alive()]


def test_writes_through_a_worker_backend_get_indexed_by_its_one_worker(tmp_path):
    backend = EmbeddedBackend(tmp_path / "db", worker=True, vectors="off")
    assert len(worker_threads()) == 1
    backend.ingest([write_corpus(tmp_path / "in")])          # returns once the worker indexed it
    assert lexical_ids(backend, "уран") == {"steppe_news/1"}
    for k in range(3):                                        # writes made elsewhere (a `watch` loop)
        backend.store.upsert(drill_posts(k * 10, 10))
        backend.after_write()
    assert len(lexical_ids(backend, "буровая")) == 30
    old = backend.get("river_daily/5")
    backend.store.upsert([old.evolve(text="Истребитель показали на выставке вертолётов.")])
    backend.store.mark_deleted(["drill/0"])
    backend.after_write()
    assert lexical_ids(backend, "Су-57") == set() and "drill/0" not in lexical_ids(backend, "буровая")
    assert backend.check()["ok"]
    assert len(worker_threads()) == 1                         # the same one thread throughout
    assert backend.stats()["worker"]["running"]
    thread = worker_threads()[0]
    backend.close()
    assert not thread.is_alive() and worker_threads() == []   # close joined it


def test_the_worker_catches_up_on_a_poke_without_waiting(tmp_path):
    backend = EmbeddedBackend(tmp_path / "db", worker=True, vectors="off")
    backend.store.upsert(drill_posts(0, 4))
    backend.after_write(wait=False)                           # e.g. a collector that does not wait
    top = backend.store.max_version()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and backend.worker.indexed < top:
        time.sleep(0.05)
    assert len(lexical_ids(backend, "буровая")) == 4
    backend.close()


def test_a_busy_index_fails_the_write_wait_and_the_worker_recovers(tmp_path):
    backend = EmbeddedBackend(tmp_path / "db", worker=True, vectors="off")
    backend.ingest([write_corpus(tmp_path / "in")])
    holder = LexicalIndex(tmp_path / "db", backend.index.analyzer)
    writer = holder.open_writer()                             # another writer holds the lock
    backend.store.upsert(drill_posts(0, 2))
    with pytest.raises(IndexBusyError, match=f"pid {os.getpid()}"):
        backend.after_write()
    assert backend.worker.running
    writer.rollback()
    del writer
    backend.after_write()
    assert len(lexical_ids(backend, "буровая")) == 2
    backend.close()


def test_the_worker_stops_when_its_folder_is_deleted_and_never_recreates_it(tmp_path):
    root = tmp_path / "db"
    backend = EmbeddedBackend(root, worker=True, vectors="off")
    backend.ingest([write_corpus(tmp_path / "in")])
    thread = worker_threads()[0]
    shutil.rmtree(root)
    backend.worker.poke()
    thread.join(60)
    assert not thread.is_alive()
    assert "deleted" in backend.worker.stopped
    assert not root.exists()
    backend.close()
    assert not root.exists()


def test_the_worker_stops_when_its_folder_is_replaced(tmp_path):
    root = tmp_path / "db"
    backend = EmbeddedBackend(root, worker=True, vectors="off")
    backend.ingest([write_corpus(tmp_path / "in")])
    thread = worker_threads()[0]
    shutil.rmtree(root)
    root.mkdir()                                              # a script starts over under the same name
    backend.worker.poke()
    thread.join(60)
    assert not thread.is_alive()
    assert list(root.iterdir()) == []                         # nothing of the old folder's written into it
    backend.close()


def test_the_worker_fills_vectors_in_its_thread(tmp_path, no_processes):
    backend = EmbeddedBackend(tmp_path / "db", worker=True, vectors="process")
    backend.store.upsert(drill_posts(0, 6))
    backend.after_write()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not vector_status(backend.store, MODEL)["complete"]:
        time.sleep(0.2)
    status = vector_status(backend.store, MODEL)
    assert status["complete"] and status["posts_with_vectors"] == 6
    assert no_processes == []                                 # no filler process, no embedding pool
    backend.close()                                           # joins the worker, its round done
    assert list(vectors_dir(tmp_path / "db", MODEL).glob("hnsw-*.usearch"))   # the graph saved for next time


def test_serve_runs_one_worker_and_stops_it_on_shutdown(tmp_path, monkeypatch):
    import uvicorn

    import tgsearch.api.app

    make_backend(tmp_path).close()
    seen = {}

    def create_app(backend, token=None, **options):
        seen["backend"] = backend
        return object()

    def run(app, **kwargs):                          # the server loop: a write arrives, then shutdown
        backend = seen["backend"]
        seen["threads"] = len(worker_threads())
        backend.store.upsert(drill_posts(0, 3))
        backend.after_write()
        seen["found"] = lexical_ids(backend, "буровая")

    monkeypatch.setattr(tgsearch.api.app, "create_app", create_app)
    monkeypatch.setattr(uvicorn, "run", run)
    result = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "db")])
    assert result.exit_code == 0, result.output
    assert seen["threads"] == 1 and len(seen["found"]) == 3
    assert worker_threads() == [] and not seen["backend"].worker.running
