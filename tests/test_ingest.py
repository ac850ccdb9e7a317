"""Collect path: formats through the real ingest, bad input, idempotence, the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tgsearch.cli import main
from tgsearch.ingest import ingest
from tgsearch.store import Store

TELETHON = [
    {"message_id": 12, "sender_id": -1001234567890, "text": "**Жаңалық**: Мажилис принял [закон](https://example.kz/law) о похищении невест",
     "date": "2025-05-28T10:00:00+00:00", "channel": "Новости Степи", "category": "political"},
    {"message_id": 11, "sender_id": -1001234567890, "text": "Вторая новость\n\nhttps://example.kz/2",
     "date": "2025-05-27T23:30:00+00:00", "channel": "Новости Степи", "category": "other"},
]


def write(path: Path, content, mode="w"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_telethon_json_posts_get_channel_dates_links(tmp_path, store):
    write(tmp_path / "in" / "chan.json", json.dumps(TELETHON, ensure_ascii=False))
    report = ingest(store, [tmp_path / "in"])
    assert report.posts == 2 and not report.errors
    post = store.get("c1234567890/12")
    assert post.channel_title == "Новости Степи"
    assert post.text.startswith("Жаңалық: Мажилис принял закон о похищении невест")
    assert "https://example.kz/law" in post.links
    assert post.date.isoformat() == "2025-05-28T10:00:00+00:00"
    assert post.url == "https://t.me/c/1234567890/12"
    assert post.language == "kk" or post.language == "ru"


def test_jsonl_documented_format_and_bad_line(tmp_path, store):
    lines = [
        json.dumps({"id": 1, "channel": "@my_chan", "date": "2025-05-01T12:00:00+05:00", "text": "Первый пост", "title": "Заголовок",
                    "url": "https://example.org/1", "author": "Иван", "views": 10, "reactions": {"👍": 3}}, ensure_ascii=False),
        "{not json",
        json.dumps({"channel": "my_chan", "text": "Без идентификатора"}, ensure_ascii=False),
        json.dumps({"id": 3, "channel": "my_chan"}),
    ]
    write(tmp_path / "posts.jsonl", "\n".join(lines) + "\n")
    report = ingest(store, [tmp_path / "posts.jsonl"])
    assert report.posts == 2
    errors = report.errors
    assert len(errors) == 2
    assert "posts.jsonl:line 2" in errors[0] and "malformed JSON" in errors[0]
    assert "posts.jsonl:line 4" in errors[1] and '"text"' in errors[1]
    first = store.get("my_chan/1")
    assert first.date.isoformat() == "2025-05-01T07:00:00+00:00"
    assert first.source_url == "https://example.org/1" and first.reactions == {"👍": 3}


def test_reingest_changes_nothing_and_edit_updates(tmp_path, store):
    path = write(tmp_path / "chan.json", json.dumps(TELETHON, ensure_ascii=False))
    ingest(store, [path])
    version = store.max_version()
    again = ingest(store, [path])
    assert (again.total("new"), again.total("updated"), again.total("unchanged")) == (0, 0, 2)
    assert store.max_version() == version
    edited = [dict(TELETHON[0], text="Исправленный текст"), TELETHON[1]]
    write(path, json.dumps(edited, ensure_ascii=False))
    third = ingest(store, [path])
    assert (third.total("new"), third.total("updated")) == (0, 1)
    assert store.get("c1234567890/12").text == "Исправленный текст"


BAD_INPUTS = {
    "empty.json": (b"", "file is empty"),
    "blob.bin": (bytes(range(256)) * 20, "binary file"),
    "cp1251.txt": ("Казахстан и Россия договорились о поставках угля. " * 5).encode("cp1251"),
    "truncated.json": (json.dumps(TELETHON, ensure_ascii=False)[:150].encode(), "malformed JSON"),
    "unknown.json": (b'{"foo": 1, "bar": [1, 2, 3]}', "unknown format"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_one_clear_line_and_the_rest_still_ingests(tmp_path, name):
    content = BAD_INPUTS[name]
    data, expected = (content, "not UTF-8") if isinstance(content, bytes) else content
    folder = tmp_path / "batch"
    write(folder / "a_good.json", json.dumps(TELETHON, ensure_ascii=False))
    write(folder / name, data)
    write(folder / "z_good.jsonl", json.dumps({"id": 5, "channel": "other", "text": "Текст"}, ensure_ascii=False) + "\n")
    runner = CliRunner()
    result = runner.invoke(main, ["ingest", str(folder), "--db", str(tmp_path / "db")])
    assert result.exit_code == 2, result.output
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    assert name in error_lines[0] and expected in error_lines[0]
    assert "posts: 3" in result.stdout
    store = Store(tmp_path / "db")
    assert store.count() == 3


def test_cp1251_file_ingests_with_encoding_option(tmp_path):
    path = write(tmp_path / "old.txt", ("Заголовок\nКазахстан и Россия договорились о поставках угля.\n").encode("cp1251"))
    runner = CliRunner()
    result = runner.invoke(main, ["ingest", str(path), "--db", str(tmp_path / "db"), "--encoding", "cp1251"])
    assert result.exit_code == 0, result.output
    assert Store(tmp_path / "db").count() == 1


def test_missing_path_is_reported(tmp_path):
    result = CliRunner().invoke(main, ["ingest", str(tmp_path / "nope.json"), "--db", str(tmp_path / "db")])
    assert result.exit_code == 2
    assert "nope.json" in result.stderr and "No such file" in result.stderr


def test_export_jsonl_and_csv_have_every_field(tmp_path):
    write(tmp_path / "chan.json", json.dumps(TELETHON, ensure_ascii=False))
    db = str(tmp_path / "db")
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(tmp_path / "chan.json"), "--db", db]).exit_code == 0
    out = runner.invoke(main, ["export", "--db", db, "--format", "jsonl"])
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 2
    for key in ("id", "channel", "date", "title", "text", "source_url", "publication", "author", "forwarded_from",
                "message_ids", "views", "reactions", "media", "kind", "origin_file", "url"):
        assert key in rows[0]
    csv_out = runner.invoke(main, ["export", "--db", db, "--format", "csv"])
    import csv, io
    table = list(csv.DictReader(io.StringIO(csv_out.stdout)))
    assert len(table) == 2 and table[0]["id"].startswith("c1234567890/")
    show = runner.invoke(main, ["show", "c1234567890/12", "--db", db])
    assert json.loads(show.stdout)["channel_title"] == "Новости Степи"
    stats = runner.invoke(main, ["stats", "--db", db, "--json"])
    assert json.loads(stats.stdout)["posts"] == 2


def test_cli_entry_point_runs_as_a_program(tmp_path):
    write(tmp_path / "chan.json", json.dumps(TELETHON, ensure_ascii=False))
    proc = subprocess.run([sys.executable, "-m", "tgsearch.cli", "ingest", str(tmp_path / "chan.json"), "--db", str(tmp_path / "db")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "posts: 2" in proc.stdout


def test_truncated_html_export_keeps_messages_before_the_cut_and_says_so(tmp_path, fixtures):
    page = (fixtures / "tg_html" / "ChatExport_2024-03-20" / "messages.html").read_text(encoding="utf-8")
    cut = page[: int(len(page) * 0.6)]
    write(tmp_path / "in" / "messages.html", cut)
    runner = CliRunner()
    result = runner.invoke(main, ["ingest", str(tmp_path / "in"), "--db", str(tmp_path / "db")])
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "messages.html" in errors[0] and "truncated" in errors[0]
    full = Store(tmp_path / "full")
    ingest(full, [fixtures / "tg_html" / "ChatExport_2024-03-20" / "messages.html"])
    kept = Store(tmp_path / "db").count()
    assert 0 < kept <= full.count()


def test_channel_option_names_inputs_that_carry_none(tmp_path):
    path = write(tmp_path / "dump.txt", "Заголовок поста\nКазахстан и Россия договорились о поставках угля.\n")
    write(tmp_path / "lines.jsonl", json.dumps({"id": 7, "text": "Строка без канала"}, ensure_ascii=False) + "\n")
    result = CliRunner().invoke(main, ["ingest", str(path), str(tmp_path / "lines.jsonl"), "--db", str(tmp_path / "db"),
                                       "--channel", "Степной вестник"])
    assert result.exit_code == 0, result.output
    posts = list(Store(tmp_path / "db").iter_posts())
    assert {p.channel_title for p in posts} == {"Степной вестник"}
    assert len({p.channel for p in posts}) == 1
