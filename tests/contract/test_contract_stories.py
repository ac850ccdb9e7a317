"""Stories: two retellings of one event in two channels are one story (grouped search, story(),
stories_search, export fields)."""

from __future__ import annotations

import pytest

from contract_data import search
from tgsearch.errors import NotFoundError
from tgsearch.search.types import SearchRequest

FERRY = ("В Уральске после ремонта запустили паром через реку Урал. Первый рейс отправился в 8 утра, "
         "ремонт парома обошёлся городскому бюджету в 310 млн тенге, сообщил аким города.")
CORPUS = [
    {"id": 40, "channel": "ural_today", "date": "2026-04-06T08:00:00Z", "text": FERRY},
    {"id": 7, "channel": "west_line", "date": "2026-04-06T08:45:00Z",
     "text": "⚡️ " + FERRY + "\n\nПодписывайтесь на наш канал @west_line"},
    {"id": 41, "channel": "ural_today", "date": "2026-04-06T12:00:00Z",
     "text": "В Актобе к зиме откроют два новых детских сада на 560 мест, заявили в управлении образования."},
]
STORIES = True
FIRST, COPY, OTHER = "ural_today/40", "west_line/7", "ural_today/41"


def test_one_grouped_hit_for_the_two_retellings(shared):
    res = search(shared, "паром Урал", group="story")
    assert res.group == "story" and res.total == 1 and res.total_posts == 2
    hit = res.hits[0]
    assert hit.id in (FIRST, COPY) and hit.story is not None
    assert hit.story_size == 2 and hit.story_channels == 2 and hit.story_matching == 2
    every = search(shared, "паром Урал", group="none")
    assert every.group == "none" and every.total == 2 and {h.id for h in every.hits} == {FIRST, COPY}
    assert len({h.story for h in every.hits}) == 1
    copy = next(h for h in every.hits if h.id == COPY)
    assert copy.copy_of == FIRST
    other = search(shared, "детский сад", group="story").hits[0]
    assert other.id == OTHER and other.story != hit.story and other.story_size == 1


def test_story_lists_both_posts_first_poster_first(shared):
    story_id = search(shared, "паром", group="story").hits[0].story
    s = shared.story(story_id)
    assert s["first_post"] == FIRST
    assert [p["post"].id for p in s["posts"]] == [FIRST, COPY]
    assert {p["post"].id: p["copy_of"] for p in s["posts"]} == {FIRST: None, COPY: FIRST}
    copy = next(p for p in s["posts"] if p["post"].id == COPY)
    assert copy["copy_delay_seconds"] == 45 * 60 and copy["delay_seconds"] == 45 * 60
    assert [ch["channel"] for ch in s["channels_list"]] == ["ural_today", "west_line"]
    assert s["title"]
    with pytest.raises(NotFoundError):
        shared.story(987654)


def test_stories_search(shared):
    story_id = search(shared, "паром", group="story").hits[0].story
    found = shared.stories_search(SearchRequest(q="паром", mode="lexical"))
    assert found["total"] == 1 and [s["id"] for s in found["stories"]] == [story_id]
    row = found["stories"][0]
    assert row["matching"] == 2 and row["first_post"] == FIRST and row["first_channel"] == "ural_today"
    assert shared.stories_search(SearchRequest(q="паром OR детский", mode="lexical"))["total"] == 2
    assert shared.stories_search(SearchRequest(q="дирижабль", mode="lexical"))["total"] == 0


def test_export_fields_carry_story_and_copy(shared):
    fields = shared.export_fields([FIRST, COPY, OTHER])
    assert fields[FIRST]["story"] == fields[COPY]["story"] != fields[OTHER]["story"]
    assert fields[COPY]["copy_of"] == FIRST and fields[FIRST]["copy_of"] is None


@pytest.mark.stories
def test_deleting_the_first_poster_hands_the_story_on(backend, tmp_path):
    from contract_data import ingest_posts

    ingest_posts(backend, tmp_path / "in" / "posts.jsonl", CORPUS)
    backend.mark_deleted([FIRST])
    res = search(backend, "паром", group="story")
    assert res.total == 1 and res.hits[0].id == COPY and res.hits[0].story_size == 1
    s = backend.story(res.hits[0].story)
    assert [p["post"].id for p in s["posts"]] == [COPY] and s["first_post"] == COPY


def test_reindex_stories_places_every_post_again(backend, tmp_path):
    from contract_data import ingest_posts

    ingest_posts(backend, tmp_path / "in" / "posts.jsonl", CORPUS)
    seen = []
    n, status = backend.reindex_stories(on_progress=lambda done, total: seen.append((done, total)))
    assert n == 3 and status["complete"] and status["copies"] == 1
    assert all(total == 3 and done <= 3 for done, total in seen)
    res = search(backend, "паром", group="story")
    assert res.total == 1 and res.hits[0].id == FIRST and res.hits[0].story_matching == 2
