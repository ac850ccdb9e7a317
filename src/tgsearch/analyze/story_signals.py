"""Same-story signals between two posts, for copy detection and story clustering.

A post is prepared once (`prepare`) into a `StoryDoc`; every signal is then a cheap function of
two StoryDocs, in [0, 1] (cosines of non-negative vectors, Jaccard indexes):

* `tfidf_cosine`    cosine of TF-IDF vectors over the lexical index's lemmas (stop lemmas out),
                    with IDF from a background corpus (`Idf`, built once and cached on disk);
* `lead_cosine`     the same over the first LEAD_LEMMAS lemmas of each post (the news lead);
* `title_cosine`    TF-IDF cosine of the two titles; `cross_title_cosine` the better of
                    title(a)·body(b) and title(b)·body(a);
* `shingle_jaccard` exact Jaccard of word 3-shingles over lemmas (copies score ≈ 1);
                    `shingle_containment` the same over the smaller set (a copy with a footer
                    added is still contained); `minhash` gives a datasketch MinHash of the
                    shingles for LSH candidate search, to be re-checked with the exact value;
* `entity_overlap`  weighted Jaccard of entity keys (analyze/entities.py): person 1.0, org 0.8,
                    place 0.4, each times the IDF of the key's last word, so "Россия" counts
                    less than "Шугалей"; `person_conflict` = 1 when both name people and share
                    none of them;
* `number_overlap`  Jaccard of the numbers mentioned (years, dates, counts, sums; "15 000" and
                    "15000" are one number);
* `vector_cosine`   cosine of the two posts' embeddings (USE by default, e5 where stored);
                    embed `embedding_text(title, text)` (title + first 600 characters) for
                    this: with e5 it is the strongest signal measured.

`features(a, b)` returns all of them by name; `SameStoryModel` is a logistic regression over
them, fitted by `bench/story_pairs.py` (numbers in docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from tgsearch.analyze.analyzer import Analyzer, default_analyzer

LEAD_LEMMAS = 60
EMBED_LEAD_CHARS = 600  # e5 over title + the text's first 600 characters: the best single signal
SHINGLE = 3
MAX_CHARS = 6000  # text analysed per post; the rest rarely changes which story it is
ENTITY_WEIGHTS = {"person": 1.0, "org": 0.8, "place": 0.4}

_NUMBER = re.compile(r"\d+(?:[ \u00a0\u202f]\d{3})*(?:[.,]\d+)?")
_WORDISH = re.compile(r"[^\W\d_]")
_URL = re.compile(r"https?://\S+|www\.\S+|t\.me/\S+")


def _stop_lemmas() -> frozenset[str]:
    from tgsearch.search.stopwords import STOP_LEMMAS

    return frozenset(STOP_LEMMAS)


class Idf:
    """Inverse document frequencies of lemmas: log((N + 1) / (df + 1)) + 1; unseen lemmas get
    the value of a lemma seen once."""

    def __init__(self, df: dict[str, int], docs: int):
        self.df = df
        self.docs = docs
        self._unseen = math.log((docs + 1) / 2) + 1
        self._cache: dict[str, float] = {}

    def __call__(self, lemma: str) -> float:
        hit = self._cache.get(lemma)
        if hit is None:
            df = self.df.get(lemma)
            hit = self._unseen if df is None else math.log((self.docs + 1) / (df + 1)) + 1
            self._cache[lemma] = hit
        return hit

    @classmethod
    def from_texts(cls, texts: Iterable[str], analyzer: Analyzer | None = None, min_df: int = 2) -> "Idf":
        analyzer = analyzer or default_analyzer()
        df: Counter[str] = Counter()
        n = 0
        for text in texts:
            n += 1
            df.update(set(_lemmas(text[:MAX_CHARS], analyzer)))
        return cls({k: v for k, v in df.items() if v >= min_df}, n)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps({"docs": self.docs, "df": self.df}, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "Idf":
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["df"], int(data["docs"]))

    @classmethod
    def cached(cls, path: Path, texts: Iterable[str]) -> "Idf":
        """Load `path`, or build from `texts` and save there."""
        if path.exists():
            return cls.load(path)
        idf = cls.from_texts(texts)
        idf.save(path)
        return idf


def _lemmas(text: str, analyzer: Analyzer) -> list[str]:
    stop = _stop_lemmas()
    return [t for t in analyzer.index_terms(_URL.sub(" ", text))
            if t not in stop and _WORDISH.search(t) and len(t) > 1]


def _numbers(text: str) -> frozenset[str]:
    out = set()
    for m in _NUMBER.finditer(_URL.sub(" ", text)):
        value = re.sub(r"[ \u00a0\u202f]", "", m.group()).replace(",", ".")
        value = value.rstrip("0").rstrip(".") if "." in value else value.lstrip("0") or "0"
        out.add(value)
    return frozenset(out)


def _shingles(lemmas: Sequence[str], n: int = SHINGLE) -> frozenset[int]:
    if len(lemmas) < n:
        return frozenset([_hash(" ".join(lemmas))]) if lemmas else frozenset()
    return frozenset(_hash(" ".join(lemmas[i:i + n])) for i in range(len(lemmas) - n + 1))


def _hash(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")


def _tfidf(lemmas: Sequence[str], idf: Idf) -> dict[str, float]:
    if not lemmas:
        return {}
    tf = Counter(lemmas)
    vec = {k: (1 + math.log(v)) * idf(k) for k, v in tf.items()}
    norm = math.sqrt(sum(v * v for v in vec.values()))
    return {k: v / norm for k, v in vec.items()}


def _dot(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(k, 0.0) for k, v in a.items())


@dataclass
class StoryDoc:
    """What the signals need of one post (build with `prepare`)."""

    title: str
    text: str
    lemmas: list[str]
    tfidf: dict[str, float]
    lead: dict[str, float]
    title_tfidf: dict[str, float]
    body_tfidf: dict[str, float]
    shingles: frozenset[int]
    numbers: frozenset[str]
    entities: dict[tuple[str, str], float] = field(default_factory=dict)  # (type, key) → weight
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # model name → unit vector


def prepare(title: str, text: str, idf: Idf, *, entities: Sequence | None = None,
            vectors: dict[str, np.ndarray] | None = None, analyzer: Analyzer | None = None) -> StoryDoc:
    """One post's features. `title` may be "" (Telegram posts: pass the derived title or the
    first line); `entities` are analyze.entities.Entity tuples (computed if None), `vectors`
    the post's embeddings by model name (unit length)."""
    analyzer = analyzer or default_analyzer()
    title = title or ""
    text = (text or "")[:MAX_CHARS]
    body_lemmas = _lemmas(text, analyzer)
    title_lemmas = _lemmas(title, analyzer)
    # the title is usually the text's first line too: count it once
    if title_lemmas and body_lemmas[:len(title_lemmas)] == title_lemmas:
        lemmas = body_lemmas
    else:
        lemmas = title_lemmas + body_lemmas
    if entities is None:
        from tgsearch.analyze.entities import entities as find_entities

        entities = find_entities((title + ".\n" + text) if title and not text.startswith(title) else text)
    return StoryDoc(
        title=title, text=text, lemmas=lemmas,
        tfidf=_tfidf(lemmas, idf), lead=_tfidf(lemmas[:LEAD_LEMMAS], idf),
        title_tfidf=_tfidf(title_lemmas, idf), body_tfidf=_tfidf(body_lemmas, idf),
        shingles=_shingles(lemmas), numbers=_numbers(title + " " + text),
        entities=_entity_weights(entities, idf), vectors=dict(vectors or {}),
    )


def _entity_weights(entities: Sequence, idf: Idf) -> dict[tuple[str, str], float]:
    from tgsearch.analyze.entities import entity_key

    out: dict[tuple[str, str], float] = {}
    for ent in entities:
        key = entity_key(ent.name)
        if not key:
            continue
        last = key.rsplit(" ", 1)[-1]
        out[(ent.type, key)] = ENTITY_WEIGHTS.get(ent.type, 0.5) * idf(last)
    return out


def embedding_text(title: str, text: str, chars: int = EMBED_LEAD_CHARS) -> str:
    """What to embed for story matching: title + the start of the text, URLs dropped, cut at
    `chars` (bench/story_pairs.py: e5 over 600 characters separates stories better than e5 over
    the whole text, and costs less)."""
    from tgsearch.analyze.embed import clean_for_embedding

    return clean_for_embedding((title or "") + "\n" + (text or ""))[:chars]


# -- signals ------------------------------------------------------------------------------


def tfidf_cosine(a: StoryDoc, b: StoryDoc) -> float:
    return _dot(a.tfidf, b.tfidf)


def lead_cosine(a: StoryDoc, b: StoryDoc) -> float:
    return _dot(a.lead, b.lead)


def title_cosine(a: StoryDoc, b: StoryDoc) -> float:
    return _dot(a.title_tfidf, b.title_tfidf)


def cross_title_cosine(a: StoryDoc, b: StoryDoc) -> float:
    return max(_dot(a.title_tfidf, b.body_tfidf), _dot(b.title_tfidf, a.body_tfidf))


def shingle_jaccard(a: StoryDoc, b: StoryDoc) -> float:
    if not a.shingles or not b.shingles:
        return 0.0
    inter = len(a.shingles & b.shingles)
    return inter / (len(a.shingles) + len(b.shingles) - inter)


def shingle_containment(a: StoryDoc, b: StoryDoc) -> float:
    if not a.shingles or not b.shingles:
        return 0.0
    return len(a.shingles & b.shingles) / min(len(a.shingles), len(b.shingles))


def minhash(doc: StoryDoc, num_perm: int = 64):
    """datasketch MinHash of the post's shingles (for MinHashLSH copy candidates)."""
    from datasketch import MinHash

    m = MinHash(num_perm=num_perm)
    m.update_batch([s.to_bytes(8, "little") for s in doc.shingles])
    return m


def entity_overlap(a: StoryDoc, b: StoryDoc) -> float:
    """Weighted Jaccard of entity keys (0 when either post names nobody)."""
    if not a.entities or not b.entities:
        return 0.0
    keys = a.entities.keys() | b.entities.keys()
    shared = a.entities.keys() & b.entities.keys()
    total = sum(max(a.entities.get(k, 0.0), b.entities.get(k, 0.0)) for k in keys)
    return sum(a.entities[k] for k in shared) / total if total else 0.0


def person_conflict(a: StoryDoc, b: StoryDoc) -> float:
    """1.0 when both posts name people and none of them is shared."""
    pa = {k for k in a.entities if k[0] == "person"}
    pb = {k for k in b.entities if k[0] == "person"}
    return 1.0 if pa and pb and not (pa & pb) else 0.0


def number_overlap(a: StoryDoc, b: StoryDoc) -> float:
    if not a.numbers or not b.numbers:
        return 0.0
    return len(a.numbers & b.numbers) / len(a.numbers | b.numbers)


def vector_cosine(a: StoryDoc, b: StoryDoc, model: str) -> float | None:
    va, vb = a.vectors.get(model), b.vectors.get(model)
    if va is None or vb is None:
        return None
    return float(np.dot(va, vb))


SIGNALS = {
    "tfidf": tfidf_cosine,
    "lead": lead_cosine,
    "title": title_cosine,
    "title_x_text": cross_title_cosine,
    "shingles": shingle_jaccard,
    "containment": shingle_containment,
    "entities": entity_overlap,
    "person_conflict": person_conflict,
    "numbers": number_overlap,
}


def features(a: StoryDoc, b: StoryDoc) -> dict[str, float]:
    """Every signal by name; `vec:<model>` for each model both posts have a vector of."""
    out = {name: float(fn(a, b)) for name, fn in SIGNALS.items()}
    for model in a.vectors.keys() & b.vectors.keys():
        out[f"vec:{model}"] = float(np.dot(a.vectors[model], b.vectors[model]))
    return out


# -- combination ------------------------------------------------------------------------------


@dataclass
class SameStoryModel:
    """Logistic regression over named features (standardised inside: weights apply to z-scores)."""

    names: list[str]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    threshold: float = 0.5

    def probability(self, feats: dict[str, float]) -> float:
        x = np.array([feats.get(n, 0.0) for n in self.names], dtype=np.float64)
        z = (x - self.mean) / self.scale
        return float(1.0 / (1.0 + math.exp(-(float(z @ self.weights) + self.bias))))

    def same_story(self, a: StoryDoc, b: StoryDoc) -> bool:
        return self.probability(features(a, b)) >= self.threshold

    @classmethod
    def fit(cls, names: list[str], x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> "SameStoryModel":
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        w, b = fit_logistic((x - mean) / scale, y, l2)
        return cls(list(names), mean, scale, w, b)

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(z @ self.weights + self.bias)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 50) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method (plain numpy). Returns (w, b);
    the bias is not penalised."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(xb @ w)))
        grad = xb.T @ (p - y) + reg * w
        h = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(reg) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(h, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w[:-1], float(w[-1])


__all__ = [
    "Idf", "SIGNALS", "SameStoryModel", "StoryDoc", "cross_title_cosine", "embedding_text", "entity_overlap",
    "features", "fit_logistic", "lead_cosine", "minhash", "number_overlap", "person_conflict",
    "prepare", "shingle_containment", "shingle_jaccard", "tfidf_cosine", "title_cosine",
    "vector_cosine",
]
