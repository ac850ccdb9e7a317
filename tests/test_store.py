from datetime import datetime, timedelta, timezone

import pytest

from tgsearch.errors import NotFoundError, StoreError
from tgsearch.post import Post
from tgsearch.store import Store


def make(i: int, text: str = "текст", **kw) -> Post:
    return Post(id=f"chan/{i}", channel="chan", text=f"{text} {i}", message_ids=(i,),
                date=datetime(2025, 5, 1, tzinfo=timezone.utc) + timedelta(hours=i), **kw)


def test_upsert_counts_new_updated_unchanged(store):
    r = store.upsert([make(1), make(2)])
    assert (r.new, r.updated, r.unchanged) == (2, 0, 0)
    r = store.upsert([make(1), make(2, "правка")])
    assert (r.new, r.updated, r.unchanged) == (0, 1, 1)
    assert store.get("chan/2").text == "правка 2"
    assert store.count() == 2


def test_versions_increase_and_iter_since_sees_only_newer_writes(store):
    store.upsert([make(1), make(2)])
    hwm = store.max_version()
    store.upsert([make(2, "правка"), make(3)])
    seen = [p.id for _, p in store.iter_since(hwm)]
    assert seen == ["chan/2", "chan/3"]
    assert store.max_version() == hwm + 2


def test_older_edit_does_not_overwrite_newer_one(store):
    later = datetime(2025, 5, 3, tzinfo=timezone.utc)
    earlier = datetime(2025, 5, 2, tzinfo=timezone.utc)
    store.upsert([make(1, "новая версия", edit_date=later)])
    r = store.upsert([make(1, "старая версия", edit_date=earlier)])
    assert r.unchanged == 1
    assert store.get("chan/1").text == "новая версия 1"


def test_round_trip_keeps_every_field(store):
    post = Post(
        id="kz_news/77", channel="kz_news", channel_title="Новости КЗ", text="Текст поста https://example.org/a",
        message_ids=(77, 78), date=datetime(2025, 5, 28, 15, 0, tzinfo=timezone(timedelta(hours=5))),
        edit_date=datetime(2025, 5, 28, 16, 0, tzinfo=timezone.utc), title="Заголовок",
        links=("https://example.org/a",), source_url="https://example.org/src", publication="The Paper",
        publication_country="США", author="Автор", forwarded_from="other_chan", reply_to=70, views=1234,
        reactions={"👍": 5, "🔥": 2}, media=("photo",), kind="post", origin_file="x.json",
    )
    store.upsert([post])
    back = store.get("kz_news/77")
    assert back == post
    assert back.date.isoformat() == "2025-05-28T10:00:00+00:00"
    assert back.url == "https://t.me/kz_news/77"


def test_missing_post_and_missing_store(tmp_path, store):
    with pytest.raises(NotFoundError):
        store.get("nope/1")
    with pytest.raises(StoreError, match="tgsearch ingest"):
        Store(tmp_path / "absent", create=False)


def test_store_is_a_real_sqlite_file_in_wal_mode(store):
    assert store.path.exists()
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] >= 1


def test_capitalised_channels_move_to_the_one_naming_rule(tmp_path):
    """A store written before channels were lower-cased: re-ingesting the same file finds its
    posts again, and the old ids leave search through the deletion path."""
    import json
    import sqlite3

    from tgsearch.backend import EmbeddedBackend
    from tgsearch.search.types import SearchRequest
    from tgsearch.store import MIGRATIONS, Store

    db = tmp_path / "db"
    old = Store(db)
    old.upsert([Post(id="RiverDaily/1", channel="RiverDaily", text="Паводок на реке Урал", message_ids=(1,),
                     origin_file=str(tmp_path / "posts.jsonl"))])
    old.close()
    conn = sqlite3.connect(db / "store.sqlite")
    conn.execute(f"PRAGMA user_version={MIGRATIONS.index('_lowercase_channels')}")   # as an older tgsearch left it
    conn.commit()
    conn.close()
    backend = EmbeddedBackend(db, vectors="off")
    assert backend.get("riverdaily/1").channel == "riverdaily" and backend.get("RiverDaily/1").deleted
    src = tmp_path / "posts.jsonl"
    src.write_text(json.dumps({"id": 1, "channel": "RiverDaily", "text": "Паводок на реке Урал"}, ensure_ascii=False) + "\n")
    report = backend.ingest([src])
    assert report.total("new") == 0        # found again (updated: the reader now also gives its title)
    assert backend.stats()["posts"] == 1
    assert [h.id for h in backend.search(SearchRequest(q="паводок", mode="lexical")).hits] == ["riverdaily/1"]
    assert backend.check()["ok"]
    backend.close()


def test_a_read_only_backend_refuses_writes_before_writing(tmp_path):
    import json

    from tgsearch.backend import EmbeddedBackend
    from tgsearch.errors import StoreError

    EmbeddedBackend(tmp_path / "db", vectors="off").close()
    backend = EmbeddedBackend(tmp_path / "db", create=False, read_only=True)
    src = tmp_path / "posts.jsonl"
    src.write_text(json.dumps({"channel": "river", "id": 1, "text": "Паводок"}, ensure_ascii=False) + "\n")
    for write in (lambda: backend.ingest([src]), lambda: backend.mark_deleted(["river/1"]),
                  lambda: backend.rename_channel("river", "River")):
        with pytest.raises(StoreError, match="read-only"):
            write()
    assert backend.store.count() == 0
    backend.close()


def test_a_source_that_reports_a_post_deleted_marks_it(tmp_path):
    import json

    from tgsearch.backend import EmbeddedBackend
    from tgsearch.search.types import SearchRequest

    src = tmp_path / "posts.jsonl"
    line = {"id": 7, "channel": "river", "text": "Паводок на реке Урал", "edit_date": "2025-05-02T10:00:00Z"}
    src.write_text(json.dumps(line, ensure_ascii=False) + "\n")
    backend = EmbeddedBackend(tmp_path / "db", vectors="off")
    backend.ingest([src])
    assert backend.search(SearchRequest(q="паводок", mode="lexical")).total == 1
    del line["edit_date"]     # the source no longer gives the edit time: the deletion still counts
    src.write_text(json.dumps({**line, "text": "", "title": "x", "deleted": True}, ensure_ascii=False) + "\n")
    report = backend.ingest([src])
    assert report.total("updated") == 1
    post = backend.get("river/7")
    assert post.deleted and post.text == "Паводок на реке Урал"      # kept as it was, marked
    assert backend.search(SearchRequest(q="паводок", mode="lexical")).total == 0
    assert backend.check()["ok"]
    backend.close()


def test_channels_rename_sets_the_title_for_good(tmp_path, fixtures):
    import json
    import shutil

    from click.testing import CliRunner

    from tgsearch.cli import main

    src = tmp_path / "001_abc.txt"
    shutil.copy(fixtures / "text" / "digest_dump.txt", src)   # a digest dump that names no channel
    db = str(tmp_path / "db")
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(src), "--db", db, "-q"]).exit_code == 0
    channels = json.loads(runner.invoke(main, ["stats", "--db", db, "--json"]).output)["channels"]
    assert [c["title"] for c in channels] == ["unnamed dump: 001_abc.txt"]
    slug = channels[0]["channel"]
    result = runner.invoke(main, ["channels", "rename", slug, "Дайджест зарубежной прессы", "--db", db])
    assert result.exit_code == 0, result.output
    assert runner.invoke(main, ["ingest", str(src), "--db", db, "-q"]).exit_code == 0     # kept across ingests
    channels = json.loads(runner.invoke(main, ["stats", "--db", db, "--json"]).output)["channels"]
    assert [c["title"] for c in channels] == ["Дайджест зарубежной прессы"]
    assert "Дайджест" in runner.invoke(main, ["channels", "list", "--db", db]).output   # (the table wraps)
    bad = runner.invoke(main, ["channels", "rename", "nope", "X", "--db", db])
    assert bad.exit_code != 0 and "no channel" in bad.output
