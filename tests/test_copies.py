"""Copies (analyze/copies.py): near-verbatim repeats are found, posts that only share a topic are not."""

from __future__ import annotations

import pytest

from tgsearch.analyze.analyzer import default_analyzer
from tgsearch.analyze.copies import CopyIndex, fingerprint, jaccard

A = default_analyzer()

ORIGINAL = ("Министр финансов заявил, что бюджет области на следующий год будет принят до конца декабря. "
            "По его словам, расходы на дороги вырастут на 12 процентов, а на школы останутся прежними.")
COPIES = [
    "⚡️" + ORIGINAL + "\n\nПодписаться на канал @newsregion",                       # emoji and a footer
    ORIGINAL.replace("вырастут", "увеличатся") + " https://t.me/otherchannel/55",     # one word and a link
    "Срочно! " + ORIGINAL + " #бюджет #область",                                      # a lead word and tags
]
SAME_TOPIC = [
    # the same event told in other words
    "Бюджет области на будущий год примут до конца декабря, сообщил министр финансов. Дорожные расходы "
    "увеличат примерно на 12%, траты на образование сохранят.",
    # a follow-up on the same topic, with one sentence quoted
    "Депутаты не согласились с планом министра финансов. Министр финансов заявил, что бюджет области на "
    "следующий год будет принят до конца декабря, но фракции требуют увеличить расходы на школы и больницы "
    "и перенести голосование на январь.",
]


def fp(text):
    return fingerprint(A, text)


def test_near_verbatim_copies_match_and_topic_neighbours_do_not():
    index = CopyIndex()
    index.add("region/1", fp(ORIGINAL))
    for i, text in enumerate(COPIES):
        found = index.matches(fp(text))
        assert [pid for pid, _ in found] == ["region/1"], (i, found)
        assert found[0][1] >= 0.5
    for text in SAME_TOPIC:
        assert index.matches(fp(text)) == []
        assert jaccard(fp(text).shingles, fp(ORIGINAL).shingles) < 0.35


def test_short_texts_match_only_when_identical_and_very_short_never():
    index = CopyIndex()
    index.add("a/1", fp("Токаев подписал закон о бюджете"))
    assert [p for p, _ in index.matches(fp("⚡️ Токаев подписал закон о бюджете! @chan"))] == ["a/1"]
    assert index.matches(fp("Токаев подписал закон о налогах")) == []
    index.add("a/2", fp("Доброе утро!"))
    assert index.matches(fp("Доброе утро!")) == [] and "a/2" not in index


def test_remove_re_add_and_exclude_self():
    index = CopyIndex()
    index.add("a/1", fp(ORIGINAL))
    index.add("a/1", fp(ORIGINAL))           # again: replaced, not doubled
    assert index.matches(fp(ORIGINAL), exclude="a/1") == [] and len(index) == 1
    index.remove("a/1")
    assert index.matches(fp(ORIGINAL)) == [] and len(index) == 0


@pytest.mark.parametrize("text", ["", "   ", "🔥🔥🔥", "<script>alert(1)</script>", "слово " * 20000])
def test_odd_input(text):
    index = CopyIndex()
    index.add("x/1", fp(text))
    index.matches(fp(text))
