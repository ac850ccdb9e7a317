"""One result per story in a real browser, on real posts: the 22k corpus's posts about mobilisation
(../shared/data/tg-news-posts-ru), their stories built, searched for "мобилизация"."""

from __future__ import annotations

import json

import pytest

from testdata import shared_path
from test_browser import SHOTS, Server, browser, page, shoot  # noqa: F401 - fixtures
from tgsearch.backend import EmbeddedBackend

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def stories_dir(tmp_path_factory):
    raw = shared_path("data", "tg-news-posts-ru", "raw")
    folder = tmp_path_factory.mktemp("mobilisation")
    subset = folder / "input"
    subset.mkdir()
    n = 0
    for path in sorted(raw.glob("*.json")):
        records = [r for r in json.loads(path.read_text(encoding="utf-8"))
                   if "мобилиз" in (r.get("text") or "").lower()]
        n += len(records)
        (subset / path.name).write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    assert n > 50
    db = folder / "db"
    backend = EmbeddedBackend(db, vectors="off")
    backend.ingest([subset])
    backend.stories.catch_up()
    status = backend.stories.status()
    assert status["complete"] and status["multi_post_stories"] > 0
    backend.close()
    return db


@pytest.fixture(scope="module")
def stories_server(stories_dir, tmp_path_factory):
    s = Server(stories_dir, tmp_path_factory.mktemp("logs") / "serve.log")
    yield s
    s.stop()


def test_search_shows_each_story_once_with_its_repeats_counted(stories_server, page):  # noqa: F811
    page.goto(stories_server.url + "/?q=мобилизация&mode=lexical")
    items = page.eval_on_selector_all("li.hit", "els => els.map(li => li.dataset.story || '')")
    stories = [s for s in items if s]
    assert stories and len(stories) == len(set(stories))              # one hit per story
    more = page.locator("a.story-more")
    assert more.count() >= 1 and "more in" in more.first.inner_text()
    assert "stories" in page.inner_text("p.total")
    shoot(page, "search-stories.png")
    every = stories_server.api("/api/search?q=%D0%BC%D0%BE%D0%B1%D0%B8%D0%BB%D0%B8%D0%B7%D0%B0%D1%86%D0%B8%D1%8F"
                               "&mode=lexical&group=none")
    grouped = stories_server.api("/api/search?q=%D0%BC%D0%BE%D0%B1%D0%B8%D0%BB%D0%B8%D0%B7%D0%B0%D1%86%D0%B8%D1%8F"
                                 "&mode=lexical")
    assert grouped["total"] < every["total"] == grouped["total_posts"]
    # the story page: who carried it when
    more.first.click()
    page.wait_for_selector("#propagation")
    assert page.locator("#propagation tbody tr").count() >= 2 and "first poster" in page.inner_text("#propagation")
    shoot(page, "story-page.png")
    # "Every post" shows the repeats again
    page.goto(stories_server.url + "/?q=мобилизация&mode=lexical&group=none")
    assert "results" in page.inner_text("p.total")


def test_trends_page_draws_a_line_per_query(stories_server, page):  # noqa: F811
    page.goto(stories_server.url + "/trends?q=мобилизация&q=Песков&interval=week&mode=lexical")
    page.wait_for_selector("svg")
    assert page.locator("svg polyline, svg path").count() >= 2
    assert page.locator("table").count() >= 1 and "мобилизация" in page.inner_text("table")
    shoot(page, "trends.png")
