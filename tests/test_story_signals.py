"""Same-story signals (analyze/story_signals.py) on posts written for these tests."""

from __future__ import annotations

import numpy as np
import pytest

from tgsearch.analyze import story_signals as S

pytest.importorskip("natasha")

ORIGINAL = (
    "В Омске из-за прорыва трубы на улице Лермонтова без отопления остались 42 дома. "
    "Аварийные бригады обещают восстановить подачу тепла к утру четверга, сообщил мэр "
    "города Сергей Шелест. Температура воздуха ночью опустится до минус 18 градусов."
)
COPY = "🔥🔥 " + ORIGINAL + "\n\n❤ Подписаться на канал | Прислать новость @omsk_news_bot"
SAME_EVENT = (
    "42 многоквартирных дома в Омске отключили от отопления: на улице Лермонтова "
    "прорвало трубу. Мэр Сергей Шелест пообещал, что тепло вернут к утру четверга."
)
SAME_TOPIC_OTHER_EVENT = (
    "В Новосибирске коммунальщики завершили промывку тепловых сетей в Ленинском районе. "
    "Отопительный сезон в городе начнется по графику, заявили в мэрии, жалоб на "
    "холодные батареи пока не поступало."
)


@pytest.fixture(scope="module")
def idf():
    background = [ORIGINAL, SAME_EVENT, SAME_TOPIC_OTHER_EVENT,
                  "Курс доллара вырос до 100 рублей на торгах в понедельник.",
                  "Сборная России по хоккею обыграла команду Канады со счетом 3:2.",
                  "В Москве в выходные ожидается снег и гололедица, предупредили синоптики."]
    return S.Idf.from_texts(background, min_df=1)


def doc(text, idf, title=""):
    return S.prepare(title, text, idf)


def test_copy_with_emoji_and_footer_scores_high(idf):
    a, b = doc(ORIGINAL, idf), doc(COPY, idf)
    assert S.tfidf_cosine(a, b) > 0.9
    assert S.shingle_containment(a, b) > 0.95
    assert S.shingle_jaccard(a, b) > 0.7
    assert S.number_overlap(a, b) == 1.0
    assert S.entity_overlap(a, b) > 0.9
    mh_a, mh_b = S.minhash(a, 128), S.minhash(b, 128)
    assert mh_a.jaccard(mh_b) > 0.6


def test_same_event_beats_same_topic(idf):
    a, same, other = doc(ORIGINAL, idf), doc(SAME_EVENT, idf), doc(SAME_TOPIC_OTHER_EVENT, idf)
    for signal in (S.tfidf_cosine, S.lead_cosine, S.entity_overlap, S.number_overlap):
        assert signal(a, same) > signal(a, other), signal.__name__
    assert S.shingle_jaccard(a, same) >= S.shingle_jaccard(a, other)
    assert S.person_conflict(a, same) == 0.0
    # a rewrite is no copy
    assert S.shingle_containment(a, same) < 0.5


def test_title_signals(idf):
    a = doc(ORIGINAL, idf, title="Омск: 42 дома без отопления после прорыва трубы")
    b = doc(SAME_EVENT, idf, title="В Омске прорвало трубу, 42 дома без тепла")
    c = doc(SAME_TOPIC_OTHER_EVENT, idf, title="Новосибирск готов к отопительному сезону")
    assert S.title_cosine(a, b) > S.title_cosine(a, c)
    assert S.cross_title_cosine(a, b) > S.cross_title_cosine(a, c)


def test_numbers_normalised(idf):
    a = doc("Штраф составит 15 000 рублей, а срок — 2,5 года.", idf)
    b = doc("Штраф — 15000 рублей, срок 2.5 года.", idf)
    assert a.numbers == b.numbers == frozenset({"15000", "2.5"})


def test_empty_posts(idf):
    e = doc("", idf)
    x = doc(ORIGINAL, idf)
    feats = S.features(e, x)
    assert all(v == 0.0 for v in feats.values())


def test_vectors_and_model(idf):
    va = np.array([1.0, 0.0])
    vb = np.array([0.6, 0.8])
    a = S.prepare("", ORIGINAL, idf, vectors={"m": va})
    b = S.prepare("", SAME_EVENT, idf, vectors={"m": vb})
    assert S.vector_cosine(a, b, "m") == pytest.approx(0.6)
    assert S.vector_cosine(a, b, "other") is None
    assert S.features(a, b)["vec:m"] == pytest.approx(0.6)


def test_logistic_model_separates():
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0.8, 0.1, (40, 2)), rng.normal(0.3, 0.1, (40, 2))])
    y = np.r_[np.ones(40), np.zeros(40)]
    model = S.SameStoryModel.fit(["a", "b"], x, y)
    assert model.probability({"a": 0.85, "b": 0.8}) > 0.9
    assert model.probability({"a": 0.25, "b": 0.3}) < 0.1
    assert np.all(model.weights > 0)


def test_embedding_text_is_title_and_lead_without_links():
    text = "Первая фраза новости. Подробнее: https://example.org/news/1 " + "слово " * 500
    out = S.embedding_text("Заголовок", text)
    assert out.startswith("Заголовок Первая фраза новости.")
    assert "https://" not in out and len(out) == S.EMBED_LEAD_CHARS
    assert S.embedding_text("", "") == ""
