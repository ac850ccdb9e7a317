"""PgStore (the store on PostgreSQL) against the SQLite Store on the same posts, and what only
PostgreSQL has: month partitions, concurrent writers, snapshot marks. Needs the `pg_url` fixture."""

import threading
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from tgsearch.errors import NotFoundError, PostgresError, StoreError
from tgsearch.pg import schema
from tgsearch.pg.store import PgStore
from tgsearch.post import Post
from tgsearch.store import Store


def make(i: int, text: str = "текст", channel: str = "chan", **kw) -> Post:
    kw.setdefault("date", datetime(2025, 5, 1, tzinfo=timezone.utc) + timedelta(hours=i))
    kw.setdefault("message_ids", (i,))
    return Post(id=f"{channel}/{i}", channel=channel, text=f"{text} {i}", **kw)


def full_post() -> Post:
    return Post(
        id="kz_news/77", channel="kz_news", channel_title="Новости КЗ", text="Текст поста https://example.org/a",
        message_ids=(77, 78), date=datetime(2025, 5, 28, 15, 0, tzinfo=timezone(timedelta(hours=5))),
        edit_date=datetime(2025, 5, 28, 16, 0, 0, 123456, tzinfo=timezone.utc), title="Заголовок",
        links=("https://example.org/a", "https://example.org/b"), source_url="https://example.org/src",
        publication="The Paper", publication_country="США", author="Автор", forwarded_from="other_chan",
        reply_to=70, views=1234, reactions={"🔥": 2, "👍": 5, "a": 1}, media=("photo", "video"), kind="post",
        origin_file="x.json", preview_site="Example", preview_title="Заг", preview_description="Описание",
        preview_url="https://example.org/p", forward_date=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        topic_id=9223372036854775807,
    )


@pytest.fixture
def pg(pg_url):
    s = PgStore(pg_url)
    yield s
    s.close()


@pytest.fixture
def both(pg, tmp_path):
    lite = Store(tmp_path / "db")
    yield lite, pg
    lite.close()


def months(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                           "WHERE i.inhparent = 'posts'::regclass")}


def rows_of(url: str, pid: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT month, version, xid::text, deleted FROM posts WHERE id = %s", (pid,)).fetchall()


def test_round_trip_matches_the_sqlite_store(both):
    lite, pg = both
    posts = [full_post(), make(1), make(2, date=None), make(3, kind="article", title="Статья"),
             make(4, date=datetime(1, 1, 1, tzinfo=timezone.utc)), make(5, edited=True, views=0),
             Post(id="Other/1", channel="Other", text="латиница", deleted=True)]
    for store in both:
        store.upsert(posts)
    ids = [p.id for p in posts]
    for pid in ids:
        assert pg.get(pid).to_dict() == lite.get(pid).to_dict()
        assert pg.get(pid) == lite.get(pid)
    assert {k: v.to_dict() for k, v in pg.get_many(ids + ["nope/1"]).items()} == \
           {k: v.to_dict() for k, v in lite.get_many(ids + ["nope/1"]).items()}
    assert pg.get("kz_news/77").date.isoformat() == "2025-05-28T10:00:00+00:00"
    assert list(pg.get("kz_news/77").reactions) == ["🔥", "👍", "a"]  # the source's order
    for order in ("date", "id"):
        for deleted in (False, True):
            assert [p.to_dict() for p in pg.iter_posts(order=order, deleted=deleted, batch=2)] == \
                   [p.to_dict() for p in lite.iter_posts(order=order, deleted=deleted, batch=2)]
    assert pg.dates(ids) == lite.dates(ids)
    assert pg.facts(ids) == lite.facts(ids)
    assert pg.live(ids) == lite.live(ids)
    assert sorted(pg.publications()) == sorted(lite.publications())
    assert sorted(pg.channel_names()) == sorted(lite.channel_names())
    assert pg.channel_titles() == lite.channel_titles()
    assert pg.count() == lite.count() == len(posts)
    assert set(pg.ids_and_versions()) == set(lite.ids_and_versions())
    assert set(pg.ids_and_versions(deleted=True)) == set(lite.ids_and_versions(deleted=True))
    with pytest.raises(NotFoundError):
        pg.get("nope/1")


def test_stats_match_the_sqlite_store(both):
    lite, pg = both
    posts = [make(i) for i in range(5)] + [make(1, channel="other"), make(9, kind="article", title="T", date=None)]
    for store in both:
        store.upsert(posts)
        store.mark_deleted(["chan/0"])
        store.rename_channel("other", "Другой канал")
        store.record_file("b.json", format="json", size=10, mtime_ns=5, posts=3, status="ok")
        store.record_file("a.html", format="html", size=None, mtime_ns=None, posts=0, status="failed", error="bad")
    a, b = lite.stats(), pg.stats()
    assert b.pop("db") == pg.where
    a.pop("db")
    assert a == b
    with pytest.raises(NotFoundError):
        pg.rename_channel("absent", "x")


def test_upsert_is_idempotent_and_an_edit_takes_a_new_version(both):
    lite, pg = both
    for store in both:
        r = store.upsert([make(1), make(2)])
        assert (r.new, r.updated, r.refreshed, r.unchanged) == (2, 0, 0, 0)
        r = store.upsert([make(1), make(2)])
        assert (r.new, r.updated, r.refreshed, r.unchanged) == (0, 0, 0, 2)
    before = pg.ids_and_versions()
    xid_before = rows_of(pg.url, "chan/2")[0][2]
    for store in both:
        r = store.upsert([make(1), make(2, "правка")])
        assert (r.new, r.updated, r.unchanged) == (0, 1, 1)
    after = pg.ids_and_versions()
    assert after["chan/1"] == before["chan/1"] and after["chan/2"] > max(before.values())
    assert rows_of(pg.url, "chan/2")[0][2] != xid_before
    assert pg.get("chan/2").text == "правка 2"
    assert pg.count_since(max(before.values())) == 1
    assert pg.versions_since(max(before.values())) == [after["chan/2"]]
    assert [p.id for _, p in pg.iter_since(max(before.values()))] == ["chan/2"]
    assert pg.max_version() == after["chan/2"]


def test_an_older_edit_does_not_overwrite_a_newer_one(pg):
    later = datetime(2025, 5, 3, tzinfo=timezone.utc)
    pg.upsert([make(1, "новая версия", edit_date=later)])
    r = pg.upsert([make(1, "старая версия", edit_date=later - timedelta(days=1))])
    assert r.unchanged == 1
    assert pg.get("chan/1").text == "новая версия 1"


def test_counters_alone_are_refreshed_in_place(pg):
    pg.upsert([make(1, views=10, reactions={"👍": 1})])
    (month, version, xid, _), = rows_of(pg.url, "chan/1")
    r = pg.upsert([make(1, views=20, reactions={"👍": 3})])
    assert (r.refreshed, r.updated, r.new) == (1, 0, 0)
    assert rows_of(pg.url, "chan/1") == [(month, version, xid, False)]
    assert pg.get("chan/1").views == 20 and pg.get("chan/1").reactions == {"👍": 3}
    assert pg.upsert([make(1, views=20, reactions={"👍": 3})]).unchanged == 1


def test_duplicates_in_one_batch_are_written_in_order(both):
    lite, pg = both
    batch = [make(1), make(1, "правка"), make(1, "правка", views=5), make(2)]
    results = [store.upsert(batch) for store in both]
    assert results[0] == results[1]
    assert pg.get("chan/1").to_dict() == lite.get("chan/1").to_dict()
    assert len(rows_of(pg.url, "chan/1")) == 1


def test_deletion_keeps_the_row_and_bumps_version(both):
    lite, pg = both
    for store in both:
        store.upsert([make(1), make(2)])
    v = pg.ids_and_versions()["chan/1"]
    (_, _, xid, _), = rows_of(pg.url, "chan/1")
    assert pg.mark_deleted(["chan/1", "chan/1", "absent/1"]) == lite.mark_deleted(["chan/1", "absent/1"]) == 1
    assert pg.mark_deleted(["chan/1"]) == 0
    (_, v2, xid2, deleted), = rows_of(pg.url, "chan/1")
    assert deleted and v2 > v and xid2 != xid
    assert pg.get("chan/1").deleted and "chan/1" not in pg.live(["chan/1", "chan/2"])
    assert [p.id for p in pg.iter_posts()] == ["chan/2"]
    # delivered again by a source: stays deleted; a source that reports it deleted: marked
    for store in both:
        assert store.upsert([make(1, "правка")]).updated == 1
        assert store.upsert([make(2, deleted=True)]).updated == 1
    for pid in ("chan/1", "chan/2"):
        assert pg.get(pid).to_dict() == lite.get(pid).to_dict()
        assert pg.get(pid).deleted
    assert pg.mark_deleted(["chan/2"], deleted=False) == 1 and not pg.get("chan/2").deleted
    assert pg.stats()["deleted"] == 1


def test_month_partitions_are_created_on_demand_and_a_moved_date_moves_the_row(pg):
    pg.upsert([make(1), make(2, date=None), make(3, date=datetime(2024, 12, 31, 23, 30, tzinfo=timezone.utc))])
    assert months(pg.url) == {"posts_m202505", "posts_m000000", "posts_m202412"}
    # a date given with an offset belongs to its UTC month
    pg.upsert([make(4, date=datetime(2025, 7, 1, 1, 0, tzinfo=timezone(timedelta(hours=3))))])
    assert "posts_m202506" in months(pg.url) and "posts_m202507" not in months(pg.url)
    r = pg.upsert([make(1, date=datetime(2026, 2, 1, tzinfo=timezone.utc))])
    assert r.updated == 1
    assert [row[0] for row in rows_of(pg.url, "chan/1")] == [202602]
    assert pg.get("chan/1").date == datetime(2026, 2, 1, tzinfo=timezone.utc)
    # counters and deletion of a moved row find it in its new partition
    assert pg.upsert([make(1, date=datetime(2026, 2, 1, tzinfo=timezone.utc), views=3)]).refreshed == 1
    assert pg.mark_deleted(["chan/1"]) == 1
    assert [row[0] for row in rows_of(pg.url, "chan/1")] == [202602]
    with psycopg.connect(pg.url) as conn:  # no DEFAULT partition
        assert conn.execute("SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
                            "WHERE c.relname = 'posts' AND p.partdefid <> 0").fetchone()[0] == 0


def test_concurrent_writers_never_make_two_rows_of_one_id(pg_url):
    PgStore(pg_url).close()
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def writer(n: int) -> None:
        store = PgStore(pg_url)
        try:
            start.wait()
            for round_ in range(6):
                # overlapping ids, some moving month between writers, in different orders
                batch = [make(i, f"w{n} r{round_}", date=datetime(2025, 1 + (i + n + round_) % 4, 2, tzinfo=timezone.utc))
                         for i in range(40)]
                store.upsert(batch if n % 2 else batch[::-1])
                store.mark_deleted([f"chan/{i}" for i in range(n, 40, 7)], deleted=bool(round_ % 2))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id), count(DISTINCT version) FROM posts").fetchone() == (40, 40, 40)


def test_iter_changed_sees_a_lower_version_that_commits_last(pg_url):
    """Writer A takes the lower version and commits after writer B: a consumer reading by version
    would skip A; the snapshot marks do not."""
    consumer = PgStore(pg_url)
    consumer.upsert([make(0)])
    mark = 0
    seen: list[str] = []
    until = consumer.snapshot_mark()
    seen += [p.id for p in consumer.iter_changed(mark, until)]
    mark = until
    assert seen == ["chan/0"]

    in_a, release_a = threading.Event(), threading.Event()

    def hold(cur, changed, deleted_ids):
        in_a.set()
        assert release_a.wait(30)

    a, b = PgStore(pg_url, on_write=hold), PgStore(pg_url)
    thread = threading.Thread(target=a.upsert, args=([make(1, "A")],))
    thread.start()
    assert in_a.wait(30)
    b.upsert([make(2, "B")])  # commits first, with the higher version
    by_version = [p.id for _, p in consumer.iter_since(consumer.ids_and_versions()["chan/0"])]
    assert by_version == ["chan/2"]  # A is not visible yet: a version high-water mark would pass it
    until = consumer.snapshot_mark()
    changed = [p.id for p in consumer.iter_changed(mark, until)]
    assert "chan/1" not in changed
    seen += changed
    mark = until
    release_a.set()
    thread.join()
    assert a.ids_and_versions()["chan/1"] < a.ids_and_versions()["chan/2"]
    consumer.upsert([make(3)])
    consumer.mark_deleted(["chan/0"])
    until = consumer.snapshot_mark()
    batch = list(consumer.iter_changed(mark, until, batch=1))
    seen += [p.id for p in batch]
    assert sorted(set(seen)) == ["chan/0", "chan/1", "chan/2", "chan/3"]
    assert [p.deleted for p in batch if p.id == "chan/0"] == [True]
    # counters alone do not come again
    mark = until
    consumer.upsert([make(3, views=7)])
    assert list(consumer.iter_changed(mark, consumer.snapshot_mark())) == []
    for s in (a, b, consumer):
        s.close()


def test_on_write_runs_inside_the_transaction(pg_url):
    calls = []

    def on_write(cur, changed, deleted_ids):
        cur.execute("SELECT count(*) FROM posts")
        calls.append(([p.id for p in changed], list(deleted_ids), cur.fetchone()[0]))

    store = PgStore(pg_url, on_write=on_write)
    store.upsert([make(1), make(2)])
    store.upsert([make(1, views=5), make(2, "правка"), make(3)])
    store.mark_deleted(["chan/1"])
    store.upsert([make(3, deleted=True)])
    assert calls == [(["chan/1", "chan/2"], [], 2), (["chan/2", "chan/3"], [], 3), ([], ["chan/1"], 3),
                     ([], ["chan/3"], 3)]

    def fail(cur, changed, deleted_ids):
        raise RuntimeError("index failed")

    store.on_write = fail
    with pytest.raises(RuntimeError):
        store.upsert([make(4)])
    assert store.count() == 3  # rolled back
    store.close()


def test_migrations_reopen_idempotent_and_refuse_a_newer_schema(pg_url):
    with pytest.raises(StoreError, match="no tgsearch store"):
        PgStore(pg_url, create=False)
    PgStore(pg_url).close()
    store = PgStore(pg_url, create=False)
    store.upsert([make(1)])
    store.close()
    store = PgStore(pg_url)
    assert store.count() == 1
    store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM tgsearch_schema").fetchall() == [(schema.SCHEMA_VERSION,)]
        assert schema.migrate(conn, "db", migrations=schema.MIGRATIONS + ["CREATE TABLE extra (x int)"]) == \
            schema.SCHEMA_VERSION + 1
        conn.execute("SELECT * FROM extra")
    with pytest.raises(StoreError, match="newer than this tgsearch") as e:
        PgStore(pg_url)
    assert "***" in str(e.value) or "@" not in str(e.value)


def test_errors_are_one_readable_line_without_the_password(pg_url):
    bad = pg_url.replace("@127.0.0.1:", "@127.0.0.1:1").rsplit("/", 1)[0] + "/nodb"
    user = bad.split("://", 1)[1].split("@", 1)[0]
    secret_url = bad.replace(user, user.split(":")[0] + ":s3cret-pw")
    with pytest.raises((PostgresError, StoreError)) as e:
        PgStore(secret_url)
    assert "s3cret-pw" not in str(e.value) and "\n" not in str(e.value) and "***" in str(e.value)


def test_collect_state_matches_the_sqlite_store(both):
    lite, pg = both
    article = Post(id="web/a1", channel="web", text="статья", kind="article", title="A",
                   date=datetime(2025, 5, 2, tzinfo=timezone.utc))
    posts = [make(1, links=("https://ex.org/a", "ftp://x", "https://ex.org/b")),
             make(2, links=("https://ex.org/b",)), make(3, links=("https://ex.org/a",), date=None),
             make(4, message_ids=(4, 5)), article]
    for s in both:
        s.upsert(posts)
        assert s.get_cursor("chan") is None and s.get_sync_cursor("chan") is None
        s.set_cursor("chan", newest=10, oldest=1, complete=True)
        s.set_sync_cursor("chan", last_id=5, complete=False, peer_id=-100123, access_hash=42)
        s.set_sync_cursor("chan", last_id=7, complete=True)
        s.set_meta("k", "v")
        s.set_meta("k", "w")
    assert pg.get_meta("k") == "w" and pg.get_meta("absent", "d") == "d"
    assert pg.get_cursor("chan") == lite.get_cursor("chan")
    a, b = lite.get_sync_cursor("chan"), pg.get_sync_cursor("chan")
    assert a.pop("updated_at")[:10] == b.pop("updated_at")[:10] and a == b
    assert pg.sync_channel_of_peer(-100123) == "chan" and pg.sync_channel_of_peer(1) is None
    assert pg.recent_messages("chan", 2) == lite.recent_messages("chan", 2)
    assert pg.recent_messages("chan", 5, up_to=2) == lite.recent_messages("chan", 5, up_to=2)
    assert sorted(pg.posts_with_message("chan", [5, 2])) == sorted(lite.posts_with_message("chan", [5, 2]))
    assert pg.posts_with_message("chan", []) == []
    assert list(pg.pending_links()) == list(lite.pending_links())
    for s in both:
        s.record_link("https://ex.org/a", "fetched", article_id="web/a1")
        s.record_link("https://ex.org/b", "failed", reason="timeout")
        s.record_source_run("chan", "2025-05-01T00:00:00Z", None, 3, "")
    with pytest.raises(ValueError):
        pg.record_link("https://x", "maybe")
    assert list(pg.pending_links()) == list(lite.pending_links()) == []
    assert list(pg.pending_links(retry_failed=True)) == list(lite.pending_links(retry_failed=True))
    out_a, out_b = lite.link_outcomes(), pg.link_outcomes()
    assert {u: {k: v for k, v in o.items() if k != "fetched_at"} for u, o in out_a.items()} == \
           {u: {k: v for k, v in o.items() if k != "fetched_at"} for u, o in out_b.items()}
    assert pg.articles_for("chan/1") == lite.articles_for("chan/1") == ["web/a1"]
    assert pg.citing_posts("web/a1") == lite.citing_posts("web/a1")
    ids = [p.id for p in posts] + ["nope/1"]
    assert pg.citations(ids) == lite.citations(ids)
    assert pg.source_runs() == lite.source_runs()
    with pytest.raises(NotFoundError):
        pg.articles_for("nope/1")


def test_a_batch_of_2000_posts(pg):
    posts = [make(i, date=datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(days=i % 400)) for i in range(2000)]
    assert pg.upsert(posts).new == 2000
    assert pg.count() == 2000 and len(months(pg.url)) == 14
    assert pg.upsert(posts).unchanged == 2000
    assert len({v for v in pg.ids_and_versions().values()}) == 2000
