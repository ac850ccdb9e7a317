"""The PostgreSQL lexical side's document frequencies (`lex_terms`) and collection sizes (`lex_stats`),
kept by the writers: always what counting the postings and documents would give, through inserts,
edits, deletions, concurrent writers, `reindex`, and a database made before the tables existed."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

pytest.importorskip("psycopg", reason="psycopg not installed (pip install 'tgsearch[pg]')")

from tgsearch.pg.backend import PgBackend  # noqa: E402
from tgsearch.post import Post  # noqa: E402
from tgsearch.search.types import SearchRequest  # noqa: E402


def _post(i: int, text: str, channel: str = "alpha") -> Post:
    return Post(id=f"{channel}/{i}", channel=channel, date=datetime(2026, 3, 1 + i % 27, tzinfo=timezone.utc),
                text=text, title=f"Заголовок {i}" if i % 3 == 0 else "")


def _recount(conn) -> tuple[dict, tuple]:
    kept = {(f, t): n for f, t, n in conn.execute("SELECT field, term, df FROM lex_terms WHERE df <> 0")}
    counted = {(f, t): n for f, t, n in conn.execute(
        "SELECT field, term, count(*) FROM lex_postings GROUP BY field, term")}
    assert kept == counted
    stats = conn.execute("SELECT sum(docs), sum(len_body), sum(len_title), sum(len_exact) FROM lex_stats").fetchone()
    docs = conn.execute("SELECT count(*), sum(len_body), sum(len_title), sum(len_exact) FROM lex_docs").fetchone()
    assert tuple(int(x or 0) for x in stats) == tuple(int(x or 0) for x in docs)
    return kept, docs


@pytest.fixture
def backend(pg_url):
    b = PgBackend(pg_url, vectors="off", stories="off")
    yield b
    b.close()


def test_counts_follow_inserts_edits_deletions_and_reindex(backend):
    store = backend.store
    store.upsert([_post(i, f"Парламент одобрил закон номер {i} о выборах") for i in range(40)])
    _recount(store.conn)
    store.upsert([_post(i, f"Сенат отклонил поправки {i}, депутаты спорили") for i in range(0, 40, 4)])   # edits
    store.upsert([_post(3, "Парламент одобрил закон номер 3 о выборах")])                                   # unchanged
    backend.mark_deleted(["alpha/5", "alpha/6"])
    kept, docs = _recount(store.conn)
    assert docs[0] == 38
    snap = backend.engine.lexical.searcher()
    assert snap.docs == 38
    assert snap.doc_freq("body", "сенат") == 10 and snap.doc_freq("body", "нет-такого") == 0
    assert [t for t, _ in snap.terms_with_prefix("body", "депутат", 10)] == ["депутат"]
    assert backend.search(SearchRequest(q="сенат поправки", mode="lexical", group="none")).total == 10
    backend.reindex()
    assert _recount(store.conn)[0] == kept


def test_concurrent_writers_keep_the_counts(pg_url):
    errors = []

    def write(channel: str) -> None:
        b = PgBackend(pg_url, vectors="off", stories="off")
        try:
            for start in range(0, 60, 10):
                b.store.upsert([_post(i, f"Общие слова и слово {channel} номер {i}", channel)
                                for i in range(start, start + 10)])
                b.store.upsert([_post(start, f"Правка общих слов {channel}", channel)])
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            b.close()

    PgBackend(pg_url, vectors="off", stories="off").close()
    threads = [threading.Thread(target=write, args=(c,)) for c in ("alpha", "beta", "gamma")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    b = PgBackend(pg_url, vectors="off", stories="off")
    try:
        _, docs = _recount(b.store.conn)
        assert docs[0] == 180
    finally:
        b.close()


def test_a_database_made_before_the_counts_gets_them_from_the_postings(pg_url):
    b = PgBackend(pg_url, vectors="off", stories="off")
    b.store.upsert([_post(i, f"Министр посетил Астану, визит {i}") for i in range(12)])
    b.store.conn.execute("DROP TABLE lex_terms, lex_stats")
    b.close()
    b = PgBackend(pg_url, vectors="off", stories="off")
    try:
        _, docs = _recount(b.store.conn)
        assert docs[0] == 12
        assert b.engine.lexical.searcher().doc_freq("body", "министр") == 12
    finally:
        b.close()
