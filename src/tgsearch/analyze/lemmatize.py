"""Lemmatization with pymorphy3 plus a deterministic fallback for words it does not know.

Index side (`lemma`) returns exactly one lemma per normalized word:

* words in the pymorphy dictionary → normal form of the first parse;
* hyphenated words → the dictionary normal form if pymorphy knows the whole word
  (Нур-Султане → нур-султан), else the part lemmas joined ("усть-каменогорск");
* Cyrillic words the dictionary does not know (surnames, Kazakh places, new terms) → the word
  with its case/adjective ending stripped. pymorphy's predictor guesses a different normal form
  for different forms of the same unknown name (токаева → "токаева", токаеву → "токаев"), while
  stripping endings is consistent: Токаева/Токаеву/Токаевым → "токаев", Орбаном/Орбану →
  "орбан". For consonant-final names (most surnames and place names) the stem is the lemma.
  Exceptions where "-ом"/"-ым" is part of the name: organisation names (Росатом, Казатомпром)
  and nouns pymorphy's predictor reads as their own nominative (Касым, Рахим);
* Latin words: themselves, without a Russian case ending or possessive (devops'а → devops);
  words mixing look-alike Latin and Cyrillic letters are read in their majority script;
* anything else → itself.

Query side (`alternatives`, used by Analyzer.query_lemmas) returns every lemma the index may
hold for some form of the word: the index lemma, other dictionary parses' lemmas, the lemma of
the form with its ending stripped, and for surname-shaped or unknown consonant-final words the
index lemmas of their case forms. That step is what makes "Токаеву" find "Токаев" (the
dictionary knows "токаев" only as the genitive plural of "токай") and "Безос" find "Безосом".
"""

from __future__ import annotations

import re

import pymorphy3

_CYRILLIC_WORD = re.compile(r"[а-яёәғқңөұүһіїєў]+")

# Longest first. -ов/-ев/-ин are never stripped: they are the stems of surnames.
_ENDINGS = tuple(sorted(
    "ами ями ого его ому ему ыми ими "
    "ой ей ий ый ая яя ое ее ую юю ом ем ам ям ах ях ых их ым им ою ею ые ие "
    "а я у ю е ы и о".split(),
    key=len, reverse=True,
))
_MIN_STEM = 3
_VOWELS = set("аеиоуыэюяәөұүі")

_CYRILLIC_COMPOUND = re.compile(r"[а-яёәғқңөұүһіїєў]+(?:-[а-яёәғқңөұүһіїєў]+)*")
_NOUN_ENDINGS = ("", "а", "у", "ом", "е", "ы", "ов", "ам", "ами", "ах")
_PROPER_TAGS = frozenset({"Name", "Surn", "Patr", "Geox", "Orgn", "Trad"})
_NOMINATIVE_OM = ("пром", "телеком", "росатом")
_SURNAME = re.compile(r"(\w{2,}?(?:ов|ев|ин|ын))(?:а|у|ым|ом|е|ой|ою|ы|ых|ыми)?")
_SURNAME_ENDINGS = ("", "а", "у", "ым", "ом", "е", "ой", "ы", "ых", "ыми")

# Alternative parses below this share of the first parse's score are not worth matching.
_MIN_RELATIVE_SCORE = 0.05


def _is_surname_form(word: str) -> bool:
    m = _SURNAME.fullmatch(word)
    return m is not None and m.group(1) != word


def strip_ending(word: str) -> str:
    """Stem of an unknown Cyrillic word (see module docstring)."""
    for ending in _ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= _MIN_STEM:
            return word[: -len(ending)]
    if word.endswith("й") and len(word) > _MIN_STEM and word[-2] in _VOWELS:
        return word[:-1]  # Абай / Абая / Абаем → "аба"
    return word


class Lemmatizer:
    """pymorphy3 with a dict cache; one instance per process is enough (see default_analyzer)."""

    def __init__(self) -> None:
        self.morph = pymorphy3.MorphAnalyzer()
        self._cache: dict[str, str] = {}
        self._dict = self.morph.dictionary
        self._subs = self.morph.char_substitutes
        self._probs = self.morph.prob_estimator.p_t_given_w if self.morph.prob_estimator else None

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        self._cache.clear()

    def lemma(self, word: str) -> str:
        """Index lemma of one normalized (folded) word."""
        hit = self._cache.get(word)
        if hit is None:
            hit = self._cache[word] = self._compute(word)
        return hit

    def dictionary_lemma(self, word: str) -> str | None:
        """Normal form of pymorphy's first parse if the word is in its dictionary, else None.

        Same answer as `morph.parse(word)[0].normal_form` for dictionary words, at a quarter of
        the cost: it skips building Parse objects and only ranks by P(tag|word) when the
        candidate normal forms disagree (parse() sorts stably by that probability).
        """
        items = self._dict.words.similar_items(word, self._subs)
        if not items:
            return None
        build = self._dict.build_normal_form
        fixed, paras = items[0]
        if len(items) == 1 and all(pid == paras[0][0] for pid, _idx in paras):
            # one paradigm: every reading has the same normal form
            return _e(build(paras[0][0], paras[0][1], fixed))
        cands = [(build(pid, idx, fixed), pid, idx) for fixed, paras in items for pid, idx in paras]
        first = cands[0][0]
        if self._probs is None or all(c[0] == first for c in cands):
            return _e(first)
        tag_of = self._dict.build_tag_info
        probs = [self._probs.prob(word, tag_of(pid, idx)) for _nf, pid, idx in cands]
        best = max(range(len(cands)), key=probs.__getitem__)  # first of equals, like a stable sort
        return _e(cands[best][0])

    def _compute(self, word: str) -> str:
        if "-" in word:
            parts = word.split("-")
            known = self.dictionary_lemma(word) if all(parts) else None
            if known is not None:
                return known
            return "-".join(self.lemma(p) if p else p for p in parts)
        if not _CYRILLIC_WORD.fullmatch(word):
            return self._non_cyrillic(word)
        known = self.dictionary_lemma(word)
        if known is not None:
            return known
        stem = strip_ending(word)
        for ending in ("", "а", "у", "ом", "е"):
            # Росатом, Казатомпром, Казахтелеком: organisation names, "-ом" is not an ending
            # (not "-атом" alone: форматом); "Казатомпрому" is not an "-ому" adjective.
            if word.endswith(ending) and word[: len(word) - len(ending)].endswith(_NOMINATIVE_OM):
                return word[: len(word) - len(ending)]
        if (stem != word and word.endswith(("ым", "им")) and not word.endswith(("ским", "цким"))
                and not _is_surname_form(word)):
            # Касым, Рахим, Карим: a nominative that only looks like an instrumental ending.
            # Trust pymorphy's predictor when it reads the word as a noun's own lemma (it does
            # not for -ом: Безосом, Тайсоном would be kept as they are).
            tag = (p := self.morph.parse(word)[0]).tag
            if tag.POS == "NOUN" and "nomn" in tag and _e(p.normal_form) == word:
                return word
        return stem

    def _non_cyrillic(self, word: str) -> str:
        if "'" in word:
            base, _, tail = word.partition("'")
            # devops'а, TON'ы (Russian case ending on a Latin word), Grok's → the Latin word
            if base and _LATIN_WORD.fullmatch(base) and (tail == "s" or _CYRILLIC_TAIL.fullmatch(tail)):
                return base
            return word
        fixed = _unmix(word)
        if fixed != word:
            return self.lemma(fixed)
        return word

    def is_name_like(self, word: str) -> bool:
        """Unknown to the dictionary, surname-shaped, or read by pymorphy as a name/place/org."""
        if not _CYRILLIC_COMPOUND.fullmatch(word):
            return False
        if "-" in word or self.dictionary_lemma(word) is None or _SURNAME.fullmatch(word):
            return True
        return any(_PROPER_TAGS.intersection(p.tag.grammemes) for p in self.morph.parse(word)[:3])

    def alternatives(self, word: str) -> list[str]:
        """Index lemma first, then other lemmas worth matching for a query word."""
        base = self.lemma(word)
        out = [base]
        if not _CYRILLIC_COMPOUND.fullmatch(word):
            return out
        head, _, last = word.rpartition("-")
        prefix = "-".join(self.lemma(p) for p in head.split("-")) + "-" if head else ""
        top_score = None
        # Predictor guesses for unknown words are noise; stripping below covers those.
        parses = self.morph.parse(word) if self.dictionary_lemma(word) is not None else []
        for p in parses:
            top_score = top_score or p.score or 1.0
            if p.score >= top_score * _MIN_RELATIVE_SCORE:
                # Only values lemma() can return are ever in the index.
                _add(out, self.lemma(_e(p.normal_form)))
        # The form read as a noun with its ending stripped: "под Усть-Каменогорском" is in the
        # dictionary only as the adjective "усть-каменогорский".
        stripped = prefix + strip_ending(last)
        _add(out, self.lemma(stripped))
        m = _SURNAME.fullmatch(last)
        if m:
            for ending in _SURNAME_ENDINGS:
                _add(out, self.lemma(prefix + m.group(1) + ending))
            return out
        for stem in dict.fromkeys((base, stripped, word)):
            if stem[-1] not in _VOWELS and stem[-1] not in "йь" and self.dictionary_lemma(stem) is None:
                # An unknown consonant-final noun (place, name, organisation): whatever lemma
                # each of its case forms got in the index.
                for ending in _NOUN_ENDINGS:
                    _add(out, self.lemma(stem + ending))
        return out


_LATIN_WORD = re.compile(r"[a-z]+")
_CYRILLIC_TAIL = re.compile(r"[а-я]{1,3}")
_LAT_TO_CYR = str.maketrans("aceopxykmtbh", "асеорхукмтвн")
_CYR_TO_LAT = str.maketrans("асеорхукмтвн", "aceopxykmtbh")
_LATIN_LETTER = re.compile(r"[a-z]")
_CYRILLIC_LETTER = re.compile(r"[а-яёәғқңөұүһі]")


def _unmix(word: str) -> str:
    """A word mixing look-alike Latin and Cyrillic letters ("дeнь", "сopy") in one script."""
    latin = len(_LATIN_LETTER.findall(word))
    cyrillic = len(_CYRILLIC_LETTER.findall(word))
    if not latin or not cyrillic:
        return word
    if cyrillic >= latin:
        fixed = word.translate(_LAT_TO_CYR)
        return fixed if not _LATIN_LETTER.search(fixed) else word
    fixed = word.translate(_CYR_TO_LAT)
    return fixed if not _CYRILLIC_LETTER.search(fixed) else word


def _e(word: str) -> str:
    return word.replace("ё", "е")


def _add(out: list[str], item: str) -> None:
    if item not in out:
        out.append(item)
