"""Hybrid search: fusion guard, mode switches, cross-lingual queries, snippets, similar posts, model switch."""

from __future__ import annotations

import html
import json
import random
import re
from types import SimpleNamespace

import pytest

from tgsearch.backend import EmbeddedBackend
from tgsearch.errors import QueryError
from tgsearch.index.vectors import passages_for
from tgsearch.search import fusion
from tgsearch.search.types import SearchRequest

# Our own posts. "metro/7" holds the exact phrase "зелёная ветка" in an otherwise unrelated text;
# the metro/* posts are about the metro in other words, so the vectors prefer them.
POSTS = [
    {"id": 1, "channel": "economy", "text": "Цены на нефть марки Brent выросли до максимума за полгода после того, как ОПЕК сократила добычу."},
    {"id": 2, "channel": "economy", "text": "Центробанк сохранил ключевую ставку и пообещал следить за инфляцией."},
    {"id": 3, "channel": "sport", "text": "Футбольный клуб из Казани проиграл в финале кубка, уступив сопернику в серии пенальти."},
    {"id": 4, "channel": "health", "text": "Минздрав сообщил о начале массовой вакцинации от гриппа в городских поликлиниках."},
    {"id": 5, "channel": "science", "text": "Астрономы обнаружили у далёкой звезды планету, на которой может быть жидкая вода."},
    {"id": 6, "channel": "city", "text": "Мэрия закрыла набережную для машин на всё лето, там будет пешеходная зона."},
    {"id": 7, "channel": "city", "text": "Жители двора назвали свой палисадник «зелёная ветка» и высадили там сирень и шиповник."},
    {"id": 8, "channel": "metro", "text": "На Сокольнической линии метро из-за ремонта закроют пять станций до осени."},
    {"id": 9, "channel": "metro", "text": "Поезда на салатовой линии метрополитена будут ходить реже из-за замены путей."},
    {"id": 10, "channel": "metro", "text": "Новую станцию подземки у парка откроют для пассажиров в декабре."},
    {"id": 11, "channel": "metro", "text": "В вагонах метро начали тестировать бесплатный вайфай нового поколения."},
    {"id": 12, "channel": "longreads", "title": "Неделя в регионе",
     "text": " ".join(f"Заметка {i}: в районе обсуждали ремонт дорог, новые тарифы и расписание автобусов." for i in range(20))
     + " Отдельно сообщили, что в старом карьере палеонтологи откопали почти целый скелет мамонта."
     + " " + " ".join(f"Итог {i}: жители ждут решений по благоустройству дворов." for i in range(12))},
]
CHANNEL = {"economy": "econ", "sport": "sport", "health": "health", "science": "sci", "city": "city",
           "metro": "metro", "longreads": "long"}


def pid(post: dict) -> str:
    return f"{post['channel']}/{post['id']}"


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    root = tmp_path_factory.mktemp("hybrid")
    src = root / "posts.jsonl"
    with src.open("w", encoding="utf-8") as f:
        for i, post in enumerate(POSTS):
            f.write(json.dumps({**post, "date": f"2025-03-{i + 1:02d}T10:00:00Z"}, ensure_ascii=False) + "\n")
    b = EmbeddedBackend(root / "db", vectors="sync")
    report = b.ingest([src])
    assert not report.failed_files
    yield b
    b.close()


def search(backend, q, mode="hybrid", **kw):
    return backend.search(SearchRequest(q=q, mode=mode, limit=kw.pop("limit", 10), **kw))


# -- the guard ---------------------------------------------------------------------------------
def _lists(rng: random.Random, n: int = 30):
    ids = [f"p{i}" for i in range(n)]
    lex_ids = rng.sample(ids, 12)
    lex_scores = sorted((rng.uniform(1, 30) for _ in lex_ids), reverse=True)
    others = [p for p in ids if p != lex_ids[0]]
    sem_ids = rng.sample(others, 20)          # the semantic side never finds the lexical top-1
    sem_scores = sorted((rng.uniform(0.3, 0.9) for _ in sem_ids), reverse=True)
    lexical = SimpleNamespace(retriever="lexical", ids=lex_ids, scores=lex_scores, total=len(lex_ids))
    semantic = SimpleNamespace(retriever="semantic", ids=sem_ids, scores=sem_scores, total=len(sem_ids),
                               latin_share=rng.choice([0.0, 1.0]), model="use-multilingual-v3",
                               scorer=lambda pids: {p: 0.0 for p in pids})   # and thinks it unrelated
    return lexical, semantic


def test_fusion_never_drops_the_lexical_top_hit_below_rank_3():
    rng = random.Random(7)
    demoted_without_guard = 0
    for _ in range(300):
        lexical, semantic = _lists(rng)
        top = lexical.ids[0]
        order = [p for p, _, _ in fusion.fuse([lexical, semantic])]
        assert top in order[:3]
        unguarded = [p for p, _, _ in fusion.fuse([lexical, semantic], fusion.FusionParams(guard_rank=10**6))]
        demoted_without_guard += unguarded.index(top) >= 3
    assert demoted_without_guard > 0  # the adversarial lists do push it down when unguarded


def test_fusion_marks_which_retrievers_found_each_hit():
    lexical = SimpleNamespace(retriever="lexical", ids=["a", "b"], scores=[10.0, 5.0], total=2)
    semantic = SimpleNamespace(retriever="semantic", ids=["b", "c"], scores=[0.8, 0.7], total=2, latin_share=0.0,
                               model="use-multilingual-v3", scorer=lambda pids: {"a": 0.5})
    found = {p: r for p, _, r in fusion.fuse([lexical, semantic])}
    assert found == {"a": ["lexical"], "b": ["lexical", "semantic"], "c": ["semantic"]}
    assert [p for p, _, _ in fusion.fuse([lexical, SimpleNamespace(retriever="semantic", ids=[], scores=[], total=0)])] == ["a", "b"]


def test_english_queries_trust_the_vectors_more():
    lexical = SimpleNamespace(retriever="lexical", ids=["x"], scores=[1.0], total=1)
    ru = SimpleNamespace(retriever="semantic", ids=[], scores=[], latin_share=0.0, model="use-multilingual-v3")
    en = SimpleNamespace(retriever="semantic", ids=[], scores=[], latin_share=1.0, model="use-multilingual-v3")
    assert fusion.semantic_weight(lexical, en) > 0.5 > fusion.semantic_weight(lexical, ru)
    assert fusion.semantic_weight(SimpleNamespace(retriever="lexical", ids=[], scores=[]), ru) == 1.0


# -- through the backend -----------------------------------------------------------------------
def test_exact_phrase_top_hit_stays_on_top_in_hybrid(backend):
    target = "city/7"
    lexical = search(backend, '"зелёная ветка"', mode="lexical")
    assert lexical.hits[0].id == target
    semantic = [h.id for h in search(backend, "зелёная ветка метро", mode="semantic").hits]
    assert semantic[0] != target        # the vectors alone would not put it first: the guard must

    hybrid = search(backend, '"зелёная ветка"')
    assert target in [h.id for h in hybrid.hits[:3]]


def test_mode_switches_and_retriever_labels(backend):
    lex = search(backend, "станции метро", mode="lexical")
    assert lex.mode == "lexical" and lex.hits and all(h.retrievers == ["lexical"] for h in lex.hits)
    sem = search(backend, "станции метро", mode="semantic")
    assert sem.mode == "semantic" and sem.hits and all(h.retrievers == ["semantic"] for h in sem.hits)
    hyb = search(backend, "станции метро")
    assert hyb.mode == "hybrid"
    labels = {tuple(h.retrievers) for h in hyb.hits}
    assert ("lexical", "semantic") in labels and ("semantic",) in labels
    assert hyb.hits[0].id == lex.hits[0].id
    with pytest.raises(QueryError):
        search(backend, "метро", mode="vector")


def test_english_query_finds_the_russian_post_in_default_mode(backend):
    result = search(backend, "oil prices rise after OPEC cuts output")
    assert result.hits[0].id == "economy/1"
    assert "semantic" in result.hits[0].retrievers
    assert search(backend, "oil prices rise after OPEC cuts output", mode="lexical").hits[:1] != result.hits[:1]


def test_semantic_hits_respect_filters(backend):
    result = search(backend, "подземка и поезда", mode="semantic", channels=("metro",))
    assert result.hits and {h.channel for h in result.hits} == {"metro"}
    inline = search(backend, "подземка и поезда channel:economy", mode="semantic")
    assert {h.channel for h in inline.hits} <= {"economy"}


def test_semantic_only_hit_snippet_shows_the_closest_passage(backend):
    result = search(backend, "paleontologists dug up a mammoth skeleton in a quarry")
    hit = next(h for h in result.hits if h.id == "longreads/12")
    assert hit.retrievers == ["semantic"]
    post = backend.get("longreads/12")
    parts = passages_for(post)
    best = next(p for p in parts if "мамонт" in post.text[p.start:p.end])
    assert best.number > 0  # not the lead: a default snippet would show the start of the post
    head = html.unescape(re.sub(r"<[^>]+>", "", hit.snippet)).strip("…").strip()[:60]
    assert head and head in post.text[best.start:best.end]
    assert head not in post.text[parts[0].start:parts[0].end]


def test_similar_posts_through_the_api(backend):
    from fastapi.testclient import TestClient

    from tgsearch.api.app import create_app

    client = TestClient(create_app(backend))
    response = client.get("/api/posts/metro/8/similar", params={"limit": 3})
    assert response.status_code == 200
    ids = [h["id"] for h in response.json()["hits"]]
    assert "metro/8" not in ids and len(ids) == 3
    assert sum(i.startswith("metro/") for i in ids) >= 2
    assert client.get("/api/posts/nope/1/similar").status_code == 404
    assert client.get("/api/posts/metro/8").json()["id"] == "metro/8"   # the plain post route still works
    api = client.get("/api/search", params={"q": "станции метро", "mode": "semantic"}).json()
    assert api["mode"] == "semantic" and all(h["retrievers"] == ["semantic"] for h in api["hits"])


def test_stats_count_posts_with_vectors(backend):
    vectors = backend.stats()["vectors"]
    assert vectors["model"] == "use-multilingual-v3"
    assert vectors["posts_with_vectors"] == vectors["posts"] == len(POSTS) and vectors["complete"]


def test_reindex_vectors_switches_the_model(tmp_path):
    from click.testing import CliRunner

    from tgsearch.cli import main

    src = tmp_path / "posts.jsonl"
    src.write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in POSTS[:6]) + "\n", encoding="utf-8")
    db = str(tmp_path / "db")
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(src), "--db", db, "-q"]).exit_code == 0
    result = runner.invoke(main, ["reindex", "--vectors", "e5-small-4bit", "--db", db])
    assert result.exit_code == 0, result.output
    stats = json.loads(runner.invoke(main, ["stats", "--db", db, "--json"]).output)
    assert stats["vectors"]["model"] == "e5-small-4bit" and stats["vectors"]["posts_with_vectors"] == 6
    found = runner.invoke(main, ["search", "oil price OPEC", "--mode", "semantic", "--db", db, "--json"])
    assert found.exit_code == 0, found.output
    assert json.loads(found.output)["hits"][0]["id"] == "economy/1"
    shown = runner.invoke(main, ["search", "oil price OPEC", "--db", db])   # hybrid, as printed
    assert shown.exit_code == 0 and "query model loaded in" in shown.output, shown.output
    bad = runner.invoke(main, ["reindex", "--vectors", "no-such-model", "--db", db])
    assert bad.exit_code != 0 and "unknown embedding model" in bad.output


def test_hybrid_total_and_facets_count_the_same_posts(backend, monkeypatch):
    from tgsearch.search import engine

    monkeypatch.setattr(engine, "SEMANTIC_HEAD", 3)
    lex = search(backend, "станции метро", mode="lexical", facets=True)
    hyb = search(backend, "станции метро", facets=True, limit=50)
    semantic_only = [h for h in hyb.hits if h.retrievers == ["semantic"]]
    assert 0 < len(semantic_only) <= 3
    assert hyb.total == lex.total + len(semantic_only) == len(hyb.hits)
    assert sum(b["count"] for b in hyb.facets["channel"]) == hyb.total
    assert sum(b["count"] for b in hyb.timeline) == hyb.total


def test_hybrid_with_no_word_match_counts_only_the_semantic_head(backend, monkeypatch):
    from tgsearch.search import engine

    monkeypatch.setattr(engine, "SEMANTIC_HEAD", 4)
    res = search(backend, "paleontologists dug up a mammoth skeleton in a quarry", facets=True, limit=50)
    assert search(backend, "paleontologists dug up a mammoth skeleton in a quarry", mode="lexical").total == 0
    assert res.total == len(res.hits) == 4
    assert sum(b["count"] for b in res.facets["channel"]) == 4
    assert len(search(backend, "paleontologists dug up a mammoth skeleton in a quarry", mode="semantic", limit=50).hits) > 4
