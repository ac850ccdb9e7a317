"""Same-story signals on the labelled pairs of news-samestory-pairs-ru (Telegram Data Clustering
Contest, Toloka): per-signal ROC AUC / best F1 and a cross-validated logistic combination.

Data: ../shared/data/news-samestory-pairs-ru/ru_honey_pool.tsv (175 pairs, the test set) and
ru_train_pool.tsv (20 pairs, the development set); OK = same story, BAD = different stories.
Each side is title + text. IDF comes from the 22k-post corpus ../shared/data/tg-news-posts-ru
(falls back to the pair texts when it is absent), built once and cached with the embeddings in
the cache folder (default: <tmp>/tgsearch-bench-story).

Per signal: ROC AUC, best F1 of the "same" class and macro-F1 (same/different) at the threshold
that maximises it — both thresholds chosen on the data they are measured on, so optimistic —
and "CV macro-F1": the threshold chosen on the training folds of a stratified 5-fold split
(5 repeats), measured on the held-out fold. "/title" = embedding of the title alone, "/lead" = of
the title + the text's start (--lead-chars, 600). Combinations: L2 logistic regression
(tgsearch.analyze.story_signals.fit_logistic, plain numpy), same repeated 5-fold CV with the
decision threshold chosen on the training folds, plus leave-one-out; the weights printed are those
of the model fitted on all 195 pairs (on standardised features).

NER speed (--ner-sample N, default 500): analyze.entities on N posts drawn at random (seed 1) from
the 22k corpus, one call per post and in batches of 100 (entities_many), posts/s after the models
are loaded (load time printed apart).

Run: .venv/bin/python -m bench.story_pairs [--shared ../shared] [--no-e5] [--cache DIR] [--json FILE]
     [--ner-sample N (0: skip)] [--lead-chars 600]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = Path(os.environ.get("TGSEARCH_SHARED", REPO.parent / "shared"))
USE = "use-multilingual-v3"
E5 = "e5-small-4bit"
LEAD_CHARS = 600


def load_pairs(folder: Path) -> list[dict]:
    csv.field_size_limit(1 << 26)
    out = []
    for name, split in (("ru_honey_pool.tsv", "test"), ("ru_train_pool.tsv", "dev")):
        with open(folder / name, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                label = row["GOLDEN:quality"].strip()
                if label not in ("OK", "BAD"):
                    continue
                out.append({"split": split, "y": 1 if label == "OK" else 0,
                            "a": (row["INPUT:first_title"].strip(), row["INPUT:first_text"].strip()),
                            "b": (row["INPUT:second_title"].strip(), row["INPUT:second_text"].strip())})
    return out


def corpus_texts(shared: Path) -> list[str]:
    from tgsearch.sources import ReadContext, telethon_json

    raw = shared / "data" / "tg-news-posts-ru" / "raw"
    texts = []
    for path in sorted(raw.glob("*.json")):
        texts.extend(p.text for p in telethon_json.read(path, ReadContext(str(path))))
    return texts


# -- metrics ------------------------------------------------------------------------------------


def auc(scores: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula (ties count half)."""
    pos = y == 1
    n1, n0 = pos.sum(), (~pos).sum()
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # ties share their mean rank
        same = scores == value
        if same.sum() > 1:
            ranks[same] = ranks[same].mean()
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def f1s(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(F1 of the 'same' class, macro-F1 over same/different)."""
    out = []
    for cls in (1, 0):
        tp = np.sum((pred == cls) & (y == cls))
        fp = np.sum((pred == cls) & (y != cls))
        fn = np.sum((pred != cls) & (y == cls))
        out.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return out[0], (out[0] + out[1]) / 2


def best_threshold(scores: np.ndarray, y: np.ndarray, by: str = "macro") -> tuple[float, float, float]:
    """(threshold, F1 same, macro-F1) maximising `by` over all cut points (vectorised)."""
    values = np.unique(scores)
    cuts = np.concatenate([[values[0] - 1e-9], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-9]])
    pred = scores[None, :] >= cuts[:, None]  # cuts x pairs
    pos = (y == 1)[None, :]
    tp = np.sum(pred & pos, axis=1)
    fp = np.sum(pred & ~pos, axis=1)
    fn = np.sum(~pred & pos, axis=1)
    tn = np.sum(~pred & ~pos, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1_same = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        f1_diff = np.where(tn > 0, 2 * tn / (2 * tn + fn + fp), 0.0)
    macro = (f1_same + f1_diff) / 2
    i = int(np.argmax(macro if by == "macro" else f1_same))
    return float(cuts[i]), float(f1_same[i]), float(macro[i])


def folds(y: np.ndarray, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Stratified k-fold: indexes of each test fold."""
    parts: list[list[int]] = [[] for _ in range(k)]
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        for i, j in enumerate(idx):
            parts[i % k].append(int(j))
    return [np.array(sorted(p)) for p in parts]


def cross_validate(x: np.ndarray, y: np.ndarray, repeats: int = 20, k: int = 5, l2: float = 1.0,
                   loo: bool = True) -> dict:
    """Repeated stratified k-fold: out-of-fold probabilities; threshold from the training folds."""
    from tgsearch.analyze.story_signals import SameStoryModel

    names = [str(i) for i in range(x.shape[1])]
    macros, f1_same, aucs = [], [], []
    for r in range(repeats):
        rng = np.random.default_rng(r)
        prob = np.zeros(len(y))
        pred = np.zeros(len(y), dtype=int)
        for test in folds(y, k, rng):
            train = np.setdiff1d(np.arange(len(y)), test)
            model = SameStoryModel.fit(names, x[train], y[train], l2)
            t, _f, _m = best_threshold(model.predict(x[train]), y[train])
            prob[test] = model.predict(x[test])
            pred[test] = (prob[test] >= t).astype(int)
        f1, macro = f1s(pred, y)
        macros.append(macro)
        f1_same.append(f1)
        aucs.append(auc(prob, y))
    out = {"cv_macro_f1": float(np.mean(macros)), "cv_macro_f1_sd": float(np.std(macros)),
           "cv_f1_same": float(np.mean(f1_same)), "cv_auc": float(np.mean(aucs))}
    if not loo:
        return out
    # leave-one-out
    loo = np.zeros(len(y), dtype=int)
    loo_prob = np.zeros(len(y))
    for i in range(len(y)):
        train = np.r_[0:i, i + 1:len(y)]
        model = SameStoryModel.fit(names, x[train], y[train], l2)
        t, _f, _m = best_threshold(model.predict(x[train]), y[train])
        loo_prob[i] = model.predict(x[i:i + 1])[0]
        loo[i] = int(loo_prob[i] >= t)
    loo_f1, loo_macro = f1s(loo, y)
    return {**out, "loo_macro_f1": loo_macro, "loo_auc": auc(loo_prob, y)}


# -- features -----------------------------------------------------------------------------------


def _digest(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()


def embed_cached(model: str, texts: list[str], cache: Path) -> np.ndarray:
    from tgsearch.analyze.embed import get_embedder

    path = cache / f"vec-{model}-{_digest(*texts)[:16]}.npy"
    if path.exists():
        return np.load(path)
    vectors = get_embedder(model).embed_documents(texts)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def build(pairs: list[dict], shared: Path, cache: Path, use_e5: bool, timings: dict,
          lead_chars: int = LEAD_CHARS) -> tuple[list[str], np.ndarray]:
    from tgsearch.analyze.analyzer import VERSION
    from tgsearch.analyze.embed import clean_for_embedding
    from tgsearch.analyze.entities import entities_many
    from tgsearch.analyze.story_signals import Idf, embedding_text, features, prepare

    t0 = time.perf_counter()
    news = shared / "data" / "tg-news-posts-ru" / "raw"
    docs_side = sorted({p[s] for p in pairs for s in ("a", "b")})
    if news.is_dir():
        idf_path = cache / f"idf-tgnews-{VERSION}.json"
        idf = Idf.cached(idf_path, corpus_texts(shared) if not idf_path.exists() else [])
        timings["idf_source"] = f"tg-news-posts-ru ({idf.docs} posts)"
    else:
        idf = Idf.from_texts(t + "\n" + x for t, x in docs_side)
        timings["idf_source"] = f"the pair texts ({idf.docs}); tg-news-posts-ru absent"
    timings["idf_s"] = time.perf_counter() - t0

    full = [(t + "\n" + x) for t, x in docs_side]
    t0 = time.perf_counter()
    from tgsearch.analyze.entities import _get_models

    _get_models()
    timings["ner_load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ents = entities_many(full)
    timings["ner_s"] = time.perf_counter() - t0
    timings["ner_texts"] = len(full)

    vectors: dict[str, np.ndarray] = {}
    models = [USE] + ([E5] if use_e5 else [])
    for model in models:
        t0 = time.perf_counter()
        vectors[model] = embed_cached(model, [clean_for_embedding(s) for s in full], cache)
        vectors[model + "/title"] = embed_cached(model, [clean_for_embedding(t) for t, _x in docs_side], cache)
        # title + lead: the first LEAD_CHARS characters (e5 cost grows with length)
        vectors[model + "/lead"] = embed_cached(
            model, [embedding_text(t, x, lead_chars) for t, x in docs_side], cache)
        timings[f"embed_{model}_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    docs = {}
    for i, (title, text) in enumerate(docs_side):
        docs[(title, text)] = prepare(title, text, idf, entities=ents[i],
                                      vectors={name: v[i] for name, v in vectors.items()})
    rows = [features(docs[p["a"]], docs[p["b"]]) for p in pairs]
    timings["features_s"] = time.perf_counter() - t0
    names = sorted(rows[0])
    x = np.array([[r[n] for n in names] for r in rows], dtype=np.float64)
    return names, x


DESIGNS = {
    "tfidf cosine alone": ["tfidf"],
    "USE cosine alone": [f"vec:{USE}"],
    "e5 cosine alone": [f"vec:{E5}"],
    "lexical (tfidf, lead, title, title×text, shingles, containment)":
        ["tfidf", "lead", "title", "title_x_text", "shingles", "containment"],
    "lexical + entities + numbers": ["tfidf", "lead", "title", "title_x_text", "shingles", "containment",
                                     "entities", "person_conflict", "numbers"],
    "USE text+title cosines + tfidf + title": [f"vec:{USE}", f"vec:{USE}/title", "tfidf", "title"],
    "all without e5": ["tfidf", "lead", "title", "title_x_text", "shingles", "containment",
                       "entities", "person_conflict", "numbers", f"vec:{USE}", f"vec:{USE}/title"],
    "all": ["tfidf", "lead", "title", "title_x_text", "shingles", "containment", "entities",
            "person_conflict", "numbers", f"vec:{USE}", f"vec:{USE}/title", f"vec:{E5}", f"vec:{E5}/title"],
    "compact: tfidf, title, entities, numbers, USE, USE title, e5, e5 title":
        ["tfidf", "title", "entities", "numbers", f"vec:{USE}", f"vec:{USE}/title", f"vec:{E5}", f"vec:{E5}/title"],
    "max/min: max(vec), min(vec), max(tfidf, lead), title, entities, numbers":
        ["max_vec", "min_vec", "max_lex", "title", "entities", "numbers"],
    "small, no e5: USE, lead, entities, person conflict": [f"vec:{USE}", "lead", "entities", "person_conflict"],
    "small: e5, lead, entities, person conflict": [f"vec:{E5}", "lead", "entities", "person_conflict"],
    "small: e5, USE, lead, title, person conflict": [f"vec:{E5}", f"vec:{USE}", "lead", "title", "person_conflict"],
    "e5 of title+lead alone": [f"vec:{E5}/lead"],
    "small: e5 lead, lead, entities, person conflict": [f"vec:{E5}/lead", "lead", "entities", "person_conflict"],
    "small: e5 lead, e5, lead, person conflict": [f"vec:{E5}/lead", f"vec:{E5}", "lead", "person_conflict"],
}


def ner_speed(shared: Path, n: int, load_s: float) -> dict | None:
    import random

    from tgsearch.analyze import entities as E

    if not (shared / "data" / "tg-news-posts-ru" / "raw").is_dir():
        return None
    texts = corpus_texts(shared)
    sample = random.Random(1).sample(texts, min(n, len(texts)))
    E.entities("Глава Казахстана Касым-Жомарт Токаев прибыл в Москву.")  # warm the caches
    load = load_s
    t0 = time.perf_counter()
    found = sum(len(E.entities(t)) for t in sample)
    single = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(0, len(sample), 100):
        E.entities_many(sample[i:i + 100])
    batched = time.perf_counter() - t0
    return {"posts": len(sample), "load_s": load, "posts_per_s": len(sample) / single,
            "batched_posts_per_s": len(sample) / batched, "entities": found,
            "mean_chars": sum(map(len, sample)) / len(sample)}


def add_derived(names: list[str], x: np.ndarray) -> tuple[list[str], np.ndarray]:
    col = {n: x[:, i] for i, n in enumerate(names)}
    vec = [col[n] for n in names if n.startswith("vec:") and "/" not in n]
    extra = {
        "max_vec": np.max(vec, axis=0), "min_vec": np.min(vec, axis=0),
        "max_lex": np.maximum(col["tfidf"], col["lead"]),
    }
    return names + list(extra), np.hstack([x, np.column_stack(list(extra.values()))])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "tgsearch-bench-story")
    ap.add_argument("--no-e5", action="store_true", help="skip the e5 vectors")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--lead-chars", type=int, default=LEAD_CHARS, help="characters embedded for the /lead vectors")
    ap.add_argument("--ner-sample", type=int, default=500, help="posts for the NER speed figure (0: skip)")
    args = ap.parse_args(argv)
    folder = args.shared / "data" / "news-samestory-pairs-ru"
    if not (folder / "ru_honey_pool.tsv").exists():
        print(f"skipped: {folder} not found (the benchmark reads ../shared beside the checkout; "
              "give --shared DIR)")
        return 0
    pairs = load_pairs(folder)
    y = np.array([p["y"] for p in pairs])
    test = np.array([p["split"] == "test" for p in pairs])
    timings: dict = {}
    t0 = time.perf_counter()
    names, x = build(pairs, args.shared, args.cache, not args.no_e5, timings, args.lead_chars)
    names, x = add_derived(names, x)
    timings["total_s"] = time.perf_counter() - t0
    col = {n: i for i, n in enumerate(names)}

    print(f"## Same-story pairs: {len(pairs)} ({int(test.sum())} test = honey, {int((~test).sum())} dev = train); "
          f"same {int(y.sum())}, different {int(len(y) - y.sum())}\n")
    print(f"IDF from {timings['idf_source']}; NER {timings['ner_texts']} texts in {timings['ner_s']:.1f} s; "
          + ", ".join(f"{k[6:-2]} {v:.1f} s" for k, v in timings.items() if k.startswith("embed_"))
          + f" (cached: 0 s); total {timings['total_s']:.1f} s\n")
    results: dict = {"signals": {}, "combinations": {}, "timings": timings}
    print("| signal | AUC test (175) | best F1 test | macro-F1 at best thr. test | AUC all (195) | macro-F1 all | CV macro-F1 all |")
    print("|---|---|---|---|---|---|---|")
    for n in names:
        s = x[:, col[n]]
        a_t = auc(s[test], y[test])
        _t, f1_t, _m = best_threshold(s[test], y[test], by="f1")
        _t, _f, m_t = best_threshold(s[test], y[test])
        a_all = auc(s, y)
        _t, _f, m_all = best_threshold(s, y)
        cv = cross_validate(s[:, None], y, repeats=5, loo=False)
        results["signals"][n] = {"auc_test": a_t, "best_f1_test": f1_t, "macro_f1_test": m_t,
                                 "auc_all": a_all, "macro_f1_all": m_all, "cv_macro_f1": cv["cv_macro_f1"]}
        print(f"| {n} | {a_t:.3f} | {f1_t:.3f} | {m_t:.3f} | {a_all:.3f} | {m_all:.3f} | {cv['cv_macro_f1']:.3f} |")
    print()
    print("| combination (logistic regression, L2=1) | CV macro-F1 (5-fold ×20) | CV F1 same | CV AUC | LOO macro-F1 | LOO AUC | dev(20)→test(175) macro-F1 |")
    print("|---|---|---|---|---|---|---|")
    from tgsearch.analyze.story_signals import SameStoryModel

    for label, feats in DESIGNS.items():
        if any(f not in col for f in feats):
            print(f"| {label} | (missing: {', '.join(f for f in feats if f not in col)}) | | | | | |")
            continue
        xs = x[:, [col[f] for f in feats]]
        cv = cross_validate(xs, y)
        dev = SameStoryModel.fit(feats, xs[~test], y[~test])
        t, _f, _m = best_threshold(dev.predict(xs[~test]), y[~test])
        _f1, dev_macro = f1s((dev.predict(xs[test]) >= t).astype(int), y[test])
        full = SameStoryModel.fit(feats, xs, y)
        cv["dev_to_test_macro_f1"] = dev_macro
        cv["weights"] = dict(zip(feats, map(float, full.weights)))
        cv["bias"] = full.bias
        results["combinations"][label] = cv
        print(f"| {label} | {cv['cv_macro_f1']:.3f} ± {cv['cv_macro_f1_sd']:.3f} | {cv['cv_f1_same']:.3f} | "
              f"{cv['cv_auc']:.3f} | {cv['loo_macro_f1']:.3f} | {cv['loo_auc']:.3f} | {dev_macro:.3f} |")
    print()
    print("Weights (all 195 pairs, standardised features):\n")
    for label, cv in results["combinations"].items():
        if label.startswith(("all", "compact", "max/min", "small")):
            ws = ", ".join(f"{k} {v:+.2f}" for k, v in cv["weights"].items())
            print(f"- {label}: {ws}; bias {cv['bias']:+.2f}")
    if args.ner_sample:
        speed = ner_speed(args.shared, args.ner_sample, timings["ner_load_s"])
        if speed is None:
            print("\nNER speed: skipped (tg-news-posts-ru absent)")
        else:
            results["ner_speed"] = speed
            print(f"\nNER speed on {speed['posts']} random posts of tg-news-posts-ru (mean {speed['mean_chars']:.0f} chars, "
                  f"{speed['entities']} entities): {speed['posts_per_s']:.0f} posts/s one by one, "
                  f"{speed['batched_posts_per_s']:.0f} posts/s in batches of 100, one thread; models load in {speed['load_s']:.1f} s; "
                  f"load average before: {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
