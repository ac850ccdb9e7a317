"""Text normalization for the analyzer.

Two steps, kept apart because they run at different granularity:

* `prepare(text)` works on a whole post and keeps letter case: drops invisible characters
  (soft hyphen, zero-width, variation selectors, keycap marks, `№`), applies NFKC and drops
  stress accents left over after composition. The tokenizer runs on its output, so it still
  sees capital letters (used to recognise "Касым- Жомарт").
* `fold(word)` works on one token: case-fold, ё→е, typographic hyphens and apostrophes to ASCII.

`prepare_with_offsets(text)` returns the same string as `prepare(text)` plus, for each
character of it, the offset of the original character it came from (for highlighting).

Whole-text str.translate costs ~60 µs per post in CPython, so the fast path checks with one
regex scan whether anything needs removing at all.
"""

from __future__ import annotations

import re
import unicodedata

# Removed before NFKC: soft hyphen, zero-width space/joiners, word joiner, BOM, variation
# selectors (incl. the supplementary block), stray combining keycaps, the numero sign (so "№5" → "5").
_INVISIBLE = (
    "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
    "\ufe00-\ufe0f\u20e3\u2116\U000e0000-\U000e007f\U000e0100-\U000e01ef"
)
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]")
# Keycap emoji ("1️⃣") are pictures, not numbers.
_KEYCAP_RE = re.compile("[0-9#*]\ufe0f?\u20e3")
# Stress marks on Cyrillic vowels have no precomposed form, so they survive NFKC.
_ACCENT_RE = re.compile("[\u0300\u0301]")
# Characters NFKC and prepare() leave unchanged: ASCII, Cyrillic letters, common quotes and
# dashes. Anything else (with the character before it, which a mark may compose with) goes
# through the per-cluster path of prepare_with_offsets.
_UNSAFE_RE = re.compile("(?s:.)?[^\x00-\x7f\u0400-\u0482\u048a-\u04ff«»—–“”„‘’]+")
_REMOVABLE_RE = re.compile(f"{_KEYCAP_RE.pattern}|[{_INVISIBLE}\u0300\u0301]+")

_FOLD = str.maketrans({
    "ё": "е",
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2019": "'",
    "\u02bc": "'",
})


def prepare(text: str) -> str:
    """Case-preserving normalization of a whole text (see module docstring)."""
    if text.isascii():
        return text
    if "\u20e3" in text:
        text = _KEYCAP_RE.sub("", text)
    if _INVISIBLE_RE.search(text):
        text = _INVISIBLE_RE.sub("", text)
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    if "\u0301" in text or "\u0300" in text:
        text = _ACCENT_RE.sub("", text)
    return text


def fold(word: str) -> str:
    """Case-fold one token and map ё→е and typographic hyphens/apostrophes to ASCII."""
    return word.casefold().translate(_FOLD)


def normalize(text: str) -> str:
    """Full normalization of any text: prepare + fold (what `Token.norm` is built from)."""
    return fold(prepare(text))


def _clusters(text: str, i: int, stop: int, pieces: list[str], starts: list[int], ends: list[int]) -> None:
    """prepare() text[i:stop] cluster by cluster (a character with its combining marks)."""
    while i < stop:
        j = i + 1
        while j < stop and unicodedata.category(text[j])[0] == "M":  # marks incl. VS16, keycap
            j += 1
        cluster = prepare(text[i:j])
        if cluster:
            pieces.append(cluster)
            starts.extend([i] * len(cluster))
            ends.extend([j] * len(cluster))
        i = j


def prepare_with_offsets(text: str) -> tuple[str, list[int], list[int]]:
    """`prepare(text)` plus, for every output character, the original span it came from.

    Returns (prepared, starts, ends): output character k comes from text[starts[k]:ends[k]].
    Works cluster by cluster (a base character with its combining marks), which gives the
    same result as whole-text NFKC for everything but exotic cross-cluster compositions.
    """
    prepared = prepare(text)
    if prepared == text:
        idx = list(range(len(text) + 1))
        return text, idx[:-1], idx[1:]
    if _REMOVABLE_RE.sub("", text) == prepared:
        # Only characters were dropped (the usual case: emoji variation selectors, soft
        # hyphens): map the kept runs directly. A dropped stress mark stays with its letter.
        starts: list[int] = []
        ends: list[int] = []
        last = 0
        for m in _REMOVABLE_RE.finditer(text):
            a = m.start()
            starts.extend(range(last, a))
            ends.extend(range(last + 1, a + 1))
            if ends and ends[-1] == a and text[a] in "\u0300\u0301":
                ends[-1] = m.end()
            last = m.end()
        starts.extend(range(last, len(text)))
        ends.extend(range(last + 1, len(text) + 1))
        return prepared, starts, ends
    pieces: list[str] = []
    starts = []
    ends = []
    n = len(text)
    last = 0
    for m in _UNSAFE_RE.finditer(text):
        a, b = m.span()
        if a > last:  # a run NFKC leaves alone: maps one to one
            pieces.append(text[last:a])
            starts.extend(range(last, a))
            ends.extend(range(last + 1, a + 1))
        _clusters(text, a, b, pieces, starts, ends)
        last = b
    if last < n:
        pieces.append(text[last:])
        starts.extend(range(last, n))
        ends.extend(range(last + 1, n + 1))
    out = "".join(pieces)
    if out != prepared:
        # A composition across clusters: keep the exact string, map proportionally (offsets
        # stay in range and ordered; highlighting is approximate only in this rare case).
        scale = n / max(1, len(prepared))
        starts = [min(n - 1, int(k * scale)) for k in range(len(prepared))]
        ends = [min(n, max(s + 1, int((k + 1) * scale))) for k, s in enumerate(starts)]
    return prepared, starts, ends
