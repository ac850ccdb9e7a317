"""Stories and copies as derived data (analyze/stories.py, index/stories.py) on hand-written posts."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from tgsearch.analyze.analyzer import default_analyzer
from tgsearch.backend import EmbeddedBackend
from tgsearch.index.stories import StoryIndex
from tgsearch.post import Post

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

BRIDGE = ("В Павлодаре после ремонта открыли мост через Иртыш. Движение по мосту запустили в 9 утра, "
          "ремонт обошёлся областному бюджету в 4,2 млрд тенге, сообщил аким области.")
# the same event, other channels: a copy with a footer, a copy with emoji, and a rewrite
BRIDGE_COPY = "⚡️ " + BRIDGE + "\n\nПодписывайтесь на наш канал @pavlodar_news"
BRIDGE_COPY2 = BRIDGE.replace("сообщил", "рассказал") + " 🔥"
BRIDGE_REWRITE = ("Аким Павлодарской области сообщил: мост через Иртыш открыт после ремонта, движение запущено "
                  "в 9 утра. На ремонт моста из областного бюджета потратили 4,2 млрд тенге.")
# same topic, another event: a follow-up days later and an unrelated story
BRIDGE_LATER = ("На мосту через Иртыш в Павлодаре спустя неделю после открытия снова ограничили движение: "
                "подрядчик переделывает швы асфальта, сроки работ уточняются.")
SCHOOL = ("В Астане к сентябрю построят три новые школы на 3600 мест, заявили в управлении образования "
          "города. Строительство финансирует республиканский бюджет.")


def post(pid, text, hours=0.0, **kw):
    channel = pid.split("/")[0]
    return Post(id=pid, channel=channel, text=text, date=T0 + timedelta(hours=hours), **kw)


POSTS = [
    post("irtysh/10", BRIDGE, 0),
    post("pavlodar/5", BRIDGE_COPY, 0.5),
    post("steppe/77", BRIDGE_COPY2, 1),
    post("kaznews/301", BRIDGE_REWRITE, 2),
    post("irtysh/11", BRIDGE_LATER, 24 * 7),
    post("astana/9", SCHOOL, 3),
]


@pytest.fixture
def store(tmp_path):
    from tgsearch.store import Store

    s = Store(tmp_path / "db")
    yield s
    s.close()


def placed(index, store):
    return index.placements([p.id for p in store.iter_posts(deleted=True)])


def test_one_event_across_channels_is_one_story_with_its_first_poster(store):
    store.upsert(POSTS)
    index = StoryIndex(store.root, default_analyzer())
    assert index.catch_up(store) == len(POSTS)
    p = placed(index, store)
    bridge = {p[i]["story"] for i in ("irtysh/10", "pavlodar/5", "steppe/77", "kaznews/301")}
    assert len(bridge) == 1
    story = bridge.pop()
    assert p["irtysh/11"]["story"] != story and p["astana/9"]["story"] not in (story, p["irtysh/11"]["story"])
    assert p["pavlodar/5"]["copy_of"] == "irtysh/10" and p["steppe/77"]["copy_of"] == "irtysh/10"
    assert p["irtysh/10"]["copy_of"] is None and p["kaznews/301"]["copy_of"] is None   # a rewrite, not a copy
    assert p["irtysh/10"]["story_size"] == 4 and p["irtysh/10"]["story_channels"] == 4
    s = index.story(story)
    assert s["first_post"] == "irtysh/10" and [x["id"] for x in s["posts"]][0] == "irtysh/10"
    assert index.status(store)["complete"] and index.status(store)["copies"] == 2


def test_an_earlier_copy_arriving_later_becomes_the_first_poster(store):
    store.upsert(POSTS[1:3])
    index = StoryIndex(store.root, default_analyzer())
    index.catch_up(store)
    assert placed(index, store)["steppe/77"]["copy_of"] == "pavlodar/5"
    store.upsert([POSTS[0]])                      # older than both, ingested last
    index.catch_up(store)
    p = placed(index, store)
    assert p["pavlodar/5"]["copy_of"] == "irtysh/10" and p["steppe/77"]["copy_of"] == "irtysh/10"
    assert p["irtysh/10"]["copy_of"] is None


def test_edits_and_deletions_move_posts_and_hand_the_first_poster_on(store):
    store.upsert(POSTS)
    index = StoryIndex(store.root, default_analyzer())
    index.catch_up(store)
    story = placed(index, store)["irtysh/10"]["story"]
    store.mark_deleted(["irtysh/10"])
    index.catch_up(store)
    p = placed(index, store)
    assert "irtysh/10" not in p and p["pavlodar/5"]["copy_of"] is None and p["steppe/77"]["copy_of"] == "pavlodar/5"
    assert p["pavlodar/5"]["story"] == story and p["pavlodar/5"]["story_size"] == 3
    # an edit that makes a post another story's
    store.upsert([post("kaznews/301", SCHOOL.replace("три", "3"), 3.5)])
    index.catch_up(store)
    p = placed(index, store)
    assert p["kaznews/301"]["story"] == p["astana/9"]["story"] and p["pavlodar/5"]["story_size"] == 2


def test_a_new_process_restores_the_state_and_places_new_posts_the_same_way(store):
    store.upsert(POSTS[:2] + POSTS[4:])
    StoryIndex(store.root, default_analyzer()).catch_up(store)
    index = StoryIndex(store.root, default_analyzer())       # as after a restart
    store.upsert([POSTS[2]])
    assert index.catch_up(store) == 1
    p = placed(index, store)
    assert p["steppe/77"]["story"] == p["irtysh/10"]["story"] and p["steppe/77"]["copy_of"] == "irtysh/10"


def test_rebuild_and_a_changed_builder_start_over(store, monkeypatch):
    store.upsert(POSTS)
    index = StoryIndex(store.root, default_analyzer())
    index.catch_up(store)
    before = placed(index, store)
    assert index.rebuild(store) == len(POSTS)
    after = placed(index, store)
    assert {k: v["copy_of"] for k, v in before.items()} == {k: v["copy_of"] for k, v in after.items()}
    from tgsearch.index import stories

    monkeypatch.setattr(stories, "BUILT_BY", "stories-test")
    index = StoryIndex(store.root, default_analyzer())
    assert index.hwm() == 0 and index.catch_up(store) == len(POSTS)


def test_backend_catches_stories_up_and_stats_say_so(tmp_path, monkeypatch):
    monkeypatch.setenv("TGSEARCH_STORIES", "sync")
    src = tmp_path / "posts.jsonl"
    src.write_text("\n".join(json.dumps({"id": p.id, "channel": p.channel, "text": p.text, "date": p.date.isoformat()},
                                        ensure_ascii=False) for p in POSTS), encoding="utf-8")
    b = EmbeddedBackend(tmp_path / "db")
    try:
        b.ingest([src])
        st = b.stats()["stories"]
        assert st["complete"] and st["posts"] == len(POSTS) and st["stories"] == 3
    finally:
        b.close()
    ro = EmbeddedBackend(tmp_path / "db", read_only=True)
    try:
        assert ro.stats()["stories"]["complete"]
    finally:
        ro.close()


# -- search, API, UI, export ---------------------------------------------------------------------
@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setenv("TGSEARCH_STORIES", "sync")
    from fastapi.testclient import TestClient

    from tgsearch.api.app import create_app

    src = tmp_path / "posts.jsonl"
    src.write_text("\n".join(json.dumps({"id": p.id, "channel": p.channel, "text": p.text, "date": p.date.isoformat()},
                                        ensure_ascii=False) for p in POSTS), encoding="utf-8")
    b = EmbeddedBackend(tmp_path / "db")
    b.ingest([src])
    with TestClient(create_app(b)) as client:
        yield b, client
    b.close()


def test_search_is_grouped_by_story_by_default_and_every_post_on_request(served):
    b, c = served
    r = c.get("/api/search", params={"q": "мост Иртыш", "mode": "lexical"}).json()
    assert r["group"] == "story" and r["total_posts"] == 5 and r["total"] == 2
    first = r["hits"][0]
    assert first["story_size"] == 4 and first["story_channels"] == 4 and first["story_matching"] == 4
    assert len({h["story"] for h in r["hits"]}) == len(r["hits"])
    every = c.get("/api/search", params={"q": "мост Иртыш", "mode": "lexical", "group": "none"}).json()
    assert every["group"] == "none" and every["total"] == 5 and len(every["hits"]) == 5
    # paging the grouped list is exact
    pages = [c.get("/api/search", params={"q": "мост Иртыш", "mode": "lexical", "limit": 1, "offset": o}).json()
             for o in range(3)]
    assert [len(p["hits"]) for p in pages] == [1, 1, 0] and pages[0]["hits"][0]["story"] != pages[1]["hits"][0]["story"]
    assert c.get("/api/search", params={"q": "x", "group": "bogus"}).status_code == 400


def test_stories_api_story_page_post_page_and_export(served):
    b, c = served
    listing = c.get("/api/stories", params={"q": "мост"}).json()
    assert listing["total"] == 2
    newest = listing["stories"][0]
    assert newest["first_post"] == "irtysh/11"                         # the later event is the newest activity
    bridge = next(s for s in listing["stories"] if s["size"] == 4)
    s = c.get(f"/api/stories/{bridge['id']}").json()
    assert s["first_post"] == "irtysh/10" and [p["post"]["id"] for p in s["posts"]][0] == "irtysh/10"
    copies = {p["post"]["id"]: p for p in s["posts"] if p["copy_of"]}
    assert set(copies) == {"pavlodar/5", "steppe/77"} and copies["pavlodar/5"]["copy_delay_seconds"] == 1800
    assert [ch["channel"] for ch in s["channels_list"]] == ["irtysh", "pavlodar", "steppe", "kaznews"]
    assert c.get("/api/stories/99999").status_code == 404
    page = c.get(f"/stories/{bridge['id']}").text
    assert 'id="propagation"' in page and "first poster" in page and "+30 min" in page
    post = c.get("/posts/pavlodar/5").text
    assert f'href="/stories/{bridge["id"]}"' in post and 'id="original-link"' in post
    search = c.get("/", params={"q": "мост Иртыш", "mode": "lexical"}).text
    assert "+3 more in 4 channels" in search and "stories" in search
    rows = [json.loads(line) for line in c.get("/api/export", params={"format": "jsonl"}).text.splitlines()]
    by_id = {r["id"]: r for r in rows}
    assert by_id["pavlodar/5"]["copy_of"] == "irtysh/10" and by_id["pavlodar/5"]["story"] == bridge["id"]
    assert by_id["irtysh/10"]["copy_of"] is None
    assert {"type": "place", "name": "Павлодар"} in by_id["irtysh/10"]["entities"]
    assert {"type": "place", "name": "Павлодар"} in [{"type": e["type"], "name": e["name"]} for e in s["entities"]]
    assert "Павлодар" in c.get("/posts/irtysh/10").text and 'id="entities"' in c.get("/posts/irtysh/10").text


def test_entity_query_fields_and_facets(served):
    b, c = served
    r = c.get("/api/search", params={"q": "place:Павлодар", "group": "none", "facets": 1}).json()
    ids = {h["id"] for h in r["hits"]}
    assert {"irtysh/10", "pavlodar/5", "steppe/77"} <= ids and "astana/9" not in ids
    assert c.get("/api/search", params={"q": "place:Павлодаре", "group": "none"}).json()["total"] == r["total"]
    assert c.get("/api/search", params={"q": "мост place:Астана", "group": "none"}).json()["total"] == 0
    assert c.get("/api/search", params={"q": 'person:"Нет Такого"'}).json()["total"] == 0
    places = {f["value"]: f["count"] for f in r["facets"]["place"]}
    assert places.get("Павлодар", 0) >= 3 and set(r["facets"]) >= {"person", "org", "place", "channel"}
    page = c.get("/", params={"q": "мост", "mode": "lexical"}).text
    assert 'data-facet="place"' in page and "place%3A%D0%9F%D0%B0%D0%B2%D0%BB%D0%BE%D0%B4%D0%B0%D1%80" in page


@pytest.mark.parametrize("fitted", [False, True])
def test_lead_vectors_are_used_when_the_vector_index_has_them_and_weights_are_fitted_for_them(
        tmp_path, monkeypatch, fitted):
    from tgsearch.analyze import stories

    if fitted:     # as e5's weights are: here for the default model, which is fast
        monkeypatch.setitem(stories.WEIGHTS, "use-multilingual-v3", stories.WEIGHTS["e5-small-4bit"])
    monkeypatch.setenv("TGSEARCH_STORIES", "sync")
    src = tmp_path / "posts.jsonl"
    src.write_text("\n".join(json.dumps({"id": p.id, "channel": p.channel, "text": p.text, "date": p.date.isoformat()},
                                        ensure_ascii=False) for p in POSTS), encoding="utf-8")
    b = EmbeddedBackend(tmp_path / "db", vectors="sync")
    try:
        b.ingest([src])
        c = b.stories.index.clusterer(b.store)
        assert {f.vec_model for f in c.posts.values()} == ({"use-multilingual-v3"} if fitted else {""})
        p = b.stories.index.placements([p.id for p in POSTS])
        assert len({p[i]["story"] for i in ("irtysh/10", "pavlodar/5", "steppe/77", "kaznews/301")}) == 1
        assert p["astana/9"]["story"] != p["irtysh/10"]["story"] != p["irtysh/11"]["story"]
    finally:
        b.close()


def test_near_identical_texts_with_other_figures_are_not_copies(store):
    rate = "Курс доллара на Московской бирже поднялся до {} рубля впервые с начала октября, сообщают трейдеры."
    store.upsert([post("fx/1", rate.format("92,5"), 0), post("fx2/1", rate.format("93,1"), 1),
                  post("fx3/1", rate.format("92,5") + "\n\nПодписывайтесь @fx3", 1.5)])
    index = StoryIndex(store.root, default_analyzer())
    index.catch_up(store)
    p = placed(index, store)
    assert p["fx2/1"]["copy_of"] is None and p["fx3/1"]["copy_of"] == "fx/1"
