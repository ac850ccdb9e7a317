"""Filters and the query language: channel:, since:/until:, kind:, NOT/-, OR, AND, phrases, prefix*,
=exact, word forms; and the same filters as request fields."""

from __future__ import annotations

from datetime import date

import pytest

from contract_data import ids, search
from tgsearch.errors import QueryError

CORPUS = [
    {"id": 1, "channel": "steppe_wire", "channel_title": "Степной Телеграф", "date": "2025-02-03T09:00:00Z",
     "text": "Казахстан увеличил экспорт пшеницы в Китай по железной дороге."},
    {"id": 2, "channel": "steppe_wire", "channel_title": "Степной Телеграф", "date": "2025-02-10T09:00:00Z",
     "text": "Отгрузка пшеницы через порт Актау сократилась из-за шторма на море."},
    {"id": 3, "channel": "river_post", "channel_title": "Речная Почта", "date": "2025-03-05T12:00:00Z",
     "text": "На набережной прошёл фестиваль бумажных фонариков, пришли сотни горожан."},
    {"id": 4, "channel": "river_post", "channel_title": "Речная Почта", "date": "2025-03-20T12:00:00Z",
     "text": "Бумажный фонарик застрял на шпиле вокзала, спасатели сняли его к вечеру."},
    {"id": 5, "channel": "river_post", "channel_title": "Речная Почта", "date": "2025-04-02T12:00:00Z",
     "text": "Паводок подтопил дачи у реки, жители ждут компенсаций от акимата."},
    {"id": 6, "channel": "orbit_lab", "channel_title": "Орбита", "date": "2025-04-15T08:00:00Z",
     "text": "Космонавты провели выход в открытый космос и заменили антенну станции."},
    {"id": 7, "channel": "orbit_lab", "channel_title": "Орбита", "date": "2025-05-01T08:00:00Z", "kind": "article",
     "title": "Спутники и погода", "source_url": "https://example.org/sat",
     "text": "Метеорологические спутники помогают заранее предсказывать паводки и штормы."},
    {"id": 8, "channel": "orbit_lab", "channel_title": "Орбита", "date": "2025-05-20T08:00:00Z",
     "text": "Новый космодром примет первые пуски грузовых кораблей летом."},
]


def s(backend, q, **kw) -> set[str]:
    return set(ids(backend, q, **kw))


def test_word_forms(shared):
    assert s(shared, "паводком") == {"river_post/5", "orbit_lab/7"}       # паводок, паводки
    assert s(shared, "пшеница") == {"steppe_wire/1", "steppe_wire/2"}     # пшеницы
    assert s(shared, "фонарики") == {"river_post/3", "river_post/4"}       # фонариков, фонарик


def test_exact_forms_and_phrases(shared):
    assert s(shared, "=пшеницы") == {"steppe_wire/1", "steppe_wire/2"}
    assert s(shared, "=пшеница") == set()
    assert s(shared, '"бумажный фонарик"') == {"river_post/3", "river_post/4"}   # adjacent, any form
    assert s(shared, '="бумажных фонариков"') == {"river_post/3"}
    assert s(shared, '"фонарик бумажный"') == set()                              # order matters


def test_prefix(shared):
    assert s(shared, "космо*") == {"orbit_lab/6", "orbit_lab/8"}


def test_boolean_operators(shared):
    assert s(shared, "пшеница NOT Китай") == {"steppe_wire/2"}
    assert s(shared, "пшеница -Китай") == {"steppe_wire/2"}
    assert s(shared, "фонарик OR космодром") == {"river_post/3", "river_post/4", "orbit_lab/8"}
    assert s(shared, "пшеница AND шторм") == {"steppe_wire/2"}
    assert s(shared, "(паводок OR фонарик) -вокзал") == {"river_post/3", "river_post/5", "orbit_lab/7"}


def test_all_words_rank_before_partial_matches(shared):
    found = ids(shared, "пшеница шторм")
    assert found[0] == "steppe_wire/2" and "steppe_wire/1" in found


def test_field_filters_in_the_query(shared):
    assert s(shared, "channel:river_post") == {"river_post/3", "river_post/4", "river_post/5"}
    assert s(shared, 'channel:"речная почта" фонарик') == {"river_post/3", "river_post/4"}
    assert s(shared, "channel:steppe_wire OR channel:orbit_lab") == {
        "steppe_wire/1", "steppe_wire/2", "orbit_lab/6", "orbit_lab/7", "orbit_lab/8"}
    assert s(shared, "channel:nosuchchannel") == set()
    assert s(shared, "since:2025-04-01") == {"river_post/5", "orbit_lab/6", "orbit_lab/7", "orbit_lab/8"}
    assert s(shared, "until:2025-02-28") == {"steppe_wire/1", "steppe_wire/2"}
    assert s(shared, "since:2025-03 until:2025-03") == {"river_post/3", "river_post/4"}
    assert s(shared, "since:2025-05-20 until:2025-05-20") == {"orbit_lab/8"}
    assert s(shared, "kind:article") == {"orbit_lab/7"}
    assert s(shared, "kind:post паводок") == {"river_post/5"}


def test_request_filters(shared):
    assert s(shared, "паводок", channels=("Орбита",)) == {"orbit_lab/7"}
    assert s(shared, "фонарик", channels=("steppe_wire", "river_post")) == {"river_post/3", "river_post/4"}
    assert s(shared, "", since=date(2025, 3, 1), until=date(2025, 3, 31)) == {"river_post/3", "river_post/4"}
    assert s(shared, "паводок", kind="article") == {"orbit_lab/7"}
    assert s(shared, "паводок", kind="post") == {"river_post/5"}


def test_filters_alone_list_newest_first(shared):
    result = search(shared, "channel:orbit_lab")
    assert [h.id for h in result.hits] == ["orbit_lab/8", "orbit_lab/7", "orbit_lab/6"] and result.total == 3


def test_hit_fields(shared):
    hit = search(shared, "спутники").hits[0]
    assert hit.id == "orbit_lab/7" and hit.kind == "article" and hit.title == "Спутники и погода"
    assert hit.channel == "orbit_lab" and hit.channel_title == "Орбита"
    assert hit.source_url == "https://example.org/sat" and hit.date == "2025-05-01T08:00:00Z"
    assert hit.retrievers == ["lexical"] and hit.score > 0 and "<mark>" in hit.snippet


def test_query_errors_and_notices(shared):
    with pytest.raises(QueryError):
        search(shared, "пшеница since:")
    with pytest.raises(QueryError):
        search(shared, "пшеница since:2025-13-01")
    result = search(shared, '"бумажный фонарик')            # unclosed quote: read to the end
    assert result.notice and s(shared, '"бумажный фонарик') == {"river_post/3", "river_post/4"}
    assert search(shared, "пшеница").notice == ""
    assert search(shared, "!!! ...").total == 0
