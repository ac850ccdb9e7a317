"""Acceptance on the seed documents in ../shared/seeds, through the real ingest path.

000: a saved mirror page of a press-digest channel (six articles split over messages).
001: a saved teaser+full channel page (sixteen posts, one split in two, two media posts under the
     channel's name, one link preview).
002-004: web articles saved as text.
Expectations were counted by hand from the files; only short names, title openings and
marker strings appear here, never the seed text itself.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from testdata import shared_path
from tgsearch.ingest import ingest
from tgsearch.store import Store

PAGE_CHROME = [
    "Telegram Group Search", "Live stream finished", "Back to Top", "HTML Embed Code",
    "2025/08/29 21:23:32", "Please open Telegram to view this post", "VIEW IN TELEGRAM",
]
MARKERS = ["⬇️⬇️⬇️", "⬆️⬆️⬆️", "🔚", "Продолжение 👇", "Начало☝️"]
ARTICLE_CHROME = ["Paylaş", "также доступна", "Похожие материалы", "Фото из открытых источников",
                  "Источник:", "Авторы:", "Перевод "]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    seeds = shared_path("seeds")
    store = Store(tmp_path_factory.mktemp("seeds-db"))
    report = ingest(store, [seeds])
    posts = list(store.iter_posts())
    yield seeds, store, report, posts
    store.close()


def _from(posts, prefix):
    return [p for p in posts if p.origin_file.rsplit("/", 1)[-1].startswith(prefix)]


def _one(path):
    return next(path.parent.glob(path.name))


def test_every_seed_ingests_with_the_right_reader(seeded):
    seeds, _, report, _ = seeded
    assert not report.errors
    formats = {f.path.rsplit("/", 1)[-1][:3]: f.format for f in report.files}
    assert formats == {"000": "text-dump", "001": "text-dump", "002": "article", "003": "article", "004": "article"}
    assert report.by_format() == {"text-dump": 6 + 16, "article": 3}


def test_digest_page_gives_six_articles_with_their_headers(seeded):
    _, _, _, posts = seeded
    digest = _from(posts, "000_")
    digest.sort(key=lambda p: p.date)
    assert [p.publication for p in digest] == [
        "The Diplomat", "FORBES", "Agenzia Nova", "Revue Conflits", "Diário de Notícias", "Euractiv"]
    assert [p.publication_country for p in digest] == ["США", "США", "Италия", "Франция", "", ""]
    assert [p.author for p in digest] == [
        "", "Ариель Коен", "редакционная статья", "Аксель Ле Галь де Керангал", "Леонидиу Паулу Феррейра",
        "Эмма Колле"]
    assert [p.date for p in digest] == [datetime(2025, m, d, tzinfo=timezone.utc) for m, d in
                                        [(4, 21), (5, 12), (5, 14), (6, 4), (8, 13), (8, 18)]]
    hosts = [re.sub(r"^https?://(www\.)?", "", p.source_url).split("/")[0] for p in digest]
    assert hosts == ["thediplomat.com", "forbes.com", "agenzianova.com", "revueconflits.com", "dn.pt", "euractiv.com"]
    title_starts = ["КАК РАЗВИВАЕТСЯ ВНЕШНЯЯ", "СТАНЕТ ЛИ УРАН", "МЕЛОНИ ПРИЕДЕТ", "AIF 2025:", "Жан Галиев:", "«Казахстан стремится"]
    for post, start in zip(digest, title_starts):
        assert post.title.startswith(start)
        assert post.text.startswith(post.title)
        assert post.kind == "post" and post.source_url in post.links
        assert post.channel == "000_21346edfb43f07e1" and post.channel_title.startswith("unnamed dump: ")
    # The two-line all-caps headline is one title.
    assert "\n" not in digest[2].title and digest[2].title.endswith("С ПОСЛАМИ")
    # Header lines do not repeat in the text.
    for post in digest:
        assert not re.search(r"^(Издание|Автор|Дата|Ссылка)\s*:", post.text, re.MULTILINE)
        assert post.source_url not in post.text


def test_digest_parts_are_stitched_into_their_article(seeded):
    seeds, _, _, posts = seeded
    digest = _from(posts, "000_")
    raw = _one(seeds / "000_*.txt").read_text(encoding="utf-8").split("\n")
    # The first line of every continuation part must sit inside exactly one article.
    part_starts = [raw[i + 1] for i, line in enumerate(raw) if line == "⬆️⬆️⬆️"]
    assert len(part_starts) == 10
    for line in part_starts:
        assert sum(line in p.text for p in digest) == 1, line[:40]
    # And the last paragraph before each end marker too.
    ends = [raw[i - 1] for i, line in enumerate(raw) if line == "🔚🔚🔚" and raw[i - 1].strip()]
    for line in ends:
        assert sum(line in p.text for p in digest) == 1
    # Reactions under the interview article were read as reactions, not text.
    dn = next(p for p in digest if p.publication == "Diário de Notícias")
    assert dn.reactions == {"👍": 2}
    assert not any(re.fullmatch(r"👍?\d+", line) for p in digest for line in p.text.split("\n"))


def test_channel_page_keeps_each_post_once(seeded):
    seeds, _, _, posts = seeded
    page = _from(posts, "001_")
    assert len(page) == 16
    titled = [p.title for p in page if p.title]
    starts = ["Кто играет против Казахстана", "Канадцы идут в казахстанскую", "«Шубарколь комир» подпишет",
              "Казахстан ужесточает наказание", "Казахстан вспоминает, Россия репетирует", "Россия не построит ТЭЦ",
              "Казахстан выбирает Китай", "Казахстан и Великобритания", "В Кыргызстане демонтировали",
              "Президент Казахстана произвёл", "Казахстан между Баку и Кремлём", "Си Цзиньпин вновь в Астане",
              "Казахстан между Кремлем и Орбаном", "Монополия на влияние сломана"]
    assert len(titled) == len(starts)
    for title, start in zip(sorted(titled), sorted(starts)):
        assert title.startswith(start)
    # No paragraph is kept twice, inside a post or across posts.
    seen: dict[str, str] = {}
    for post in page:
        for line in post.text.split("\n"):
            if len(line) > 40:
                assert line not in seen, f"repeated in {post.id} and {seen[line]}"
                seen[line] = post.id
    # Every line of the page is in some post (its text or its link preview), except chrome and the
    # channel's name printed above the two posts the page cannot show.
    raw = [line.strip() for line in _one(seeds / "001_*.txt").read_text(encoding="utf-8").split("\n") if line.strip()]
    kept = {line for p in page for line in p.text.split("\n")}
    kept |= {x for p in page for x in (p.preview_site, p.preview_title, p.preview_description) if x}
    missing = [line for line in raw if line not in kept and not any(c in line for c in PAGE_CHROME + MARKERS)]
    assert missing == ["Первый жүз"] * 2, missing


def test_split_post_is_stitched(seeded):
    seeds, _, _, posts = seeded
    raw = [line for line in _one(seeds / "001_*.txt").read_text(encoding="utf-8").split("\n")]
    orban = [p for p in _from(posts, "001_") if p.title.startswith("Казахстан между Кремлем и Орбаном")]
    assert len(orban) == 1
    text = orban[0].text
    i_end = raw.index("Продолжение 👇")
    i_start = raw.index("Начало☝️")
    assert raw[i_end - 1] in text and raw[i_start + 1] in text
    assert text.index(raw[i_end - 1]) < text.index(raw[i_start + 1])
    assert "Продолжение" not in text and "Начало☝" not in text


def test_channel_names_media_posts_and_link_preview(seeded):
    _, _, _, posts = seeded
    page = _from(posts, "001_")
    # The page's one name line (above both posts it cannot show) is its channel; the file name
    # stays the channel's id, so ids do not change.
    assert {p.channel_title for p in page} == {"Первый жүз"}
    assert {p.channel for p in page} == {"001_fbdfde6d65e5302b"}
    teasers = [p for p in page if p.media == ("media",)]
    assert len(teasers) == 2
    for post in teasers:
        assert post.forwarded_from == ""  # the channel's own posts, not forwards
        assert "\n" not in post.text and post.text.endswith("…")
    assert not any(p.forwarded_from for p in page)
    # The digest page names no channel anywhere: the UI says so instead of showing a file slug.
    assert {p.channel_title for p in _from(posts, "000_")} == {"unnamed dump: 000_21346edfb43f07e1.txt"}
    baku = next(p for p in page if p.title.startswith("Казахстан между Баку"))
    assert baku.media == ("webpage",)
    assert "ПолитНавигатор" not in baku.text
    # The link preview under it is kept as data (it was dropped): site, title, description.
    assert baku.preview_site == "Telegram"
    assert baku.preview_title.startswith("ПолитНавигатор")
    assert baku.preview_description.startswith("❗️Баку выстраивает")
    assert [p.id for p in posts if p.preview_site] == [baku.id]  # the only preview block in the seeds


def test_link_preview_text_is_searchable(seeded, tmp_path):
    from tgsearch.backend import EmbeddedBackend
    from tgsearch.search.types import SearchRequest

    seeds, _, _, posts = seeded
    baku = next(p for p in _from(posts, "001_") if p.title.startswith("Казахстан между Баку"))
    backend = EmbeddedBackend(tmp_path / "db", vectors="off")
    try:
        backend.ingest([seeds])
        assert backend.search(SearchRequest(q="Баку противостояния", mode="lexical")).hits[0].id == baku.id
        # A phrase only the preview card holds: found through the preview fields alone.
        hits = backend.search(SearchRequest(q='"линию противостояния"', mode="lexical")).hits
        assert [h.id for h in hits] == [baku.id]
    finally:
        backend.close()


def test_no_chrome_or_markers_in_any_post(seeded):
    _, _, _, posts = seeded
    for post in posts:
        for s in PAGE_CHROME + MARKERS + ARTICLE_CHROME:
            assert s not in post.text, (post.id, s)
            assert s not in post.title, (post.id, s)
        assert "Telegram" not in post.text.split("\n")


def test_web_articles_are_clean(seeded):
    _, _, _, posts = seeded
    a2, = _from(posts, "002_")
    a3, = _from(posts, "003_")
    a4, = _from(posts, "004_")
    for art in (a2, a3, a4):
        assert art.kind == "article" and art.channel == "web"
        assert art.id.startswith("web/h")
    assert a2.title.startswith("Казахстан, как «мостовая держава»")
    assert a2.text.startswith(a2.title) and a2.text.count("\n- ") >= 5  # quote paragraphs kept
    assert a3.title.startswith("Казахстанская Транзитная Стратегия")
    assert not a3.text.startswith("Анализ")
    assert a3.author == "Ergün MAMEDOV" and "MAMEDOV" not in a3.text
    assert len(a3.links) == 9 and "https://tass.ru/politika/24736791" in a3.links
    assert not re.search(r"^\[\d+\]", a3.text, re.MULTILINE)
    assert a4.author == "Шайри Малхотра, Джотирадитя Сананд"
    assert a4.title == "Kazakhstan’s Critical Minerals in the Global Power Shift"
    assert a4.text.startswith("Критически важные минералы") and "Observer Research" not in a4.text


def test_reingest_changes_nothing(seeded, tmp_path):
    seeds, store, first, posts = seeded
    again = ingest(store, [seeds])
    assert again.total("new") == 0 and again.total("updated") == 0
    assert again.total("unchanged") == len(posts) == 25
    # A fresh store gets the very same ids and content.
    other = Store(tmp_path / "again")
    ingest(other, [seeds])
    assert {p.id: p.content_hash() for p in other.iter_posts()} == {p.id: p.content_hash() for p in posts}
    other.close()
