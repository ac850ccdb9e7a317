"""Every result counted in `total` is reachable by paging and present in the export, in every mode,
with vectors on and off. The engine's depths are shrunk so a small corpus crosses them: the fused
window (FUSION_DEPTH), the semantic head beside lexical matches (SEMANTIC_HEAD) and the semantic
result set (SEMANTIC_RESULTS)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from tgsearch.search import engine
from tgsearch.search.types import SearchRequest

SUBJECTS = ["Казахстан", "Россия", "Китай", "Турция", "ЕС", "США"]
ACTIONS = ["увеличил экспорт", "снизил добычу", "обсудил цены на", "подписал соглашение о поставках",
           "построит терминал для", "ввёл пошлину на"]
START = datetime(2025, 3, 1, 8, tzinfo=timezone.utc)


def corpus() -> list[dict]:
    posts = []
    for i in range(130):   # 130 posts about oil (more than the real fusion depth), in varied words and forms
        subject, action = SUBJECTS[i % 6], ACTIONS[(i // 6) % 6]
        noun = ["нефть", "нефти", "нефтью", "нефтью и газом"][i % 4]
        posts.append({"id": i + 1, "channel": ["energy", "markets", "steppe"][i % 3],
                      "date": (START + timedelta(hours=7 * i)).isoformat(),
                      "text": f"{subject} {action} {noun}. Сообщение номер {i + 1} о сырьевом рынке."})
    # close in meaning, without the word: candidates for the semantic head
    for j, text in enumerate(["Баррель Brent подорожал на торгах в Лондоне.",
                              "ОПЕК+ договорилась сократить добычу сырья на миллион баррелей в сутки.",
                              "Танкеры с сырой нефтяной смесью задержаны в проливе.",
                              "Цены на бензин на заправках выросли третью неделю подряд.",
                              "Котировки Urals опустились ниже потолка цен."]):
        posts.append({"id": 500 + j, "channel": "markets", "date": (START + timedelta(days=30, hours=j)).isoformat(),
                      "text": text})
    for k in range(10):   # unrelated
        posts.append({"id": 600 + k, "channel": "city", "date": (START + timedelta(days=k)).isoformat(),
                      "text": f"В парке открыли новую детскую площадку номер {k}, рассказали в мэрии."})
    return posts


@pytest.fixture(scope="module", params=["off", "sync"])
def backend(request, tmp_path_factory):
    from tgsearch.backend import EmbeddedBackend

    root = tmp_path_factory.mktemp(f"paging-{request.param}")
    src = root / "posts.jsonl"
    src.write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in corpus()) + "\n", encoding="utf-8")
    b = EmbeddedBackend(root / "db", vectors=request.param)
    assert not b.ingest([src]).errors
    b.vectors_on = request.param != "off"
    yield b
    b.close()


@pytest.fixture
def small_depths(monkeypatch):
    monkeypatch.setattr(engine, "FUSION_DEPTH", 7)
    monkeypatch.setattr(engine, "SEMANTIC_HEAD", 4)
    monkeypatch.setattr(engine, "SEMANTIC_RESULTS", 23, raising=False)


def modes(backend):
    return ["lexical", "hybrid"] + (["semantic"] if backend.vectors_on else [])


def page_through(backend, q, size, **kw):
    seen, totals, offset = [], set(), 0
    while True:
        res = backend.search(SearchRequest(q=q, limit=size, offset=offset, **kw))
        totals.add(res.total)
        if not res.hits:
            break
        seen += [h.id for h in res.hits]
        offset += size
        assert offset < 1000
    return seen, totals


@pytest.mark.parametrize("sort", ["relevance", "date"])
@pytest.mark.parametrize("q", ["нефть", "нефть рынок", "экспорт OR пошлина"])
def test_every_counted_result_is_reachable_by_paging(backend, q, sort, small_depths):
    for mode in modes(backend):
        seen, totals = page_through(backend, q, 5, mode=mode, sort=sort)
        assert len(totals) == 1, (mode, totals)          # the total does not change with the offset
        total = totals.pop()
        assert len(seen) == len(set(seen)) == total > 0, (mode, len(seen), len(set(seen)), total)
        # pages are slices of one order: the same as one big page
        whole = [h.id for h in backend.search(SearchRequest(q=q, limit=200, mode=mode, sort=sort)).hits]
        assert seen[:200] == whole, mode
        if sort == "date":
            dates = [backend.get(pid).date for pid in seen]
            assert dates == sorted(dates, reverse=True), mode


def test_at_the_real_depths_every_result_is_reachable(backend):
    for mode in modes(backend):
        seen, totals = page_through(backend, "нефть", 20, mode=mode)
        assert len(totals) == 1 and len(seen) == len(set(seen)) == totals.pop() >= (130 if mode != "semantic" else 1)


def test_hybrid_counts_the_semantic_head_beside_all_lexical_matches(backend, small_depths):
    assert backend.search(SearchRequest(q="нефть", mode="lexical", limit=0)).total == 130
    for q in ("нефть", "цены на топливо", "crude oil barrel prices"):
        lexical = {h.id for h in backend.search(SearchRequest(q=q, mode="lexical", limit=200)).hits}
        hybrid, _ = page_through(backend, q, 7, mode="hybrid")
        extras = [pid for pid in hybrid if pid not in lexical]
        assert set(hybrid) >= lexical and len(hybrid) == len(lexical) + len(extras)
        assert len(extras) <= 4 if backend.vectors_on else extras == []
    if backend.vectors_on:
        assert extras      # the English query: posts close in meaning that hold none of its words


def test_semantic_total_is_the_same_on_every_page(backend, small_depths):
    if not backend.vectors_on:
        pytest.skip("needs vectors")
    totals = {backend.search(SearchRequest(q="нефть", mode="semantic", offset=o, limit=4)).total for o in (0, 4, 12, 40)}
    assert totals == {23}


def test_export_holds_every_counted_result_in_search_order(backend, small_depths):
    from fastapi.testclient import TestClient

    from tgsearch.api.app import create_app

    client = TestClient(create_app(backend))
    for mode in modes(backend):
        for sort in ("relevance", "date"):
            paged, _ = page_through(backend, "нефть", 9, mode=mode, sort=sort)
            r = client.get("/api/export", params={"q": "нефть", "format": "jsonl", "mode": mode, "sort": sort})
            assert r.status_code == 200
            rows = [json.loads(line)["id"] for line in r.text.splitlines()]
            assert rows == paged and int(r.headers["x-total-count"]) == len(rows), (mode, sort)
            r = client.get("/api/export", params={"q": "нефть", "format": "csv", "mode": mode, "sort": sort})
            assert [row["id"] for row in csv.DictReader(io.StringIO(r.text))] == paged


def test_deep_offsets_answer_empty_pages_not_errors(backend):
    res = backend.search(SearchRequest(q="нефть", offset=4_000_000_000, mode="lexical"))
    assert res.hits == [] and res.total == 130


def test_deleted_posts_leave_search_and_export_but_stay_in_the_store(backend, tmp_path):
    from click.testing import CliRunner

    from tgsearch.cli import main

    before = backend.search(SearchRequest(q="площадку", mode="lexical", limit=50)).total
    assert backend.mark_deleted(["city/600", "city/601"]) == 2
    assert backend.mark_deleted(["city/600"]) == 0        # already marked
    after = backend.search(SearchRequest(q="площадку", mode="lexical", limit=50))
    assert after.total == before - 2 and not {"city/600", "city/601"} & {h.id for h in after.hits}
    assert backend.get("city/600").deleted                # kept, and shown as deleted
    total, posts = backend.search_all(SearchRequest(q="площадку", mode="hybrid"))
    exported = [p.id for p in posts]
    assert "city/600" not in exported and len(exported) == total
    ids = {p.id for p in backend.iter_posts()}
    assert "city/600" not in ids and "city/600" in {p.id for p in backend.iter_posts(deleted=True)}
    out = CliRunner().invoke(main, ["export", "--db", str(backend.root), "--include-deleted"])
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert {"city/600", "city/601"} <= {r["id"] for r in rows if r["deleted"]}
    assert backend.index.check(backend.store)["ok"]
