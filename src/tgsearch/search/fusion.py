"""Fusion of the lexical and semantic candidate lists (hybrid mode).

Plain reciprocal-rank fusion treats both lists as equally good; with a fast sentence encoder it
*lowers* MRR on Russian question answering (see docs/benchmarks.md), because BM25 over lemmas
is the stronger ranker whenever the query's words occur in the posts. So fusion here is
confidence-gated score fusion:

1. Every candidate (union of both lists) gets its exact cosine with the query -- for lexical
   candidates the semantic list missed, from the stored passage vectors (re-ranking over
   cached vectors) -- and its lexical score relative to the lexical top score (0 if absent).
2. The semantic weight depends on how much the lexical side can be trusted for this query:
   low (`SEMANTIC_WEIGHT`) for a query in the posts' script with lexical matches; high
   (`CROSS_WEIGHT`) for a query mostly in Latin script (an English query over Russian posts:
   lexical matches only names, the meaning is in the vectors) or with no lexical hits.
3. Cosines are scaled per query: 0 at the `FLOOR_RANK`-th semantic score, 1 at the best one,
   so the weight means the same for models whose cosines live in different ranges.
4. Guard: the lexical top-1 hit is never placed below rank `GUARD_RANK` (3). An exact phrase
   the user typed that BM25 ranks first stays on the first screen whatever the vectors say.

`fuse(lists)` takes the engine's `Candidates` lists (see search.engine) and returns
[(post id, fused score, [retrievers that found it])], best first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

SEMANTIC_WEIGHT = 0.25     # same-script query with lexical matches: lexical order dominates
MODEL_WEIGHTS = {          # per model (a better model earns more say); measured on XQuAD-ru, docs/benchmarks.md
    "use-multilingual-v3": 0.2,
    "e5-small-4bit": 0.4,
}
CROSS_WEIGHT = 0.85        # query mostly in another script (English over Russian): trust meaning
LATIN_SHARE = 0.5          # "mostly Latin script" threshold
FLOOR_RANK = 20            # cosine of this semantic rank maps to 0
GUARD_RANK = 3             # lexical top-1 never below this rank
DEPTH = 100                # candidates taken from each list


@dataclass
class FusionParams:
    semantic_weight: float | None = None    # None: MODEL_WEIGHTS for the model, else SEMANTIC_WEIGHT
    cross_weight: float = CROSS_WEIGHT
    latin_share: float = LATIN_SHARE
    floor_rank: int = FLOOR_RANK
    guard_rank: int = GUARD_RANK
    depth: int = DEPTH


DEFAULT = FusionParams()


def rrf(lists: Sequence, k: int = 60) -> list[tuple[str, float, list[str]]]:
    """Reciprocal-rank fusion (the baseline): sum of 1/(k + rank) over the lists holding an id."""
    scores: dict[str, float] = {}
    found: dict[str, list[str]] = {}
    for cands in lists:
        for rank, pid in enumerate(cands.ids):
            scores[pid] = scores.get(pid, 0.0) + 1.0 / (k + rank + 1)
            found.setdefault(pid, []).append(cands.retriever)
    order = sorted(scores, key=lambda p: -scores[p])
    return [(p, scores[p], found[p]) for p in order]


def semantic_weight(lexical, semantic, params: FusionParams = DEFAULT) -> float:
    """How much the vectors count for this query (0..1)."""
    if lexical is None or not lexical.ids:
        return 1.0
    if getattr(semantic, "latin_share", 0.0) > params.latin_share:
        return params.cross_weight
    if params.semantic_weight is not None:
        return params.semantic_weight
    return MODEL_WEIGHTS.get(getattr(semantic, "model", ""), SEMANTIC_WEIGHT)


def guard(order: list[str], lexical_top: str | None, rank: int = GUARD_RANK) -> list[str]:
    """Move the lexical top-1 up to `rank` (1-based) if fusion put it lower."""
    if lexical_top is None or lexical_top not in order:
        return order
    pos = order.index(lexical_top)
    if pos < rank:
        return order
    order = order[:pos] + order[pos + 1:]
    order.insert(rank - 1, lexical_top)
    return order


def fuse(lists: Sequence, params: FusionParams = DEFAULT) -> list[tuple[str, float, list[str]]]:
    """Fuse a lexical and a semantic candidate list (either may be missing or empty)."""
    lexical = next((c for c in lists if c.retriever == "lexical"), None)
    semantic = next((c for c in lists if c.retriever == "semantic"), None)
    others = [c for c in lists if c.retriever not in ("lexical", "semantic")]
    if others or lexical is None or semantic is None:
        return rrf(lists)  # an unknown retriever mix: rank-only fusion is all we can do
    lex_ids = list(lexical.ids[:params.depth])
    sem_ids = list(semantic.ids[:params.depth])
    if not sem_ids:
        return [(p, float(s), ["lexical"]) for p, s in zip(lex_ids, lexical.scores)]
    if not lex_ids:
        return [(p, float(s), ["semantic"]) for p, s in zip(sem_ids, semantic.scores)]

    cos: dict[str, float] = dict(zip(sem_ids, map(float, semantic.scores)))
    scorer = getattr(semantic, "scorer", None)
    missing = [p for p in lex_ids if p not in cos]
    if missing and scorer is not None:
        cos.update(scorer(missing))
    sem_sorted = sorted(semantic.scores[:params.depth], reverse=True)
    top_cos = float(sem_sorted[0])
    floor = float(sem_sorted[min(params.floor_rank, len(sem_sorted)) - 1])
    if top_cos - floor < 1e-6:
        floor = top_cos - 1e-3
    top_lex = float(lexical.scores[0]) or 1.0
    lex_score = {p: float(s) / top_lex for p, s in zip(lex_ids, lexical.scores)}

    w = semantic_weight(lexical, semantic, params)
    sem_set = set(sem_ids)
    norm = {p: (c - floor) / (top_cos - floor) for p, c in cos.items()}
    # A lexical hit with no vector yet (the index is still filling) gets the mean semantic score of
    # the lexical hits that have one: neither rewarded nor punished for being new.
    known = [norm[p] for p in lex_ids if p in norm]
    neutral = sum(known) / len(known) if known else 0.0
    fused: dict[str, float] = {}
    found: dict[str, list[str]] = {}
    for pid in dict.fromkeys(lex_ids + sem_ids):
        fused[pid] = (1.0 - w) * lex_score.get(pid, 0.0) + w * norm.get(pid, neutral)
        found[pid] = (["lexical"] if pid in lex_score else []) + (["semantic"] if pid in sem_set else [])
    order = sorted(fused, key=lambda p: -fused[p])
    order = guard(order, lex_ids[0], params.guard_rank)
    return [(p, round(fused[p], 6), found[p]) for p in order]
