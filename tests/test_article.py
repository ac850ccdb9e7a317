"""Web articles saved as text or HTML, on invented fixtures."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from tgsearch.errors import InputError
from tgsearch.ingest import ingest
from tgsearch.sources import ReadContext, article, detect


def read_one(path: Path):
    assert detect(path).NAME == "article"
    posts = list(article.read(path, ReadContext(origin_file=str(path))))
    assert len(posts) == 1
    return posts[0]


def test_text_article_with_rubric_share_buttons_footnotes_and_author_box(fixtures):
    post = read_one(fixtures / "articles" / "analysis.txt")
    assert post.kind == "article" and post.channel == "web"
    assert post.title == "Почему северные порты конкурируют за транзит зерна"
    assert post.text.startswith(post.title + "\nСеверные порты предлагают")
    assert post.author == "Lina ORTEGA"
    assert post.links == ("https://harborweekly.example/grain-north", "https://deltapost.example/port-fees")
    for junk in ("Мнение", "Paylaş", "также доступна", "Lina", "Ортега", "Похожие материалы", "рынок фрахта",
                 "Grain Through the North", "Дата обращения"):
        assert junk not in post.text
    assert post.text.rstrip().endswith("в межсезонье [2].")


def test_translated_article_without_headline(fixtures):
    post = read_one(fixtures / "articles" / "translated.txt")
    assert post.title == "Solar Power Reaches the Mountain Farms"
    assert post.text.startswith("Горные хозяйства переходят")  # the original's headline is not prepended
    assert post.author == "Марта Линдквист, Павел Оржеховский"
    assert "Сложности с хранением энергии" in post.text
    for junk in ("Авторы", "научным сотрудником", "аспирант", "Источник", "Перевод", "Фото"):
        assert junk not in post.text
    assert post.language == "ru"


def test_byline_fields_under_the_headline(fixtures):
    post = read_one(fixtures / "articles" / "byline.md")
    assert post.title == "Городской парк получит новый пруд"
    assert post.author == "Елена Брусникина"
    assert post.date == datetime(2024, 3, 15, tzinfo=timezone.utc)
    assert post.source_url == "https://citynews.example/park-pond" and post.url == post.source_url
    assert post.channel == "citynews.example"
    assert post.text == ("Городской парк получит новый пруд\nАдминистрация утвердила проект нового пруда в "
                         "городском парке.\nРаботы начнутся в мае и закончатся к осени.")


def test_url_and_date_lines_around_the_headline(fixtures):
    post = read_one(fixtures / "articles" / "dated.txt")
    assert post.title == "Паромная переправа открывает сезон"
    assert post.source_url == "https://riverside.example/news/2024/04/02/ferry"
    assert post.channel == "riverside.example"
    assert post.date == datetime(2024, 4, 2, tzinfo=timezone.utc)
    assert post.text == ("Паромная переправа открывает сезон\nПервый паром вышел из гавани в семь утра, на борту "
                         "было сорок пассажиров.\nРасписание на лето опубликуют в мае.")


def test_markdown_article(fixtures):
    post = read_one(fixtures / "articles" / "notes.md")
    assert post.title == "Как живут смотрители маяков"
    assert post.links == ("https://sea-service.example/lighthouses",)
    assert "сообщает морская служба." in post.text and "\nСвязь и быт\n" in post.text
    for junk in ("#", "**", "![", "img/", "---", "Поделиться", "]("):
        assert junk not in post.text, junk


HTML_JUNK = ("SECRET-TRACKER", "tracking pixel", "cookie", "Принять", "Главная", "Контакты", "ВКонтакте",
             "Поделиться", "Читайте также", "Горнолыжный сезон", "Все права защищены", "конфиденциальности",
             "window.", "console.log", "position:fixed")


def test_html_article(fixtures):
    post = read_one(fixtures / "articles" / "page.html")
    assert post.title == "Канатная дорога откроется летом"
    assert post.author == "Тимур Алпысбаев"
    assert post.date == datetime(2024, 5, 20, 4, 30, tzinfo=timezone.utc)
    assert post.source_url == "https://www.mountain-news.example/2024/05/cable-car"
    assert post.channel == "mountain-news.example" and post.channel_title == "Горные новости"
    assert post.publication == "Горные новости"
    assert post.text.startswith(post.title + "\nНовая канатная дорога")
    assert "Что изменится для туристов" in post.text and "альпийские луга" in post.text
    assert "https://tourism.example/cable-car-plan" in post.links
    for junk in HTML_JUNK:
        assert junk not in post.text, junk


def test_selectolax_fallback_is_clean_too(fixtures):
    html = (fixtures / "articles" / "page.html").read_text(encoding="utf-8")
    art = article.extract_with_selectolax(html)
    assert art.title == "Канатная дорога откроется летом" and art.author == "Тимур Алпысбаев"
    assert art.source_url.endswith("/2024/05/cable-car")
    assert "опубликованы на сайте управления." in art.text
    for junk in HTML_JUNK:
        assert junk not in art.text, junk


def test_html_without_suffix_is_sniffed(tmp_path, fixtures):
    path = tmp_path / "saved_page"
    path.write_bytes((fixtures / "articles" / "page.html").read_bytes())
    assert read_one(path).title == "Канатная дорога откроется летом"


def test_html_in_its_declared_charset(tmp_path, fixtures):
    html = (fixtures / "articles" / "page.html").read_text(encoding="utf-8").replace(
        '<meta charset="utf-8">', '<meta charset="windows-1251">')
    path = tmp_path / "cp1251.html"
    path.write_bytes(html.encode("cp1251", errors="ignore"))
    # (Auto-detection asks for --encoding on non-UTF-8 files; the reader itself honours <meta charset>.)
    post, = article.read(path, ReadContext(origin_file=str(path)))
    assert post.title == "Канатная дорога откроется летом" and "альпийские луга" in post.text


def test_script_only_page_is_an_input_error(tmp_path):
    path = tmp_path / "empty.html"
    path.write_text("<html><head><script>var a = 1;</script></head><body><nav>Меню</nav></body></html>",
                    encoding="utf-8")
    with pytest.raises(InputError, match="empty.html: no article text found"):
        list(article.read(path, ReadContext(origin_file=str(path))))


def test_ingest_articles_twice(fixtures, store):
    first = ingest(store, [fixtures / "articles"])
    assert not first.errors and first.by_format() == {"article": 6}
    again = ingest(store, [fixtures / "articles"])
    assert again.total("unchanged") == 6 and again.total("new") == again.total("updated") == 0


def test_same_article_saved_twice_gets_one_id(tmp_path, fixtures):
    a = tmp_path / "a.txt"
    b = tmp_path / "copy of a.txt"
    for p in (a, b):
        p.write_bytes((fixtures / "articles" / "analysis.txt").read_bytes())
    assert read_one(a).id == read_one(b).id
