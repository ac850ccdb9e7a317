"""Cleaning rules (chrome, stitching, digest headers) and the text-dump reader on invented fixtures."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from tgsearch.clean import chrome, digest, stitch
from tgsearch.ingest import ingest
from tgsearch.sources import ReadContext, detect, text_dump


def utc(y, m, d):
    return datetime(y, m, d, tzinfo=timezone.utc)


# -- digest -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("21.04.2025 г.", utc(2025, 4, 21)),
    ("4.06.2025", utc(2025, 6, 4)),
    ("18 августа 2025 г.", utc(2025, 8, 18)),
    ("1 мая 2024", utc(2024, 5, 1)),
    ("3 марта 2024", utc(2024, 3, 3)),
    ("2025-05-12", utc(2025, 5, 12)),
    ("August 18, 2025", utc(2025, 8, 18)),
    ("18 Aug 2025", utc(2025, 8, 18)),
    ("31.02.2025", None),
    ("без даты", None),
])
def test_parse_date_forms(text, expected):
    assert digest.parse_date(text) == expected


def test_bare_date_lines():
    assert digest.is_bare_date("18 августа 2025 г.")
    assert digest.is_bare_date("2025-05-12 10:00")
    assert not digest.is_bare_date("Дождь шёл 18 августа 2025 г.")
    assert not digest.is_bare_date("Просто текст")


@pytest.mark.parametrize("value,expected", [
    ("The Northern Review (Канада)", ("The Northern Review", "Канада", "")),
    ("«Vista Sur» (раздел «Экономика»)", ("Vista Sur", "", "Экономика")),
    ("«Delta Post»", ("Delta Post", "", "")),
    ("HARBOR WEEKLY", ("HARBOR WEEKLY", "", "")),
])
def test_split_publication(value, expected):
    assert digest.split_publication(value) == expected


def test_field_of_recognises_labels_and_bare_urls():
    assert digest.field_of("Автор: Анна Ковач") == ("author", "Анна Ковач")
    assert digest.field_of("Ссылка:https://x.example/a") == ("url", "https://x.example/a")
    assert digest.field_of("https://x.example/a") == ("url", "https://x.example/a")
    assert digest.field_of("Дата: 2.03.2024") == ("date", "2.03.2024")
    assert digest.field_of("Просто строка текста") is None


def test_parse_digest_on_any_post_text():
    text = ("Издание: Lake Herald (Финляндия)\n\nОЗЁРА МЕЛЕЮТ,\nРЫБАКИ БЕСПОКОЯТСЯ\nКороткий подзаголовок о воде.\n\n"
            "Автор: Юхани Мяки (Финляндия)\nДата: 9 июня 2024 г.\nСсылка: https://lakeherald.example/lakes\n\n"
            "Тело статьи начинается здесь.\nИ продолжается.")
    header, body = digest.parse_digest(text)
    assert header.publication == "Lake Herald" and header.publication_country == "Финляндия"
    assert header.title == "ОЗЁРА МЕЛЕЮТ, РЫБАКИ БЕСПОКОЯТСЯ"
    assert header.author == "Юхани Мяки"
    assert header.date == utc(2024, 6, 9)
    assert header.source_url == "https://lakeherald.example/lakes"
    assert body == "Короткий подзаголовок о воде.\n\nТело статьи начинается здесь.\nИ продолжается."
    assert digest.parse_digest("Обычный пост\nбез шапки") == (None, "Обычный пост\nбез шапки")


def test_headline_ending_with_question_mark_does_not_swallow_the_lead():
    header = digest.parse_header(["Издание: X (Y)", "ЧТО ДАЛЬШЕ?", "Подзаголовок статьи.", "Дата: 1.01.2024",
                                  "Тело."])
    assert header.title == "ЧТО ДАЛЬШЕ?" and header.lead == ["Подзаголовок статьи."]
    assert header.body_start == 4


# -- chrome -----------------------------------------------------------------------------------

def test_chrome_lines():
    assert chrome.is_page_chrome("Telegram Group Search")
    assert chrome.is_page_chrome("Live stream finished (12 days)")
    assert chrome.is_page_chrome("2024/04/22 08:15:00")
    assert not chrome.is_page_chrome("Telegram Group Search — лучший поиск, пишет автор колонки")
    assert chrome.is_page_footer("HTML Embed Code:")
    assert chrome.is_media_placeholder("Please open Telegram to view this post")
    assert chrome.is_article_chrome("Paylaş")
    assert chrome.is_article_chrome("Эта статья также доступна на этих языках: Türkçe English")
    assert chrome.is_article_chrome("Фото из открытых источников")
    assert chrome.is_article_chrome("Фото: пресс-служба администрации")
    assert not chrome.is_article_chrome("Фотографы города провели выставку в старом депо, где раньше чинили трамваи.")
    assert chrome.is_related_heading("Читайте также:")


def test_reactions():
    assert chrome.is_reaction_line("👍12 🔥4")
    assert chrome.is_reaction_line("1")
    assert not chrome.is_reaction_line("1 мая")
    assert chrome.parse_reactions("👍12 🔥4") == {"👍": 12, "🔥": 4}
    assert chrome.parse_reactions("3") == {}


def test_cut_related_only_in_the_tail():
    lines = ["Заголовок", "Читайте также", "Абзац один.", "Абзац два.", "Абзац три.", "Похожие материалы", "Ссылка 1"]
    assert chrome.cut_related(lines) == lines[:5]


# -- stitch -----------------------------------------------------------------------------------

def test_collapse_repeats_keeps_headline_and_one_body():
    lines = ["Заголовок первый", "Абзац А достаточно длинный.", "Абзац Б тоже длинный.",
             "Абзац А достаточно длинный.", "Абзац Б тоже длинный.",
             "Одинокая строка",
             "Заголовок второй", "Второй пост, единственный абзац, повторён.", "Второй пост, единственный абзац, повторён."]
    segs = stitch.collapse_repeats(lines)
    assert [(s.repeated, s.lines) for s in segs] == [
        (True, lines[0:3]), (False, ["Одинокая строка"]), (True, lines[6:8])]


def test_short_equal_lines_are_not_a_teaser_pair():
    segs = stitch.collapse_repeats(["Имя", "Имя", "Текст"])
    assert [s.repeated for s in segs] == [False]


def test_split_stream_and_stitch_parts():
    lines = ["Часть один.", "⬇️⬇️⬇️", "👍5", "⬆️⬆️⬆️", "Часть два.", "🔚🔚🔚", "🔥1", "Другой пост.", "🔚🔚🔚"]
    msgs = stitch.split_stream(lines)
    assert [m.lines for m in msgs] == [["Часть один."], ["Часть два."], ["Другой пост."]]
    assert msgs[0].continues and msgs[1].continued and msgs[1].final
    assert msgs[0].reactions == {"👍": 5} and msgs[1].reactions == {"🔥": 1}
    groups = stitch.stitch(msgs)
    assert [[m.lines[0] for m in g] for g in groups] == [["Часть один.", "Часть два."], ["Другой пост."]]


def test_phrase_markers_only_count_at_message_edges():
    msg = stitch.trim_markers(stitch.Message(lines=["Продолжение", "Текст второй части.", "Продолжение следует"]))
    assert msg.continued and msg.continues and msg.lines == ["Текст второй части."]
    # In the middle of a message the word is just a word.
    assert not stitch.is_start_marker("Продолжение") and stitch.is_start_marker("Продолжение", at_start=True)
    assert stitch.is_end_marker("Продолжение 👇") and stitch.is_start_marker("Начало☝️")


def test_new_digest_header_breaks_a_continuation():
    msgs = [stitch.Message(lines=["Издание: A", "Текст"], continues=True), stitch.Message(lines=["Издание: B", "Текст"])]
    assert len(stitch.stitch(msgs, starts_post=digest.is_digest_start)) == 2


# -- the text-dump reader on invented dumps -----------------------------------------------------

def read_fixture(fixtures: Path, name: str):
    path = fixtures / "text" / name
    assert detect(path).NAME == "text-dump"
    ctx = ReadContext(origin_file=str(path))
    return list(text_dump.read(path, ctx)), ctx


def test_digest_dump(fixtures):
    posts, ctx = read_fixture(fixtures, "digest_dump.txt")
    assert not ctx.warnings and not ctx.errors
    assert [p.publication for p in posts] == ["The Northern Review", "Vista Sur", "Harbor Weekly", "Delta Post"]
    assert [p.publication_country for p in posts] == ["Канада", "", "Норвегия", ""]
    assert [p.author for p in posts] == ["", "Мигель Арройо", "Ингрид Сольберг", "Анна Ковач"]
    assert [p.date for p in posts] == [utc(2024, 2, 3), utc(2024, 3, 7), utc(2024, 3, 15), utc(2024, 4, 21)]
    assert [p.source_url for p in posts] == [
        "https://northern-review.example/2024/02/lake-fishing", "https://vistasur.example/economia/puente-laguna",
        "https://harborweekly.example/ports-winter", "https://deltapost.example/news/river-ferries"]
    assert posts[2].title == "ПОРТЫ СЕВЕРА ГОТОВЯТСЯ К ЗИМЕ, ЛЕДОКОЛЫ ВЫХОДЯТ РАНЬШЕ СРОКА"
    first = posts[0]
    assert first.title == "КАК МЕНЯЕТСЯ РЫБНЫЙ ПРОМЫСЕЛ НА БОЛЬШИХ ОЗЁРАХ?"
    assert first.text.startswith(first.title + "\nРыболовецкие артели")
    for part in ("Первый абзац", "Зимний лов", "Четвёртый абзац", "Пятый абзац"):
        assert part in first.text
    assert first.reactions == {"👍": 10, "🔥": 2}
    # The article without an end marker stops at the next header.
    assert posts[2].text.endswith("встал уже в ноябре.")
    everything = "\n".join(p.text for p in posts)
    for junk in ("⬇️", "⬆️", "🔚", "Live stream", "Back to Top", "HTML Embed", "iframe", "Telegram Group Search",
                 "2024/04/22", "Издание:", "Дата:", "Ссылка"):
        assert junk not in everything
    assert all(p.channel == "digest_dump" and p.kind == "post" and p.message_ids == () for p in posts)


def test_teaser_page(fixtures):
    posts, _ = read_fixture(fixtures, "teaser_page.txt")
    assert [p.title for p in posts] == [
        "Фермеры долины получили новые семена: урожай обещают к осени",
        "Городской совет закрыл старый рынок на ремонт",
        "",
        "Мосты и дороги: что изменится в области к зиме",
        "Почему школьные автобусы опаздывают: разбор одной недели",
        "Библиотека открыла читальный зал после ремонта"]
    farmers, market, forward, bridges, buses, library = posts
    assert farmers.text.count("В долине Серебряной реки") == 1 and "\n***\n" in farmers.text
    assert market.text.count("Старый крытый рынок") == 1
    # The one name the page prints above a post it cannot show is the page's own channel:
    # that post is the channel's own (a forward would say "Forwarded from").
    assert {p.channel_title for p in posts} == {"Вечерний обозреватель"} and farmers.channel == "teaser_page"
    assert forward.forwarded_from == "" and forward.media == ("media",)
    assert forward.text.startswith("Новый маршрут трамвая") and "VIEW IN TELEGRAM" not in forward.text
    # The link preview under a post: kept as its preview fields, not as text and not dropped.
    assert bridges.media == ("webpage",) and "Областной вестник" not in bridges.text
    assert "Telegram" not in bridges.text.split("\n")
    assert (bridges.preview_site, bridges.preview_title) == ("Telegram", "Областной вестник")
    assert bridges.preview_description.startswith("🚧 Ремонт моста на Кленовой улице")
    assert all(not p.preview_site for p in posts if p is not bridges)
    assert "Два автобуса из трёх" in buses.text and "Перевозчики просят" in buses.text
    assert "Продолжение" not in buses.text and "Начало" not in buses.text
    assert buses.text.count("Мы проследили") == 1
    assert len({p.id for p in posts}) == 6


def test_page_of_forwards_from_several_channels(fixtures):
    posts, ctx = read_fixture(fixtures, "forwards_page.txt")
    assert not ctx.warnings and not ctx.errors
    assert len(posts) == 6
    # Two different names above the posts the page cannot show: forwards, and nothing names the page.
    assert [p.forwarded_from for p in posts if p.media == ("media",)] == ["Речной дозор", "Лесной патруль"]
    assert {p.channel_title for p in posts} == {"unnamed dump: forwards_page.txt"}
    assert {p.channel for p in posts} == {"forwards_page"}
    bridge = next(p for p in posts if p.title.startswith("Мост через протоку"))
    # A two-line preview: the site, then a cut-off description (no title line).
    assert (bridge.preview_site, bridge.preview_title) == ("Telegram", "")
    assert bridge.preview_description.startswith("❗️Дорожники обещают") and "Дорожники" not in bridge.text
    assert bridge.media == ("webpage",)


def test_dump_naming_no_channel_says_so(fixtures):
    posts, _ = read_fixture(fixtures, "digest_dump.txt")
    assert {p.channel_title for p in posts} == {"unnamed dump: digest_dump.txt"}
    group, _ = read_fixture(fixtures, "group_copy.txt")  # several senders: a group, not named
    assert {p.channel_title for p in group} == {"unnamed dump: group_copy.txt"}


def test_own_name_line_under_a_named_channel_is_not_a_forward(tmp_path):
    body = ["Первый абзац поста о новой набережной, довольно длинный.", "Второй абзац о скамейках и фонарях."]
    path = tmp_path / "page.txt"
    path.write_text("\n".join(["Канал: Городские вести", "Набережная открыта", *body, *body, "Городские вести",
                               "Парк у реки закрыт на зиму Ворота парка закроют в понедельник…",
                               "Please open Telegram to view this post", "VIEW IN TELEGRAM"]), encoding="utf-8")
    posts = list(text_dump.read(path, ReadContext(origin_file=str(path))))
    assert [(p.forwarded_from, p.media) for p in posts] == [("", ()), ("", ("media",))]
    assert {p.channel_title for p in posts} == {"Городские вести"}


def test_named_channel_and_reactions(fixtures):
    posts, _ = read_fixture(fixtures, "parts_dump.txt")
    assert [p.channel_title for p in posts] == ["Горный вестник"] * 2
    assert posts[0].channel == "горный_вестник" and posts[0].id.startswith("горный_вестник/h")
    assert posts[0].reactions == {"👍": 12, "🔥": 4, "❤️": 5}
    assert "Спасатели дежурят" in posts[0].text and "Канал:" not in posts[0].text
    assert posts[1].title == "Лавинная опасность снижена" and posts[1].reactions == {}


def test_desktop_copy_of_a_channel(fixtures):
    posts, _ = read_fixture(fixtures, "desktop_copy.txt")
    assert [p.date for p in posts] == [datetime(2024, 3, 12, 9, 15, tzinfo=timezone.utc),
                                       datetime(2024, 3, 12, 12, 40, tzinfo=timezone.utc),
                                       datetime(2024, 3, 12, 18, 5, tzinfo=timezone.utc),
                                       datetime(2024, 3, 13, 8, 0, tzinfo=timezone.utc)]
    assert {p.channel_title for p in posts} == {"Городские новости"} and posts[0].channel == "городские_новости"
    assert posts[0].text.startswith("Утренний выпуск") and "[12.03.2024" not in posts[0].text
    assert posts[1].forwarded_from == "Транспорт города" and posts[1].text.startswith("С понедельника")
    assert posts[2].media == ("photo",) and "[ Photo ]" not in posts[2].text
    assert posts[3].media == ("video",) and posts[3].text == ""
    assert all(p.author == "" for p in posts)


def test_desktop_copy_of_a_group_keeps_senders(fixtures):
    posts, _ = read_fixture(fixtures, "group_copy.txt")
    assert [(p.author, p.date.hour, p.date.minute) for p in posts] == [("Анна К.", 9, 5), ("Борис", 9, 7)]
    assert posts[0].channel == "group_copy"


def test_placeholder_after_a_repeated_post_is_its_media(tmp_path):
    path = tmp_path / "page.txt"
    body = ["Первый абзац поста с фотографией моста.", "Второй абзац поста про мост и реку."]
    path.write_text("\n".join(["Мост покрасили", *body, *body, "VIEW IN TELEGRAM",
                               "Другой пост", "Совсем другой текст о парке и фонтане.",
                               "Совсем другой текст о парке и фонтане."]), encoding="utf-8")
    posts = list(text_dump.read(path, ReadContext(origin_file=str(path))))
    assert [(p.title, p.media) for p in posts] == [("Мост покрасили", ("media",)), ("Другой пост", ())]


def test_channel_override(fixtures):
    path = fixtures / "text" / "teaser_page.txt"
    posts = list(text_dump.read(path, ReadContext(origin_file=str(path)), channel="@city_news"))
    assert {p.channel for p in posts} == {"city_news"}


def test_same_headline_twice_keeps_both(tmp_path):
    path = tmp_path / "dump.txt"
    path.write_text("Сводка дня\nУтром прошёл дождь.\n🔚🔚🔚\nСводка дня\nВечером выглянуло солнце.\n🔚🔚🔚\n",
                    encoding="utf-8")
    posts = list(text_dump.read(path, ReadContext(origin_file=str(path))))
    assert len(posts) == 2 and posts[1].id == posts[0].id + ".2"


def test_single_copied_digest_post_is_a_dump_post(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("Издание: Lake Herald (Финляндия)\nОЗЁРА МЕЛЕЮТ\nДата: 1.06.2024\nСсылка: https://lh.example/a\n"
                    "Текст статьи про озёра.\n", encoding="utf-8")
    assert detect(path).NAME == "text-dump"
    post, = text_dump.read(path, ReadContext(origin_file=str(path)))
    assert (post.publication, post.title, post.text) == ("Lake Herald", "ОЗЁРА МЕЛЕЮТ", "ОЗЁРА МЕЛЕЮТ\n\nТекст статьи про озёра.")


def test_plain_prose_is_not_a_dump(tmp_path):
    path = tmp_path / "essay.txt"
    path.write_text("Заголовок эссе\n\nПервый абзац эссе.\n\nВторой абзац эссе.\n", encoding="utf-8")
    assert detect(path).NAME == "article"


def test_reingesting_dumps_is_idempotent(fixtures, store):
    first = ingest(store, [fixtures / "text"])
    assert not first.errors and first.total("new") == 4 + 6 + 2 + 4 + 2 + 6
    again = ingest(store, [fixtures / "text"])
    assert again.total("unchanged") == first.total("new") and again.total("new") == again.total("updated") == 0


def test_marker_then_repeated_post(tmp_path):
    body = ["Абзац про реку и мост, достаточно длинный для пары."]
    path = tmp_path / "page.txt"
    path.write_text("\n".join(["Первый пост", "Текст первого поста, довольно длинный абзац.", "🔚🔚🔚",
                               *body, *body, "VIEW IN TELEGRAM", *body[:1], *body[:1]]), encoding="utf-8")
    posts = list(text_dump.read(path, ReadContext(origin_file=str(path))))
    assert all("🔚" not in p.text and "VIEW IN" not in p.text and p.text for p in posts)
    assert posts[0].text.startswith("Первый пост")


MARKER_AND_CHROME = ("⬇️⬇️⬇️", "⬆️⬆️⬆️", "🔚", "VIEW IN TELEGRAM", "Please open Telegram", "Продолжение 👇",
                     "Начало☝️", "Telegram Group Search", "HTML Embed", "Live stream")


def test_shuffled_dumps_never_leak_markers_or_chrome(fixtures, tmp_path):
    import random

    rng = random.Random(7)
    pool = [line for f in sorted((fixtures / "text").glob("*.txt")) for line in f.read_text(encoding="utf-8").split("\n")]
    pool += ["⬇️⬇️⬇️", "⬆️⬆️⬆️", "🔚🔚🔚", "Продолжение 👇", "Начало☝️", "VIEW IN TELEGRAM", "👍2", "1", ""]
    for trial in range(200):
        lines = rng.choices(pool, k=rng.randint(1, 60))
        if trial % 2:  # teaser + full view of each block
            lines = [x for k in range(0, len(lines), 4) for x in lines[k:k + 4] + lines[k + 1:k + 4]]
        path = tmp_path / f"t{trial}.txt"
        path.write_text("\n".join(lines) + "\nx", encoding="utf-8")
        posts = list(text_dump.read(path, ReadContext(origin_file=str(path))))
        assert len({p.id for p in posts}) == len(posts)
        for post in posts:
            for junk in MARKER_AND_CHROME:
                assert junk not in post.text, (trial, junk)
