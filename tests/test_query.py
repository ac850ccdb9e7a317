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
    ('уран "красная площадь', 5, "unbalanced quote"),
    ("(нефть OR газ", 0, "unbalanced parenthesis"),
    ("нефть) газ", 5, "unbalanced parenthesis"),
    ("нефть OR", 6, "dangling OR"),
    ("OR нефть", 0, "dangling OR"),
    ("нефть AND", 6, "dangling AND"),
    ("нефть NOT", 6, "dangling NOT"),
    ("нефть AND OR газ", 6, "dangling AND"),
    ("since:2025-13-01", 6, "bad date"),
    ("until:вчера", 6, "bad date"),
    ("нефть foo:bar", 6, "unknown field"),
    ("kind:video", 5, "kind"),
    ("has:photo", 4, "has"),
    ("()", 0, "empty parentheses"),
    ('""', 0, "empty phrase"),
    ("ко*смос", 2, "* is only allowed"),
    ("channel:", 0, "needs a value"),
    ("нефть -", 6, "needs a word"),
])
def test_errors_point_at_the_position(query, position, words):
    with pytest.raises(QueryError) as info:
        parse(query)
    err = info.value
    assert err.position == position
    assert words in err.message
    assert err.query == query
    assert err.to_dict()["position"] == position
