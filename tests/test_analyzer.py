"""The Russian analyzer: normalization, tokens, lemmas, query expansion, offsets."""

from __future__ import annotations

import json

import pytest

from tgsearch.analyze.analyzer import Analyzer, Token, default_analyzer


@pytest.fixture(scope="module")
def an() -> Analyzer:
    return default_analyzer()


def finds(an: Analyzer, query_word: str, text: str) -> bool:
    """What the lexical index does for a one-word query: any query lemma among the text's terms."""
    return bool(set(an.query_lemmas(query_word)) & set(an.index_terms(text)))


def lemma_of(an: Analyzer, word: str) -> str:
    terms = an.index_terms(word)
    assert len(terms) == 1, terms
    return terms[0]


# -- identity -------------------------------------------------------------------------------


def test_name_and_version(an):
    assert an.name == "ru-lemma"
    assert isinstance(an.version, str) and an.version
    assert Analyzer.version == an.version


def test_default_analyzer_is_shared():
    assert default_analyzer() is default_analyzer()


# -- word forms meet --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "forms, lemma",
    [
        (["Казахстан", "Казахстане", "Казахстана", "казахстаном"], "казахстан"),
        (["ТЭЦ", "тэц"], "тэц"),
        (["заявил", "заявила", "заявили", "заявит"], "заявить"),
        (["подписали", "подписал", "подпишет"], "подписать"),
        (["Байконура", "Байконуре", "Байконур"], "байконур"),
    ],
)
def test_dictionary_word_forms_meet(an, forms, lemma):
    assert {lemma_of(an, f) for f in forms} == {lemma}


@pytest.mark.parametrize(
    "forms, lemma",
    [
        (["Токаева", "Токаеву", "Токаевым", "Токаевой"], "токаев"),
        (["Косанов", "Косанова", "Косанову", "Косановым"], "косанов"),
        (["Орбан", "Орбаном", "Орбану", "Орбана"], "орбан"),
        (["Касым", "Касыма", "Касымом"], "касым"),  # -ым here is not a case ending
        (["Росатом", "Росатома", "Росатомом"], "росатом"),
        (["Казатомпром", "Казатомпрома", "Казатомпрому"], "казатомпром"),
        (["Жомарт", "Жомарта", "Жомарту"], "жомарт"),
        (["Шымкент", "Шымкента", "Шымкенте"], "шымкент"),
        (["Бишимбаев", "Бишимбаева", "Бишимбаевым"], "бишимбаев"),
    ],
)
def test_unknown_names_meet(an, forms, lemma):
    assert {lemma_of(an, f) for f in forms} == {lemma}


@pytest.mark.parametrize("query", ["Токаев", "Токаева", "Токаеву", "токаевым"])
@pytest.mark.parametrize(
    "text",
    ["Встреча с Токаевым прошла в среду.", "Токаев прилетел утром.", "Письмо Токаеву передали вчера."],
)
def test_every_form_of_a_surname_finds_every_other(an, query, text):
    # "токаев" is in pymorphy's dictionary as a genitive plural of "токай"; the query side
    # must still reach both index lemmas.
    assert finds(an, query, text)


@pytest.mark.parametrize(
    "query, text",
    [
        ("Безос", "Встреча с Безосом"), ("Безосом", "Безос заявил"), ("Росатом", "глава Росатома"),
        ("Росатома", "Росатом построит"), ("Касымом", "Касым приехал"), ("Пашинян", "с Пашиняном"),
        ("Кызылорда", "в Кызылорде"), ("Кызылорде", "Кызылорда и Тараз"),
    ],
)
def test_query_reaches_other_forms_of_unknown_names(an, query, text):
    assert finds(an, query, text)


def test_unrelated_word_does_not_match(an):
    assert not finds(an, "Токаев", "Встреча с Назарбаевым прошла в среду.")
    assert not finds(an, "Каменск", "Мост в Усть-Каменогорске открыли.")


# -- hyphenated words -------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["Усть-Каменогорск", "Усть-Каменогорске", "Ust-Kamenogorsk", "Каменогорск",
                                   "Усть-Каменогорском"])
def test_hyphenated_place_found_by_whole_parts_and_latin(an, query):
    assert finds(an, query, "Мост в Усть-Каменогорске открыли после ремонта.")


def test_hyphenated_word_scheme(an):
    text = "в Усть-Каменогорске"
    assert an.index_terms(text) == ["в", "усть-каменогорск", "усть", "каменогорск"]
    assert an.exact_terms(text) == ["в", "усть-каменогорске", "усть", "каменогорске"]
    whole, *parts = an.tokens(text)[1:]
    assert (whole.text, whole.kind) == ("Усть-Каменогорске", "word")
    assert [p.text for p in parts] == ["Усть", "Каменогорске"]


def test_space_after_hyphen_typo_is_joined(an):
    assert an.index_terms("Касым- Жомарт") == an.index_terms("Касым-Жомарт")
    assert an.index_terms("Касым-Жомарт")[0] == "касым-жомарт"
    assert finds(an, "Жомарт", "Президент Касым- Жомарт Токаев")
    # lower-case after "- " is a suspended hyphen, not a typo
    assert an.exact_terms("бело- и сине-зеленый") == ["бело", "и", "сине-зеленый", "сине", "зеленый"]


def test_clitics_are_not_split(an):
    assert an.exact_terms("кто-то из-за по-русски") == ["кто-то", "из-за", "по-русски"]


# -- numbers, codes, urls, hashtags, mentions -------------------------------------------------


def test_codes_stay_whole(an):
    terms = an.exact_terms("Рейс 125-1 на Boeing 787-9, номер M136279841.")
    assert "125-1" in terms and "787-9" in terms and "m136279841" in terms
    kinds = {t.text: t.kind for t in an.tokens("Boeing 787-9 M136279841 2025")}
    assert kinds == {"Boeing": "word", "787-9": "code", "787": "number", "9": "number",
                     "M136279841": "code", "2025": "number"}


def test_numbers(an):
    assert an.exact_terms("сделка на $56 млрд") == ["сделка", "на", "56", "млрд"]
    assert an.exact_terms("$56 млрд") == an.exact_terms("56 млрд")
    assert an.exact_terms("рост 7,8% и 7.8") == ["рост", "7.8", "и", "7.8"]
    assert an.exact_terms("около 15 000 человек") == ["около", "15000", "человек"]
    assert an.exact_terms("в 2025-го и 90-х") == ["в", "2025", "и", "90"]
    assert an.exact_terms("в 2024 году 300 семей") == ["в", "2024", "году", "300", "семей"]


def test_urls(an):
    text = "Подробнее (https://Tengrinews.KZ/news/Some_Page-123?a=1). Или www.example.com, akorda.kz/ru."
    urls = [t for t in an.tokens(text) if t.kind == "url"]
    assert [u.text for u in urls] == ["https://Tengrinews.KZ/news/Some_Page-123?a=1", "www.example.com",
                                      "akorda.kz/ru"]
    assert urls[0].norm == "https://tengrinews.kz/news/some_page-123?a=1"
    assert an.index_terms("https://t.me/channel/15") == ["https://t.me/channel/15"]


def test_hashtags_and_mentions(an):
    toks = an.tokens("#Выборы2024 и #Қазақстан от @akorda_press, почта info@mail.ru")
    got = [(t.text, t.norm, t.kind) for t in toks if t.kind in ("hashtag", "mention")]
    assert got == [("#Выборы2024", "#выборы2024", "hashtag"), ("#Қазақстан", "#қазақстан", "hashtag"),
                   ("@akorda_press", "@akorda_press", "mention")]
    assert an.query_lemmas("#Выборы2024") == ["#выборы2024"]


# -- normalization ----------------------------------------------------------------------------


def test_kazakh_letters_are_word_characters(an):
    toks = an.tokens("Қазақстан Ғарыш Сапары: әңгіме, өнер, ұлт, үй, һ")
    assert [t.norm for t in toks] == ["қазақстан", "ғарыш", "сапары", "әңгіме", "өнер", "ұлт", "үй", "һ"]
    assert all(t.kind == "word" for t in toks)


def test_yo_becomes_ye(an):
    assert an.exact_terms("Всё ещё Ёлка") == ["все", "еще", "елка"]
    assert an.index_terms("ёлки") == an.index_terms("елки")


def test_invisible_characters_inside_words(an):
    plain = an.index_terms("Казахстан")
    assert an.index_terms("Каз\u00adах\u00adстан") == plain
    assert an.index_terms("Казах\u200bстан") == plain
    assert an.index_terms("Казах\u200dстан\ufe0f") == plain


def test_emoji_are_not_tokens(an):
    assert an.exact_terms("Привет 👋🏽 мир ❤️ 🇰🇿 1️⃣ ✅") == ["привет", "мир"]


def test_nfkc_and_accents(an):
    assert an.exact_terms("ＡＢＣ ﬁnal за́мок №5") == ["abc", "final", "замок", "5"]


# -- tokens and alignment ---------------------------------------------------------------------

TRICKY = ("«Каз\u00adахстан» — ＡＢＣ и ﬁnal; за́мок, е\u0308лка 👋🏽 Усть-Каменогорск "
          "Касым- Жомарт https://t.me/x_y/1) #тег @user 15 000 $56 7,8 2025-го __курсив__")


def test_token_offsets_map_back_to_original(an):
    toks = an.tokens(TRICKY)
    assert toks
    for t in toks:
        assert isinstance(t, Token)
        assert TRICKY[t.start:t.end] == t.text
    by_norm = {t.norm: t.text for t in toks}
    assert by_norm["казахстан"] == "Каз\u00adахстан"
    assert by_norm["abc"] == "ＡＢＣ"
    assert by_norm["final"] == "ﬁnal"
    assert by_norm["замок"] == "за́мок"
    assert by_norm["елка"] == "е\u0308лка"
    assert by_norm["15000"] == "15 000"
    assert by_norm["курсив"] == "__курсив__"


def test_offsets_when_only_invisible_characters_are_dropped(an):
    text = "Каз\u00adахстан ❤️ ударе́ние мука́ 1️⃣ конец"
    toks = an.tokens(text)
    assert [t.text for t in toks] == ["Каз\u00adахстан", "ударе́ние", "мука́", "конец"]
    assert all(text[t.start:t.end] == t.text for t in toks)


def test_lists_are_aligned(an):
    toks = an.tokens(TRICKY)
    index, exact = an.index_terms(TRICKY), an.exact_terms(TRICKY)
    assert [t.norm for t in toks] == exact
    assert [an.lemma(t.norm) if t.kind == "word" else t.norm for t in toks] == index
    assert an.terms(TRICKY) == (index, exact)
    assert an.index_terms("") == [] and an.tokens("") == []


def test_joined_terms_match_lists(an):
    for text in [TRICKY, "___ слово ___", "", "конец.Начало т.е. п.5 v2.0"]:
        index, exact = an.joined_terms(text)
        assert index.split() == an.index_terms(text)
        assert exact.split() == an.exact_terms(text)
        assert all(" " not in term and term for term in an.index_terms(text) + an.exact_terms(text))


def test_dots_and_apostrophes(an):
    assert an.exact_terms("конец.Начало т.е. 2,5 и 3.14") == ["конец", "начало", "т", "е", "2.5", "и", "3.14"]
    assert an.exact_terms("д’Артаньян O'Brien") == ["д'артаньян", "o'brien"]
    assert an.exact_terms("Ust'-Kamenogorsk") == ["ust-kamenogorsk", "ust", "kamenogorsk"]


def test_latin_words_with_russian_endings_and_look_alike_letters(an):
    assert an.index_terms("devops’а TON'ы Grok's") == ["devops", "ton", "grok"]
    assert an.index_terms("д\u0065нь") == an.index_terms("день")  # Latin "e" inside a Russian word
    assert an.index_terms("\u0441opy") == ["copy"]  # Cyrillic "с" inside an English word
    assert an.index_terms("go-разработчиков") == ["go-разработчик", "go", "разработчик"]


def test_lemma_api(an):
    assert an.lemma("казахстане") == "казахстан"
    assert an.lemma("токаевым") == "токаев"
    assert an.lemma("усть-каменогорске") == "усть-каменогорск"
    assert an.lemma("tokayev") == "tokayev"


# -- query expansion --------------------------------------------------------------------------


def test_query_lemmas_own_lemma_first(an):
    assert an.query_lemmas("Казахстане")[0] == "казахстан"
    assert an.query_lemmas("2025") == ["2025"]
    assert an.query_lemmas("  ") == []


def test_query_lemmas_include_other_parses(an):
    # "печи": "печь" (noun) and "печь" (verb) share a form; "мужа" is only "муж"
    assert "печь" in an.query_lemmas("печи")


@pytest.mark.parametrize(
    "latin, text",
    [
        ("Tokayev", "Выступление Токаева на форуме"),
        ("Tokaev", "Токаев прилетел"),
        ("Sobyanin", "Собянин открыл станцию"),
        ("Nazarbayev", "интервью Назарбаева"),
        ("Baikonur", "запуск с Байконура"),
        ("Baykonur", "космодром Байконур"),
        ("Kazakhstan", "экспорт из Казахстана"),
        ("Astana", "встреча в Астане"),
        ("Zhomart", "Касым-Жомарт Токаев"),
        ("Shchukin", "картина из коллекции Щукина"),
    ],
)
def test_latin_query_finds_cyrillic_text(an, latin, text):
    assert finds(an, latin, text)


def test_kazakh_spelling_query_finds_russian_spelling(an):
    assert finds(an, "Тоқаев", "встреча с Токаевым")
    assert finds(an, "Өскемен", "в Оскемене открыли")
    assert not finds(an, "Тоқаев", "встреча с Назарбаевым")


def test_latin_possessive_query(an):
    assert finds(an, "Tokayev's", "Встреча с Токаевым")


def test_cyrillic_query_finds_latin_text(an):
    assert finds(an, "Токаев", "President Tokayev said")
    assert finds(an, "Назарбаев", "Nazarbaev era")


def test_common_words_are_not_transliterated(an):
    for word in ["и", "он", "стали", "дом", "сделка"]:
        assert all(not ch.isascii() for lemma in an.query_lemmas(word) for ch in lemma), word
    assert an.query_lemmas("on") == ["on"]
    assert "астана" in an.query_lemmas("Astana")
    assert "astana" in an.query_lemmas("Астана")  # a place name: Geox


def test_query_lemma_list_is_bounded(an):
    for word in ["Tokayev", "Ust-Kamenogorsk", "Yoshkar-Ola", "Токаеву", "стали"]:
        assert 1 <= len(an.query_lemmas(word)) <= 12


# -- corpus -----------------------------------------------------------------------------------


def test_corpus_sample_offsets_and_alignment(shared):
    raw = shared("data", "tg-news-posts-ru", "raw")
    an = Analyzer()
    checked = 0
    for path in sorted(raw.glob("*.json"))[:6]:
        for post in json.loads(path.read_text(encoding="utf-8"))[:150]:
            text = post.get("text")
            if not isinstance(text, str) or not text:
                continue
            toks = an.tokens(text)
            assert all(text[t.start:t.end] == t.text for t in toks)
            assert [t.norm for t in toks] == an.exact_terms(text)
            assert [an.lemma(t.norm) if t.kind == "word" else t.norm for t in toks] == an.index_terms(text)
            checked += 1
    assert checked > 300


@pytest.mark.slow
def test_whole_corpus_chunk_path_agrees_with_tokens(shared):
    """The chunk-cache fast path and the offset-keeping tokens() path give the same terms."""
    raw = shared("data", "tg-news-posts-ru", "raw")
    an = Analyzer()
    for path in sorted(raw.glob("*.json")):
        for post in json.loads(path.read_text(encoding="utf-8")):
            text = post.get("text")
            if not isinstance(text, str) or not text:
                continue
            toks = an.tokens(text)
            index, exact = an.terms(text)
            assert [t.norm for t in toks] == exact, text[:200]
            assert [an.lemma(t.norm) if t.kind == "word" else t.norm for t in toks] == index, text[:200]
            assert all(text[t.start:t.end] == t.text for t in toks)


def test_random_hostile_text_keeps_the_invariants():
    """Offsets map back, the fast chunk path agrees with tokens(), no empty or spaced terms."""
    import random

    rng = random.Random(20261124)
    pieces = list("абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВЁЖ әғқңөұүһі abcxyzABC 0123456789") + [
        "-", "‐", "‑", "'", "’", "ʼ", ".", ",", ":", "!", "(", ")", "«", "»", "#", "@", "_", "/",
        "$", "%", "\u00ad", "\u200b", "\u200d", "\ufe0f", "\u20e3", "\u0301", "\u0308", "\n", "\t",
        "Ａ", "ﬁ", "№", "²", "½", "™", "👍🏻", "🇰🇿", "https://", "www.", ".kz", ".ru/", "- Ж",
        "1 000", "Ust'-", "  ",
    ]
    an = Analyzer()
    for _ in range(4000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        toks = an.tokens(text)
        assert all(text[t.start:t.end] == t.text for t in toks), text
        index, exact = an.terms(text)
        assert [t.norm for t in toks] == exact, text
        assert len(index) == len(exact), text
        assert all(term and not any(c.isspace() for c in term) for term in index + exact), text
        an.query_lemmas(text)
