"""Regex tokenizer: one compiled alternation, run on `normalize.prepare()` output.

A match ("surface") is later expanded by `split()` into one or more pieces:

* plain word / number / code / url / hashtag / mention → one piece;
* hyphenated compound (Усть-Каменогорск, Касым-Жомарт, COVID-19, 2020-2025) → the whole
  compound first, then each part ("усть-каменогорск", "усть", "каменогорск"). Parts are
  not emitted for clitics and adverbial prefixes (кто-то, из-за, по-русски, во-первых);
* "2025-го", "90-х" → the number alone ("2025"), the ordinal ending is dropped;
* "Касым- Жомарт" (space after the hyphen, capital after it) is read as "Касым-Жомарт";
* "15 000" → number "15000"; "7,8" and "7.8" → number "7.8";
* "конец.Начало", "т.е." → separate words; "д’Артаньян", "devops'а" stay one token;
* currency signs, %, emoji and other symbols are not tokens ("$56" → "56").
"""

from __future__ import annotations

import re

from tgsearch.analyze.normalize import fold

_L = r"[^\W\d_]"  # a letter of any script (Cyrillic incl. Kazakh ә ғ қ ң ө ұ ү һ і, Latin…)
UPPER = "A-ZА-ЯЁӘҒҚҢӨҰҮҺІЄЇЎ"
_APOS = "'\u2019\u02bc"
_HYPHENS = "\\-\u2010\u2011"

_URL_END = r"[^\s<>\"'()\[\]{}«».,:;!?…]"
_URL_MID = r"[^\s<>\"'()\[\]{}«»]"
_URL = rf"(?:[Hh][Tt][Tt][Pp][Ss]?://|[Ww][Ww][Ww]\.){_URL_MID}*{_URL_END}"
_TLDS = "ru|kz|com|org|net|me|io|ua|by|uz|kg|tj|am|ge|az|info|gov|edu|su|tv|news|online|app|dev|co|uk|de|fr|eu|us|cn|tr"
# Every branch starts with a consuming character and lookbehinds come after it: a leading
# lookbehind stops sre from skipping positions where no token can start (2x slower).
_DOMAIN = (
    rf"[A-Za-z](?<![\w.\-][A-Za-z])[A-Za-z0-9\-]*(?:\.[A-Za-z0-9\-]+)*\.(?:{_TLDS})(?![\w\-])"
    rf"(?:/(?:{_URL_MID}*{_URL_END})?)?"
)
_MENTION = r"@(?<![\w@]@)\w+"
_HASHTAG = r"#(?<![\w#&/]#)\w+"
# "15 000"; the left edge needs no check: a digit after a word character is already inside
# the token matched before it.
_THOUSANDS = r"\d{1,3}(?:\x20\d{3})+(?![\w.,]|\x20\d)"
# Word characters joined by hyphens, apostrophes, "." or ","; split() breaks the surface up
# where those joiners are not word-internal (конец.Начало, т.е) — cheaper than doing it here.
_COMPOUND = rf"\w+(?:(?:[{_APOS}]?[{_HYPHENS}]|[.,{_APOS}]|(?<={_L})-\x20(?=[{UPPER}]))\w+)*"

TOKEN_RE = re.compile("|".join([_MENTION, _HASHTAG, _URL, _DOMAIN, _THOUSANDS, _COMPOUND]))
find_surfaces = TOKEN_RE.findall
iter_surfaces = TOKEN_RE.finditer

_SEG = rf"(?:\d+(?:[.,]\d+)+|\w+(?:[{_APOS}]\w+)*)"
_SUB_RE = re.compile(rf"{_SEG}(?:(?:[{_APOS}]?[{_HYPHENS}]|-\x20){_SEG})*")
_JOINERS = frozenset(".," + _APOS)
_PART_RE = re.compile(rf"[^{_HYPHENS}\s]+")
_DIGITS_RE = re.compile(r"\d+(?:[.,]\d+)*")
_ORDINAL_END_RE = re.compile(r"[а-я]{1,3}")

# A compound with one of these parts is indexed whole only: its parts carry no meaning alone.
_CLITICS = frozenset({"то", "либо", "нибудь", "ка", "таки", "кое", "кой", "де"})
_PREFIXES = frozenset({"по", "во", "в", "из", "вс"})

WORD, NUMBER, CODE, URL, HASHTAG, MENTION = "word", "number", "code", "url", "hashtag", "mention"


def _seg_kind(seg: str) -> str:
    if _DIGITS_RE.fullmatch(seg):
        return NUMBER
    for ch in seg:
        if ch.isdigit():
            return CODE
    return WORD


def _number_norm(seg: str) -> str:
    return seg.replace(" ", "").replace(",", ".")


def _is_url(surface: str) -> bool:
    head = surface[:8].lower()
    if head.startswith(("http://", "https://", "www.")):
        return True
    return "." in surface and surface[0].isascii() and surface[0].isalpha() and _DOMAIN_RE.fullmatch(surface) is not None


_DOMAIN_RE = re.compile(_DOMAIN)
_THOUSANDS_RE = re.compile(_THOUSANDS)


def _piece(seg: str, start: int, end: int) -> tuple[str, str, int, int] | None:
    kind = _seg_kind(seg)
    if kind == NUMBER:
        return (NUMBER, _number_norm(seg), start, end)
    # U+02BC is a letter to the regex; at an edge it is a quote, not part of the word
    norm = fold(seg).strip("'")
    if "_" in norm:  # "__курсив__" markdown left in plain text
        norm = norm.strip("_")
    if not norm:
        return None
    return (kind, norm, start, end)


def split(surface: str) -> list[tuple[str, str, int, int]]:
    """Pieces of one surface: [(kind, norm, start, end)], offsets relative to the surface.

    Usually one token; a compound gives its whole first, then its parts; a surface glued by
    "." or "," (конец.Начало) gives each of its tokens; underscores alone give nothing.
    """
    n = len(surface)
    first = surface[0]
    if first == "#":
        return [(HASHTAG, fold(surface), 0, n)]
    if first == "@":
        return [(MENTION, fold(surface), 0, n)]
    if first.isdigit() and " " in surface and _THOUSANDS_RE.fullmatch(surface):
        return [(NUMBER, _number_norm(surface), 0, n)]
    if _is_url(surface):
        return [(URL, fold(surface), 0, n)]
    if _JOINERS.isdisjoint(surface):
        return _split_compound(surface)
    pieces = []
    for m in _SUB_RE.finditer(surface):
        base = m.start()
        pieces += [(k, norm, base + a, base + b) for k, norm, a, b in _split_compound(m.group())]
    return pieces


def _split_compound(surface: str) -> list[tuple[str, str, int, int]]:
    n = len(surface)
    parts = []
    for m in _PART_RE.finditer(surface):
        piece = _piece(m.group(), m.start(), m.end())
        if piece is not None:
            parts.append(piece)
    if len(parts) <= 1:
        return [(kind, norm, 0, n) for kind, norm, _s, _e in parts]
    if len(parts) == 2 and parts[0][0] == NUMBER and _ORDINAL_END_RE.fullmatch(parts[1][1]):
        return [(NUMBER, parts[0][1], 0, n)]
    kinds = {p[0] for p in parts}
    whole_kind = WORD if kinds == {WORD} else CODE
    whole = (whole_kind, "-".join(p[1] for p in parts), 0, n)
    norms = [p[1] for p in parts]
    if _CLITICS.intersection(norms) or norms[0] in _PREFIXES:
        return [whole]
    return [whole, *parts]
