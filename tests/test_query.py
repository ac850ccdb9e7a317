"""The query language parser: every operator, field, and error position."""

from __future__ import annotations

from datetime import date

import pytest

from tgsearch.errors import QueryError
from tgsearch.search.query import Filter, Not, Or, Phrase, Seq, Word, parse, positive_terms


def root(q):
    return parse(q).root


def test_empty_query_has_no_root():
    assert parse("").root is None
    assert parse("   ").root is None


def test_plain_words_are_a_ranked_sequence():
    node = root("нефть газ")
    assert isinstance(node, Seq)
    assert [c.text for c in node.children] == ["нефть", "газ"]
    assert node.required == (False, False)


def test_and_makes_both_sides_required():
    node = root("уран переговоры AND Европа")
    assert node.required == (False, True, True)


def test_or_and_parentheses():
    node = root("(нефть OR газ) Астана")
    assert isinstance(node, Seq)
    assert isinstance(node.children[0], Or)
    assert [c.text for c in node.children[0].children] == ["нефть", "газ"]
    assert node.children[1] == Word("Астана", 15)
    assert isinstance(root("нефть | газ"), Or)


def test_lowercase_operators_are_words():
    node = root("нефть or газ")
    assert [c.text for c in node.children] == ["нефть", "or", "газ"]


def test_exclusion_and_not():
    node = root('уран -газ NOT "красная площадь"')
    assert isinstance(node.children[1], Not) and node.children[1].child == Word("газ", 6)
    assert isinstance(node.children[2], Not) and node.children[2].child == Phrase("красная площадь", 14)
    assert [t.text for t in positive_terms(node)] == ["уран"]


def test_hyphen_inside_a_word_is_not_exclusion():
    node = root("Су-57 F-16")
    assert [c.text for c in node.children] == ["Су-57", "F-16"]


def test_phrases_exact_forms_and_prefix():
    assert root('"красная площадь"') == Phrase("красная площадь", 0, exact=False)
    assert root('="Красной площади"') == Phrase("Красной площади", 0, exact=True)
    assert root("=Москве") == Word("Москве", 0, exact=True)
    assert root("космо*") == Word("космо", 0, prefix=True)


def test_fields():
    node = root('channel:"Речной Вестник" since:2025-05 until:2025 kind:article has:link publication:Reuters')
    filters = {c.name: c.value for c in node.children}
    assert filters == {"channel": "Речной Вестник", "since": date(2025, 5, 1), "until": date(2025, 12, 31),
                       "kind": "article", "has": "link", "publication": "Reuters"}
    assert all(isinstance(c, Filter) for c in node.children)
    assert root("until:2024-02").value == date(2024, 2, 29)


def test_urls_and_times_are_words_not_fields():
    node = root("https://t.me/x 12:30")
    assert [c.text for c in node.children] == ["https://t.me/x", "12:30"]


@pytest.mark.parametrize("query, position, words", [
    ("since:2025-13-01", 6, "bad date"),
    ("until:вчера", 6, "bad date"),
    ("kind:video", 5, "kind"),
    ("has:photo", 4, "has"),
    ("channel:", 0, "needs a value"),
    ("нефть since:", 6, "needs a value"),
])
def test_errors_only_where_a_query_cannot_mean_anything(query, position, words):
    with pytest.raises(QueryError) as info:
        parse(query)
    err = info.value
    assert err.position == position
    assert words in err.message
    assert err.query == query
    assert err.to_dict()["position"] == position


def _words(node) -> list:
    from tgsearch.search.query import walk

    return [(type(n).__name__, n.text) for n in walk(node) if isinstance(n, (Word, Phrase))]


@pytest.mark.parametrize("query, words, notice", [
    ('"Токаев', [("Phrase", "Токаев")], "never closed"),
    ('уран "красная площадь', [("Word", "уран"), ("Phrase", "красная площадь")], "quote at 6 is never closed"),
    ("Путин (Россия", [("Word", "Путин"), ("Word", "Россия")], "( at 7 is never closed"),
    ('Собянин" метро', [("Word", "Собянин"), ("Phrase", " метро")], "never closed"),
    ("((((", [], "never closed"),
    ("нефть) газ", [("Word", "нефть"), ("Word", "газ")], ") at 6 has no matching"),
    ("нефть OR", [("Word", "нефть"), ("Word", "OR")], "'OR' at 7 has nothing to apply to"),
    ("OR нефть", [("Word", "OR"), ("Word", "нефть")], "read as a word"),
    ("нефть AND", [("Word", "нефть"), ("Word", "AND")], "read as a word"),
    ("нефть NOT", [("Word", "нефть"), ("Word", "NOT")], "read as a word"),
    ("нефть foo:bar", [("Word", "нефть"), ("Word", "foo"), ("Word", "bar")], "foo: is not a field"),
    ("() нефть", [("Word", "нефть")], "empty brackets"),
    ('"" нефть', [("Word", "нефть")], "empty quotes"),
    ("ко*смос", [("Word", "ко"), ("Word", "смос")], "only works at the end of a word"),
    ("нефть -", [("Word", "нефть")], "not a word"),
])
def test_malformed_queries_are_read_leniently_with_a_notice(query, words, notice):
    q = parse(query)
    assert _words(q.root) == words
    assert any(notice in n for n in q.notices), q.notices


def test_deep_queries_parse_without_recursion_errors():
    deep = parse("(" * 250 + "нефть" + ")" * 250)
    assert _words(deep.root) == [("Word", "нефть")] and "nested deeper" in deep.notices[0]
    negated = parse("газ " + "NOT " * 1000 + "нефть")
    assert _words(negated.root) == [("Word", "газ"), ("Word", "нефть")]   # an even run cancels out
    odd = parse("газ " + "NOT " * 999 + "нефть")
    assert isinstance(odd.root.children[1], Not)
    assert parse("(" * 300 + "нефть").root == Word("нефть", 300)


def test_well_formed_queries_have_no_notice():
    for query in ['уран "красная площадь"', "(нефть OR газ) -сланец", "channel:rian since:2025-01 нефть*", ""]:
        assert parse(query).notices == ()
