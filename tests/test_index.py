"""The lexical index: build, incremental catch-up, crash recovery, drift check, analyzer identity."""

from __future__ import annotations

import json

import pytest
import tantivy
from click.testing import CliRunner

from search_corpus import POSTS, make_backend
from tgsearch.errors import IndexMismatchError
from tgsearch.index import lexical
from tgsearch.index.lexical import IDENTITY_FILE, META_ID, LexicalIndex
from tgsearch.post import Post
from tgsearch.search.types import SearchRequest


def ids(backend, q):
    return [h.id for h in backend.search(SearchRequest(q=q, mode="lexical", limit=50)).hits]


def extra_posts(start, n):
    return [Post(id=f"extra/{i}", channel="extra", text=f"Буровая вышка номер {i} заработала", message_ids=(i,))
            for i in range(start, start + n)]


def test_ingest_indexes_every_post(tmp_path):
    backend = make_backend(tmp_path)
    index = backend.index
    assert index.count() == len(POSTS)
    assert index.hwm() == backend.store.max_version()
    assert index.indexed_ids() == set(backend.store.ids_and_versions())
    report = backend.check()
    assert report["ok"] and report["missing_count"] == 0 and report["behind"] == 0


def test_catch_up_after_a_crash_before_commit(tmp_path):
    backend = make_backend(tmp_path)
    backend.store.upsert(extra_posts(0, 5))          # written to the store, index not told
    index = backend.index
    writer = index.index.writer(50_000_000, 1)        # a run that dies before committing
    for a in [lexical.analyze_post(index.analyzer, p) for p in extra_posts(0, 5)]:
        writer.add_document(lexical.to_document(a))
    del writer
    backend.close()

    reopened = make_reopened(tmp_path)
    assert reopened.index.count() == len(POSTS) + 5
    assert len(ids(reopened, "буровая вышка")) == 5
    assert reopened.check()["ok"]


def test_lost_high_water_mark_reindexes_without_duplicates(tmp_path):
    backend = make_backend(tmp_path)
    index = backend.index
    writer = index.index.writer(50_000_000, 1)
    writer.delete_documents_by_term("id", META_ID)    # as if the commit carrying the hwm never happened
    writer.commit()
    del writer
    index.index.reload()
    assert index.hwm() == 0
    backend.close()

    reopened = make_reopened(tmp_path)
    assert reopened.index.hwm() == reopened.store.max_version()
    assert reopened.index.count() == len(POSTS)
    assert ids(reopened, "уран").count("steppe_news/1") == 1


def test_edited_post_replaces_the_old_version(tmp_path):
    backend = make_backend(tmp_path)
    old = backend.get("river_daily/5")
    backend.store.upsert([old.evolve(text="Истребитель показали на выставке вертолётов.")])
    backend.after_write()
    assert ids(backend, "Су-57") == []
    assert ids(backend, "вертолёт") == ["river_daily/5"]
    assert backend.index.count() == len(POSTS)


def test_missing_identity_file_means_rebuild(tmp_path):
    backend = make_backend(tmp_path)
    path = backend.index.path
    backend.close()
    (path / IDENTITY_FILE).unlink()
    reopened = make_reopened(tmp_path)
    assert reopened.index.count() == len(POSTS)
    assert (path / IDENTITY_FILE).exists()


def test_index_refuses_another_analyzer(tmp_path):
    backend = make_backend(tmp_path)
    path = backend.index.path
    backend.close()
    ident = json.loads((path / IDENTITY_FILE).read_text())
    ident["analyzer_version"] = "0-older"
    (path / IDENTITY_FILE).write_text(json.dumps(ident))
    with pytest.raises(IndexMismatchError) as info:
        LexicalIndex(tmp_path / "db")
    assert "tgsearch reindex" in info.value.message

    result = CliRunner().invoke(cli_main(), ["search", "уран", "--db", str(tmp_path / "db")])
    assert result.exit_code != 0 and "reindex" in result.output

    from tgsearch.backend import EmbeddedBackend
    fixed = EmbeddedBackend(tmp_path / "db", create=False)
    assert fixed.reindex() == len(POSTS)
    assert ids(fixed, "уран") == ["steppe_news/1"]


def test_check_reports_drift_and_reindex_repairs_it(tmp_path):
    backend = make_backend(tmp_path)
    index = backend.index
    writer = index.index.writer(50_000_000, 1)
    writer.delete_documents_by_term("id", "tech_hall/9")
    writer.commit()
    del writer
    index.index.reload()
    report = backend.check()
    assert not report["ok"]
    assert report["missing"] == ["tech_hall/9"] and report["indexed_posts"] == len(POSTS) - 1

    runner = CliRunner()
    db = str(tmp_path / "db")
    backend.close()
    result = runner.invoke(cli_main(), ["check", "--db", db])
    assert result.exit_code == 3 and "tech_hall/9" in result.output
    result = runner.invoke(cli_main(), ["reindex", "--db", db])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli_main(), ["check", "--db", db])
    assert result.exit_code == 0 and "ok" in result.output


def test_worker_pool_path_gives_the_same_index(tmp_path, monkeypatch):
    monkeypatch.setattr(lexical, "POOL_MIN", 1)
    monkeypatch.setattr(lexical, "BATCH", 2)
    backend = make_backend(tmp_path)
    assert backend.index.count() == len(POSTS)
    assert ids(backend, "уран") == ["steppe_news/1"]


def test_schema_fields_are_filterable_fast_fields(tmp_path):
    backend = make_backend(tmp_path)
    searcher = backend.index.searcher()
    agg = searcher.aggregate(backend.index.all_posts(), {"c": {"terms": {"field": "channel"}}})
    assert {b["key"]: b["doc_count"] for b in agg["c"]["buckets"]} == {"steppe_news": 2, "river_daily": 3, "tech_hall": 4}
    q = tantivy.Query.term_query(backend.index.schema, "has_link", 1)
    assert searcher.search(q, 10).count == 1


def make_reopened(tmp_path):
    from tgsearch.backend import EmbeddedBackend

    return EmbeddedBackend(tmp_path / "db", create=False)


def cli_main():
    from tgsearch.cli import main

    return main


def test_a_busy_index_is_still_readable(tmp_path):
    from tgsearch.backend import EmbeddedBackend
    from tgsearch.index.lexical import IndexBusyError

    backend = make_backend(tmp_path)
    backend.store.upsert(extra_posts(0, 2))
    holder = LexicalIndex(tmp_path / "db", backend.index.analyzer)
    writer = holder.index.writer(50_000_000, 1)        # another process is writing
    other = EmbeddedBackend(tmp_path / "db", create=False)
    assert other.index.count() == len(POSTS)           # opens and searches without catching up
    with pytest.raises(IndexBusyError):
        other.after_write(busy_wait=0)
    del writer
    other.after_write()
    assert other.index.count() == len(POSTS) + 2


def test_a_write_waits_for_another_writer_to_finish(tmp_path):
    """An ingest while `serve` catches the index up: it waits for the lock instead of failing."""
    import threading
    import time

    from tgsearch.backend import EmbeddedBackend

    backend = make_backend(tmp_path)
    holder = LexicalIndex(tmp_path / "db", backend.index.analyzer)
    box = {"writer": holder.index.writer(50_000_000, 1)}   # another process is writing

    def release():
        time.sleep(1.0)
        box.pop("writer").rollback()
    threading.Thread(target=release).start()
    other = EmbeddedBackend(tmp_path / "db", create=False)
    other.store.upsert(extra_posts(0, 2))
    other.after_write(busy_wait=30)
    assert other.index.count() == len(POSTS) + 2


@pytest.mark.slow
def test_22k_corpus_indexes_completely_and_finds_forms(tmp_path):
    from testdata import shared_path
    from tgsearch.backend import EmbeddedBackend
    from tgsearch.sources import walk

    corpus = shared_path("data", "tg-news-posts-ru", "raw")
    backend = EmbeddedBackend(tmp_path / "db")
    backend.ingest(list(walk([str(corpus)])))
    report = backend.check()
    assert report["ok"] and report["indexed_posts"] == report["store_posts"] == 22099
    result = backend.search(SearchRequest(q="Путину", mode="lexical", limit=5, facets=True))
    assert result.total > 100
    assert all("<mark>" in h.snippet for h in result.hits)
    assert sum(f["count"] for f in result.facets["channel"]) == result.total
    backend.close()
