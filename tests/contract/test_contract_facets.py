"""Facets and the timeline: their counts add up to the posts matching (total_posts)."""

from __future__ import annotations

from datetime import date

import pytest

from contract_data import search
from tgsearch.errors import QueryError

CORPUS = [
    {"id": i + 1, "channel": ch, "channel_title": title, "date": d, "text": text, **extra}
    for i, (ch, title, d, text, extra) in enumerate([
        ("north_wind", "Северный Ветер", "2025-01-06T09:00:00Z", "Метель замела трассу на Петропавловск, движение закрыто.", {}),
        ("north_wind", "Северный Ветер", "2025-01-08T09:00:00Z", "После метели дорожники расчистили трассу к утру.", {}),
        ("north_wind", "Северный Ветер", "2025-02-11T09:00:00Z", "Морозы до минус сорока ожидаются на севере области.", {}),
        ("south_sun", "Южное Солнце", "2025-01-07T09:00:00Z", "В Шымкенте зацвёл миндаль, хотя на севере метель.", {}),
        ("south_sun", "Южное Солнце", "2025-03-15T09:00:00Z", "Фермеры юга начали сев хлопка раньше срока.", {}),
        ("digest_hub", "Дайджест", "2025-02-20T09:00:00Z", "Обзор прессы: метель и морозы на севере страны.",
         {"publication": "Вечерний Курьер"}),
        ("digest_hub", "Дайджест", "2025-03-02T09:00:00Z", "Обзор прессы: сев хлопка и цены на воду.",
         {"publication": "Утренний Листок"}),
    ])
]


@pytest.mark.parametrize("q", ["метель", "метель OR хлопок", "север", ""])
def test_facet_and_timeline_counts_add_up_to_the_posts_matching(shared, q):
    res = search(shared, q, facets=True, group="story")
    assert res.total_posts >= res.total > 0
    assert sum(f["count"] for f in res.facets["channel"]) == res.total_posts
    assert sum(f["count"] for f in res.facets["month"]) == res.total_posts
    assert sum(b["count"] for b in res.timeline) == res.total_posts
    starts = [b["start"] for b in res.timeline]
    assert starts == sorted(starts)


def test_facet_values_labels_and_months(shared):
    res = search(shared, "метель", facets=True)
    assert res.total_posts == res.total == 4
    channels = {f["value"]: f["count"] for f in res.facets["channel"]}
    assert channels == {"north_wind": 2, "south_sun": 1, "digest_hub": 1}
    assert {f["value"]: f["label"] for f in res.facets["channel"]}["north_wind"] == "Северный Ветер"
    assert [(m["value"], m["count"]) for m in res.facets["month"]] == [("2025-01", 3), ("2025-02", 1)]
    assert {f["value"]: f["count"] for f in res.facets["publication"]} == {"Вечерний Курьер": 1}


def test_timeline_intervals(shared):
    daily = search(shared, "метель", facets=True, interval="day")
    assert [(b["start"], b["count"]) for b in daily.timeline if b["count"]] == [
        ("2025-01-06", 1), ("2025-01-07", 1), ("2025-01-08", 1), ("2025-02-20", 1)]
    weekly = search(shared, "метель", facets=True, interval="week")
    assert all(date.fromisoformat(b["start"]).weekday() == 0 for b in weekly.timeline)     # Mondays
    assert [(b["start"], b["count"]) for b in weekly.timeline if b["count"]] == [("2025-01-06", 3), ("2025-02-17", 1)]
    monthly = search(shared, "", facets=True, interval="month")
    assert sum(b["count"] for b in monthly.timeline) == len(CORPUS)
    with pytest.raises(QueryError):
        search(shared, "метель", facets=True, interval="year")


def test_facets_follow_the_filters(shared):
    res = search(shared, "метель", facets=True, channels=("north_wind",))
    assert {f["value"]: f["count"] for f in res.facets["channel"]} == {"north_wind": 2}
    assert sum(b["count"] for b in res.timeline) == res.total_posts == 2
