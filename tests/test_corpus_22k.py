"""The 22k-post Telethon corpus ingests completely with channels and UTC dates."""

import json
from collections import Counter
from datetime import timezone

import pytest

from tgsearch.ingest import ingest
from tgsearch.store import Store

pytestmark = pytest.mark.slow


def test_all_22099_posts_ingest_with_channels_and_utc_dates(tmp_path, shared):
    raw = shared("data", "tg-news-posts-ru", "raw")
    expected_channels: Counter = Counter()
    expected_dates = {}
    for path in sorted(raw.glob("*.json")):
        for record in json.loads(path.read_text(encoding="utf-8")):
            expected_channels[record["channel"]] += 1
            expected_dates[(record["channel"], record["message_id"])] = record["date"]
    assert sum(expected_channels.values()) == 22099

    store = Store(tmp_path / "db")
    report = ingest(store, [raw])
    assert report.errors == []
    assert report.posts == 22099 and store.count() == 22099

    got_channels: Counter = Counter()
    checked = 0
    for post in store.iter_posts():
        got_channels[post.channel_title] += 1
        assert post.date.tzinfo is not None and post.date.utcoffset().total_seconds() == 0
        original = expected_dates[(post.channel_title, post.message_ids[0])]
        assert post.date.isoformat() == original.replace("Z", "+00:00")
        assert post.date.tzinfo == timezone.utc
        assert post.channel.startswith("c") and post.id == f"{post.channel}/{post.message_ids[0]}"
        assert "**" not in post.text
        checked += 1
    assert checked == 22099
    assert got_channels == expected_channels
    assert len({p for p in got_channels}) == 24
