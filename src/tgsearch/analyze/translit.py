"""Transliteration between Latin and Cyrillic for query expansion.

`to_cyrillic(word)` reverses the common romanizations of Russian and Kazakh names: English
style and BGN/PCGN (Tokayev, Nazarbayev, Ust-Kamenogorsk), passport/ICAO style (Tokaev,
Baikonur), scientific/ISO 9 with diacritics (Tokaev, Ŝukin, Čajkovskij), Kazakh Latin
(Qazaqstan, Şymkent). Ambiguous letters give several candidates, each with a cost; the
cheapest few are returned, best first. Callers keep those that occur in the index vocabulary,
so a handful of wrong candidates is harmless.

`to_latin(word)` gives one or two romanizations of a Cyrillic word (BGN/PCGN-like "tokayev"
and passport-like "tokaev"), so Latin spellings in posts are reachable from Cyrillic queries.
All input is expected lower-case (a `normalize.fold`ed word); output is lower-case.
"""

from __future__ import annotations

import heapq

MAX_CANDIDATES = 8
_BEAM = 24

_VOWELS = set("aeiouyäöüūıéèëėâû")
# Consonants that take a soft sign before a hyphen in names: Усть-, Соль-Илецк, Гусь-.
_SOFTENABLE = set("тлнсдрз")

# Fixed multi-letter units, longest first: (latin, [(cyrillic, cost), ...]).
_UNITS: list[tuple[str, list[tuple[str, float]]]] = [
    ("shch", [("щ", 0)]),
    ("sch", [("щ", 0), ("ш", 1)]),
    ("tch", [("ч", 0)]),
    ("dzh", [("дж", 0)]),
    ("zh", [("ж", 0)]),
    ("kh", [("х", 0)]),
    ("ch", [("ч", 0)]),
    ("sh", [("ш", 0)]),
    ("ts", [("ц", 0), ("тс", 1)]),
    ("tz", [("ц", 0)]),
    ("ck", [("к", 0)]),
    ("ph", [("ф", 0)]),
    ("th", [("т", 0)]),
    ("gh", [("г", 0), ("ғ", 1)]),
    ("šč", [("щ", 0)]),
    ("ss", [("сс", 0), ("с", 0.5)]),  # Kassym → Касым
    ("iu", [("ию", 0), ("ю", 1)]),
    ("ee", [("ее", 0), ("и", 0.5)]),  # Greenpeace → Гринпис
    ("oo", [("у", 0.5), ("оо", 0.6)]),  # Hollywood → Голливуд
    ("ia", [("ия", 0), ("я", 1)]),
]

# Single letters without context rules.
_SINGLE: dict[str, list[tuple[str, float]]] = {
    "a": [("а", 0)], "b": [("б", 0)], "v": [("в", 0)], "w": [("в", 0), ("у", 1)],
    "g": [("г", 0)], "d": [("д", 0)], "z": [("з", 0)], "k": [("к", 0)], "l": [("л", 0)],
    "m": [("м", 0)], "n": [("н", 0)], "o": [("о", 0)], "p": [("п", 0)], "r": [("р", 0)],
    "s": [("с", 0)], "t": [("т", 0)], "u": [("у", 0)], "f": [("ф", 0)],
    "h": [("х", 0), ("г", 1.5)], "x": [("кс", 0), ("х", 1)], "q": [("к", 0), ("қ", 0.5)],
    "c": [("к", 0), ("ц", 1), ("с", 1.5)],
    # scientific / ISO 9
    "č": [("ч", 0)], "š": [("ш", 0)], "ž": [("ж", 0)], "ŝ": [("щ", 0)], "ë": [("е", 0)],
    "è": [("э", 0)], "é": [("е", 0), ("э", 1)], "ė": [("э", 0)], "û": [("ю", 0)],
    "â": [("я", 0)], "ʹ": [("ь", 0)], "′": [("ь", 0)], "ʺ": [("ъ", 0)], "″": [("ъ", 0)],
    "'": [("ь", 0), ("ъ", 1)],
    # Kazakh Latin
    "ä": [("ә", 0), ("а", 0.5)], "ğ": [("ғ", 0), ("г", 0.5)], "ı": [("ы", 0)],
    "ñ": [("ң", 0), ("н", 0.5)], "ö": [("ө", 0), ("о", 0.5)], "ş": [("ш", 0)],
    "ū": [("ұ", 0), ("у", 0.5)], "ü": [("ү", 0), ("у", 0.5)], "ç": [("ч", 0)],
    "-": [("-", 0)],
}


def _contextual(word: str, i: int) -> list[tuple[int, str, float]]:
    """Options for the letters y, e, i, and y+vowel, which depend on their neighbours."""
    ch = word[i]
    prev = word[i - 1] if i > 0 else ""
    nxt = word[i + 1] if i + 1 < len(word) else ""
    at_start = prev in ("", "-")
    after_vowel = prev in _VOWELS
    soft = at_start or after_vowel
    out: list[tuple[int, str, float]] = []
    if ch == "y" or ch == "j":
        iotated = {"a": "я", "u": "ю", "e": "е", "o": "е"}
        # A y/j before a vowel is most likely part of ya/yu/ye/yo: its other readings cost more.
        extra = 0.0
        if nxt in iotated:
            extra = 1.5
            cyr = iotated[nxt]
            base = 0 if ch == "y" else 1
            out.append((2, cyr, base))
            if nxt == "o":
                out.append((2, "йо", base + 1))
            if not soft:
                out.append((2, "ь" + cyr, base + 1))
        if ch == "j":
            if nxt in _VOWELS:
                out += [(1, "ж", 0), (1, "дж", 0.3), (1, "й", 1)]
            else:  # scientific/ISO: Čajkovskij
                out += [(1, "й", 0), (1, "ж", 1), (1, "дж", 1)]
        elif after_vowel:
            out += [(1, "й", extra), (1, "ы", 1.5 + extra)]
        elif nxt == "" or nxt == "-":
            out += [(1, "ы", 0), (1, "ый", 0.5), (1, "ий", 1), (1, "и", 1), (1, "й", 2)]
        else:
            out += [(1, "ы", extra), (1, "и", 1 + extra), (1, "й", 2 + extra)]
        return out
    if ch == "e":
        if at_start:
            return [(1, "э", 0), (1, "е", 0.5)]
        return [(1, "е", 0), (1, "э", 1)]
    if ch == "i":
        if after_vowel and nxt not in _VOWELS:
            return [(1, "й", 0), (1, "и", 1)]
        opts = [(1, "и", 0), (1, "ы", 1.5)]
        after_next = word[i + 2: i + 3]
        if nxt and nxt not in _VOWELS and after_next == "e":  # English "magic e": Biden → Байден
            opts.append((1, "ай", 1.2))
        return opts
    return out


def _options(word: str, i: int) -> list[tuple[int, str, float]]:
    ch = word[i]
    if ch in "yeij":
        opts = _contextual(word, i)
        if ch == "i" and word[i + 1: i + 2] in ("a", "u"):  # passport ia/iu: Iurii, Sobianin
            opts += [(2, cyr, cost) for cyr, cost in dict(_UNITS)[word[i: i + 2]]]
        if opts:
            return opts
    for latin, alts in _UNITS:
        if word.startswith(latin, i):
            return [(len(latin), cyr, cost) for cyr, cost in alts]
    if ch in _SINGLE:
        opts = [(1, cyr, cost) for cyr, cost in _SINGLE[ch]]
        nxt = word[i + 1: i + 2]
        prev = word[i - 1: i] if i else ""
        if ch == "u" and prev and prev not in _VOWELS and nxt and nxt not in _VOWELS:
            opts.append((1, "а", 1.2))  # English reading: Trump → Трамп
        elif ch == "l" and nxt and nxt not in _VOWELS and nxt != "-":
            opts.append((1, "ль", 0.8))  # Navalny → Навальный
        return opts
    return [(1, ch, 0)]  # digits and anything unknown pass through


def to_cyrillic(word: str, limit: int = MAX_CANDIDATES) -> list[str]:
    """Cyrillic candidates for a lower-case Latin word, best first (at most `limit`)."""
    if not word:
        return []
    n = len(word)
    beams: dict[int, list[tuple[float, str]]] = {0: [(0.0, "")]}
    for i in range(n):
        states = beams.pop(i, None)
        if not states:
            continue
        states = heapq.nsmallest(_BEAM, states)
        options = _options(word, i)
        for step, cyr, cost in options:
            j = i + step
            soften = j < n and word[j] == "-" and cyr[-1] in _SOFTENABLE
            bucket = beams.setdefault(j, [])
            for total, text in states:
                bucket.append((total + cost, text + cyr))
                if soften:  # Ust-Kamenogorsk → Усть-Каменогорск
                    bucket.append((total + cost + 0.5, text + cyr + "ь"))
    final = sorted(beams.get(n, []))
    out: list[str] = []
    for _, text in final:
        if text not in out:
            out.append(text)
            if len(out) >= limit:
                break
    return out


_BGN = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "yo", "ж": "zh", "з": "z",
    "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
    "ә": "a", "ғ": "g", "қ": "k", "ң": "n", "ө": "o", "ұ": "u", "ү": "u", "һ": "h", "і": "i",
}
_PASSPORT = {**_BGN, "ё": "e", "й": "i", "ю": "iu", "я": "ia"}
_CYR_VOWELS = set("аеёиоуыэюяәөұүі")


def to_latin(word: str) -> list[str]:
    """One or two romanizations of a lower-case Cyrillic word: BGN/PCGN-like, passport-like."""
    bgn: list[str] = []
    passport: list[str] = []
    prev = ""
    for ch in word:
        if ch == "е" and (prev == "" or prev == "-" or prev in _CYR_VOWELS or prev in "ьъ"):
            bgn.append("ye")
        else:
            bgn.append(_BGN.get(ch, ch))
        passport.append(_PASSPORT.get(ch, ch))
        prev = ch
    out = ["".join(bgn)]
    second = "".join(passport)
    if second != out[0]:
        out.append(second)
    return out
