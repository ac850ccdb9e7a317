"""Ingest idempotence: the same input twice adds nothing and changes nothing, for every format."""

from __future__ import annotations

import pytest

from contract_data import counts, ids, ingest_posts, search

POSTS = [
    {"id": 1, "channel": "steppe_wire", "date": "2025-02-03T09:00:00Z", "views": 120,
     "text": "Элеватор под Костанаем принял первую партию ячменя нового урожая."},
    {"id": 2, "channel": "steppe_wire", "date": "2025-02-04T09:00:00Z",
     "text": "На трассе до Кокшетау открыли новую заправку с зарядкой для электромобилей."},
    {"id": 3, "channel": "river_post", "date": "2025-02-05T09:00:00Z", "title": "Лёд",
     "text": "Спасатели предупредили рыбаков: лёд на водохранилище стал тонким."},
]


def test_second_ingest_of_the_same_file_adds_nothing(backend, tmp_path):
    first = ingest_posts(backend, tmp_path / "in" / "posts.jsonl", POSTS)
    assert counts(first) == {"new": 3, "updated": 0, "refreshed": 0, "unchanged": 0}
    before = {p.id: p for p in backend.iter_posts()}
    found = ids(backend, "ячмень")
    second = backend.ingest([tmp_path / "in" / "posts.jsonl"])
    assert counts(second) == {"new": 0, "updated": 0, "refreshed": 0, "unchanged": 3}
    assert {p.id: p for p in backend.iter_posts()} == before
    assert ids(backend, "ячмень") == found == ["steppe_wire/1"]
    assert backend.stats()["posts"] == 3


def test_the_same_posts_in_another_file_are_the_same_posts(backend, tmp_path):
    ingest_posts(backend, tmp_path / "a" / "posts.jsonl", POSTS)
    again = ingest_posts(backend, tmp_path / "b" / "copy.jsonl", POSTS)
    assert again.total("new") == 0 and again.total("updated") == 0
    assert sorted(p.id for p in backend.iter_posts()) == ["river_post/3", "steppe_wire/1", "steppe_wire/2"]
    assert search(backend, "лёд водохранилище").total == 1


@pytest.mark.parametrize("name", ["tg_json", "tg_html", "text", "articles"])
def test_fixture_formats_ingest_once(backend, fixtures_dir, name):
    folder = fixtures_dir / name
    first = backend.ingest([folder])
    assert first.posts > 0 and first.total("new") > 0
    stored = sorted(p.id for p in backend.iter_posts())
    assert len(stored) == len(set(stored)) == backend.stats()["posts"]
    second = backend.ingest([folder])
    assert second.total("new") == 0 and second.total("updated") == 0
    assert sorted(p.id for p in backend.iter_posts()) == stored
    # every stored post is searchable: listing everything (no words) counts them all
    assert search(backend, "", limit=1).total == len(stored)
