"""t.me/s web-preview reader (tme-preview)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from testdata import shared_path
from tgsearch.errors import InputError
from tgsearch.ingest import ingest
from tgsearch.sources import ReadContext, detect, tme_preview

FRAGMENTS = ("link_preview.html", "link_preview_video.html", "media_cicrle_video.html", "media_photo.html",
             "media_video.html", "media_video_gif.html", "media_video_too_big.html", "poll.html")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def page(name: str) -> Path:
    return shared_path("data", "tme-preview-html", name)


def read_all(path: Path) -> list:
    ctx = ReadContext(origin_file=str(path))
    posts = list(tme_preview.read(path, ctx))
    assert not ctx.errors and not ctx.warnings
    return posts


def one(name: str):
    posts = read_all(page(name))
    assert len(posts) == 1
    return posts[0]


def test_full_channel_page():
    posts = read_all(page("full.html"))
    assert [p.message_ids[0] for p in posts] == [70989, 70990, 70992, 70995, 70996, 70997, 70998, 70999,
                                                 71000, 71006, 71007, 71008]
    first = posts[0]
    assert first.id == "topwar_official/70989" and first.channel == "topwar_official"
    assert first.channel_title == "Военное обозрение"
    assert first.views == 37200
    assert first.date == utc(2023, 2, 28, 7, 47, 53)
    assert first.media == ("photo",)
    assert first.url == "https://t.me/topwar_official/70989"
    assert first.text.startswith("В Санкт-Петербурге в небо над городом подняли истребители")
    by_id = {p.message_ids[0]: p for p in posts}
    assert by_id[70990].views == 34500 and by_id[70990].media == ()
    assert set(by_id[70992].media) == {"photo", "video"}  # an album
    assert by_id[71006].forwarded_from == "Старше Эдды" and by_id[71006].media == ("video",)
    assert by_id[71007].forwarded_from == "Пул N3"
    preview = by_id[70996]
    assert preview.forwarded_from == "Военкор Ярем"
    assert preview.media == ("link_preview",)
    assert preview.links == ("https://t.me/infantmilitario/93419", "https://t.me/yaremshooter",
                             "http://t.me/infantmilitario/93419")
    # the link preview card is data of its own, not text appended to the message
    assert (preview.preview_site, preview.preview_title) == ("Telegram", "Милитарист")
    assert preview.preview_description.startswith("Сообщают, что стелу")
    assert "Милитарист" not in preview.text and "Сообщают, что стелу" not in preview.text
    for post in posts:
        assert "<" not in post.text and "tgme_" not in post.text


def test_single_text_message():
    post = one("message_text.html")
    assert post.id == "topwar_official/70991"
    assert post.views == 33400
    assert post.date == utc(2023, 2, 28, 8, 48, 1)
    # the saved page is re-indented: source line breaks are spaces, <br> is a line break
    assert post.title == "Неопознанный летающий объект замечен в 160 – 200 км от Петербурга"
    assert post.text.startswith(post.title + "\n\nПо данным «Фонтанки», такую информацию министерство обороны")
    assert post.media == () and post.author == "" and post.forwarded_from == ""


def test_author_signature():
    post = one("message_with_from_author.html")
    assert post.id == "channel/4" and post.channel_title == "Channel title"
    assert post.author == "🅰️rkadiy Ivanov"
    assert post.text == "test" and post.views == 1
    assert post.date == utc(2023, 2, 28, 16, 38, 34)


def test_link_previews():
    post = one("message_link_preview.html")
    assert post.id == "oper_goblin/22360" and post.views == 226200
    assert post.channel_title == "Tynu40k Goblina (oper.ru)"
    assert post.media == ("link_preview",)
    assert post.links == ("https://vnnews.ru/georgiy-zotov-okkupaciya-volosatym-kr/",)
    assert post.preview_url == post.links[0]
    assert post.preview_site == "Ваши новости — интернет-газета"
    assert post.preview_title == "Георгий Зотов: ОККУПАЦИЯ ВОЛОСАТЫМ КРАБОМ"
    assert post.preview_description.startswith("Современная журналистика")
    assert post.text == "https://vnnews.ru/georgiy-zotov-okkupaciya-volosatym-kr/"  # the message's own text only
    assert post.preview_text == post.preview_title + "\n" + post.preview_description
    text_only = one("message_link_preview_text_only.html")
    assert text_only.views == 246800
    assert text_only.links == ("http://publication.pravo.gov.ru/Document/View/0001202302270011?index=7&rangeSize=1",)
    assert text_only.preview_site == "publication.pravo.gov.ru"
    assert text_only.preview_title.startswith("Распоряжение Президента") and text_only.preview_title not in text_only.text
    video = one("message_link_preview_video.html")
    assert video.id == "fighter_bomber/11226" and video.views == 69400
    assert video.text.startswith("Жениться вам, барин, пора! 😁\n\nhttps://t.me/shalnyak/5410")
    assert video.media == ("link_preview",)  # the preview's own video is not the message's
    assert (video.preview_site, video.preview_title) == ("Telegram", "Shalnyak")
    assert video.text == "Жениться вам, барин, пора! 😁\n\nhttps://t.me/shalnyak/5410"


def test_media_messages():
    document = one("message_media_file.html")
    assert document.media == ("file",) and document.forwarded_from == "Кремлёвская прачка"
    assert document.date == utc(2022, 8, 3, 19, 31, 10) and document.views == 171900
    forwarded = one("message_media_forwarded_from.html")
    assert forwarded.media == ("photo",) and forwarded.forwarded_from == "Пул N3" and forwarded.views == 214400
    album = one("message_media_photo_and_video.html")
    assert album.id == "anna_news/46908" and set(album.media) == {"photo", "video"}
    assert album.message_ids == (46908, 46909, 46910)  # each photo/video of the album is a message
    assert one("message_sticker.html").message_ids == (5,)          # not an album: its own id
    assert album.title == "Ночью над Белгородом сбили 3 беспилотника"
    assert "#Белгород #Беспилотники" in album.text
    assert album.links == ("https://t.me/anna_news",)  # relative hashtag-search links are dropped
    round_video = one("message_media_round_video.html")
    assert round_video.media == ("round_video",) and round_video.text == "" and round_video.views == 54200
    sticker = one("message_sticker.html")
    assert sticker.media == ("sticker",) and sticker.id == "channel/5"
    voice = one("message_voice.html")
    assert voice.media == ("voice",) and voice.views == 746 and voice.forwarded_from == "Спортивный Екб"
    assert voice.date == utc(2018, 4, 24, 15, 28, 46)
    assert voice.text.startswith("Обсудили:\n\n- Сталина не забыть\n- Плохие фильмы")
    assert voice.links == ("https://t.me/kakberadio", "https://t.me/kakberadiobot")


def test_poll_without_text_gives_question_and_options():
    poll = one("message_poll.html")
    assert poll.id == "it_begin/488" and poll.views == 1100 and poll.media == ("poll",)
    assert poll.text == ("Как лучше?\n- Несколько постов в день\n- Один пост в несколько дней\n"
                         "- Свой вариант в комментарии")


@pytest.mark.parametrize("name", FRAGMENTS)
def test_fragments_are_recognised_and_refused_with_a_clear_error(name):
    path = page(name)
    assert detect(path).NAME == "tme-preview"
    with pytest.raises(InputError) as info:
        list(tme_preview.read(path, ReadContext(origin_file=str(path))))
    assert info.value.path == str(path)
    assert "no Telegram messages found" in info.value.problem and "save the whole page" in info.value.hint


@pytest.mark.parametrize("name, kind", [
    ("media_photo.html", "photo"), ("media_video.html", "video"), ("media_video_gif.html", "gif"),
    ("media_video_too_big.html", "video"), ("media_cicrle_video.html", "round_video"),
    ("poll.html", "poll"), ("link_preview.html", "link_preview"),
])
def test_media_fragment_kinds_inside_a_message(tmp_path, name, kind):
    fragment = page(name).read_text(encoding="utf-8")
    wrapped = tmp_path / "wrapped.html"
    wrapped.write_text(f'<div class="tgme_widget_message" data-post="stepnoy_vestnik/7">{fragment}'
                       '<a class="tgme_widget_message_date"><time datetime="2024-05-01T09:30:00+00:00">9:30</time></a>'
                       '</div>', encoding="utf-8")
    post = read_all(wrapped)[0]
    assert post.media == (kind,)


OWN_PAGE = """<!DOCTYPE html><html><head><title>Вестник Степи – Telegram</title></head><body>
<div class="tgme_channel_info"><div class="tgme_channel_info_header_title"><span dir="auto">Вестник Степи</span></div></div>
<section class="tgme_channel_history">
<div class="tgme_widget_message_wrap"><div class="tgme_widget_message js-widget_message" data-post="stepnoy_vestnik/120">
 <div class="tgme_widget_message_bubble">
  <div class="tgme_widget_message_author"><a class="tgme_widget_message_owner_name" href="https://t.me/stepnoy_vestnik"><span>Вестник Степи</span></a></div>
  <a class="tgme_widget_message_reply" href="https://t.me/stepnoy_vestnik/118"><div class="tgme_widget_message_author"><span>Вестник Степи</span></div>
   <div class="tgme_widget_message_text js-message_text">Цитата из поста про тарифы</div></a>
  <div class="tgme_widget_message_text js-message_text" dir="auto">Тарифы на свет &lt;script&gt;alert("x")&lt;/script&gt; <b>вырастут</b>
   с июля.<br>Подробнее: <a href="https://energo.example.kz/tarif" target="_blank">energo.example.kz</a></div>
  <div class="tgme_widget_message_reactions js-message_reactions">
   <span class="tgme_reaction"><i class="emoji"><b>👍</b></i>1.2K</span>
   <span class="tgme_reaction"><i class="emoji"><b>😡</b></i>37</span>
   <span class="tgme_reaction tgme_reaction_paid"><i class="icon-telegram-stars"></i>5</span>
  </div>
  <div class="tgme_widget_message_footer"><div class="tgme_widget_message_info">
   <span class="tgme_widget_message_views">1.2M</span><span class="copyonly"> views</span><span class="tgme_widget_message_meta"><span class="tgme_widget_message_from_author" dir="auto">Айгерим С.</span>,&nbsp;edited&nbsp;<a class="tgme_widget_message_date" href="https://t.me/stepnoy_vestnik/120"><time datetime="2024-05-01T09:30:00+05:00" class="time">09:30</time></a></span>
  </div></div>
 </div>
</div></div>
</section></body></html>"""


def test_own_page_reactions_reply_signature_and_escaped_markup(tmp_path):
    path = tmp_path / "stepnoy_vestnik.html"
    path.write_text(OWN_PAGE, encoding="utf-8")
    assert detect(path).NAME == "tme-preview"
    (post,) = read_all(path)
    assert post.id == "stepnoy_vestnik/120"
    assert post.channel_title == "Вестник Степи"
    assert post.text == ('Тарифы на свет <script>alert("x")</script> вырастут с июля.\n'
                         "Подробнее: energo.example.kz")
    assert "Цитата" not in post.text  # the quoted reply is not this message's text
    assert post.reply_to == 118
    assert post.reactions == {"👍": 1200, "😡": 37, "⭐": 5}
    assert post.views == 1_200_000
    assert post.author == "Айгерим С."
    assert post.date == utc(2024, 5, 1, 4, 30, 0)
    assert post.edited  # t.me's bare "edited" in the meta line
    assert post.edit_date is None  # "edited" without a time: no edit time to record
    assert post.links == ("https://energo.example.kz/tarif",)


def test_views_parsing():
    assert tme_preview.parse_views("856") == 856
    assert tme_preview.parse_views("37.2K") == 37200
    assert tme_preview.parse_views("1.2M") == 1_200_000
    assert tme_preview.parse_views("n/a") is None


def test_detection_of_every_shared_file():
    folder = page("full.html").parent
    for path in sorted(folder.glob("*.html")):
        assert detect(path).NAME == "tme-preview", path.name


def test_ingest_the_shared_folder(store):
    folder = page("full.html").parent
    report = ingest(store, [folder])
    assert report.by_format() == {"tme-preview": 24}
    assert store.count() == 24
    failed = sorted(Path(f.path).name for f in report.files if f.error)
    assert failed == sorted(FRAGMENTS)
    saved = store.get("oper_goblin/22358")
    assert saved.forwarded_from == "Пул N3" and saved.views == 214400 and saved.media == ("photo",)


# -- edited marks, link preview cards, deep nesting: own pages modelled on t.me's markup ----------

def message(mid: int, text: str, meta: str = "", card: str = "", channel: str = "stepnoy_vestnik") -> str:
    """One message as t.me/s prints it; `meta` goes before the date link in the meta line, `card`
    (a link preview) after the text."""
    return (f'<div class="tgme_widget_message_wrap"><div class="tgme_widget_message js-widget_message" '
            f'data-post="{channel}/{mid}"><div class="tgme_widget_message_bubble">'
            f'<div class="tgme_widget_message_text js-message_text" dir="auto">{text}</div>{card}'
            '<div class="tgme_widget_message_footer compact js-message_footer">'
            '<div class="tgme_widget_message_info short js-message_info">'
            '<span class="tgme_widget_message_views">512</span><span class="copyonly"> views</span>'
            f'<span class="tgme_widget_message_meta">{meta}<a class="tgme_widget_message_date" '
            f'href="https://t.me/{channel}/{mid}"><time datetime="2024-05-0{mid % 9 + 1}T10:00:00+00:00" '
            'class="time">10:00</time></a></span></div></div></div></div></div>')


def write_page(tmp_path, *messages: str) -> Path:
    path = tmp_path / "page.html"
    path.write_text('<html><body><div class="tgme_channel_info"><div class="tgme_channel_info_header_title">'
                    '<span dir="auto">Вестник Степи</span></div></div><section class="tgme_channel_history">'
                    + "".join(messages) + "</section></body></html>", encoding="utf-8")
    return path


def test_edited_mark_is_bare_text_in_the_meta_line(tmp_path):
    path = write_page(
        tmp_path,
        message(1, "Поправили сумму в посте про бюджет.", meta="edited&nbsp;"),
        message(2, "Подпись и правка вместе.",
                meta='<span class="tgme_widget_message_from_author" dir="auto">Ерлан</span>,&nbsp;edited&nbsp;'),
        message(3, "Этот пост не правили, хотя в нём есть слово edited.", meta=""),
        message(4, "Подписант с таким именем не правка.",
                meta='<span class="tgme_widget_message_from_author" dir="auto">edited</span>,&nbsp;'),
        message(5, "Правка со временем, если страница его даст.",
                meta='edited <time datetime="2024-05-07T12:15:00+00:00">12:15</time>&nbsp;'),
    )
    posts = read_all(path)
    assert [p.edited for p in posts] == [True, True, False, False, True]
    assert [p.edit_date for p in posts] == [None, None, None, None, utc(2024, 5, 7, 12, 15)]
    assert posts[1].author == "Ерлан" and posts[3].author == "edited"
    assert all("edited" not in p.text for p in posts[:2])


def test_edited_messages_on_the_real_pages():
    folder = page("full.html").parent
    edited, total = [], 0
    for path in sorted(folder.glob("*.html")):
        if path.name in FRAGMENTS:
            continue
        posts = read_all(path)
        total += len(posts)
        edited += [p.id for p in posts if p.edited]
    # Counted by hand: one message of the saved pages says "edited" (and gives no edit time).
    assert total == 24 and edited == ["fighter_bomber/11226"]
    assert one("message_link_preview_video.html").edit_date is None


PREVIEW_CARD = (
    '<a class="tgme_widget_message_link_preview" href="{href}">'
    '<div class="link_preview_site_name accent_color" dir="auto">Степной &lt;b&gt;портал&lt;/b&gt;</div>'
    '<div class="link_preview_title" dir="auto">Ветряки &lt;script&gt;x()&lt;/script&gt; у Каспия</div>'
    '<div class="link_preview_description" dir="auto">Новая станция даст ток<br>трём посёлкам.</div></a>')


def test_link_preview_card_is_kept_as_fields_not_text(tmp_path):
    path = write_page(
        tmp_path,
        message(7, 'Читайте: <a href="https://steppe.example/wind">steppe.example/wind</a>',
                card=PREVIEW_CARD.format(href="https://steppe.example/wind")),
        message(8, "", card=PREVIEW_CARD.format(href="javascript:alert(1)")),
    )
    with_text, card_only = read_all(path)
    assert with_text.text == "Читайте: steppe.example/wind"
    assert with_text.preview_site == "Степной <b>портал</b>"  # decoded: literal text, escaped when shown
    assert with_text.preview_title == "Ветряки <script>x()</script> у Каспия"
    assert with_text.preview_description == "Новая станция даст ток\nтрём посёлкам."
    assert with_text.links == ("https://steppe.example/wind",)
    assert with_text.media == ("link_preview",)
    # A message that is only a card is kept, with the card as its data and no links but http(s).
    assert card_only.text == "" and card_only.preview_title.startswith("Ветряки")
    assert card_only.links == () and card_only.media == ("link_preview",)


@pytest.mark.parametrize("depth", [2_000, 16_000])
def test_text_nested_deep_inside_the_message(tmp_path, depth):
    # A message body wrapped in thousands of elements (208 KB at 16,000): its text and its quoted
    # reply are told apart however deep they sit.
    reply = ('<a class="tgme_widget_message_reply" href="https://t.me/stepnoy_vestnik/3">'
             '<div class="tgme_widget_message_text js-message_text">Цитата</div></a>')
    inner = "<span>" * depth + reply + '<div class="tgme_widget_message_text js-message_text">Глубоко ' \
        '<b>вложенный</b> текст</div>' + "</span>" * depth
    path = tmp_path / "deep.html"
    path.write_text(f'<div class="tgme_widget_message" data-post="stepnoy_vestnik/9">{inner}'
                    '<a class="tgme_widget_message_date"><time datetime="2024-05-01T09:30:00+00:00">9:30</time>'
                    '</a></div>', encoding="utf-8")
    (post,) = read_all(path)
    assert post.text == "Глубоко вложенный текст" and post.reply_to == 3
