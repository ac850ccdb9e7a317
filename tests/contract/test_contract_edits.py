"""Edits (new text found, old text gone) and counters-only changes (views refreshed, nothing else)."""

from __future__ import annotations

from dataclasses import replace

from contract_data import counts, ids, ingest_posts, search

BASE = [
    {"id": 10, "channel": "city_desk", "date": "2025-03-01T08:00:00Z", "views": 100, "reactions": {"👍": 4},
     "text": "Мэрия пообещала отремонтировать пешеходный мост через овраг к маю."},
    {"id": 11, "channel": "city_desk", "date": "2025-03-02T08:00:00Z", "views": 50,
     "text": "В библиотеке на окраине открыли зал настольных игр."},
]
EDITED = [dict(BASE[0], text="Мэрия перенесла ремонт путепровода у вокзала на осень."), BASE[1]]
COUNTED = [dict(BASE[0], views=2500, reactions={"👍": 40, "🔥": 3}), BASE[1]]


def test_an_edit_is_found_by_its_new_text_and_not_by_its_old(backend, tmp_path):
    path = tmp_path / "in" / "posts.jsonl"
    ingest_posts(backend, path, BASE)
    assert ids(backend, "мост овраг") == ["city_desk/10"]
    report = ingest_posts(backend, path, EDITED)
    assert counts(report) == {"new": 0, "updated": 1, "refreshed": 0, "unchanged": 1}
    assert backend.get("city_desk/10").text == EDITED[0]["text"]
    assert ids(backend, "мост") == [] and ids(backend, "овраг") == []
    assert ids(backend, "путепровод") == ["city_desk/10"]
    assert ids(backend, "вокзала", mode="hybrid")[:1] == ["city_desk/10"]
    hit = search(backend, "путепровод").hits[0]
    assert hit.text == EDITED[0]["text"] and "<mark>" in hit.snippet
    # still one post, and the other one untouched
    assert sorted(p.id for p in backend.iter_posts()) == ["city_desk/10", "city_desk/11"]
    assert backend.stats()["posts"] == 2
    total, posts = backend.search_all(replace_req("путепровод"))
    assert total == 1 and [p.text for p in posts] == [EDITED[0]["text"]]


def replace_req(q):
    from tgsearch.search.types import SearchRequest

    return SearchRequest(q=q, mode="lexical", group="none")


def test_a_counters_only_change_refreshes_views_and_nothing_else(backend, tmp_path):
    path = tmp_path / "in" / "posts.jsonl"
    ingest_posts(backend, path, BASE)
    before, other = backend.get("city_desk/10"), backend.get("city_desk/11")
    hits_before = [(h.id, h.text, h.snippet) for h in search(backend, "мост").hits]
    assert before.views == 100
    report = ingest_posts(backend, path, COUNTED)
    assert counts(report) == {"new": 0, "updated": 0, "refreshed": 1, "unchanged": 1}
    after = backend.get("city_desk/10")
    assert after.views == 2500 and after.reactions == {"👍": 40, "🔥": 3}
    assert after == replace(before, views=2500, reactions={"👍": 40, "🔥": 3})
    assert backend.get("city_desk/11") == other
    found = search(backend, "мост")
    assert [(h.id, h.text, h.snippet) for h in found.hits] == hits_before
    assert found.hits[0].views == 2500
    assert backend.get_many(["city_desk/10"])[0].views == 2500
    total, posts = backend.search_all(replace_req("мост"))
    assert total == 1 and [p.views for p in posts] == [2500]
    # the same counters again: nothing to do
    assert counts(ingest_posts(backend, path, COUNTED)) == {"new": 0, "updated": 0, "refreshed": 0, "unchanged": 2}
