"""stats(), health(), channels() shapes, and rename_channel."""

from __future__ import annotations

import pytest

from contract_data import ids, ingest_posts, search
from tgsearch.errors import NotFoundError

POSTS = [
    {"id": 1, "channel": "north_wind", "channel_title": "Северный Ветер", "date": "2025-01-06T09:00:00Z",
     "text": "Метель замела трассу на Петропавловск."},
    {"id": 2, "channel": "north_wind", "channel_title": "Северный Ветер", "date": "2025-01-09T09:00:00Z",
     "text": "Дорожники расчистили трассу после метели."},
    {"id": 3, "channel": "south_sun", "channel_title": "Южное Солнце", "date": "2025-02-01T09:00:00Z",
     "text": "В Шымкенте зацвёл миндаль."},
    {"id": 4, "channel": "south_sun", "channel_title": "Южное Солнце", "date": "2025-03-01T09:00:00Z",
     "kind": "article", "title": "Весна", "source_url": "https://example.org/spring", "text": "Весна пришла на юг раньше."},
]


def test_stats_health_and_channels(backend, tmp_path):
    ingest_posts(backend, tmp_path / "in" / "posts.jsonl", POSTS)
    stats = backend.stats()
    assert stats["posts"] == 4 and stats["deleted"] == 0
    assert stats["kinds"] == {"post": 3, "article": 1}
    assert stats["first_date"].startswith("2025-01-06") and stats["last_date"].startswith("2025-03-01")
    chans = backend.channels()
    assert chans == stats["channels"]
    by = {c["channel"]: c for c in chans}
    assert set(by) == {"north_wind", "south_sun"}
    for c in chans:
        assert {"channel", "title", "posts", "first", "last"} <= set(c)
    assert by["north_wind"]["title"] == "Северный Ветер" and by["north_wind"]["posts"] == 2
    assert by["south_sun"]["first"].startswith("2025-02-01") and by["south_sun"]["last"].startswith("2025-03-01")
    assert sum(c["posts"] for c in chans) == stats["posts"]
    health = backend.health()
    assert health["status"] == "ok" and health["indexed"] == 4
    backend.mark_deleted(["south_sun/3"])
    stats = backend.stats()
    assert stats["posts"] == 3 and stats["deleted"] == 1
    assert {c["channel"]: c["posts"] for c in backend.channels()} == {"north_wind": 2, "south_sun": 1}
    assert backend.health()["indexed"] == 3


def test_an_empty_backend(backend):
    stats = backend.stats()
    assert stats["posts"] == 0 and stats["channels"] == [] and backend.channels() == []
    assert backend.health()["status"] == "ok"
    assert search(backend, "метель").total == 0
    assert list(backend.iter_posts()) == []
    with pytest.raises(NotFoundError):
        backend.get("north_wind/1")


def test_rename_channel(backend, tmp_path):
    """A rename reaches a backend that has already searched (cached channel names follow it)."""
    path = tmp_path / "in" / "posts.jsonl"
    ingest_posts(backend, path, POSTS)
    assert ids(backend, 'channel:"Северный Ветер"')            # resolved before the rename
    assert backend.rename_channel("north_wind", "Норд") == 2
    by = {c["channel"]: c["title"] for c in backend.channels()}
    assert by == {"north_wind": "Норд", "south_sun": "Южное Солнце"}
    assert set(ids(backend, "channel:Норд")) == {"north_wind/1", "north_wind/2"}
    assert set(ids(backend, "метель", channels=("Норд",))) == {"north_wind/1", "north_wind/2"}
    labels = {f["value"]: f["label"] for f in search(backend, "", facets=True).facets["channel"]}
    assert labels["north_wind"] == "Норд"
    ingest_posts(backend, path, POSTS)                           # the name is kept across re-ingests
    assert {c["channel"]: c["title"] for c in backend.channels()}["north_wind"] == "Норд"
    with pytest.raises(NotFoundError):
        backend.rename_channel("nosuch", "X")
