"""The Russian-aware analyzer used by the lexical index and the query parser.

Term scheme (positions = list index; `tokens`, `index_terms` and `exact_terms` are aligned 1:1):

* a word gives its lemma (index) and its normalized form (exact);
* a hyphenated compound gives the whole compound first, then each part:
  "в Усть-Каменогорске" → index ["в", "усть-каменогорск", "усть", "каменогорск"],
  exact ["в", "усть-каменогорске", "усть", "каменогорске"]. A query for the whole word matches
  the single compound term; a query for a part matches the part term. Parts shift the
  positions of what follows by the number of parts; a phrase query analysed with the same
  analyzer gets the same shift, so phrases still line up. Compound parts are not emitted for
  clitics (кто-то, из-за, по-русски);
* numbers, codes, URLs, #hashtags and @mentions give their normalized form in both lists
  ("7,8" → "7.8", "15 000" → "15000", "$56" → "56", "2025-го" → "2025").

Speed: term lists come from dict caches whose misses do the analysis. A text is split on
whitespace and each chunk ("(Казахстана),") is looked up whole, so a warm run is str.split,
C-level dict lookups and a join, with no regex over the text; texts with tokens that contain a
space ("15 000", "Касым- Жомарт") go through the tokenizer regex and a per-surface cache.
`terms()` and `joined_terms()` (additions to the agreed API) give both lists in one pass;
`joined_terms()` returns them space-separated, ready for a whitespace-tokenized field.

Lemmas: see lemmatize.py (pymorphy3 + ending stripping for unknown words). Query expansion:
`query_lemmas()`; transliteration: translit.py. Bump VERSION whenever any output changes.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from tgsearch.analyze.lemmatize import Lemmatizer
from tgsearch.analyze.normalize import fold, normalize, prepare, prepare_with_offsets
from tgsearch.analyze.tokenize import UPPER, WORD, find_surfaces, iter_surfaces, split
from tgsearch.analyze.translit import to_cyrillic, to_latin

VERSION = "4"
MAX_QUERY_LEMMAS = 16  # Latin words over-generate; the index keeps the ones it holds
_MIN_TRANSLIT_LEN = 3
# Surfaces + chunks cached before the caches are dropped and rebuilt (bounds memory).
MAX_CACHED_SURFACES = 1_000_000

# Tokens that contain a space ("15 000", "Касым- Жомарт"): texts with them skip the chunk path.
# Starting at the literal space lets sre jump from space to space (10x faster than \d\x20…).
_SPANS_SPACE = re.compile(rf"\x20(?<=\d\x20)\d{{3}}|\x20(?<=[^\W\d_]-\x20)[{UPPER}]").search
# Punctuation that is never part of a token next to a letter (not #, @, _ — hashtags, mentions).
_EDGE_PUNCT = ".,:;!?()[]{}<>«»\"'„“”‘’…—–-*/\\|"
_URL_HEADS = frozenset({"http", "https", "www"})  # "www.’": the regex reads a URL there
_PLAIN_WORD = re.compile(r"[^\W\d_\u02bc]+").fullmatch  # ʼ (U+02BC) is a letter to \w
_KAZAKH_TO_RUSSIAN = str.maketrans("әғқңөұүһі", "агкноуухи")
_HAS_LATIN = frozenset("abcdefghijklmnopqrstuvwxyzäöüūıçşğñčšžŝëèéėâûʹ′ʺ″")


@dataclass(frozen=True, slots=True)
class Token:
    text: str  # surface form as in the original text
    norm: str  # normalized form (NFKC, casefold, ё→е, soft hyphen/zero-width removed)
    start: int  # char offsets into the ORIGINAL text
    end: int
    kind: str  # "word" | "number" | "code" | "url" | "hashtag" | "mention"


class _Cache(dict):
    """key → its terms joined by spaces; a miss calls fill(key), which fills both caches of
    its pair (index and exact) and returns (exact, index).

    Joined strings rather than tuples: " ".join(map(cache.__getitem__, keys)) runs in C and
    is what a whitespace-tokenized index field wants anyway; lists come from .split().
    """

    __slots__ = ("_fill", "_slot")

    def __init__(self, fill, slot: int):
        super().__init__()
        self._fill = fill
        self._slot = slot

    def __missing__(self, key: str) -> str:
        return self._fill(key)[self._slot]


class Analyzer:
    name: str = "ru-lemma"
    version: str = VERSION

    def __init__(self) -> None:
        self.lemmatizer = Lemmatizer()
        # Two cache levels. Chunks are whitespace-separated pieces of text ("(Казахстана),");
        # a post whose tokens never span whitespace is analysed by str.split() and chunk
        # lookups alone, with no regex pass over the text. Surfaces are regex matches; chunk
        # misses are analysed through them, so lemmatization is shared.
        self._index = _Cache(self._fill_surface, 1)
        self._exact = _Cache(self._fill_surface, 0)
        self._chunk_index = _Cache(self._fill_chunk, 1)
        self._chunk_exact = _Cache(self._fill_chunk, 0)
        self._pieces: dict[str, list[tuple[str, str, int, int]]] = {}  # surface → split() (tokens())
        self._index_get = self._index.__getitem__
        self._exact_get = self._exact.__getitem__
        self._chunk_index_get = self._chunk_index.__getitem__
        self._chunk_exact_get = self._chunk_exact.__getitem__

    # -- cache ---------------------------------------------------------------------------

    def _fill_surface(self, surface: str) -> tuple[str, str]:
        if _PLAIN_WORD(surface):  # most surfaces: letters only, no split needed
            norm = surface.casefold().replace("ё", "е")  # = fold() for letters only
            value = (norm, self.lemmatizer.lemma(norm))
        else:
            norms = []
            lemmas = []
            for kind, norm, _start, _end in split(surface):
                norms.append(norm)
                lemmas.append(self.lemmatizer.lemma(norm) if kind == WORD else norm)
            value = (" ".join(norms), " ".join(lemmas))
        dict.__setitem__(self._exact, surface, value[0])
        dict.__setitem__(self._index, surface, value[1])
        return value

    def _fill_chunk(self, chunk: str) -> tuple[str, str]:
        core = chunk.strip(_EDGE_PUNCT)
        # "(Токаева),"; the URL heads are at most 5 letters long
        if core and _PLAIN_WORD(core) and (len(core) > 5 or core.lower() not in _URL_HEADS):
            norm = core.casefold().replace("ё", "е")  # = fold() for letters only
            value = (norm, self.lemmatizer.lemma(norm))
        else:
            surfaces = find_surfaces(chunk)
            value = (" ".join(filter(None, map(self._exact_get, surfaces))),
                     " ".join(filter(None, map(self._index_get, surfaces))))
        dict.__setitem__(self._chunk_exact, chunk, value[0])
        dict.__setitem__(self._chunk_index, chunk, value[1])
        return value

    def _keys(self, text: str) -> tuple[list[str], bool]:
        """(cache keys, whether they are chunks) for a text."""
        prepared = prepare(text)
        if _SPANS_SPACE(prepared):
            return find_surfaces(prepared), False
        return prepared.split(), True

    def _bound_cache(self) -> None:
        if len(self._index) + len(self._chunk_index) > MAX_CACHED_SURFACES:
            for cache in (self._index, self._exact, self._chunk_index, self._chunk_exact, self._pieces):
                cache.clear()
            self.lemmatizer.clear()

    def cache_size(self) -> dict[str, int]:
        return {"surfaces": len(self._index), "chunks": len(self._chunk_index),
                "lemmas": len(self.lemmatizer)}

    # -- API -----------------------------------------------------------------------------

    def tokens(self, text: str) -> list[Token]:
        """Tokens with offsets into `text` (for snippets); aligned 1:1 with index_terms."""
        prepared, starts, ends = prepare_with_offsets(text)
        out: list[Token] = []
        pieces = self._pieces
        if len(pieces) > MAX_CACHED_SURFACES:
            pieces.clear()
        for m in iter_surfaces(prepared):
            base = m.start()
            surface = m.group()
            found = pieces.get(surface)
            if found is None:
                found = pieces[surface] = split(surface)
            for kind, norm, a, b in found:
                start = starts[base + a]
                end = ends[base + b - 1]
                out.append(Token(text[start:end], norm, start, end, kind))
        return out

    def lemma(self, norm: str) -> str:
        """The one index lemma of a normalized word (cached)."""
        return self.lemmatizer.lemma(norm)

    def index_terms(self, text: str) -> list[str]:
        return self._joined(text, self._chunk_index_get, self._index_get).split()

    def exact_terms(self, text: str) -> list[str]:
        return self._joined(text, self._chunk_exact_get, self._exact_get).split()

    def terms(self, text: str) -> tuple[list[str], list[str]]:
        """(index_terms, exact_terms) with one tokenization pass."""
        index, exact = self.joined_terms(text)
        return index.split(), exact.split()

    def joined_terms(self, text: str) -> tuple[str, str]:
        """(index terms, exact terms), each joined by spaces: the fastest form, for
        whitespace-tokenized index fields. No term contains whitespace; where punctuation
        stood, spaces may come in runs (`.split()` gives the lists; skipping the empty
        strings instead costs a fifth of the join)."""
        keys, chunked = self._keys(text)
        if chunked:
            index = " ".join(map(self._chunk_index_get, keys))
            exact = " ".join(map(self._chunk_exact_get, keys))
        else:
            index = " ".join(map(self._index_get, keys))
            exact = " ".join(map(self._exact_get, keys))
        self._bound_cache()
        return index, exact

    def _joined(self, text: str, chunk_get, surface_get) -> str:
        keys, chunked = self._keys(text)
        joined = " ".join(map(chunk_get if chunked else surface_get, keys))
        self._bound_cache()
        return joined

    def query_lemmas(self, word: str) -> list[str]:
        """Index terms a query word should match, best first (at most MAX_QUERY_LEMMAS).

        Its own lemma first, then other parses' lemmas and surname-paradigm lemmas, then
        transliterations: Latin → lemmas of Cyrillic candidates, Cyrillic → Latin spellings.
        Non-words (numbers, codes, URLs, hashtags, mentions) match only their normal form.
        """
        # Several words ("Касым Жомарт"): the first one only; callers split phrases themselves.
        surfaces = find_surfaces(prepare(word.strip()))
        pieces = [piece for surface in surfaces for piece in split(surface)]
        if not pieces:
            return []
        kind, norm, _a, _b = pieces[0]
        if kind != WORD:
            return [norm]
        lem = self.lemmatizer
        out = lem.alternatives(norm)
        if len(norm) < _MIN_TRANSLIT_LEN:
            return out[:MAX_QUERY_LEMMAS]  # "on" → "он", "и" → "i": short words are other words
        if _HAS_LATIN.intersection(norm):
            for rank, candidate in enumerate(to_cyrillic(out[0])):  # "tokayev's" → "tokayev"
                extra = lem.alternatives(candidate) if rank < 2 else [lem.lemma(candidate)]
                for item in extra:
                    if item not in out:
                        out.append(item)
        else:
            russified = norm.translate(_KAZAKH_TO_RUSSIAN)
            if russified != norm:  # Тоқаев → Токаев, Нұрсұлтан → Нурсултан
                for item in lem.alternatives(russified)[:3]:
                    if item not in out:
                        out.append(item)
        if not _HAS_LATIN.intersection(norm) and lem.is_name_like(norm):
            # Only names travel between scripts: "стали" → "stali" would match English text.
            for base in out[:2]:
                for latin in to_latin(base):
                    if latin not in out:
                        out.append(latin)
        return out[:MAX_QUERY_LEMMAS]


_default: Analyzer | None = None
_lock = threading.Lock()


def default_analyzer() -> Analyzer:
    """Process-wide shared Analyzer (pymorphy3 dictionaries load once, caches are shared)."""
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = Analyzer()
    return _default


__all__ = ["Analyzer", "Token", "VERSION", "default_analyzer", "normalize"]
