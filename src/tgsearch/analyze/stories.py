"""Stories: posts that report the same narrow event, grouped as they arrive.

`StoryClusterer` holds, in memory, what deciding needs: every post's copy fingerprint
(analyze/copies.py), a short TF-IDF vector over lemmas (its `TOP_TERMS` heaviest, document
frequencies counted over every post seen), its named-entity keys and numbers, date and channel.
A new post is placed in one step (`place`):

1. a copy (near-verbatim repeat stating the same numbers) of a post joins that post's story,
   and `copy_of` names the earliest-dated post of the copy group (its first poster);
2. otherwise the candidates are the posts sharing one of its heaviest lemmas within `WINDOW`
   of its date (an undated post: any date); each is scored by `Scorer` (a logistic combination of TF-IDF cosine, entity
   and number overlap, time distance and same-channel; `story_signals` measures each in bench/);
   the post joins the best candidate's story when the probability passes `threshold` and it
   also agrees with the story as a whole (mean probability over a few of its members), else it
   starts a story.

No full recompute per post: a post's decision reads only its candidates. `forget(post_id)` takes
an edited or deleted post out before it is placed again. The outcome (story and copy_of per post)
is written to the analysis database by index/stories.py, which also rebuilds this state when a
process starts.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..search.stopwords import STOP_LEMMAS
from .copies import CopyIndex, Fingerprint, fingerprint_of

TOP_TERMS = 40             # lemmas kept per post (by TF-IDF weight)
QUERY_TERMS = 10           # of which the heaviest find candidates
MAX_POSTING_SCAN = 4000    # newest entries of one lemma's posting list looked at
MAX_CANDIDATES = 12
WINDOW = 4 * 86400.0       # seconds: candidates within this of the post's date
_NUMBER = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)?(?![\w])")
_WORDY = re.compile(r"\w", re.UNICODE)


@dataclass
class Features:
    """What placing a post looks at."""
    id: str
    channel: str
    date: float | None                    # POSIX seconds
    fp: Fingerprint
    terms: np.ndarray                     # int32 vocabulary ids, heaviest first
    weights: np.ndarray                   # float32, L2-normalised TF-IDF
    entities: frozenset = frozenset()     # "person:токаев", "place:астана", ...
    numbers: frozenset = frozenset()
    forwarded_from: str = ""
    vec: np.ndarray | None = None         # the post's lead vector (unit), when the vector index has it
    vec_model: str = ""


@dataclass
class Decision:
    story: int
    copy_of: str | None = None            # the first poster of the copy group (None: an original)
    score: float = 1.0                    # the probability that placed it (1.0: a copy or a new story)
    matched: str | None = None            # the post it was matched with
    changed: list[str] = field(default_factory=list)   # other posts whose copy_of changed


def numbers_of(text: str) -> frozenset:
    """Numbers a text states (dates, counts, sums), as written without separators."""
    return frozenset(n.replace(",", ".") for n in _NUMBER.findall(text) if len(n) >= 2 or n not in "0123456789")


# Weights of P(same story), by the vectors both posts have: fitted by `python -m bench.stories --fit`
# on the same-story pairs (../shared/data/news-samestory-pairs-ru) with these very features; the
# time and same-channel weights are set by hand (the pairs carry neither). Only e5 vectors are used:
# the default model's (USE) fit no better than none on those pairs (CV macro-F1 0.807 vs 0.803) and
# worse on the development set from the channels (0.824 vs 0.865, docs/benchmarks.md "Stories").
WEIGHTS: dict[str, dict[str, float]] = {
    "": {"bias": -1.882, "cosine": 3.574, "entities": 3.391, "entity_miss": -2.159, "numbers": 0.661,
         "number_miss": -1.571},
    "e5-small-4bit": {"bias": -43.119, "cosine": -1.243, "entities": 2.247, "entity_miss": -1.413,
                      "numbers": 0.558, "number_miss": -1.205, "vector": 47.071},
}
HAND = {"days": -0.5, "same_channel": -1.0}


@dataclass
class Scorer:
    """P(same story) from pair signals: a logistic model whose weights depend on which vectors
    both posts have (none, USE, e5: `WEIGHTS`); `threshold` decides."""
    weights: dict = field(default_factory=lambda: WEIGHTS)
    hand: dict = field(default_factory=lambda: dict(HAND))
    threshold: float = 0.5

    def features(self, a: Features, b: Features, cosine: float) -> dict[str, float]:
        ent = _jaccard(a.entities, b.entities)
        num = _jaccard(a.numbers, b.numbers)
        days = abs(a.date - b.date) / 86400.0 if a.date is not None and b.date is not None else 0.5   # unknown
        f = {"cosine": cosine, "entities": ent,
             "entity_miss": float(bool(a.entities) and bool(b.entities) and ent == 0.0),
             "numbers": num, "number_miss": float(bool(a.numbers) and bool(b.numbers) and num == 0.0),
             "days": min(days, 7.0), "same_channel": float(a.channel == b.channel)}
        if a.vec is not None and b.vec is not None and a.vec_model == b.vec_model and a.vec_model in self.weights:
            f["vector"] = float(np.dot(a.vec.astype(np.float32), b.vec.astype(np.float32)))
            f["_model"] = a.vec_model
        return f

    def probability(self, a: Features, b: Features, cosine: float) -> float:
        f = self.features(a, b, cosine)
        w = self.weights.get(f.get("_model", ""), self.weights[""])
        z = w["bias"] + sum(w.get(k, 0.0) * v for k, v in f.items() if k != "_model")
        z += sum(self.hand[k] * f[k] for k in self.hand)
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def _numbers_agree(a: frozenset, b: frozenset) -> bool:
    """A copy states the same numbers (a footer may add some): one set holds the other. Two
    near-identical texts with other figures (exchange rates an hour apart) are not copies."""
    return a <= b or b <= a


def _jaccard(a: frozenset, b: frozenset) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


@dataclass
class _Story:
    members: list[str] = field(default_factory=list)


class StoryClusterer:
    def __init__(self, analyzer, scorer: Scorer | None = None, *, entities=None):
        self.analyzer = analyzer
        self.scorer = scorer or Scorer()
        self.entities = entities              # callable text -> iterable of (type, name) keys, or None
        self.copies = CopyIndex()
        self.vocab: dict[str, int] = {}
        self.df: dict[int, int] = defaultdict(int)
        self.n_docs = 0
        self.postings: dict[int, list[tuple[str, float]]] = defaultdict(list)   # lemma -> (post, weight)
        self.posts: dict[str, Features] = {}
        self.story_of: dict[str, int] = {}
        self.copy_of: dict[str, str | None] = {}
        self.groups: dict[str, set[str]] = {}     # first poster -> the copies of it
        self.stories: dict[int, _Story] = {}
        self.next_story = 1

    # -- features -----------------------------------------------------------------------------
    def features(self, post, entity_keys=None, vector=None) -> Features:
        """A post's features; its lemmas also count towards the document frequencies."""
        text = post.text if not post.title or post.text.startswith(post.title) else f"{post.title}\n{post.text}"
        lemmas, exact = self.analyzer.terms(text)
        counts: dict[int, int] = defaultdict(int)
        for lemma in lemmas:
            if lemma in STOP_LEMMAS or len(lemma) < 2 or not _WORDY.search(lemma):
                continue
            tid = self.vocab.get(lemma)
            if tid is None:
                tid = self.vocab[lemma] = len(self.vocab)
            counts[tid] += 1
        self.n_docs += 1
        for tid in counts:
            self.df[tid] += 1
        n = self.n_docs
        weighted = sorted(((1 + math.log(c)) * (math.log((n + 1) / (self.df[tid] + 1)) + 1), tid)
                          for tid, c in counts.items())[::-1][:TOP_TERMS]
        weights = np.array([w for w, _ in weighted], dtype=np.float32)
        norm = float(np.linalg.norm(weights)) or 1.0
        if entity_keys is None and self.entities is not None:
            entity_keys = self.entities(text)
        date = post.date.timestamp() if post.date is not None else None
        # float16 in memory (a 512-dim vector: 1 KB a post)
        vec, vec_model = (np.asarray(vector[1], dtype=np.float16), vector[0]) if vector is not None else (None, "")
        return Features(post.id, post.channel, date, fingerprint_of(exact),
                        np.array([t for _, t in weighted], dtype=np.int32), weights / norm,
                        frozenset(entity_keys or ()), numbers_of(text), post.forwarded_from or "", vec, vec_model)

    @staticmethod
    def cosine(a: Features, b: Features) -> float:
        common, ia, ib = np.intersect1d(a.terms, b.terms, assume_unique=True, return_indices=True)
        if not len(common):
            return 0.0
        return float(np.dot(a.weights[ia], b.weights[ib]))

    # -- placing --------------------------------------------------------------------------------
    def _earliest(self, ids) -> str:
        def key(pid):
            f = self.posts.get(pid)
            return (f.date is None, f.date or 0.0, pid) if f else (True, 0.0, pid)
        return min(ids, key=key)

    def candidates(self, f: Features) -> list[tuple[str, float]]:
        """(post id, TF-IDF cosine) of the posts near in time sharing a heavy lemma, best first.

        Term at a time over the heaviest lemmas' postings (the newest `MAX_POSTING_SCAN` of each)
        gives a partial dot product; the best of those get the exact cosine."""
        acc: dict[str, float] = defaultdict(float)
        for tid, wq in zip(f.terms[:QUERY_TERMS].tolist(), f.weights[:QUERY_TERMS].tolist()):
            for pid, w in self.postings.get(tid, ())[-MAX_POSTING_SCAN:]:
                acc[pid] += wq * w
        acc.pop(f.id, None)
        near = []
        for pid, partial in sorted(acc.items(), key=lambda x: -x[1]):
            g = self.posts.get(pid)
            if g is None or (f.date is not None and g.date is not None and abs(f.date - g.date) > WINDOW):
                continue
            near.append(pid)
            if len(near) >= 3 * MAX_CANDIDATES:
                break
        scored = [(pid, self.cosine(f, self.posts[pid])) for pid in near]
        scored = [x for x in scored if x[1] >= 0.12]
        scored.sort(key=lambda x: (-x[1], x[0]))
        return scored[:MAX_CANDIDATES]

    def place(self, f: Features) -> Decision:
        """Decide and record where a post goes (see the module docstring)."""
        if f.id in self.posts:
            self.forget(f.id)
        copies = [pid for pid, _ in self.copies.matches(f.fp, exclude=f.id)
                  if pid in self.story_of and _numbers_agree(f.numbers, self.posts[pid].numbers)]
        decision: Decision | None = None
        if copies:
            target = copies[0]
            self._add(f)
            roots = {self.copy_of.get(pid) or pid for pid in copies}
            root = self._earliest(roots | {f.id})
            members = {f.id} | roots
            for r in roots:
                members |= self.groups.pop(r, set())
            changed = [pid for pid in members if pid != f.id and self.copy_of.get(pid) != (None if pid == root else root)]
            for pid in members:
                self.copy_of[pid] = None if pid == root else root
            self.groups[root] = members - {root}
            decision = Decision(self.story_of[target], self.copy_of[f.id], 1.0, target, changed)
        else:
            self._add(f)
            best, best_p = None, 0.0
            for pid, cos in self.candidates(f):
                p = self.scorer.probability(f, self.posts[pid], cos)
                if p > best_p:
                    best, best_p = pid, p
            if best is not None and best_p >= self.scorer.threshold and self._agrees(f, self.story_of[best]):
                decision = Decision(self.story_of[best], None, best_p, best)
            else:
                decision = Decision(self.next_story, None, 1.0, None)        # a new story
                self.next_story += 1
            self.copy_of[f.id] = None
        self.story_of[f.id] = decision.story
        self.stories.setdefault(decision.story, _Story()).members.append(f.id)
        return decision

    def restore(self, f: Features, story: int, copy_of: str | None) -> None:
        """Put back a post placed before (a process starting): no decision is made."""
        self._add(f)
        self.story_of[f.id] = story
        self.copy_of[f.id] = copy_of
        if copy_of:
            self.groups.setdefault(copy_of, set()).add(f.id)
        self.stories.setdefault(story, _Story()).members.append(f.id)
        self.next_story = max(self.next_story, story + 1)

    def _agrees(self, f: Features, story: int) -> bool:
        """Against chaining: the mean probability over up to 5 of the story's posts (the first
        and the newest) must pass half the threshold."""
        members = self.stories[story].members
        sample = list(dict.fromkeys(members[:2] + members[-3:]))
        probs = [self.scorer.probability(f, self.posts[m], self.cosine(f, self.posts[m])) for m in sample]
        return sum(probs) / len(probs) >= self.scorer.threshold / 2

    def _add(self, f: Features) -> None:
        self.posts[f.id] = f
        self.copies.add(f.id, f.fp)
        for tid, w in zip(f.terms.tolist(), f.weights.tolist()):
            self.postings[tid].append((f.id, w))

    def forget(self, post_id: str) -> list[str]:
        """Take a post out (edited or deleted). Returns the posts whose `copy_of` changed."""
        f = self.posts.pop(post_id, None)
        if f is None:
            return []
        self.copies.remove(post_id)
        for tid in f.terms.tolist():
            posting = self.postings.get(tid)
            if posting is not None:
                self.postings[tid] = [e for e in posting if e[0] != post_id]
        story = self.story_of.pop(post_id, None)
        if story is not None and story in self.stories:
            members = self.stories[story].members
            if post_id in members:
                members.remove(post_id)
            if not members:
                del self.stories[story]
        root = self.copy_of.pop(post_id, None)
        if root:                                    # a copy: leaves its group
            self.groups.get(root, set()).discard(post_id)
            return []
        orphans = self.groups.pop(post_id, set())   # a first poster: the earliest copy takes over
        if not orphans:
            return []
        new_root = self._earliest(orphans)
        for pid in orphans:
            self.copy_of[pid] = None if pid == new_root else new_root
        if len(orphans) > 1:
            self.groups[new_root] = orphans - {new_root}
        return sorted(orphans)

    def story_members(self, story: int) -> list[str]:
        s = self.stories.get(story)
        return list(s.members) if s else []
