"""The post page (/posts/{id}): the edited mark, the link preview card and the deleted banner.

Posts are invented here and written to a fresh data folder; the page is served by the real app
(in-process client), as in test_web.py.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient

from testdata import shared_path
from tgsearch.backend import EmbeddedBackend
from tgsearch.post import Post


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


POSTS = [
    Post(id="stepnoy_vestnik/7", channel="stepnoy_vestnik", channel_title="Вестник Степи", date=utc(2024, 5, 1, 9),
         text="Ветряки у Каспия: читайте репортаж.", message_ids=(7,), edited=True,
         links=("https://steppe.example/wind?a=1&b=2",), media=("link_preview",),
         preview_site="Степной <b>портал</b>", preview_title="Ветряки <script>alert('t')</script> у Каспия",
         preview_description="Новая станция <img src=x onerror=alert('d')> даст ток трём посёлкам."),
    Post(id="stepnoy_vestnik/8", channel="stepnoy_vestnik", channel_title="Вестник Степи", date=utc(2024, 5, 2, 9),
         text="Карточка со ссылкой-ловушкой.", message_ids=(8,), links=("javascript:alert('x')",),
         preview_site="Telegram", preview_title="Ловушка"),
    Post(id="stepnoy_vestnik/9", channel="stepnoy_vestnik", channel_title="Вестник Степи", date=utc(2024, 5, 3, 9),
         text="Этот пост канал удалил.", message_ids=(9,)),
    Post(id="stepnoy_vestnik/10", channel="stepnoy_vestnik", channel_title="Вестник Степи", date=utc(2024, 5, 4, 9),
         text="Обычный пост без правок и карточек.", message_ids=(10,), links=("https://a.example/", "https://b.example/")),
    Post(id="stepnoy_vestnik/11", channel="stepnoy_vestnik", channel_title="Вестник Степи", date=utc(2024, 5, 5, 9),
         edit_date=utc(2024, 5, 5, 10, 45), text="Правка со временем.", message_ids=(11,)),
]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from tgsearch.api.app import create_app

    backend = EmbeddedBackend(tmp_path_factory.mktemp("postdb"), vectors="off")
    backend.store.upsert(POSTS)
    backend.store.mark_deleted(["stepnoy_vestnik/9"])
    backend.after_write()
    with TestClient(create_app(backend)) as c:
        yield c
    backend.close()


def page(client, post_id: str) -> str:
    r = client.get("/posts/" + post_id.replace("/", "%2F"))
    assert r.status_code == 200
    return r.text


def card(html: str) -> str:
    m = re.search(r'<aside class="preview-card".*?</aside>', html, re.S)
    return m.group(0) if m else ""


def test_edited_mark_without_and_with_a_time(client):
    html = page(client, "stepnoy_vestnik/7")
    assert re.search(r'<span class="badge edited"[^>]*>edited</span>', html)
    assert "time not given by the source" in html
    timed = page(client, "stepnoy_vestnik/11")
    assert 'title="Edited 2024-05-05 10:45 UTC"' in timed and "edited 2024-05-05 10:45" in timed
    plain = page(client, "stepnoy_vestnik/10")
    assert 'class="badge edited"' not in plain and "edited" not in plain.split('<h2>Details</h2>')[1]


def test_link_preview_card_is_shown_escaped(client):
    box = card(page(client, "stepnoy_vestnik/7"))
    assert box, "no preview card"
    assert "Степной &lt;b&gt;портал&lt;/b&gt;" in box
    assert "Ветряки &lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt; у Каспия" in box
    assert "&lt;img src=x onerror=alert(&#39;d&#39;)&gt;" in box
    for raw in ("<b>", "<script", "<img"):
        assert raw not in box, raw
    # The post's one link is the card's link, clickable because it is http(s).
    assert 'href="https://steppe.example/wind?a=1&amp;b=2"' in box


def test_preview_card_link_only_clickable_for_http(client):
    box = card(page(client, "stepnoy_vestnik/8"))
    assert "Ловушка" in box and "Telegram" in box
    assert "href=" not in box and "javascript:alert(&#39;x&#39;)" in box  # shown as text, not a link


def test_no_card_or_banner_on_a_plain_post(client):
    html = page(client, "stepnoy_vestnik/10")
    assert card(html) == "" and "Deleted at the source" not in html
    # Several links and no preview fields: no card is made up from them.
    assert "preview-card" not in html


def test_deleted_post_has_a_clear_banner(client):
    html = page(client, "stepnoy_vestnik/9")
    assert 'id="deleted-banner"' in html and "Deleted at the source." in html
    assert "Этот пост канал удалил." in html  # the copy read earlier is still shown
    assert "Deleted at the source" not in page(client, "stepnoy_vestnik/7")


def test_real_saved_page_preview_on_the_post_page(tmp_path):
    from tgsearch.api.app import create_app

    path = shared_path("data", "tme-preview-html", "message_link_preview.html")
    backend = EmbeddedBackend(tmp_path / "db", vectors="off")
    try:
        backend.ingest([path])
        with TestClient(create_app(backend)) as c:
            box = card(c.get("/posts/oper_goblin%2F22360").text)
        assert "Ваши новости" in box and "ОККУПАЦИЯ ВОЛОСАТЫМ КРАБОМ" in box
        assert 'href="https://vnnews.ru/georgiy-zotov-okkupaciya-volosatym-kr/"' in box
    finally:
        backend.close()
