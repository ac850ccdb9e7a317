"""Telegram Desktop HTML export reader (tg-desktop-html)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from testdata import FIXTURES
from tgsearch.errors import InputError
from tgsearch.ingest import ingest
from tgsearch.sources import ReadContext, detect, tg_html

EXPORT = FIXTURES / "tg_html" / "ChatExport_2024-03-20"
PAGE1 = EXPORT / "messages.html"
PAGE2 = EXPORT / "messages2.html"
GROUP = FIXTURES / "tg_html" / "GroupExport_2019" / "messages.html"
SLUG = "html-вестник-степи"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def read_all(path: Path) -> tuple[dict, ReadContext]:
    ctx = ReadContext(origin_file=str(path))
    return {p.message_ids[0]: p for p in tg_html.read(path, ctx)}, ctx


def test_first_page_messages_and_fields():
    posts, ctx = read_all(PAGE1)
    assert not ctx.errors and not ctx.warnings
    # service messages (date separator, "created", "pinned") are skipped
    assert sorted(posts) == [2, 3, 4, 5]
    lead = posts[2]
    assert lead.id == f"{SLUG}/2" and lead.channel == SLUG
    assert lead.channel_title == "Вестник Степи"
    assert lead.date == utc(2024, 3, 15, 11, 5, 0)  # 14:05 at UTC+03:00
    assert lead.title == "Парламент одобрил поправки о выборах акимов"
    assert lead.text.startswith("Парламент одобрил поправки о выборах акимов\n\nДепутаты приняли закон")
    assert "Подробности на сайте палаты.\nЦитата из зала:" in lead.text
    assert lead.links == ("https://parlam.example.kz/news/417",)
    assert lead.reactions == {"👍": 12, "⭐": 5, "🔥": 3}
    assert lead.author == ""  # the channel itself
    assert lead.url == ""  # no chat id or username in an HTML export: no t.me link is invented


def test_escaped_script_in_a_message_stays_literal_text():
    lead = read_all(PAGE1)[0][2]
    assert 'Цитата из зала: <script>alert("взлом")</script> & «ничего не случилось»' in lead.text
    # no markup of the page itself leaks into the text
    for tag in ("<strong>", "<a ", "<br", "</div>", "class="):
        assert tag not in lead.text


def test_continuations_forwards_replies_and_signatures():
    posts, _ = read_all(PAGE1)
    assert posts[3].media == ("photo",) and posts[3].text == "Фото с заседания"
    forward = posts[4]
    assert forward.forwarded_from == "Ташкентский курьер"
    assert forward.text == "Министр подтвердил визит в Ташкент, подробности: tashkent-news.example.uz/visit"
    assert forward.links == ("https://tashkent-news.example.uz/visit",)
    assert forward.date == utc(2024, 3, 15, 13, 0, 0)  # the repost's own date, not the original's
    reply = posts[5]
    assert reply.reply_to == 4
    assert reply.author == "Айгерим С."


def test_second_page_continues_the_same_channel_with_media():
    posts, ctx = read_all(PAGE2)
    assert not ctx.errors
    assert sorted(posts) == [7, 8, 9, 10, 11, 12]
    assert {p.channel for p in posts.values()} == {SLUG}
    assert posts[7].media == ("file",) and posts[7].text == "doklad_o_byudzhete_2024.pdf"
    assert posts[8].media == ("voice",) and posts[8].text == ""
    assert posts[9].media == ("poll",) and posts[9].text == "Пойдёте ли вы на выборы?\n- Да\n- Нет"
    assert posts[10].media == ("round_video",)
    assert posts[11].media == ("sticker",)
    assert posts[12].media == ("video",) and posts[12].reactions == {"❤": 7}
    assert posts[12].date == utc(2024, 3, 16, 9, 0, 0)


def test_group_page_joined_messages_inherit_the_sender_and_dates_without_offset_are_utc():
    posts, _ = read_all(GROUP)
    assert sorted(posts) == [101, 102, 103]
    assert posts[101].author == "Марат"
    assert posts[102].author == "Марат"  # "joined" continuation of the same sender
    assert posts[103].author == "Дина" and posts[103].reply_to == 101
    assert posts[101].date == utc(2019, 4, 1, 10, 5, 0)
    assert posts[103].text == "Обещали к вечеру пятницы.\nПротоколы будут на сайте комиссии."
    assert posts[101].channel == "html-степной-чат"


def test_title_dates():
    assert tg_html.parse_title_date("12.11.2020 12:54:07 UTC+03:00") == utc(2020, 11, 12, 9, 54, 7)
    west = tg_html.parse_title_date("01.02.2021 08:00:00 UTC-05:30")
    assert west.utcoffset() == -timedelta(hours=5, minutes=30)
    assert tg_html.parse_title_date("12.11.2020 12:54:07") == utc(2020, 11, 12, 12, 54, 7)
    assert tg_html.parse_title_date("вчера") is None


def test_detection_and_non_export_pages(tmp_path):
    for page in (PAGE1, PAGE2, GROUP):
        assert detect(page).NAME == "tg-desktop-html"
    article = tmp_path / "article.html"
    article.write_text("<html><body><div class='page_wrap'><p>Статья</p></div></body></html>", encoding="utf-8")
    assert not tg_html.sniff(article, article.read_text())
    assert not tg_html.sniff(tmp_path / "messages.txt", PAGE1.read_text())


def test_page_without_header_is_an_input_error(tmp_path):
    page = tmp_path / "messages.html"
    page.write_text(PAGE1.read_text(encoding="utf-8").replace('class="page_header"', 'class="nothing"'),
                    encoding="utf-8")
    with pytest.raises(InputError) as info:
        list(tg_html.read(page, ReadContext(origin_file=str(page))))
    assert info.value.path == str(page) and "title" in info.value.problem


def test_ingest_export_folder(store):
    report = ingest(store, [EXPORT, GROUP])
    assert not report.errors
    assert report.by_format() == {"tg-desktop-html": 13}
    assert store.get(f"{SLUG}/12").origin_file == str(PAGE2)
    assert store.get(f"{SLUG}/2").reactions == {"👍": 12, "⭐": 5, "🔥": 3}
    assert store.get("html-степной-чат/102").author == "Марат"


def test_list_pages_of_an_account_export_give_no_posts_and_a_warning(tmp_path):
    page = tmp_path / "chats.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"/><title>Exported Data</title>'
        '<script src="../js/script.js" type="text/javascript"></script></head>'
        '<body onload="CheckLocation();"><div class="page_wrap"><div class="page_header"><div class="content">'
        '<div class="text bold">Чаты</div></div></div><div class="page_body list_page"><div class="entry_list">'
        '<a class="entry block_link clearfix" href="../chats/chat_01/messages.html"><div class="body">'
        '<div class="name bold">Степной чат</div><div class="details_entry details">3 сообщения</div>'
        '</div></a></div></div></div></body></html>', encoding="utf-8")
    assert detect(page).NAME == "tg-desktop-html"
    ctx = ReadContext(origin_file=str(page))
    assert list(tg_html.read(page, ctx)) == []
    assert len(ctx.warnings) == 1 and "not a chat" in ctx.warnings[0]
