"""Telegram Desktop JSON export reader (tg-desktop-json)."""

from __future__ import annotations

import json
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import pytest

from testdata import FIXTURES, shared_path
from tgsearch.errors import InputError
from tgsearch.ingest import ingest
from tgsearch.sources import ReadContext, detect, tg_json

CHANNEL = FIXTURES / "tg_json" / "channel_result.json"
ACCOUNT = FIXTURES / "tg_json" / "account_result.json"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def read_all(path: Path) -> tuple[list, ReadContext]:
    ctx = ReadContext(origin_file=str(path))
    return list(tg_json.read(path, ctx)), ctx


def old_export() -> Path:
    return shared_path("data", "tg-desktop-json", "tg2md_test_channel_result.json")


def test_old_schema_export_reads_every_message_but_the_service_one():
    path = old_export()
    posts, ctx = read_all(path)
    assert not ctx.errors
    # 19 messages, one of them the "create_channel" service message
    assert len(json.loads(path.read_text())["messages"]) == 19
    ids = [p.message_ids[0] for p in posts]
    assert ids == [2, 3, 4, 5, 7, 8, 9, 10, 11, 13, 14, 15, 21, 22, 23, 24, 25, 26]
    by_id = {p.message_ids[0]: p for p in posts}
    first = by_id[2]
    assert first.id == "c1292077344/2"
    assert first.channel == "c1292077344"
    assert first.channel_title == "test"
    assert first.text == "test text post"
    assert first.date == utc(2020, 11, 12, 12, 54, 7)  # no offset in the old schema: taken as UTC
    assert first.kind == "post" and first.origin_file == str(path)
    assert first.url == "https://t.me/c/1292077344/2"


def test_old_schema_entities_edits_and_media():
    posts, _ = read_all(old_export())
    by_id = {p.message_ids[0]: p for p in posts}
    # text given as a list of strings and {type, text} parts
    assert by_id[9].text == "italic in text\n\nitalic on whole line"
    assert by_id[10].text.startswith("bold in text\nbold below\n\nnormal text")
    assert by_id[5].edit_date == utc(2020, 11, 12, 13, 3, 0)
    assert by_id[2].edit_date is None
    # a text_link keeps its href, a bare link becomes a URL
    assert by_id[14].links == ("http://example.com/", "https://example.com")
    assert by_id[14].text == "text link\n\nexample.com\n\nexample@example.com"
    # media-only messages are kept with an empty text
    assert by_id[3].media == ("photo",) and by_id[3].text == ""
    assert by_id[4].media == ("photo",) and by_id[4].text == "photo with text"
    assert by_id[7].media == ("voice",)
    assert by_id[8].media == ("audio",) and by_id[8].text == "test-sound.ogg"
    assert by_id[22].media == ("file",) and by_id[22].text == "test file other than sound"
    assert by_id[21].text == "тестирование utf-8." and by_id[21].language == "ru"


def test_new_schema_channel():
    posts, ctx = read_all(CHANNEL)
    assert not ctx.errors
    by_id = {p.message_ids[0]: p for p in posts}
    # service messages 1 (create_channel) and 6 (pin_message) are skipped
    assert sorted(by_id) == [2, 3, 4, 5, 7, 8, 9, 10, 11, 12]
    lead = by_id[2]
    assert lead.id == "c1877001234/2"
    assert lead.channel_title == "Вестник Степи"
    # date_unixtime wins over the local-time "date" (written on a UTC+3 machine)
    assert lead.date == utc(2024, 3, 15, 11, 5, 0)
    assert lead.edit_date == utc(2024, 3, 15, 11, 20, 30)
    assert lead.title == "Парламент одобрил поправки о выборах акимов"
    assert "Подробности на сайте палаты. Обсуждение в @stepnoy_chat и #выборы" in lead.text
    assert lead.links == ("https://parlam.example.kz/news/417",)
    assert lead.reactions == {"👍": 12, "🔥": 3, "custom_emoji": 2, "⭐": 5}
    assert lead.author == ""  # posted as the channel itself

    assert by_id[4].forwarded_from == "Ташкентский курьер"
    assert by_id[4].links == ("https://tashkent-news.example.uz/visit",)
    assert by_id[5].reply_to == 4
    assert by_id[5].author == "Айгерим С."
    assert by_id[3].media == ("photo",) and by_id[3].text == "Фото с заседания"


def test_new_schema_media_only_messages():
    by_id = {p.message_ids[0]: p for p in read_all(CHANNEL)[0]}
    # a document not downloaded with the export is named by file_name
    assert by_id[7].media == ("file",) and by_id[7].text == "doklad_o_byudzhete_2024.pdf"
    assert by_id[8].media == ("voice",) and by_id[8].text == ""
    assert by_id[9].media == ("poll",)
    assert by_id[9].text == "Пойдёте ли вы на выборы?\n- Да\n- Нет\n- Ещё не решил"
    assert by_id[10].media == ("round_video",)
    assert by_id[11].media == ("sticker",) and by_id[11].text == "😂"
    assert by_id[12].media == ("video",) and by_id[12].text == "Итоги недели в видео"


def test_whole_account_export_reads_chats_and_left_chats():
    posts, ctx = read_all(ACCOUNT)
    assert not ctx.errors
    assert [p.id for p in posts] == ["c1900005555/101", "c1900005555/102", "c1700000077/5"]
    ask, answer, left = posts
    assert ask.channel_title == answer.channel_title == "Степной чат"
    assert ask.author == "Марат" and answer.author == "Дина"
    assert answer.reply_to == 101 and answer.reactions == {"🙏": 4}
    assert left.channel_title == "Старый канал новостей"
    assert left.date == utc(2023, 12, 31, 20, 50, 0)


def test_chat_ids_with_a_minus_100_prefix_lose_it():
    assert tg_json.chat_slug(-1001877001234) == "c1877001234"
    assert tg_json.chat_slug(1877001234) == "c1877001234"


def test_truncated_export_yields_complete_messages_then_input_error(tmp_path):
    data = CHANNEL.read_bytes()
    cut_at = data.index(b'"id": 9,')  # in the middle of the messages array, inside message 9
    cut = tmp_path / "result.json"
    cut.write_bytes(data[:cut_at + 20])
    ctx = ReadContext(origin_file=str(cut))
    got = []
    with pytest.raises(InputError) as info:
        for post in tg_json.read(cut, ctx):
            got.append(post.message_ids[0])
    assert got == [2, 3, 4, 5, 7, 8]
    err = info.value
    assert err.path == str(cut)
    assert err.position == f"byte {cut_at + 20}"
    assert "truncated" in err.hint and "re-export" in err.hint
    assert "after message 8" in err.problem


def test_malformed_export_raises_input_error_after_the_good_messages(tmp_path):
    data = CHANNEL.read_bytes()
    at = data.index(b'"id": 5,')
    bad = tmp_path / "result.json"
    bad.write_bytes(data[:at] + b"}}} oops " + data[at:])
    ctx = ReadContext(origin_file=str(bad))
    got = []
    with pytest.raises(InputError) as info:
        for post in tg_json.read(bad, ctx):
            got.append(post.message_ids[0])
    assert got == [2, 3, 4]
    assert "malformed JSON" in info.value.problem
    assert info.value.position.startswith("bytes ")


def test_detection_picks_the_desktop_reader_and_not_for_telethon_arrays(tmp_path):
    assert detect(CHANNEL).NAME == "tg-desktop-json"
    assert detect(ACCOUNT).NAME == "tg-desktop-json"
    assert detect(old_export()).NAME == "tg-desktop-json"
    telethon = '[{"message_id": 1, "channel": "x", "date": "2024-01-01T00:00:00", "text": "привет"}]'
    assert not tg_json.sniff(Path("dump.json"), telethon)
    assert not tg_json.sniff(Path("notes.json"), '{"messages": ["not", "an", "export"]}')
    assert not tg_json.sniff(Path("result.txt"), CHANNEL.read_text()[:2000])


def test_ingest_into_store(store, tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    (export / "result.json").write_bytes(CHANNEL.read_bytes())
    report = ingest(store, [export])
    assert report.by_format() == {"tg-desktop-json": 10}
    assert not report.errors
    saved = store.get("c1877001234/5")
    assert saved.reply_to == 4 and saved.author == "Айгерим С."
    again = ingest(store, [export])
    assert again.total("unchanged") == 10


def test_ingest_of_a_truncated_export_keeps_what_was_read(store, tmp_path):
    data = CHANNEL.read_bytes()
    cut = tmp_path / "result.json"
    cut.write_bytes(data[: data.index(b'"id": 9,')])
    report = ingest(store, [cut])
    assert report.posts == 6 and store.count() == 6
    assert len(report.errors) == 1 and "truncated" in report.errors[0]


def _write_big_export(path: Path, count: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"name": "Большой канал", "type": "public_channel", "id": 1555000111, "messages": [\n')
        for i in range(1, count + 1):
            record = {"id": i, "type": "message", "date": "2024-01-01T00:00:00",
                      "date_unixtime": str(1704067200 + i), "from": "Большой канал",
                      "text": f"Сообщение номер {i}: обзор прессы за день, заявления министров и комментарии",
                      "text_entities": [{"type": "plain", "text": f"Сообщение номер {i}: обзор прессы за день, "
                                                                  "заявления министров и комментарии"}]}
            f.write(("" if i == 1 else ",\n") + json.dumps(record, ensure_ascii=False))
        f.write("\n]}\n")


@pytest.mark.parametrize("count", [40_000, pytest.param(200_000, marks=pytest.mark.slow)])
def test_large_export_is_streamed_not_loaded(tmp_path, count):
    path = tmp_path / "result.json"
    _write_big_export(path, count)
    size = path.stat().st_size
    assert size > count * 300
    ctx = ReadContext(origin_file=str(path))
    tracemalloc.start()
    try:
        seen = 0
        last = None
        for post in tg_json.read(path, ctx):
            seen += 1
            last = post
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count and last.id == f"c1555000111/{count}"
    # Loading the file would need several times its size; streaming needs a few buffers.
    assert peak < size / 10, f"peak {peak} bytes for a {size}-byte export"
