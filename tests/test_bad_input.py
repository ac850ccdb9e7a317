"""Bad records cost only themselves: one line naming file and record, everything else ingests.

Also: byte order marks (UTF-8/16/32) in every text reader, the nesting bound of Desktop JSON
messages, the per-file guard (time budget, size limit, a reader's crash), one channel-naming
rule, and counters refreshed in place reported as `refreshed`.
"""

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

import tgsearch.ingest as ingest_module
from tgsearch.cli import main
from tgsearch.ingest import ingest
from tgsearch.post import Post, parse_datetime
from tgsearch.sources import channel_name
from tgsearch.store import Store


def write(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def good_line(i: int, channel: str = "river") -> str:
    return json.dumps({"id": i, "channel": channel, "date": "2025-05-01T10:00:00Z", "text": f"Новость номер {i}"},
                      ensure_ascii=False)


# -- JSON Lines: one bad value in line 101 ----------------------------------------------------

BAD_JSONL = {
    "views": '{"id": 500, "channel": "river", "text": "a", "views": 99999999999999999999}',
    "reply_to": '{"id": 500, "channel": "river", "text": "a", "reply_to": 99999999999999999999}',
    "date": '{"id": 500, "channel": "river", "text": "a", "date": 1e20}',
    "reactions": '{"id": 500, "channel": "river", "text": "a", "reactions": {"x": 1e400}}',
    "message_ids": '{"id": 500, "channel": "river", "text": "a", "message_ids": ["a"]}',
    "links": '{"id": 500, "channel": "river", "text": "a", "links": 5}',
    "edit_date": '{"id": 500, "channel": "river", "text": "a", "edit_date": "вчера"}',
    "media": '{"id": 500, "channel": "river", "text": "a", "media": [["photo"]]}',
    "huge_number": '{"id": 500, "channel": "river", "text": "a", "views": ' + "9" * 5000 + "}",
    "nested": '{"id": 500, "channel": "river", "text": "a", "x": ' + "[" * 100000 + "]" * 100000 + "}",
}


@pytest.mark.parametrize("field", sorted(BAD_JSONL))
def test_jsonl_bad_value_costs_only_its_line(tmp_path, store, field):
    lines = [good_line(i) for i in range(1, 101)] + [BAD_JSONL[field]] + [good_line(i) for i in range(101, 106)]
    write(tmp_path / "in" / "a.jsonl", "\n".join(lines) + "\n")
    write(tmp_path / "in" / "b.jsonl", good_line(1, "other") + "\n")
    report = ingest(store, [tmp_path / "in"])
    assert len(report.errors) == 1, report.errors
    error = report.errors[0]
    assert "a.jsonl:line 101" in error and "\n" not in error
    if field not in ("huge_number", "nested", "date", "edit_date"):
        assert field in error
    assert report.posts == 106 and store.count() == 106
    assert {f.posts for f in report.files} == {105, 1}


def test_cli_reports_one_line_exit_2_no_traceback(tmp_path):
    lines = [good_line(i) for i in range(1, 101)] + [BAD_JSONL["views"]] + [good_line(101)]
    write(tmp_path / "in" / "a.jsonl", "\n".join(lines) + "\n")
    write(tmp_path / "in" / "b.jsonl", good_line(1, "other") + "\n")
    result = CliRunner().invoke(main, ["ingest", str(tmp_path / "in"), "--db", str(tmp_path / "db")])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "a.jsonl:line 101" in errors[0] and "views" in errors[0]
    assert "posts: 102" in result.stdout
    assert Store(tmp_path / "db").count() == 102


# -- Telethon JSON ------------------------------------------------------------------------------

def telethon(i: int, **extra) -> dict:
    return {"message_id": i, "sender_id": -1001234567890, "channel": "Новости", "date": "2025-05-28T10:00:00+00:00",
            "text": f"Сообщение {i}", **extra}


@pytest.mark.parametrize("bad, needle", [
    ('{"message_id": 1e400, "sender_id": -1001234567890, "text": "x"}', "message_id"),
    ('{"message_id": 9, "sender_id": -1001234567890, "text": "x", "views": 99999999999999999999}', "views"),
    ('{"message_id": 9, "sender_id": -1001234567890, "text": "x", "reply_to_msg_id": 99999999999999999999}', "reply_to"),
    ('{"message_id": 9, "sender_id": -1001234567890, "text": "x", "edit_date": "не дата"}', "edit_date"),
    ('{"message_id": 9, "sender_id": -1001234567890, "text": "x", "date": 1e20}', "date"),
])
def test_telethon_bad_value_costs_only_its_item(tmp_path, store, bad, needle):
    good = [json.dumps(telethon(i), ensure_ascii=False) for i in range(1, 4)]
    write(tmp_path / "dump.json", "[" + ",".join(good[:2] + [bad] + good[2:]) + "]")
    report = ingest(store, [tmp_path / "dump.json"])
    assert len(report.errors) == 1 and "dump.json:item 2" in report.errors[0] and needle in report.errors[0]
    assert store.count() == 3


# -- Telegram Desktop JSON and HTML ------------------------------------------------------------

def desktop_message(i: int, **extra) -> dict:
    return {"id": i, "type": "message", "date": "2024-03-01T10:00:00", "date_unixtime": "1709287200",
            "from": "Канал", "text": f"Сообщение {i}", **extra}


def desktop_export(messages: list[str]) -> str:
    return '{"name": "Канал", "type": "public_channel", "id": 42, "messages": [' + ",".join(messages) + "]}"


@pytest.mark.parametrize("extra, needle", [
    ('"media_type": ["voice_message"], "file": "x.ogg"', "media_type"),
    ('"reactions": [{"type": "emoji", "emoji": "👍", "count": 1e400}]', "reactions"),
    ('"date_unixtime": "100000000000000000000"', "date"),
    ('"edited": "не дата"', "date"),
    ('"reply_to_message_id": 99999999999999999999', "reply_to"),
])
def test_desktop_json_bad_value_costs_only_its_message(tmp_path, store, extra, needle):
    good = [json.dumps(desktop_message(i), ensure_ascii=False) for i in (1, 2, 4)]
    bad = json.dumps(desktop_message(3), ensure_ascii=False)[:-1] + ", " + extra + "}"
    write(tmp_path / "result.json", desktop_export(good[:2] + [bad] + good[2:]))
    report = ingest(store, [tmp_path / "result.json"])
    assert len(report.errors) == 1, report.errors
    assert "result.json:message 3" in report.errors[0] and needle in report.errors[0]
    assert store.count() == 3 and report.files[0].format == "tg-desktop-json"


@pytest.mark.parametrize("depth", [150, 20000, 100000])
def test_desktop_json_deep_nesting_fails_only_that_message(tmp_path, store, depth):
    good = [json.dumps(desktop_message(i), ensure_ascii=False) for i in (1, 2, 4)]
    deep = '{"id": 3, "type": "message", "date": "2024-03-01T10:00:00", "text": ' + "[" * depth + "]" * depth + "}"
    write(tmp_path / "result.json", desktop_export(good[:2] + [deep] + good[2:]))
    report = ingest(store, [tmp_path / "result.json"])
    assert len(report.errors) == 1 and "result.json:message 3" in report.errors[0] and "nested" in report.errors[0]
    assert sorted(store.get_many(["c42/1", "c42/2", "c42/4"])) == ["c42/1", "c42/2", "c42/4"]
    assert store.count() == 3


def test_desktop_json_shallow_nesting_is_read(tmp_path, store):
    nested = '{"id": 3, "type": "message", "date": "2024-03-01T10:00:00", "text": ["a ", [["b"]], {"type": "bold", "text": "c"}]}'
    write(tmp_path / "result.json", desktop_export([nested]))
    report = ingest(store, [tmp_path / "result.json"])
    assert not report.errors and store.get("c42/3").text == "a c"


def test_desktop_html_bad_message_id_costs_only_that_message(tmp_path, store, fixtures):
    page = (fixtures / "tg_html" / "ChatExport_2024-03-20" / "messages.html").read_text(encoding="utf-8")
    full = Store(tmp_path / "full")
    expected = ingest(full, [fixtures / "tg_html" / "ChatExport_2024-03-20" / "messages.html"]).posts
    write(tmp_path / "in" / "messages.html", page.replace('id="message2"', 'id="message99999999999999999999"'))
    report = ingest(store, [tmp_path / "in" / "messages.html"])
    assert len(report.errors) == 1 and "messages.html:message 99999999999999999999" in report.errors[0]
    assert report.posts == expected - 1


# -- Post: the edge --------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("views", 2 ** 63), ("reply_to", -(2 ** 63) - 1), ("views", float("inf")), ("views", float("nan")),
    ("views", 1.5), ("views", [1]), ("message_ids", ("a",)), ("message_ids", "12"), ("message_ids", (2 ** 64,)),
    ("links", 5), ("links", "https://a.example"), ("media", [["photo"]]), ("reactions", {"x": float("inf")}),
    ("reactions", [1]), ("date", 1e20), ("date", float("nan")), ("edit_date", "вчера"), ("date", [2024]),
    ("title", ["t"]), ("text", None),
])
def test_post_refuses_what_the_store_cannot_hold(field, value):
    with pytest.raises(ValueError) as info:
        Post(**{"id": "c/1", "channel": "c", "text": "t", field: value})
    assert field in str(info.value)


def test_post_coerces_what_it_can():
    post = Post(id="c/1", channel="c", text="t", views=12.0, message_ids=["5", 6.0], reply_to="7",
                date="2025-05-01T12:00:00+05:00", reactions={"👍": 2.0}, author=None, links=["https://a.example"])
    assert (post.views, post.message_ids, post.reply_to, post.reactions, post.author) == (12, (5, 6), 7, {"👍": 2}, "")
    assert post.date.isoformat() == "2025-05-01T07:00:00+00:00"
    assert Post(id="c/2", channel="c", text="t", views=2 ** 63 - 1).views == 2 ** 63 - 1


def test_parse_datetime_out_of_range_is_a_value_error():
    for value in (1e20, -1e20, float("inf"), "9999-12-31T23:00:00-05:00", 10 ** 30):
        with pytest.raises(ValueError):
            parse_datetime(value)
    assert "milliseconds" in _message(lambda: parse_datetime(1716900000000))


def _message(fn) -> str:
    try:
        fn()
    except ValueError as e:
        return str(e)
    return ""


# -- byte order marks -------------------------------------------------------------------------

def _samples(fixtures: Path) -> dict[str, tuple[str, str]]:
    return {
        "posts.jsonl": ("jsonl", "\n".join(good_line(i) for i in range(1, 4)) + "\n"),
        "dump.json": ("telethon-json", json.dumps([telethon(i) for i in range(1, 4)], ensure_ascii=False)),
        "result.json": ("tg-desktop-json", desktop_export([json.dumps(desktop_message(i), ensure_ascii=False) for i in range(1, 4)])),
        "messages.html": ("tg-desktop-html", (fixtures / "tg_html" / "ChatExport_2024-03-20" / "messages.html").read_text(encoding="utf-8")),
        "digest_dump.txt": ("text-dump", (fixtures / "text" / "digest_dump.txt").read_text(encoding="utf-8")),
        "analysis.txt": ("article", (fixtures / "articles" / "analysis.txt").read_text(encoding="utf-8")),
        "page.html": ("article", (fixtures / "articles" / "page.html").read_text(encoding="utf-8")),
    }


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "utf-8"])
def test_byte_order_marks_are_read_by_every_text_reader(tmp_path, fixtures, codec):
    import codecs

    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE, "utf-32-le": codecs.BOM_UTF32_LE,
           "utf-32-be": codecs.BOM_UTF32_BE, "utf-8": codecs.BOM_UTF8}[codec]
    for name, (fmt, text) in _samples(fixtures).items():
        plain = Store(tmp_path / "plain" / name)
        expected = ingest(plain, [write(tmp_path / "utf8" / name, text)])
        assert expected.posts and not expected.errors, (name, expected.errors)
        marked = Store(tmp_path / "marked" / name)
        report = ingest(marked, [write(tmp_path / codec / name, bom + text.encode(codec))])
        assert report.errors == [] and report.files[0].format == fmt, (name, report.errors)
        assert sorted((p.id, p.text) for p in marked.iter_posts()) == sorted((p.id, p.text) for p in plain.iter_posts()), name


def test_bad_utf16_is_one_clear_line(tmp_path, store):
    import codecs

    data = codecs.BOM_UTF16_LE + "[{\"message_id\": 1, \"text\": \"x\"}]".encode("utf-16-le") + b"\x00\xd8"
    write(tmp_path / "dump.json", data)
    report = ingest(store, [tmp_path / "dump.json"])
    assert len(report.errors) == 1 and "dump.json" in report.errors[0] and "binary" not in report.errors[0]


# -- the per-file guard ----------------------------------------------------------------------

def _fake_reader(monkeypatch, name: str, read):
    real = ingest_module.detect

    def detect(path, encoding=None):
        if path.name == name:
            return SimpleNamespace(NAME="fake", read=read)
        return real(path, encoding)

    monkeypatch.setattr(ingest_module, "detect", detect)


def _posts(path, n, start=1):
    return [Post(id=f"fake/{i}", channel="fake", text=f"пост {i}", origin_file=str(path)) for i in range(start, start + n)]


def test_reader_stuck_inside_a_record_is_stopped_and_the_batch_goes_on(tmp_path, store, monkeypatch):
    def read(path, ctx):
        yield from _posts(path, 2)
        while True:  # stuck in one record: never yields again
            pass

    _fake_reader(monkeypatch, "stuck.txt", read)
    write(tmp_path / "in" / "a.jsonl", good_line(1) + "\n")
    write(tmp_path / "in" / "stuck.txt", "x")
    write(tmp_path / "in" / "z.jsonl", good_line(2) + "\n")
    report = ingest(store, [tmp_path / "in"], timeout=0.5)
    assert len(report.errors) == 1 and "stuck.txt" in report.errors[0] and "longer than 0.5 s" in report.errors[0]
    assert store.count() == 4 and store.get("fake/2")


def test_reader_over_budget_is_stopped_between_records_off_the_main_thread(tmp_path, monkeypatch):
    import threading

    def read(path, ctx):
        for post in _posts(path, 10_000):
            time.sleep(0.01)
            yield post

    _fake_reader(monkeypatch, "slow.txt", read)
    write(tmp_path / "slow.txt", "x")
    out = {}

    def run():
        st = Store(tmp_path / "db")
        out["report"] = ingest(st, [tmp_path / "slow.txt"], timeout=0.3)
        out["count"] = st.count()
        st.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    report = out["report"]
    assert len(report.errors) == 1 and "longer than 0.3 s" in report.errors[0]
    assert 0 < out["count"] == report.posts < 10_000


def test_reader_crash_costs_only_its_file_and_keeps_earlier_posts(tmp_path, store, monkeypatch):
    def read(path, ctx):
        yield from _posts(path, 3)
        raise OverflowError("cannot convert float infinity to integer")

    _fake_reader(monkeypatch, "crash.txt", read)
    write(tmp_path / "in" / "crash.txt", "x")
    write(tmp_path / "in" / "z.jsonl", good_line(2) + "\n")
    report = ingest(store, [tmp_path / "in"])
    assert len(report.errors) == 1 and "crash.txt" in report.errors[0] and "OverflowError" in report.errors[0]
    assert store.count() == 4


def test_a_value_the_store_refuses_costs_only_that_post(tmp_path, store, monkeypatch):
    def read(path, ctx):
        posts = _posts(path, 5)
        object.__setattr__(posts[2], "views", 2 ** 70)  # got past Post's checks somehow
        yield from posts

    _fake_reader(monkeypatch, "bad.txt", read)
    write(tmp_path / "bad.txt", "x")
    report = ingest(store, [tmp_path / "bad.txt"])
    assert len(report.errors) == 1 and "fake/3" in report.errors[0] and "bad.txt" in report.errors[0]
    assert store.count() == 4 and report.posts == 4


def test_size_limit_for_readers_that_hold_a_whole_file(tmp_path, store):
    write(tmp_path / "in" / "dump.json", json.dumps([telethon(i) for i in range(1, 40)], ensure_ascii=False))
    write(tmp_path / "in" / "posts.jsonl", "\n".join(good_line(i) for i in range(1, 40)) + "\n")
    report = ingest(store, [tmp_path / "in"], max_bytes=1000)
    assert len(report.errors) == 1 and "dump.json" in report.errors[0] and "too large" in report.errors[0]
    assert store.count() == 39  # JSON Lines stream: no limit


# -- channel names ------------------------------------------------------------------------------

def test_channel_name_rule():
    for raw in ("RiverDaily", "@RiverDaily", " riverdaily ", "https://t.me/RiverDaily", "t.me/s/RiverDaily/"):
        assert channel_name(raw) == "riverdaily"
    assert channel_name("Степной Вестник") == "степной_вестник"
    assert channel_name("", "jsonl") == "jsonl" and channel_name(None, "web") == "web"


def test_one_channel_rule_for_jsonl_option_and_telethon(tmp_path):
    write(tmp_path / "a.jsonl", json.dumps({"id": 1, "channel": "RiverDaily", "text": "Первый"}, ensure_ascii=False) + "\n")
    write(tmp_path / "b.jsonl", json.dumps({"id": 2, "text": "Второй"}, ensure_ascii=False) + "\n")
    write(tmp_path / "c.json", json.dumps([{"message_id": 3, "username": "@RiverDaily", "channel": "River Daily",
                                            "text": "Третий"}], ensure_ascii=False))
    db = str(tmp_path / "db")
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(tmp_path / "a.jsonl"), str(tmp_path / "c.json"), "--db", db]).exit_code == 0
    assert runner.invoke(main, ["ingest", str(tmp_path / "b.jsonl"), "--db", db, "--channel", "RiverDaily"]).exit_code == 0
    posts = list(Store(tmp_path / "db").iter_posts())
    assert {p.channel for p in posts} == {"riverdaily"}
    assert sorted(p.id for p in posts) == ["riverdaily/1", "riverdaily/2", "riverdaily/3"]


# -- refreshed counters ----------------------------------------------------------------------

def test_views_only_change_is_refreshed_not_updated(tmp_path):
    path = tmp_path / "posts.jsonl"
    line = {"id": 1, "channel": "river", "date": "2025-05-01T10:00:00Z", "text": "Новость", "views": 10}
    write(path, json.dumps(line, ensure_ascii=False) + "\n" + good_line(2) + "\n")
    db = tmp_path / "db"
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(path), "--db", str(db)]).exit_code == 0
    store = Store(db)
    version = store.conn.execute("SELECT version FROM posts WHERE id='river/1'").fetchone()[0]
    write(path, json.dumps(dict(line, views=25), ensure_ascii=False) + "\n" + good_line(2) + "\n")
    result = runner.invoke(main, ["ingest", str(path), "--db", str(db), "--json"])
    summary = json.loads(result.stdout)
    assert (summary["new"], summary["updated"], summary["refreshed"], summary["unchanged"]) == (0, 0, 1, 1)
    assert tuple(store.conn.execute("SELECT version, views FROM posts WHERE id='river/1'").fetchone()) == (version, 25)
    write(path, json.dumps(dict(line, views=30), ensure_ascii=False) + "\n")
    text = runner.invoke(main, ["ingest", str(path), "--db", str(db)])
    assert "refreshed: 1" in text.stdout and "updated: 0" in text.stdout
    store.close()
