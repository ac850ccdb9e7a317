"""Deletion: a deleted post leaves search and export, stays readable with deleted=True, and a
source delivering it again does not bring it back."""

from __future__ import annotations

from contract_data import ids, ingest_posts, search
from tgsearch.search.types import SearchRequest

POSTS = [
    {"id": i, "channel": ch, "date": f"2025-04-{i:02d}T10:00:00Z", "text": text}
    for i, (ch, text) in enumerate([
        ("dam_watch", "Плотину на реке Ишим закрыли на ремонт, воду сбросят постепенно."),
        ("dam_watch", "Уровень воды в реке Ишим упал после сброса с плотины."),
        ("farm_news", "Фермеры у реки Ишим начали полив раньше обычного."),
    ], start=1)
]


def test_a_deleted_post_is_gone_from_search_and_export_but_readable(backend, tmp_path):
    path = tmp_path / "in" / "posts.jsonl"
    ingest_posts(backend, path, POSTS)
    assert set(ids(backend, "Ишим")) == {"dam_watch/1", "dam_watch/2", "farm_news/3"}
    assert backend.mark_deleted(["dam_watch/1"]) == 1
    for mode in ("lexical", "hybrid"):
        assert set(ids(backend, "Ишим", mode=mode)) >= {"dam_watch/2", "farm_news/3"}
        assert "dam_watch/1" not in ids(backend, "Ишим", mode=mode)
        assert "dam_watch/1" not in ids(backend, "плотина ремонт", mode=mode)
    assert search(backend, "Ишим").total == 2
    total, posts = backend.search_all(SearchRequest(q="Ишим", mode="lexical", group="none"))
    assert total == 2 and sorted(p.id for p in posts) == ["dam_watch/2", "farm_news/3"]
    total, posts = backend.search_all(SearchRequest(q="", group="none"))
    assert total == 2 and "dam_watch/1" not in [p.id for p in posts]
    post = backend.get("dam_watch/1")
    assert post.deleted is True and post.text == POSTS[0]["text"]
    assert [p.id for p in backend.get_many(["dam_watch/1", "dam_watch/2"])] == ["dam_watch/2"]
    assert "dam_watch/1" not in [p.id for p in backend.iter_posts()]
    assert "dam_watch/1" in [p.id for p in backend.iter_posts(deleted=True)]
    stats = backend.stats()
    assert stats["posts"] == 2 and stats["deleted"] == 1
    facets = search(backend, "Ишим", facets=True).facets
    assert {f["value"]: f["count"] for f in facets["channel"]} == {"dam_watch": 1, "farm_news": 1}
    assert backend.mark_deleted(["dam_watch/1"]) == 0          # already deleted
    assert backend.mark_deleted(["nosuch/1"]) == 0


def test_a_source_delivering_a_deleted_post_again_does_not_bring_it_back(backend, tmp_path):
    path = tmp_path / "in" / "posts.jsonl"
    ingest_posts(backend, path, POSTS)
    backend.mark_deleted(["farm_news/3"])
    again = backend.ingest([path])
    assert again.total("new") == 0
    assert backend.get("farm_news/3").deleted is True
    assert "farm_news/3" not in ids(backend, "фермеры")
