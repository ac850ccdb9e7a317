"""Trends: each series adds up to its search's number of dated posts; periods are contiguous."""

from __future__ import annotations

from datetime import date

import pytest

from contract_data import search
from tgsearch.errors import QueryError

CORPUS = [
    {"id": 1, "channel": "steppe", "date": "2025-04-10T09:00:00Z", "text": "Москва и Астана обсудили поставки зерна."},
    {"id": 2, "channel": "steppe", "date": "2025-05-04T23:30:00Z", "text": "Китай открыл новый торговый коридор через Хоргос."},
    {"id": 3, "channel": "steppe", "date": "2025-05-05T00:10:00Z", "text": "Пекин и Астана договорились о транзите, Китай увеличит квоты."},
    {"id": 4, "channel": "river", "date": "2025-05-05T12:00:00Z", "text": "Россия и Казахстан подписали соглашение о мосте через Иртыш."},
    {"id": 5, "channel": "river", "date": "2025-06-02T08:00:00Z", "text": "Россия предложила Казахстану совместный проект по редким металлам."},
    {"id": 6, "channel": "plain", "date": "2025-06-20T08:00:00Z", "text": "Турция и Казахстан обсудили поставки урана."},
    {"id": 7, "channel": "plain", "date": "2025-07-15T08:00:00Z", "text": "Китай и Россия провели совместные учения."},
    {"id": 8, "channel": "steppe", "text": "Без даты: Россия напомнила о договоре по Байконуру."},
]
QUERIES = ["Россия", "Китай", "Казахстан"]


def dated(backend, q, **kw) -> int:
    return sum(1 for h in search(backend, q, limit=200, **kw).hits if h.date)


@pytest.mark.parametrize("interval", ["day", "week", "month"])
@pytest.mark.parametrize("mode", ["lexical", "hybrid"])
def test_series_add_up_to_the_search_totals(shared, interval, mode):
    body = shared.trends(QUERIES, interval, mode=mode)
    assert body["interval"] == interval and body["unit"] == "posts"
    assert [s["q"] for s in body["series"]] == QUERIES
    for s in body["series"]:
        assert len(s["counts"]) == len(body["periods"])
        assert sum(s["counts"]) == s["total"] == dated(shared, s["q"], mode=mode)


def test_periods_are_contiguous_and_named_by_their_first_day(shared):
    body = shared.trends(QUERIES, "month", mode="lexical")
    assert body["periods"] == ["2025-05-01", "2025-06-01", "2025-07-01"]
    china = next(s for s in body["series"] if s["q"] == "Китай")
    assert china["counts"] == [2, 0, 1]
    weeks = shared.trends(["Китай"], "week", mode="lexical")["periods"]
    assert all(date.fromisoformat(p).weekday() == 0 for p in weeks)


def test_filters_apply(shared):
    body = shared.trends(["Россия"], "month", mode="lexical", channels=("river",))
    assert body["series"][0]["total"] == 2
    body = shared.trends(["Россия"], "month", mode="lexical", since=date(2025, 6, 1))
    assert body["series"][0]["total"] == 2


def test_bad_trend_requests(shared):
    with pytest.raises(QueryError):
        shared.trends(["Россия"], "year")
    with pytest.raises(QueryError):
        shared.trends([], "month")
