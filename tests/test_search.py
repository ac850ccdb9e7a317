"""Search behaviour on an invented corpus: word forms, names, phrases, codes, filters, ranking,
snippets (escaping and marks), sorting, pagination, facets and the timeline."""

from __future__ import annotations

import re
from datetime import date

import pytest

from search_corpus import POSTS, make_backend
from tgsearch.errors import QueryError
from tgsearch.search.types import SearchRequest


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    b = make_backend(tmp_path_factory.mktemp("search"))
    yield b
    b.close()


def search(backend, q="", **kw):
    kw.setdefault("mode", "lexical")
    kw.setdefault("limit", 50)
    return backend.search(SearchRequest(q=q, **kw))


def ids(backend, q="", **kw):
    return [h.id for h in search(backend, q, **kw).hits]


def marked(snippet):
    return re.findall(r"<mark>(.*?)</mark>", snippet)


def test_any_word_form_finds_the_post(backend):
    assert ids(backend, "урану") == ["steppe_news/1"]
    # both hold a form of "переговоры"; the shorter post ranks first (BM25 length normalisation)
    assert ids(backend, "переговорам") == ["steppe_news/1", "steppe_news/2"]


def test_latin_name_finds_cyrillic(backend):
    hits = search(backend, "Tokayev").hits
    assert [h.id for h in hits] == ["steppe_news/1"]
    assert marked(hits[0].snippet) == ["Токаев"]


def test_all_words_rank_first_but_partial_matches_are_found(backend):
    found = ids(backend, "переговоры уран")
    assert found[0] == "steppe_news/1"          # holds both words
    assert "steppe_news/2" in found             # holds only "переговоры"


def test_lemma_phrase_and_exact_phrase(backend):
    assert ids(backend, '"красная площадь"') == ["river_daily/3"]   # words adjacent, any form
    assert ids(backend, '="Красной площади"') == ["river_daily/3"]
    assert ids(backend, '="красная площадь"') == []                 # those exact forms do not occur
    assert set(ids(backend, "красная площадь")) == {"river_daily/3", "river_daily/4"}


def test_exact_word_form(backend):
    assert set(ids(backend, "=площади")) == {"river_daily/3", "river_daily/4"}
    assert ids(backend, "=площадь") == []


def test_prefix(backend):
    hits = search(backend, "космо*").hits
    assert [h.id for h in hits] == ["tech_hall/6"]
    assert marked(hits[0].snippet) == ["Космонавты", "космодром", "космосу"]


def test_codes(backend):
    assert ids(backend, "Су-57") == ["river_daily/5"]
    assert ids(backend, "F-16") == ["river_daily/5"]
    assert marked(search(backend, "Су-57").hits[0].snippet) == ["Су-57"]


def test_boolean_operators(backend):
    assert ids(backend, "нефть -газ") == ["tech_hall/9"]
    assert ids(backend, "нефть NOT газ") == ["tech_hall/9"]
    assert ids(backend, "нефть AND газ") == ["tech_hall/8"]
    assert set(ids(backend, "газ OR уран")) == {"tech_hall/8", "steppe_news/1"}
    assert set(ids(backend, "(газ OR уран) -Токаев")) == {"tech_hall/8"}


def test_field_filters_in_the_query(backend):
    assert set(ids(backend, "channel:river_daily")) == {"river_daily/3", "river_daily/4", "river_daily/5"}
    assert set(ids(backend, 'channel:"речной вестник" парад')) == {"river_daily/3", "river_daily/4"}
    assert ids(backend, "kind:article") == ["tech_hall/8"]
    assert ids(backend, "has:link") == ["river_daily/3"]
    assert set(ids(backend, "since:2025-06-01")) == {"river_daily/4", "river_daily/5"}
    assert set(ids(backend, "until:2025-03-01")) == {"tech_hall/8"}
    assert ids(backend, "channel:nosuchchannel") == []


def test_request_filters(backend):
    assert set(ids(backend, "парад", channels=("Речной Вестник",))) == {"river_daily/3", "river_daily/4"}
    assert ids(backend, "", since=date(2025, 6, 15), until=date(2025, 6, 15)) == ["river_daily/5"]
    assert ids(backend, "нефть", kind="article") == ["tech_hall/8"]
    assert ids(backend, "парад", channels=("steppe_news",)) == []


def test_filters_alone_list_newest_first(backend):
    result = search(backend, "channel:tech_hall")
    dates = [h.date for h in result.hits]
    assert dates == sorted(dates, reverse=True) and result.total == 4


def test_sort_by_date_and_pagination(backend):
    newest = ids(backend, "нефть OR газ OR уран OR парад", sort="date")
    oldest = ids(backend, "нефть OR газ OR уран OR парад", sort="date_asc")
    assert newest == list(reversed(oldest)) and len(newest) == 5
    page1 = ids(backend, "нефть OR газ OR уран OR парад", sort="date", limit=2)
    page2 = ids(backend, "нефть OR газ OR уран OR парад", sort="date", limit=2, offset=2)
    assert page1 + page2 == newest[:4]
    assert search(backend, "нефть OR газ OR уран OR парад", limit=2).total == 5


def test_snippet_escapes_hostile_html_and_marks_matches(backend):
    hit = search(backend, "нейросеть").hits[0]
    assert "<script>" not in hit.snippet and "<img" not in hit.snippet
    assert "&lt;script&gt;" in hit.snippet and "&lt;img src=x onerror=alert(1)&gt;" in hit.snippet
    assert set(re.findall(r"</?(\w+)", hit.snippet)) == {"mark"}
    assert "нейросеть" in marked(hit.snippet)
    assert hit.text == POSTS[6]["text"]          # the raw text is returned as data, escaping is the client's


def test_snippet_marks_only_matching_forms(backend):
    hit = search(backend, "парад дождь").hits[0]
    assert hit.id == "river_daily/4"
    assert marked(hit.snippet) == ["парад", "дождя"]


def test_snippet_window_centres_on_the_match(tmp_path):
    filler = "Обычный текст без интересных слов. " * 40
    posts = [{"id": 1, "channel": "long", "text": filler + "Здесь упомянут редкий минерал тантал. " + filler}]
    b = make_backend(tmp_path, posts)
    snippet = search(b, "тантала").hits[0].snippet
    assert marked(snippet) == ["тантал"]
    assert snippet.startswith("…") and snippet.endswith("…") and len(snippet) < 400
    b.close()


def test_hit_fields(backend):
    hit = search(backend, "нефть", kind="article").hits[0]
    assert hit.title == "Газ и нефть" and hit.kind == "article"
    assert hit.url == "https://example.org/gas" and hit.source_url == "https://example.org/gas"
    assert hit.channel == "tech_hall" and hit.channel_title == "Техзал"
    assert hit.date == "2025-03-01T08:00:00Z" and hit.retrievers == ["lexical"] and hit.score > 0
    tg = search(backend, "уран").hits[0]
    assert tg.url == "https://t.me/steppe_news/1"


def test_facets_and_timeline_follow_the_query(backend):
    result = search(backend, "парад OR нефть", facets=True)
    channels = {f["value"]: f["count"] for f in result.facets["channel"]}
    assert channels == {"river_daily": 2, "tech_hall": 2}
    assert {f["value"]: f["label"] for f in result.facets["channel"]}["river_daily"] == "Речной Вестник"
    assert [(m["value"], m["count"]) for m in result.facets["month"]] == [("2025-03", 2), ("2025-05", 1), ("2025-06", 1)]
    assert result.interval == "week"
    assert sum(b["count"] for b in result.timeline) == result.total == 4
    starts = [b["start"] for b in result.timeline]
    assert starts == sorted(starts) and date.fromisoformat(starts[0]).weekday() == 0   # weeks start on Monday
    daily = search(backend, "парад", facets=True, interval="day")
    assert [(b["start"], b["count"]) for b in daily.timeline if b["count"]] == [("2025-05-10", 1), ("2025-06-01", 1)]
    monthly = search(backend, "", facets=True, interval="month")
    assert sum(b["count"] for b in monthly.timeline) == len(POSTS)


def test_query_errors_carry_positions(backend):
    with pytest.raises(QueryError) as info:
        search(backend, "нефть since:")
    assert info.value.position == 6
    with pytest.raises(QueryError):
        search(backend, "нефть", sort="random")


def test_malformed_queries_answer_with_a_notice(backend):
    for q, expected in [('"Токаев', ["steppe_news/1"]), ("Токаев (уран", ["steppe_news/1"]), ("((((", None)]:
        result = search(backend, q)
        assert result.notice, q
        if expected is not None:
            assert [h.id for h in result.hits] == expected
    assert search(backend, "(" * 250 + "уран" + ")" * 250).hits[0].id == "steppe_news/1"
    assert search(backend, "уран " + "NOT " * 1000 + "газ").notice
    assert search(backend, "уран").notice == ""


def test_hybrid_without_vectors_is_lexical(backend):
    result = backend.search(SearchRequest(q="уран", mode="hybrid"))
    assert [h.id for h in result.hits] == ["steppe_news/1"]


def test_stop_words_do_not_count(backend):
    # "что", "в", "о" are function words: the content word decides.
    assert ids(backend, "что о уране")[0] == "steppe_news/1"


def test_seeds_corpus_names_and_forms(tmp_path):
    from testdata import shared_path
    from tgsearch.backend import EmbeddedBackend
    from tgsearch.sources import walk

    seeds = shared_path("seeds")
    b = EmbeddedBackend(tmp_path / "db")
    b.ingest(list(walk([str(seeds)])))
    latin = search(b, "Tokayev")
    cyrillic = search(b, "Токаеву")
    assert latin.total > 0 and cyrillic.total > 0
    assert {h.id for h in latin.hits} & {h.id for h in cyrillic.hits}
    assert any(m.lower().startswith("токаев") for h in latin.hits for m in marked(h.snippet))
    top = search(b, "внешняя политика Казахстана").hits[0]
    assert re.search(r"внешн\w* политик", top.title + top.text, re.I)
    b.close()


def test_punctuation_only_query_finds_nothing_and_date_sort_has_no_score(backend):
    assert search(backend, "!!! ...").total == 0
    assert all(h.score == 0.0 for h in search(backend, "нефть", sort="date").hits)


def test_query_language_doc_is_packaged_unchanged():
    from pathlib import Path

    import tgsearch.search

    repo = Path(__file__).resolve().parent.parent
    packaged = Path(tgsearch.search.__file__).parent / "query_language.md"
    assert packaged.read_text(encoding="utf-8") == (repo / "docs" / "query-language.md").read_text(encoding="utf-8")


def test_unknown_timeline_interval_is_an_error(backend):
    with pytest.raises(QueryError):
        search(backend, "нефть", facets=True, interval="year")


def test_a_word_also_finds_its_hashtag(tmp_path):
    import json

    from tgsearch.backend import open_backend

    src = tmp_path / "tags.jsonl"
    src.write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in [
        {"id": 1, "channel": "tags", "text": "Сводка за неделю #Казахстан #экономика"},
        {"id": 2, "channel": "tags", "text": "Погода в Москве"},
    ]) + "\n", encoding="utf-8")
    b = open_backend(tmp_path / "db")
    b.ingest([src])
    res = b.search(SearchRequest(q="Казахстане", mode="lexical"))
    assert [h.id for h in res.hits] == ["tags/1"]
    assert "<mark>#Казахстан</mark>" in res.hits[0].snippet
    b.close()
