"""Hybrid fusion through the backend: a semantic-only match appears in hybrid mode, labels say which
retriever found each hit, the lexical top hit stays on top, and similar posts."""

from __future__ import annotations

import pytest

from contract_data import ids, search
from tgsearch.errors import NotFoundError, QueryError

CORPUS = [
    {"id": i + 1, "channel": ch, "date": f"2025-03-{i + 1:02d}T10:00:00Z", "text": text}
    for i, (ch, text) in enumerate([
        ("economy", "Цены на нефть марки Brent выросли до максимума за полгода после того, как ОПЕК сократила добычу."),
        ("economy", "Центробанк сохранил ключевую ставку и пообещал следить за инфляцией."),
        ("sport", "Футбольный клуб из Казани проиграл в финале кубка, уступив сопернику в серии пенальти."),
        ("health", "Минздрав сообщил о начале массовой вакцинации от гриппа в городских поликлиниках."),
        ("science", "Астрономы обнаружили у далёкой звезды планету, на которой может быть жидкая вода."),
        ("city", "Мэрия закрыла набережную для машин на всё лето, там будет пешеходная зона."),
        ("metro", "На Сокольнической линии метро из-за ремонта закроют пять станций до осени."),
        ("metro", "Поезда на салатовой линии метрополитена будут ходить реже из-за замены путей."),
        ("metro", "Новую станцию подземки у парка откроют для пассажиров в декабре."),
        ("metro", "В вагонах метро начали тестировать бесплатный вайфай нового поколения."),
    ])
]


def test_semantic_is_available(shared):
    assert shared.semantic_available() is True


def test_a_semantic_only_match_appears_in_hybrid_mode(shared):
    lexical = set(ids(shared, "метро", mode="lexical"))
    assert lexical == {"metro/7", "metro/10"}
    hybrid = search(shared, "метро", mode="hybrid", limit=10)
    assert hybrid.mode == "hybrid"
    extra = [h for h in hybrid.hits if h.id not in lexical]
    assert extra and all(h.retrievers == ["semantic"] for h in extra)
    assert {"metro/8", "metro/9"} & {h.id for h in extra}
    assert {tuple(h.retrievers) for h in hybrid.hits if h.id in lexical} <= {("lexical",), ("lexical", "semantic")}
    assert hybrid.total == len(hybrid.hits) or hybrid.total > 10


def test_modes_and_labels(shared):
    lex = search(shared, "станции метро", mode="lexical")
    assert lex.mode == "lexical" and lex.hits and all(h.retrievers == ["lexical"] for h in lex.hits)
    sem = search(shared, "станции метро", mode="semantic")
    assert sem.mode == "semantic" and sem.hits and all(h.retrievers == ["semantic"] for h in sem.hits)
    assert sem.hits[0].channel == "metro"
    hyb = search(shared, "станции метро", mode="hybrid")
    assert hyb.hits[0].id == lex.hits[0].id                 # the lexical top hit stays first
    with pytest.raises(QueryError):
        search(shared, "метро", mode="vector")


def test_cross_lingual_query_finds_the_russian_post(shared):
    hits = search(shared, "oil prices rise after OPEC cuts output", mode="hybrid").hits
    assert hits[0].id == "economy/1" and "semantic" in hits[0].retrievers


def test_similar_posts(shared):
    res = shared.similar("metro/7", limit=3)
    found = [h.id for h in res.hits]
    assert "metro/7" not in found and 0 < len(found) <= 3
    assert sum(h.channel == "metro" for h in res.hits) >= 2
    assert all(h.retrievers == ["semantic"] for h in res.hits)
    with pytest.raises(NotFoundError):
        shared.similar("nosuch/1")
