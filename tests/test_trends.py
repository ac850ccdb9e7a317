"""Trends (/api/trends, /trends): series add up to the search totals, periods, filters, stories, CSV, page."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tgsearch.api.app import create_app
from tgsearch.backend import EmbeddedBackend
from tgsearch.search.trends import periods_between, period_start

# An invented corpus (every sentence made up). 2025-05-04 is a Sunday, 2025-05-05 a Monday.
BRIDGE = "Россия и Казахстан подписали соглашение о строительстве моста через Иртыш у Павлодара."
POSTS = [
    {"id": 1, "channel": "steppe", "date": "2025-04-10T09:00:00Z", "text": "Москва и Астана обсудили поставки зерна."},
    {"id": 2, "channel": "steppe", "date": "2025-05-04T23:30:00Z", "text": "Китай открыл новый торговый коридор через Хоргос."},
    {"id": 3, "channel": "steppe", "date": "2025-05-05T00:10:00Z", "text": "Пекин и Астана договорились о транзите, КНР увеличит квоты."},
    {"id": 4, "channel": "river", "date": "2025-05-05T12:00:00Z", "text": BRIDGE},
    {"id": 5, "channel": "river", "date": "2025-05-06T12:00:00Z", "text": "Вашингтон предложил Казахстану программу по редким металлам, США ждут ответа."},
    {"id": 6, "channel": "plain", "date": "2025-05-06T14:00:00Z", "text": BRIDGE},
    {"id": 7, "channel": "plain", "date": "2025-06-02T08:00:00Z", "text": BRIDGE},
    {"id": 8, "channel": "plain", "date": "2025-06-03T08:00:00Z", "text": "Евросоюз и Казахстан провели встречу в Брюсселе о зелёном водороде."},
    {"id": 9, "channel": "river", "date": "2025-06-20T08:00:00Z", "text": "Турция и Казахстан обсудили поставки урана, Анкара ждёт контракт."},
    {"id": 10, "channel": "river", "date": "2025-07-15T08:00:00Z", "text": "Китай и Россия провели совместные учения, Пекин доволен."},
    {"id": 11, "channel": "steppe", "text": "Без даты: Россия напомнила о договоре по Байконуру."},
    {"id": 12, "channel": "steppe", "date": "2025-07-16T08:00:00Z", "text": "Погода в Алматы: снег в горах и дождь в городе."},
]

RU, CN = "Россия OR РФ OR Москва", "Китай OR КНР OR Пекин"


def build(root: Path, **kw) -> EmbeddedBackend:
    src = root / "posts.jsonl"
    src.write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in POSTS) + "\n", encoding="utf-8")
    b = EmbeddedBackend(root / "db", **kw)
    report = b.ingest([src])
    assert not report.errors, report.errors
    return b


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("TGSEARCH_STORIES", "sync")
    b = build(tmp_path_factory.mktemp("trends"))
    with TestClient(create_app(b)) as c:
        yield c
    b.close()
    mp.undo()


def search_all(c, q, **params) -> list[dict]:
    body = c.get("/api/search", params={"q": q, "group": "none", "limit": 200, **params}).json()
    assert body["total"] == len(body["hits"]) <= 200
    return body["hits"]


def dated_total(c, q, **params) -> int:
    return sum(1 for h in search_all(c, q, **params) if h["date"])


def trends(c, queries, **params):
    r = c.get("/api/trends", params=[("q", q) for q in queries] + list(params.items()))
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("interval", ["day", "week", "month"])
def test_series_add_up_to_the_search_totals_of_dated_posts(client, interval):
    body = trends(client, [RU, CN, "Казахстан"], interval=interval, mode="lexical")
    assert body["interval"] == interval and body["unit"] == "posts"
    assert [s["q"] for s in body["series"]] == [RU, CN, "Казахстан"]
    for s in body["series"]:
        assert len(s["counts"]) == len(body["periods"])
        assert sum(s["counts"]) == s["total"] == dated_total(client, s["q"], mode="lexical") > 0
    # the undated post matches RU but is in no period
    assert len(search_all(client, RU, mode="lexical")) == body["series"][0]["total"] + 1


def test_periods_are_contiguous_days_monday_weeks_and_months(client):
    month = trends(client, [CN], interval="month", mode="lexical")
    assert month["periods"] == ["2025-05-01", "2025-06-01", "2025-07-01"]
    assert month["series"][0]["counts"] == [2, 0, 1]
    week = trends(client, [CN], interval="week", mode="lexical")
    # Sunday 4 May falls in the week of Monday 28 April, Monday 5 May starts the next one
    assert week["periods"][:2] == ["2025-04-28", "2025-05-05"] and week["series"][0]["counts"][:2] == [1, 1]
    assert week["periods"][-1] == "2025-07-14" and len(week["periods"]) == 12
    assert all(period_start(date.fromisoformat(p), "week").isoformat() == p for p in week["periods"])
    day = trends(client, [CN], interval="day", mode="lexical")
    assert day["periods"][0] == "2025-05-04" and day["periods"][-1] == "2025-07-15"
    assert len(day["periods"]) == 73 and sum(day["series"][0]["counts"]) == 3
    # the periods span every series: the first and last non-empty period over all of them
    both = trends(client, [RU, CN], interval="month", mode="lexical")
    assert both["periods"][0] == "2025-04-01" and both["series"][1]["counts"][0] == 0


def test_filters_are_those_of_the_search(client):
    params = {"channel": "river", "since": "2025-05-05", "until": "2025-06-30", "mode": "lexical"}
    body = trends(client, [RU, "Казахстан"], interval="week", **params)
    for s in body["series"]:
        assert s["total"] == dated_total(client, s["q"], **params)
    assert body["series"][1]["total"] == 3      # river/4, river/5, river/9: not river/10 (July), not plain/*
    assert body["periods"][0] >= "2025-05-05" and body["periods"][-1] <= "2025-06-30"


def test_unit_stories_counts_distinct_stories_per_period(client):
    posts = trends(client, ["Иртыш"], interval="month", mode="lexical")
    stories = trends(client, ["Иртыш"], interval="month", mode="lexical", unit="stories")
    assert stories["unit"] == "stories" and posts["periods"] == stories["periods"] == ["2025-05-01", "2025-06-01"]
    assert posts["series"][0]["counts"] == [2, 1]       # three copies of one story
    assert stories["series"][0]["counts"] == [1, 1]     # one story, counted in each month it appeared
    # in general: the distinct (period, story) pairs of the search's hits
    for q in (RU, "Казахстан"):
        hits = [h for h in search_all(client, q, mode="lexical") if h["date"]]
        assert all(h["story"] is not None for h in hits)
        body = trends(client, [q], interval="week", mode="lexical", unit="stories")
        expected = {}
        for h in hits:
            p = period_start(date.fromisoformat(h["date"][:10]), "week").isoformat()
            expected.setdefault(p, set()).add(h["story"])
        got = dict(zip(body["periods"], body["series"][0]["counts"]))
        assert {p: n for p, n in got.items() if n} == {p: len(s) for p, s in expected.items()}


def test_csv_matches_json(client):
    params = [("q", RU), ("q", "=Казахстан"), ("interval", "week"), ("mode", "lexical")]
    body = client.get("/api/trends", params=params).json()
    for url, extra in (("/api/trends.csv", []), ("/api/trends", [("format", "csv")])):
        r = client.get(url, params=params + extra)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(r.text)))
        assert rows[0] == ["period", RU, "'=Казахстан"]      # a formula-like header is defused
        assert [r[0] for r in rows[1:]] == body["periods"]
        for k, s in enumerate(body["series"]):
            assert [int(r[k + 1]) for r in rows[1:]] == s["counts"]


def test_bad_parameters_are_400(client):
    bad = [
        [("q", "Китай"), ("interval", "year")],
        [("q", "Китай"), ("unit", "channels")],
        [("q", "Китай"), ("mode", "fuzzy")],
        [("q", "Китай"), ("since", "май")],
        [("q", "Китай since:")],
        [("q", "")],
        [("q", f"слово{i}") for i in range(11)],
        [("q", "Китай"), ("format", "xml")],
    ]
    for params in bad:
        r = client.get("/api/trends", params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["error"] == "query" and r.json()["message"]
    assert client.get("/api/trends.csv", params=[("q", "Китай"), ("interval", "hour")]).status_code == 400
    assert client.get("/api/trends", params=[("q", f"слово{i}") for i in range(10)]).status_code == 200


def test_page_renders_chart_table_and_escapes_hostile_queries(client):
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    r = client.get("/trends", params=[("q", RU), ("q", CN), ("q", hostile), ("interval", "month"), ("mode", "lexical")])
    assert r.status_code == 200
    page = r.text
    assert "<script>alert" not in page and "<img src=x" not in page and "&lt;script&gt;" in page
    assert "<svg" in page and page.count("<polyline") == 3 and 'id="trends-table"' in page
    assert "<td class=\"day\">2025-05-01</td>" in page
    assert 'href="/api/trends.csv?q=' in page and 'id="trends-csv"' in page
    assert page.count('name="q"') == 5                      # the three queries plus two empty boxes
    assert 'aria-current="page">Trends' in page
    assert "style=" not in page.split("<main", 1)[1]        # the CSP allows no inline styles
    # the CSV link gives the same numbers as the table
    csv_href = page.split('id="trends-csv"')[0].rsplit('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert client.get(csv_href).status_code == 200


def test_page_preset_empty_and_error(client):
    empty = client.get("/trends")
    assert empty.status_code == 200 and "<svg" not in empty.text and 'id="preset-partners"' in empty.text
    href = empty.text.split('id="preset-partners"')[0].rsplit('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    preset = client.get(href)
    assert preset.status_code == 200 and preset.text.count("<polyline") == 5
    for name in ("Россия", "Китай", "США", "ЕС", "Турция"):
        assert f'name="q" value="{name} OR ' in preset.text       # ordinary queries, editable in the form
    bad = client.get("/trends", params=[("q", "Китай"), ("interval", "year")])
    assert bad.status_code == 400 and 'id="error"' in bad.text and "interval" in bad.text


def test_periods_between():
    assert periods_between(date(2024, 11, 1), date(2025, 2, 1), "month") == \
        [date(2024, 11, 1), date(2024, 12, 1), date(2025, 1, 1), date(2025, 2, 1)]


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory):
    b = build(tmp_path_factory.mktemp("trends-hybrid"), vectors="sync")
    assert b.semantic_available()
    with TestClient(create_app(b)) as c:
        yield c
    b.close()


@pytest.mark.parametrize("mode", ["hybrid", "semantic"])
def test_semantic_modes_add_up_too(hybrid, mode):
    queries = [RU, "торговля с Китаем", "водород"]
    for interval in ("week", "month"):
        body = trends(hybrid, queries, interval=interval, mode=mode)
        for s in body["series"]:
            assert sum(s["counts"]) == s["total"] == dated_total(hybrid, s["q"], mode=mode) > 0
    if mode == "hybrid":
        # the semantic-only hits are counted: more than the words alone find
        lexical = trends(hybrid, ["водород"], interval="month", mode="lexical")["series"][0]["total"]
        assert trends(hybrid, ["водород"], interval="month")["series"][0]["total"] > lexical
