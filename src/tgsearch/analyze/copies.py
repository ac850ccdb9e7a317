"""Copies: posts that repeat another post near-verbatim (a forward, or a copy-paste with small
edits, emoji, another signature or "подписаться" footer).

A post's words (the analyzer's exact terms: case-folded, ё→е; links, @mentions and #tags left
out, since signatures and footers differ between channels) become overlapping word 3-grams,
hashed to 32 bits. Two posts are copies when the Jaccard overlap of their 3-gram sets is at least
`THRESHOLD`: a shared quotation inside two different reports stays well below it, one changed
word or an added footer stays well above. Candidates come from MinHash LSH (datasketch; the
signatures are computed with numpy in one pass) and are then re-checked on the real sets, so the
LSH can only miss, never link. Texts with fewer than `MIN_WORDS` words are only copies when
their words are identical (a short "Доброе утро" is not news, a 6-word flash is).

`CopyIndex` is in memory (3-gram sets as sorted uint32 arrays: ~4 bytes per word); the store keeps
the outcome (`copy_of`), and the index is rebuilt from the store's texts when a process starts.
"""

from __future__ import annotations

import re
import threading
import zlib
from dataclasses import dataclass

import numpy as np
from datasketch import MinHashLSH

THRESHOLD = 0.5          # Jaccard of word 3-gram sets
NUM_PERM = 64
K = 3
MIN_WORDS = 8            # below this, only identical word sequences count
MIN_SHORT_WORDS = 5      # ... and not below this at all
_PRIME = np.uint64((1 << 32) + 15)     # > every 32-bit hash (affine32 scheme)
_rng = np.random.RandomState(20261129)
_A = _rng.randint(1, 1 << 32, size=NUM_PERM, dtype=np.uint64)
_B = _rng.randint(0, 1 << 32, size=NUM_PERM, dtype=np.uint64)
_SKIP = re.compile(r"^(?:[@#]|\S*://|www\.)")


def words(analyzer, text: str) -> list[str]:
    """The words copies are compared on: exact terms without links, @mentions and #tags."""
    return [w for w in analyzer.exact_terms(text) if not _SKIP.match(w)]


def shingle_set(ws: list[str]) -> np.ndarray:
    """Sorted unique 32-bit hashes of the word 3-grams (of the whole text when shorter)."""
    if not ws:
        return np.zeros(0, dtype=np.uint32)
    if len(ws) < K:
        grams = [" ".join(ws)]
    else:
        grams = [" ".join(ws[i:i + K]) for i in range(len(ws) - K + 1)]
    return np.unique(np.fromiter((zlib.crc32(g.encode("utf-8")) for g in grams), dtype=np.uint32, count=len(grams)))


def signature(shingles: np.ndarray) -> np.ndarray:
    """The MinHash signature (NUM_PERM values) of a shingle set, in one numpy pass."""
    h = shingles.astype(np.uint64)[None, :]
    return ((_A[:, None] * h + _B[:, None]) % _PRIME).min(axis=1)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if not len(a) or not len(b):
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


class _Signature:
    """What MinHashLSH reads of a MinHash (its values and length): building datasketch's own
    MinHash from values costs ~1.3 ms (it draws its permutations), this nothing."""

    __slots__ = ("hashvalues",)

    def __init__(self, hashvalues: np.ndarray):
        self.hashvalues = hashvalues

    def __len__(self) -> int:
        return len(self.hashvalues)


@dataclass(frozen=True)
class Fingerprint:
    shingles: np.ndarray
    n_words: int
    exact: int              # hash of the whole word sequence (short texts)

    @property
    def usable(self) -> bool:
        return self.n_words >= MIN_SHORT_WORDS


def fingerprint(analyzer, text: str) -> Fingerprint:
    return fingerprint_of(analyzer.exact_terms(text))


def fingerprint_of(exact_terms: list[str]) -> Fingerprint:
    """The fingerprint from a text's exact terms (when the caller has them already)."""
    ws = [w for w in exact_terms if not _SKIP.match(w)]
    return Fingerprint(shingle_set(ws), len(ws), zlib.crc32(" ".join(ws).encode("utf-8")))


class CopyIndex:
    """Fingerprints of the posts seen so far; `matches(fp)` gives the posts a new one copies."""

    def __init__(self, threshold: float = THRESHOLD):
        self.threshold = threshold
        self._lsh = MinHashLSH(threshold=threshold * 0.8, num_perm=NUM_PERM)   # lower: recall, re-checked
        self._sets: dict[str, np.ndarray] = {}
        self._short: dict[int, list[str]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sets) + sum(len(v) for v in self._short.values())

    def __contains__(self, post_id: str) -> bool:
        return post_id in self._sets or any(post_id in v for v in self._short.values())

    def matches(self, fp: Fingerprint, *, exclude: str | None = None) -> list[tuple[str, float]]:
        """(post id, overlap) of every indexed post this fingerprint copies, best first."""
        if not fp.usable:
            return []
        with self._lock:
            if fp.n_words < MIN_WORDS:
                return [(pid, 1.0) for pid in self._short.get(fp.exact, ()) if pid != exclude]
            mh = _Signature(signature(fp.shingles))
            found = []
            for pid in self._lsh.query(mh):
                if pid == exclude:
                    continue
                j = jaccard(fp.shingles, self._sets[pid])
                if j >= self.threshold:
                    found.append((pid, j))
        return sorted(found, key=lambda x: (-x[1], x[0]))

    def add(self, post_id: str, fp: Fingerprint) -> None:
        if not fp.usable:
            return
        with self._lock:
            if fp.n_words < MIN_WORDS:
                ids = self._short.setdefault(fp.exact, [])
                if post_id not in ids:
                    ids.append(post_id)
                return
            if post_id in self._sets:
                self._lsh.remove(post_id)
            self._sets[post_id] = fp.shingles
            self._lsh.insert(post_id, _Signature(signature(fp.shingles)))

    def remove(self, post_id: str) -> None:
        with self._lock:
            if post_id in self._sets:
                del self._sets[post_id]
                self._lsh.remove(post_id)
                return
            for ids in self._short.values():
                if post_id in ids:
                    ids.remove(post_id)
                    return
