"""Named entities (people, organisations, places) in a post: natasha/slovnet NER.

`entities(text)` returns `Entity(type, name)` tuples, type "person" | "org" | "place", name in
the nominative ("Токаеву" → "Токаев", "Казахстана" → "Казахстан", "Касым-Жомарта Токаева" →
"Касым-Жомарт Токаев"), de-duplicated per post in first-occurrence order.

Pipeline: razdel segmentation (natasha.Segmenter) → slovnet NER over the whole text → slovnet
morphology only for the sentences that contain a span (the NER spans are rare; tagging every
sentence would double the cost) → each span word put in the nominative with pymorphy3, using the
tagger's case/number/gender to pick the right reading. natasha's own `MorphVocab` is built on
pymorphy2, which does not run on Python ≥ 3.11 (inspect.getargspec, pkg_resources); the
inflection here is the same idea on pymorphy3, the project's morphology. Organisation and place
names only inflect up to their head noun ("Министерства иностранных дел" → "Министерство
иностранных дел", "Соединённых Штатов Америки" → "Соединённые Штаты Америки"); person names
inflect every word.

Merging inside one post ("where safe"):
* a one-word person name that is the last word of exactly one longer person name in the post
  ("Токаев" next to "Касым-Жомарт Токаев") becomes that name; failing that, the first word of
  exactly one longer name ("Си" next to "Си Цзиньпин"). Two candidates → left alone;
* a Latin-script name whose transliteration (translit.to_cyrillic) gives the key of a Cyrillic
  entity of the same type in the post ("Tokayev" next to "Токаев") is merged into it.
Across posts nothing is merged; `entity_key` is the cross-post identity.

`entity_key(name)`: the matching key for facets and `person:` / `org:` / `place:` queries: each
word folded (case-folded, ё→е) and lemmatised by the lexical index's lemmatiser, so the stored
"Токаев" and a query "Токаева" or "ТОКАЕВУ" have the same key ("токаев").
`key_matches(query_key, entity_key)` also lets a surname query match a full name.

Limits: natasha's models are Russian-only, so English text gets no entities (a text without
Cyrillic letters returns []). Texts are cut at MAX_CHARS (3,000) characters: the head of a post
names its actors; the tail of long posts is mostly links and footers, and NER cost grows with
length. HTML tags are stripped before tagging.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import Iterable, NamedTuple

from tgsearch.analyze.normalize import fold, prepare

MAX_CHARS = 3000
TYPES = {"PER": "person", "ORG": "org", "LOC": "place"}
_QUOTES = "«»\"'„“”‘’`´"
_STRIP = _QUOTES + " \t\r\n.,:;!?()[]{}<>*_—–-|/\\#@"
_CYRILLIC = re.compile(r"[а-яёА-ЯЁ]")
_LATIN = re.compile(r"[A-Za-z]")
_LETTER = re.compile(r"[^\W\d_]")
_TAG = re.compile(r"<[^>]{0,200}>")
_SPACES = re.compile(r"\s+")
# Telethon markdown around words: **bold**, __italic__, [text](url)
_MD_LINK = re.compile(r"\[([^\]]{0,300})\]\([^)]{0,500}\)")
_MD_MARK = re.compile(r"\*\*|__|~~|`")


class Entity(NamedTuple):
    type: str  # "person" | "org" | "place"
    name: str


class _Models:
    def __init__(self) -> None:
        from natasha import NewsEmbedding, NewsMorphTagger, NewsNERTagger, Segmenter

        emb = NewsEmbedding()
        self.segmenter = Segmenter()
        self.ner = NewsNERTagger(emb)
        self.morph = NewsMorphTagger(emb)


_models: _Models | None = None
_lock = threading.Lock()
_run_lock = threading.Lock()  # slovnet's taggers keep no state, but numpy buffers are shared


def _get_models() -> _Models:
    global _models
    if _models is None:
        with _lock:
            if _models is None:
                _models = _Models()
    return _models


@lru_cache(maxsize=1)
def _morph():
    import pymorphy3

    return pymorphy3.MorphAnalyzer()


@lru_cache(maxsize=1)
def _lemmatizer():
    from tgsearch.analyze.analyzer import default_analyzer

    return default_analyzer().lemmatizer


@lru_cache(maxsize=50_000)
def _parses(word: str):
    return _morph().parse(word)


# Universal Dependencies feature value → OpenCorpora grammeme (the ones that pick a reading)
_UD_CASE = {"Nom": "nomn", "Gen": "gent", "Dat": "datv", "Acc": "accs", "Ins": "ablt", "Loc": "loct"}
_UD_NUMBER = {"Sing": "sing", "Plur": "plur"}
_UD_GENDER = {"Masc": "masc", "Fem": "femn", "Neut": "neut"}
_NOUNS = {"NOUN", "PROPN"}


_READABLE = {"NOUN", "ADJF", "PRTF"}
_PERSON_GRAMS = frozenset({"Name", "Surn", "Patr"})


@lru_cache(maxsize=100_000)
def _nominative(word: str, pos: str, case: str | None, number: str | None,
                gender: str | None, person: bool = False) -> tuple[str, bool]:
    """(`word` in the nominative, whether it was read as a noun), `word` lower case, ё→е.

    The reading is the pymorphy3 parse that best agrees with the tagger's case, number and
    gender. The tagger sometimes calls an oblique name form nominative ("Касым-Жомарту
    Токаеву позвонил" at the start of a sentence); when pymorphy has no nominative reading
    for the word, the tagger's case is ignored and the best oblique reading is used.
    """
    if pos not in ("NOUN", "PROPN", "ADJ", "VERB"):
        return word, False
    parses = [p for p in _parses(word) if p.tag.POS in _READABLE]
    if not parses:
        return word, pos in _NOUNS
    want_case = _UD_CASE.get(case) if case else None
    if want_case is None or want_case == "nomn":
        nominative = [p for p in parses if "nomn" in p.tag]
        if nominative or want_case is None:
            return word, (nominative[0].tag.POS == "NOUN") if nominative else pos in _NOUNS
        want_case = None  # no nominative reading: trust the morphology, not the tagger
        strict_number = True
    else:
        strict_number = False
    want_pos = "NOUN" if pos in _NOUNS else "ADJF"
    best = _best_reading(parses, want_case, want_pos, number, gender, person, strict_number)
    if best is None and want_case:
        # no reading in the tagger's case ("Ларисы Долиной": pymorphy knows "долиной" only as
        # an instrumental): any oblique reading that agrees in gender and number
        best = _best_reading(parses, None, want_pos, number, gender, person, True, need_gender=True)
    if best is None:
        return word, pos in _NOUNS
    number_gram = "plur" if "plur" in best.tag else "sing"
    form = best.inflect({"nomn", number_gram}) or best.inflect({"nomn"})
    if form is None:
        return word, best.tag.POS == "NOUN"
    return form.word.replace("ё", "е"), best.tag.POS == "NOUN"


def _best_reading(parses, want_case, want_pos, number, gender, person, strict_number, need_gender=False):
    best = None
    best_score = -1
    for p in parses:
        tag = p.tag
        if "nomn" in tag:
            continue
        score = 4
        if want_case and not (want_case in tag or want_case == "loct" and "loc2" in tag
                              or want_case == "gent" and "gen2" in tag):
            continue  # only readings in the tagger's case
        if tag.POS == want_pos or tag.POS == "PRTF" and want_pos == "ADJF":
            score += 1
        if number and _UD_NUMBER.get(number) in tag:
            score += 2
        if gender and _UD_GENDER.get(gender) in tag:
            score += 2
        if "Fixd" in tag:
            score -= 1  # "Анне" is also an indeclinable name; the declined reading is likelier
        if person and "anim" in tag:
            score += 1
        if person and _PERSON_GRAMS.intersection(tag.grammemes):
            score += 1
        if strict_number and number and _UD_NUMBER.get(number) not in tag:
            continue  # "Токаев" is no plural genitive of "токай"
        if need_gender and gender and _UD_GENDER.get(gender) not in tag:
            continue
        if score > best_score:
            best, best_score = p, score
    return best


def _shape(word: str, ref: str) -> str:
    """`word` with the letter case of `ref` (Title, UPPER, lower; per hyphen part)."""
    wparts = word.split("-")
    rparts = ref.split("-")
    if len(wparts) != len(rparts):
        rparts = [ref] * len(wparts)
    out = []
    for w, r in zip(wparts, rparts):
        if r.isupper() and len(r) > 1:
            out.append(w.upper())
        elif r[:1].isupper():
            out.append(w[:1].upper() + w[1:])
        else:
            out.append(w)
    return "-".join(out)


def _clean_text(text: str) -> str:
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "](" in text:
        text = _MD_LINK.sub(r"\1", text)
    text = _MD_MARK.sub("", text)
    return prepare(text)


def _clean_name(name: str) -> str:
    name = _SPACES.sub(" ", name.replace("\u00ad", ""))
    name = name.strip(_STRIP)
    for q in _QUOTES:
        name = name.replace(q, "")
    name = _SPACES.sub(" ", name).strip(_STRIP)
    return name


_LEADING_JUNK = {"ADP", "CCONJ", "SCONJ", "PART", "PRON", "DET", "PUNCT"}


@lru_cache(maxsize=50_000)
def _oblique_name(word: str, case: str, gender: str | None) -> str | None:
    """`word` read as a first name/surname/patronymic in `case` (UD) → nominative, else None."""
    grams = _UD_CASE.get(case)
    if grams is None:
        return None
    for p in _parses(word):
        tag = p.tag
        if (tag.POS == "NOUN" and grams in tag and _PERSON_GRAMS.intersection(tag.grammemes)
                and (gender is None or _UD_GENDER.get(gender) in tag)):
            form = p.inflect({"nomn", "sing"})
            if form is not None:
                return form.word.replace("ё", "е")
    return None


_MASC_ENDINGS = {"Gen": ("а", "я"), "Acc": ("а", "я"), "Dat": ("у", "ю"), "Ins": ("ом", "ем"), "Loc": ("е",)}
_CYR_VOWELS = set("аеиоуыэюяьйъ")


def _strip_masculine(word: str, case: str | None) -> str:
    """A man's name pymorphy has no reading for in the tagger's case ("Илона Маска", "Маску",
    "Дейфа"): its case ending removed when a consonant stem of 3+ letters remains."""
    for ending in _MASC_ENDINGS.get(case or "", ()):
        if word.endswith(ending):
            stem = word[: -len(ending)]
            if len(stem) >= 3 and stem[-1] not in _CYR_VOWELS and _CYRILLIC.match(stem[-1]):
                return stem
    return word


def _normal_name(tokens, label: str) -> str:
    tokens = list(tokens)
    # "На Хабр Карьера": a preposition or conjunction the span swallowed at a sentence start
    while tokens and ((tokens[0].pos or "") in _LEADING_JUNK or not _LETTER.search(tokens[0].text)):
        tokens.pop(0)
    words = []
    kept_nominative = []  # indexes of person-name words left as they were, read as nominative
    oblique = None  # (case, gender) of a person-name word that was put in the nominative
    head_done = False
    for i, tok in enumerate(tokens):
        text = tok.text
        if not _LETTER.search(text):
            words.append(text)
            continue
        low = text.lower().replace("ё", "е")
        pos = tok.pos or ""
        feats = tok.feats or {}
        if head_done:
            words.append(text)
            continue
        case = feats.get("Case")
        nom, noun = _nominative(low, pos, case, feats.get("Number"), feats.get("Gender"), label == "PER")
        if label == "PER" and nom == low and feats.get("Gender") == "Masc":
            nom = _strip_masculine(low, case)
        words.append(_shape(nom, text) if nom != low else text)
        if label == "PER":
            if nom != low and case not in (None, "Nom"):
                oblique = oblique or (case, feats.get("Gender"))
            elif nom == low and case in (None, "Nom"):
                kept_nominative.append(i)
        elif noun:
            head_done = True  # "Министерства иностранных дел": only the head inflects
    if oblique:
        # the words of one name share a case: "Илона Маска" read as "Илона" (Nom) + "Маска"
        # (Gen) is "Илон Маск"
        for i in kept_nominative:
            low = tokens[i].text.lower().replace("ё", "е")
            fixed = _oblique_name(low, *oblique)
            if fixed is None and oblique[1] == "Masc":
                fixed = _strip_masculine(low, oblique[0])
            if fixed and fixed != low:
                words[i] = _shape(fixed, tokens[i].text)
    # natasha tokens: rebuild with the original spacing between them
    out = []
    prev_stop = None
    for tok, word in zip(tokens, words):
        if prev_stop is not None and tok.start > prev_stop:
            out.append(" ")
        out.append(word)
        prev_stop = tok.stop
    return "".join(out)


_SURNAME_FORM = re.compile(r"(\w{2,}?(?:ов|ев|ёв|ин|ын))(?:а|у|ым|ом|е|ой|ою|ы|ых|ыми)?")


@lru_cache(maxsize=100_000)
def _key_word(folded: str) -> str:
    """One folded word of a name → its key: "-ов/-ев/-ин/-ын" surname shapes keep their stem
    (Токаев, Токаева, Токаеву, Токаевым → "токаев"; the dictionary would read "токаев" as a
    form of "токай"), other words take the lexical index's lemma (Казахстана → "казахстан")."""
    if "-" in folded:
        return "-".join(_key_word(p) if p else p for p in folded.split("-"))
    m = _SURNAME_FORM.fullmatch(folded)
    if m:
        return m.group(1)
    return _lemmatizer().lemma(folded)


def entity_key(name: str) -> str:
    """Matching key: folded, lemmatised words joined by one space ("Токаеву" → "токаев")."""
    words = []
    for word in _clean_name(prepare(name)).split():
        folded = fold(word).strip(_STRIP)
        if not folded:
            continue
        words.append(_key_word(folded) if _LETTER.search(folded) else folded)
    return " ".join(words)


def key_matches(query_key: str, key: str) -> bool:
    """A query key matches an entity key when equal or when it is the entity's last words
    ("токаев" matches "касым-жомарт токаев")."""
    if not query_key:
        return False
    return key == query_key or key.endswith(" " + query_key)


def _tag(texts: list[str]) -> list[list[tuple[str, str]]]:
    """[(label, normal name)] of each NER span, per text, in text order.

    Texts go through the taggers in batches of similar length (padding is what batches cost);
    the morphology tagger only sees the sentences that hold a span.
    """
    from natasha import Doc
    from natasha.doc import adapt_spans, inject_morph, sent_words

    m = _get_models()
    docs = [Doc(t) for t in texts]
    with _run_lock:
        for doc in docs:
            doc.segment(m.segmenter)
        order = sorted(range(len(docs)), key=lambda i: len(texts[i]))
        for i, markup in zip(order, m.ner.map([texts[i] for i in order])):
            doc = docs[i]
            doc.spans = list(adapt_spans(doc, markup.spans))
            doc.envelop_span_tokens()
            doc.envelop_sent_spans()
        sents = [s for doc in docs for s in doc.sents if s.spans]
        sents.sort(key=lambda s: len(s.tokens))
        for sent, markup in zip(sents, m.morph.map([sent_words(s) for s in sents])):
            inject_morph(sent.tokens, markup.tokens)
    return [[(span.type, _normal_name(span.tokens, span.type))
             for span in doc.spans if span.type in TYPES and span.tokens] for doc in docs]


def entities(text: str) -> list[Entity]:
    """People, organisations and places named in `text`, nominative, de-duplicated (see module)."""
    return entities_many([text])[0]


def entities_many(texts: Iterable[str]) -> list[list[Entity]]:
    """`entities` of each text; faster than one call per text (texts are tagged in batches)."""
    out: list[list[Entity]] = []
    todo: list[int] = []
    prepared: list[str] = []
    for text in texts:
        out.append([])
        if not text or not isinstance(text, str):
            continue
        text = _clean_text(text[: MAX_CHARS * 2])[:MAX_CHARS]
        if not _CYRILLIC.search(text):
            continue  # natasha is Russian-only
        todo.append(len(out) - 1)
        prepared.append(text)
    if not prepared:
        return out
    for i, spans in zip(todo, _tag(prepared)):
        found: list[tuple[str, str, str]] = []  # (type, name, key) in text order
        for label, name in spans:
            name = _clean_name(name)
            if len(name) < 2 or not _LETTER.search(name):
                continue
            key = entity_key(name)
            if len(key.replace(" ", "")) < 2:
                continue
            found.append((TYPES[label], name, key))
        out[i] = _merge(found)
    return out


def _merge(found: list[tuple[str, str, str]]) -> list[Entity]:
    # canonical (type, key) → display name; multi-word names win over their short forms
    by_key: dict[tuple[str, str], str] = {}
    for etype, name, key in found:
        by_key.setdefault((etype, key), name)
    alias: dict[tuple[str, str], tuple[str, str]] = {}
    keys = list(by_key)
    # one-word person → unique longer person name ending (or, failing that, starting) with it
    for etype, key in keys:
        if etype != "person" or " " in key:
            continue
        longer = [k for t, k in keys if t == "person" and " " in k]
        last = [k for k in longer if k.rsplit(" ", 1)[1] == key or k.rsplit(" ", 1)[1].endswith("-" + key)]
        first = [k for k in longer if k.split(" ", 1)[0] == key]
        if len(set(last)) == 1:
            alias[(etype, key)] = (etype, last[0])
        elif not last and len(set(first)) == 1:
            alias[(etype, key)] = (etype, first[0])
    # Latin spelling → a Cyrillic entity of the same type whose key a transliteration gives
    cyr = {(t, k) for t, k in keys if _CYRILLIC.search(k)}
    if cyr:
        from tgsearch.analyze.translit import to_cyrillic

        for etype, key in keys:
            if (etype, key) in alias or _CYRILLIC.search(key) or not _LATIN.search(key):
                continue
            words = key.split()
            cands = [[_key_word(c) for c in to_cyrillic(w)] for w in words]
            if not all(cands):
                continue
            targets: dict[str, set] = {"same": set(), "other": set()}
            for t, k in cyr:
                kw = k.split()
                # whole name, or its last words (Tokayev → Касым-Жомарт Токаев)
                if len(kw) >= len(words) and all(kw[len(kw) - len(words) + i] in c for i, c in enumerate(cands)):
                    targets["same" if t == etype else "other"].add(alias.get((t, k), (t, k)))
            # the NER often mistypes a Latin name inside Russian text (Tokayev → org):
            # a unique match of another type is still the same name
            hits = targets["same"] or targets["other"]
            if len(hits) == 1:
                alias[(etype, key)] = hits.pop()
    out: list[Entity] = []
    seen: set[tuple[str, str]] = set()
    for etype, _name, key in found:
        canon = alias.get((etype, key), (etype, key))
        canon = alias.get(canon, canon)
        if canon in seen:
            continue
        seen.add(canon)
        out.append(Entity(canon[0], by_key[canon]))
    return out


__all__ = ["Entity", "MAX_CHARS", "entities", "entities_many", "entity_key", "key_matches"]
