"""Same-story development set from the 22k-post corpus: candidate sampling, loader, TF-IDF baseline.

The judged set lives in bench/data/story_dev_pairs.tsv (post ids + labels only, no texts; the
judging rules and their counts are in bench/data/story_dev_rules.md). This script

1. `sample`: rebuilds the candidate pairs it was judged from, reproducibly (fixed seed):
   - every post with >= MIN_TERMS index lemmas (tgsearch.analyze.analyzer.default_analyzer()
     .index_terms) is a TF-IDF vector (sublinear tf, smooth idf over those posts, l2 norm);
   - candidate pairs: two posts from DIFFERENT channels, cosine >= 0.12;
     "near" = posted within 3 days of each other, "far" = 4..10 days apart;
   - strata: high (near, cosine >= 0.5), mid (near, 0.25-0.5), low (near, 0.12-0.25),
     far (far, cosine >= 0.3: same topic days apart, mostly follow-ups);
   - each stratum is drawn at random (seed 20241), each post used at most once in the whole
     sample, and at most MAX_VERBATIM pairs with word-level Jaccard > 0.6 (near-verbatim copies);
   - writes a TSV of candidates (stratum, a, b, cosine, jaccard, days) and, with --show, prints
     both texts of each pair for reading (to the terminal only: texts never go into the repo).
2. `eval`: for the judged pairs, ROC AUC and the best macro-F1 (same/different, threshold chosen
   on the set itself, so optimistic) of the plain TF-IDF cosine, recomputed from the store.

Needs a data folder holding the corpus, e.g.
  TGSEARCH_VECTORS=off .venv/bin/python -m tgsearch.cli ingest ../shared/data/tg-news-posts-ru/raw --db /tmp/devset-db

Run: .venv/bin/python -m bench.story_dev_sample sample --db /tmp/devset-db [--out FILE] [--show]
     .venv/bin/python -m bench.story_dev_sample eval --db /tmp/devset-db [--pairs bench/data/story_dev_pairs.tsv]
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PAIRS = REPO / "bench" / "data" / "story_dev_pairs.tsv"
SEED = 20241
MIN_TERMS = 12
MAX_VERBATIM = 20
NEAR_DAYS = 3.0
FAR_DAYS = (4.0, 10.0)
STRATA = {  # name: (near?, lo, hi, how many)
    "high": (True, 0.5, 1.01, 60),
    "mid": (True, 0.25, 0.5, 55),
    "low": (True, 0.12, 0.25, 25),
    "far": (False, 0.3, 1.01, 25),
}
_WORD = re.compile(r"\w+")


def load_dev_pairs(path: str | Path = DEFAULT_PAIRS) -> list[tuple[str, str, bool]]:
    """The judged pairs: (post id a, post id b, same story?)."""
    out = []
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            label = row["label"].strip()
            if label not in ("same", "different"):
                raise ValueError(f"{path}: label {label!r} (want same|different) for {row['a']} {row['b']}")
            out.append((row["a"].strip(), row["b"].strip(), label == "same"))
    return out


def word_jaccard(a: str, b: str) -> float:
    sa, sb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    return len(sa & sb) / len(sa | sb) if sa and sb else 0.0


def _text(post) -> str:
    return post.text or post.title or ""


def load_corpus(db: str):
    """(posts, ids, TF-IDF matrix) for every live post with >= MIN_TERMS lemmas."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from tgsearch.analyze.analyzer import default_analyzer
    from tgsearch.store import Store

    analyzer = default_analyzer()
    store = Store(db, create=False)
    posts, docs = [], []
    for p in store.iter_posts():
        if p.date is None:
            continue
        terms = analyzer.index_terms(_text(p))
        if len(terms) >= MIN_TERMS:
            posts.append(p)
            docs.append(terms)
    vec = TfidfVectorizer(analyzer=lambda d: d, sublinear_tf=True, norm="l2")
    x = vec.fit_transform(docs).tocsr()
    return posts, x, vec, analyzer


def candidates(posts, x) -> list[tuple[float, int, int, float]]:
    """(cosine, i, j, days apart) for every cross-channel pair within FAR_DAYS[1] days, cos >= 0.12."""
    ts = np.array([p.date.timestamp() / 86400.0 for p in posts])
    chan = np.array([p.channel for p in posts])
    out = []
    step = 1000
    xt = x.T.tocsc()
    for s in range(0, len(posts), step):
        block = (x[s:s + step] @ xt).toarray()
        for r in range(block.shape[0]):
            i = s + r
            row = block[r]
            js = np.nonzero(row >= 0.12)[0]
            js = js[js > i]
            if not len(js):
                continue
            days = np.abs(ts[js] - ts[i])
            keep = (days <= FAR_DAYS[1]) & (chan[js] != chan[i])
            for j, d in zip(js[keep], days[keep]):
                out.append((float(row[j]), i, int(j), float(d)))
    return out


def sample(posts, x) -> list[dict]:
    cands = candidates(posts, x)
    rng = random.Random(SEED)
    used: set[int] = set()
    verbatim = 0
    out = []
    for name, (near, lo, hi, want) in STRATA.items():
        pool = [c for c in cands if lo <= c[0] < hi and
                ((c[3] <= NEAR_DAYS) if near else (FAR_DAYS[0] <= c[3] <= FAR_DAYS[1]))]
        pool.sort(key=lambda c: (c[1], c[2]))
        rng.shuffle(pool)
        got = 0
        for cos, i, j, d in pool:
            if got >= want:
                break
            if i in used or j in used:
                continue
            jac = word_jaccard(_text(posts[i]), _text(posts[j]))
            if jac > 0.6:
                if verbatim >= MAX_VERBATIM:
                    continue
                verbatim += 1
            used.update((i, j))
            got += 1
            a, b = (i, j) if posts[i].date <= posts[j].date else (j, i)
            out.append({"stratum": name, "a": posts[a].id, "b": posts[b].id, "cosine": round(cos, 4),
                        "jaccard": round(jac, 3), "days": round(d, 2)})
    return out


def pair_features(db: str, pairs: list[tuple[str, str, bool]]) -> tuple[np.ndarray, np.ndarray]:
    """(TF-IDF cosine, word-level Jaccard) of each pair, from the posts in the store at `db`."""
    posts, x, _vec, _an = load_corpus(db)
    index = {p.id: k for k, p in enumerate(posts)}
    missing = [i for a, b, _ in pairs for i in (a, b) if i not in index]
    if missing:
        raise SystemExit(f"{db}: {len(missing)} pair posts not in the corpus (e.g. {missing[0]}); "
                         "ingest ../shared/data/tg-news-posts-ru/raw into it")
    cos = np.array([float(x[index[a]].multiply(x[index[b]]).sum()) for a, b, _ in pairs])
    jac = np.array([word_jaccard(_text(posts[index[a]]), _text(posts[index[b]])) for a, b, _ in pairs])
    return cos, jac


def auc(scores: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC via the rank statistic (ties count half)."""
    pos, neg = scores[y == 1], scores[y == 0]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def best_macro_f1(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(best macro-F1 over the same/different classes, its threshold: same iff score >= t)."""
    best = (0.0, 0.0)
    for t in np.unique(scores):
        pred = scores >= t
        f = []
        for cls in (1, 0):
            p = pred if cls else ~pred
            truth = y == cls
            tp = (p & truth).sum()
            prec = tp / p.sum() if p.sum() else 0.0
            rec = tp / truth.sum() if truth.sum() else 0.0
            f.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
        m = float(np.mean(f))
        if m > best[0]:
            best = (m, float(t))
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample", help="draw the candidate pairs")
    s.add_argument("--db", required=True)
    s.add_argument("--out", default="/tmp/story_dev_candidates.tsv")
    s.add_argument("--show", action="store_true", help="print both texts of every pair (for judging)")
    s.add_argument("--chars", type=int, default=700)
    e = sub.add_parser("eval", help="TF-IDF cosine AUC / best macro-F1 on the judged pairs")
    e.add_argument("--db", required=True)
    e.add_argument("--pairs", default=str(DEFAULT_PAIRS))
    args = ap.parse_args(argv)

    if args.cmd == "sample":
        posts, x, _vec, _an = load_corpus(args.db)
        rows = sample(posts, x)
        with open(args.out, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
            w.writeheader()
            w.writerows(rows)
        by = {p.id: p for p in posts}
        for k, r in enumerate(rows):
            if args.show:
                print(f"\n=== #{k} {r['stratum']} cos={r['cosine']} jac={r['jaccard']} days={r['days']}")
                for side in ("a", "b"):
                    p = by[r[side]]
                    body = " ".join(_text(p).split())[: args.chars]
                    print(f"[{side}] {p.id} {p.channel_title} {p.date:%Y-%m-%d %H:%M}\n    {body}")
        counts = {n: sum(r["stratum"] == n for r in rows) for n in STRATA}
        print(f"{len(rows)} candidate pairs {counts}, "
              f"{sum(r['jaccard'] > 0.6 for r in rows)} with Jaccard > 0.6 -> {args.out}", file=sys.stderr)
        return 0

    pairs = load_dev_pairs(args.pairs)
    y = np.array([1 if same else 0 for _a, _b, same in pairs])
    cos, jac = pair_features(args.db, pairs)
    for name, keep in (("all pairs", np.ones(len(y), bool)),
                       ("without near-verbatim (word Jaccard > 0.6)", jac <= 0.6)):
        yk, ck = y[keep], cos[keep]
        f1, t = best_macro_f1(ck, yk)
        print(f"{name}: {len(yk)} pairs ({int(yk.sum())} same, {int((1 - yk).sum())} different); "
              f"TF-IDF cosine AUC {auc(ck, yk):.3f}, best macro-F1 {f1:.3f} (same iff cosine >= {t:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
