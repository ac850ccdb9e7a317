"""Stories and copies through the real pipeline: quality on labelled pairs, copies, speed.

Run: .venv/bin/python -m bench.stories [--corpus-db DIR] [--json]
     .venv/bin/python -m bench.stories --fit [--models use-multilingual-v3,e5-small-4bit]

1. Same-story pairs (`../shared/data/news-samestory-pairs-ru`, 195 pairs of Russian news texts
   labelled same story / different story): every text of every pair becomes a post (title + text,
   dated from the pair's position so the two texts of a pair are hours apart and different pairs
   days apart), all in one data folder, ingested and placed in stories (index/stories.py). A pair is
   predicted "same" when both posts end up in one story. Reported: precision/recall/F1 of "same",
   of "different", and their macro-F1; pairs linked as copies and how many of them are labelled
   different (must be 0).
2. The 22k corpus (`--corpus-db`, a data folder with it ingested, and its vectors if built;
   skipped without one), copied to a temporary folder: stories placed from scratch with entities
   and the folder's lead vectors, as a data folder builds them (posts/s); the development pairs
   judged by reading (bench/data/story_dev_pairs.tsv, rules in story_dev_rules.md): precision,
   recall, F1 and macro-F1 of "same story", and different-story pairs linked as copies.
3. Copies and speed: the state restored in a new process (seconds), then 300 posts re-posted in
   other channels with the edits copy-paste channels make (emoji lead, a "подписывайтесь" footer,
   another signature, one word changed), an hour later, the first 50 placed one at a time (median
   and p95 per post); reported: the share linked to their first poster (`copy_of`), and copies
   linked to any other post.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TGSEARCH_SHARED", REPO.parent / "shared"))
PAIRS = SHARED / "data" / "news-samestory-pairs-ru"
T0 = datetime(2020, 1, 6, 8, 0, tzinfo=timezone.utc)


def load_pairs() -> list[dict]:
    csv.field_size_limit(10**8)
    out = []
    for name in ("ru_honey_pool.tsv", "ru_train_pool.tsv"):
        path = PAIRS / name
        with path.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                label = (row.get("GOLDEN:quality") or "").strip()
                if label not in ("OK", "BAD"):
                    continue
                out.append({"a": (row["INPUT:first_title"], row["INPUT:first_text"]),
                            "b": (row["INPUT:second_title"], row["INPUT:second_text"]),
                            "same": label == "OK", "pool": name.split("_")[1]})
    return out


def f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def bench_pairs(pairs: list[dict], model: str = "") -> dict:
    """The pairs through the pipeline with entities, and with `model`'s first-passage vectors
    (as the vector index would hold them) when given."""
    from tgsearch.analyze.analyzer import default_analyzer
    from tgsearch.index.stories import StoryIndex
    from tgsearch.index.story_service import default_entities
    from tgsearch.index.vectors import passages_for
    from tgsearch.post import Post
    from tgsearch.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "db")
        posts = []
        for i, pair in enumerate(pairs):
            day = T0 + timedelta(days=3 * i)        # pairs far apart; a pair's two texts 3 h apart
            for side, hours in (("a", 0), ("b", 3)):
                title, text = pair[side]
                posts.append(Post(id=f"{side}{i}/1", channel=f"{side}{i}", title=title.strip(),
                                  text=f"{title.strip()}\n\n{text.strip()}", date=day + timedelta(hours=hours)))
        store.upsert(posts)
        vectors = None
        if model:
            table = embed_cached(model, [passages_for(p)[0].text for p in posts])
            by_id = {p.id: (model, table[j]) for j, p in enumerate(posts)}
            vectors = lambda ids: {i: by_id[i] for i in ids if i in by_id}  # noqa: E731
        ner, ner_model = default_entities()
        index = StoryIndex(store.root, default_analyzer(), entities=ner, entity_model=ner_model, vectors=vectors)
        t0 = time.perf_counter()
        index.catch_up(store)
        took = time.perf_counter() - t0
        placed = index.placements([p.id for p in posts])
        store.close()
    tp = fp = fn = tn = 0
    copies = copies_bad = 0
    for i, pair in enumerate(pairs):
        a, b = placed[f"a{i}/1"], placed[f"b{i}/1"]
        same = a["story"] == b["story"]
        tp += same and pair["same"]
        fp += same and not pair["same"]
        fn += (not same) and pair["same"]
        tn += (not same) and not pair["same"]
        if a["copy_of"] == f"b{i}/1" or b["copy_of"] == f"a{i}/1":
            copies += 1
            copies_bad += not pair["same"]
    ps, rs, fs = f1(tp, fp, fn)
    pd, rd, fd = f1(tn, fn, fp)
    return {"pairs": len(pairs), "same": tp + fn, "different": tn + fp, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "same_precision": ps, "same_recall": rs, "same_f1": fs, "diff_precision": pd, "diff_recall": rd,
            "diff_f1": fd, "macro_f1": (fs + fd) / 2, "copy_links": copies, "copy_links_on_different": copies_bad,
            "seconds": took, "vectors": model or "none"}


EDITS = [
    lambda t, r: "⚡️ " + t,
    lambda t, r: t + "\n\nПодписывайтесь на наш канал 👉 @copy_news",
    lambda t, r: t + "\n\n@other_channel | Прислать новость",
    lambda t, r: "Срочно! " + t + " 🔥",
]


def one_word_changed(text: str, rng: random.Random) -> str:
    words = text.split()
    long_words = [i for i, w in enumerate(words) if len(w) > 5 and w.isalpha()]
    if long_words:
        words[rng.choice(long_words)] = "изменено"
    return " ".join(words)


def bench_corpus(corpus_db: Path, n: int = 300) -> dict:
    """Stories over the whole corpus (entities and the folder's lead vectors included, as a data
    folder builds them), the development pairs, a restart, then re-posted copies one by one."""
    from bench.story_dev_sample import load_dev_pairs
    from tgsearch.analyze.analyzer import default_analyzer
    from tgsearch.index.stories import StoryIndex
    from tgsearch.index.story_service import default_entities, lead_vectors
    from tgsearch.store import Store

    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(corpus_db / "store.sqlite", Path(tmp) / "store.sqlite")
        if (corpus_db / "index" / "vectors").exists():       # the folder's vectors: stories read lead vectors
            shutil.copytree(corpus_db / "index" / "vectors", Path(tmp) / "index" / "vectors")
        store = Store(tmp, create=False)
        ner, model = default_entities()

        def open_index():
            return StoryIndex(store.root, default_analyzer(), entities=ner, entity_model=model,
                              vectors=lead_vectors(store))

        index = open_index()
        from tgsearch.index.vectors import active_model

        from tgsearch.analyze.stories import WEIGHTS

        vector_model = active_model(store) if (Path(tmp) / "index" / "vectors").exists() else "none"
        if vector_model != "none" and vector_model not in WEIGHTS:
            vector_model += " (present, not used: no story weights for it)"
        t0 = time.perf_counter()
        index.catch_up(store)                       # the corpus
        corpus_s = time.perf_counter() - t0
        status0 = index.status(store)
        # the development pairs
        pairs = load_dev_pairs()
        placed = index.placements([x for a, b, _ in pairs for x in (a, b)])
        tp = fp = fn = tn = copy_bad = missing = 0
        for a, b, same in pairs:
            if a not in placed or b not in placed:
                missing += 1
                continue
            got = placed[a]["story"] == placed[b]["story"]
            tp += got and same
            fp += got and not same
            fn += (not got) and same
            tn += (not got) and not same
            linked = placed[a]["copy_of"] in (b, placed[b]["copy_of"]) and placed[a]["copy_of"] is not None \
                or placed[b]["copy_of"] == a
            copy_bad += linked and not same
        ps, rs, fs = f1(tp, fp, fn)
        pd, rd, fd = f1(tn, fn, fp)
        # a restart, then copies placed one by one
        live = [p for p in store.iter_posts() if p.date is not None and len(p.text.split()) >= 15]
        originals = rng.sample(live, min(n, len(live)))
        copies = []
        for i, p in enumerate(originals):
            text = EDITS[i % len(EDITS)](p.text, rng)
            if i % 3 == 0:
                text = one_word_changed(text, rng)
            copies.append(p.evolve(id=f"copybench{i % 7}/{i}", channel=f"copybench{i % 7}", channel_title="",
                                   text=text, date=p.date + timedelta(hours=1), forwarded_from="", views=None))
        t1 = time.perf_counter()
        index2 = open_index()
        index2.clusterer(store)                     # a new process: state restored from the database
        restore_s = time.perf_counter() - t1
        lat = []
        for c in copies[:50]:
            store.upsert([c])
            t = time.perf_counter()
            index2.catch_up(store)
            lat.append(time.perf_counter() - t)
        store.upsert(copies[50:])
        index2.catch_up(store)
        placed = index2.placements([c.id for c in copies] + [o.id for o in originals])
        linked = wrong = 0
        for c, o in zip(copies, originals):
            of = (placed.get(c.id) or {}).get("copy_of")
            root = (placed.get(o.id) or {}).get("copy_of") or o.id
            linked += of == root
            wrong += of is not None and of != root
        store.close()
    return {"corpus_posts": status0["posts"], "corpus_seconds": corpus_s,
            "corpus_posts_per_s": status0["posts"] / corpus_s if corpus_s else 0.0,
            "stories": status0["stories"], "multi_post_stories": status0["multi_post_stories"],
            "corpus_copies": status0["copies"], "entities": model or "none", "vectors": vector_model,
            "dev_pairs": len(pairs) - missing, "dev_missing": missing, "dev_tp": tp, "dev_fp": fp, "dev_fn": fn, "dev_tn": tn,
            "dev_same_f1": fs, "dev_diff_f1": fd, "dev_macro_f1": (fs + fd) / 2, "dev_same_precision": ps,
            "dev_same_recall": rs, "dev_copy_links_on_different": copy_bad,
            "copies": len(copies), "linked": linked, "linked_share": linked / len(copies), "linked_elsewhere": wrong,
            "restore_seconds": restore_s, "place_one_median_ms": statistics.median(lat) * 1000,
            "place_one_p95_ms": sorted(lat)[int(0.95 * len(lat))] * 1000}


FIT_FEATURES = ("cosine", "entities", "entity_miss", "numbers", "number_miss")


def embed_cached(model: str, texts: list[str]):
    """Unit vectors of `texts` by `model`, cached in the temp folder (e5 takes minutes)."""
    import hashlib

    import numpy as np

    from tgsearch.analyze.embed import get_embedder, normalize

    digest = hashlib.sha1(("\x00".join(texts) + model).encode("utf-8")).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"tgsearch-bench-stories-{digest}.npy"
    if cache.exists():
        return np.load(cache)
    t0 = time.perf_counter()
    v = normalize(get_embedder(model).embed_documents(texts))
    print(f"  {model}: {len(texts)} first passages embedded in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    np.save(cache, v)
    return v


def pair_features(pairs: list[dict], models: list[str]) -> dict[str, "object"]:
    """The clusterer's own pair features for every labelled pair, with each vector model's
    first-passage vectors (as the vector index stores them) -> {model or '': (x, y)}."""
    import numpy as np

    from tgsearch.analyze.analyzer import default_analyzer
    from tgsearch.analyze.entities import entities_many, entity_key
    from tgsearch.analyze.stories import Scorer, StoryClusterer
    from tgsearch.index.vectors import passages_for
    from tgsearch.post import Post

    posts = []
    for i, pair in enumerate(pairs):
        for side in ("a", "b"):
            title, text = pair[side]
            posts.append(Post(id=f"{side}{i}/1", channel=f"{side}{i}", title=title.strip(),
                              text=f"{title.strip()}\n\n{text.strip()}", date=T0 + timedelta(days=3 * i)))
    ents = entities_many([p.text for p in posts])
    keys = {p.id: [f"{e.type}:{entity_key(e.name)}" for e in es] for p, es in zip(posts, ents)}
    vecs: dict[str, dict] = {}
    for model in models:
        v = embed_cached(model, [passages_for(p)[0].text for p in posts])
        vecs[model] = {p.id: v[j] for j, p in enumerate(posts)}
    c = StoryClusterer(default_analyzer())
    for p in posts:                     # document frequencies over every text first
        c.features(p)
    scorer = Scorer()
    out = {}
    for model in [""] + models:
        rows, ys = [], []
        for i, pair in enumerate(pairs):
            fa = c.features(posts[2 * i], keys[posts[2 * i].id],
                            (model, vecs[model][posts[2 * i].id]) if model else None)
            fb = c.features(posts[2 * i + 1], keys[posts[2 * i + 1].id],
                            (model, vecs[model][posts[2 * i + 1].id]) if model else None)
            cos = c.cosine(fa, fb)
            f = scorer.features(fa, fb, cos)
            if model:
                f["vector"] = float(np.dot(fa.vec, fb.vec))
            rows.append([f[k] for k in FIT_FEATURES] + ([f["vector"]] if model else []))
            ys.append(1.0 if pair["same"] else 0.0)
        out[model] = (np.array(rows), np.array(ys))
    return out


def fit(pairs: list[dict], models: list[str], l2: float = 1.0, repeats: int = 20) -> dict:
    """Logistic weights on raw features (as the Scorer applies them) per vector model, with the
    cross-validated macro-F1 of the pairwise decision at p >= 0.5 (stratified 5-fold, repeated)."""
    import numpy as np

    from tgsearch.analyze.story_signals import fit_logistic

    def fit_raw(x, y):
        """Fit on standardised features, return weights for the raw ones (as the Scorer applies them)."""
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale == 0] = 1.0
        w, b = fit_logistic((x - mean) / scale, y, l2)
        return w / scale, b - float(np.sum(w * mean / scale))

    results = {}
    for model, (x, y) in pair_features(pairs, models).items():
        names = list(FIT_FEATURES) + (["vector"] if model else [])
        w, b = fit_raw(x, y)
        scores = []
        for r in range(repeats):
            rng = np.random.RandomState(r)
            folds = np.zeros(len(y), dtype=int)
            for label in (0.0, 1.0):
                idx = np.where(y == label)[0]
                rng.shuffle(idx)
                folds[idx] = np.arange(len(idx)) % 5
            pred = np.zeros(len(y))
            for k in range(5):
                tr, te = folds != k, folds == k
                wk, bk = fit_raw(x[tr], y[tr])
                pred[te] = (x[te] @ wk + bk) >= 0
            tp = float(((pred == 1) & (y == 1)).sum())
            fp = float(((pred == 1) & (y == 0)).sum())
            fn = float(((pred == 0) & (y == 1)).sum())
            tn = float(((pred == 0) & (y == 0)).sum())
            scores.append((f1(tp, fp, fn)[2] + f1(tn, fn, fp)[2]) / 2)
        results[model or "none"] = {"weights": {"bias": round(float(b), 3), **{n: round(float(v), 3) for n, v in zip(names, w)}},
                                    "cv_macro_f1": float(np.mean(scores)), "cv_sd": float(np.std(scores))}
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus-db", type=Path, default=None, help="a data folder with the 22k corpus ingested")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--fit", action="store_true", help="fit the Scorer's weights on the pairs (prints them)")
    ap.add_argument("--models", default="use-multilingual-v3,e5-small-4bit",
                    help="vector models to fit weights for (comma-separated; e5 takes minutes)")
    args = ap.parse_args(argv)
    out: dict = {}
    if args.fit:
        if not PAIRS.exists():
            print(f"skipped: {PAIRS} is absent")
            return 0
        res = fit(load_pairs(), [m for m in args.models.split(",") if m])
        print("| vectors | CV macro-F1 (5-fold x 20) | weights |\n|---|---|---|")
        for model, r in res.items():
            print(f"| {model} | {r['cv_macro_f1']:.3f} ± {r['cv_sd']:.3f} | {r['weights']} |")
        print("\nWEIGHTS = " + json.dumps({("" if m == "none" else m): r["weights"] for m, r in res.items()}, indent=1))
        return 0
    if PAIRS.exists():
        pairs = load_pairs()
        out["pairs"] = []
        if not args.json:
            print(f"same-story pairs ({len(pairs)}), all in one folder, through the pipeline (entities on):")
            print("| vectors | same P / R / F1 | different P / R / F1 | macro-F1 | copy links (on different) | s |")
            print("|---|---|---|---|---|---|")
        for model in [""] + [m for m in args.models.split(",") if m]:
            r = bench_pairs(pairs, model)
            out["pairs"].append(r)
            if not args.json:
                print(f"| {r['vectors']} | {r['same_precision']:.3f} / {r['same_recall']:.3f} / {r['same_f1']:.3f} | "
                      f"{r['diff_precision']:.3f} / {r['diff_recall']:.3f} / {r['diff_f1']:.3f} | "
                      f"**{r['macro_f1']:.3f}** | {r['copy_links']} ({r['copy_links_on_different']}) | {r['seconds']:.1f} |",
                      flush=True)
    else:
        print(f"skipped the pairs: {PAIRS} is absent")
    if args.corpus_db and (args.corpus_db / "store.sqlite").exists():
        out["corpus"] = c = bench_corpus(args.corpus_db)
        if not args.json:
            print(f"\ncorpus: {c['corpus_posts']} posts placed from scratch (entities: {c['entities']}; "
                  f"lead vectors: {c['vectors']}) in "
                  f"{c['corpus_seconds']:.1f} s ({c['corpus_posts_per_s']:.0f} posts/s): {c['stories']} stories, "
                  f"{c['multi_post_stories']} with more than one post, {c['corpus_copies']} copies")
            print(f"development pairs (bench/data/story_dev_pairs.tsv, {c['dev_pairs']} placed): same-story F1 "
                  f"{c['dev_same_f1']:.3f} (precision {c['dev_same_precision']:.3f}, recall {c['dev_same_recall']:.3f}), "
                  f"different F1 {c['dev_diff_f1']:.3f}, macro-F1 {c['dev_macro_f1']:.3f}; different-story pairs "
                  f"linked as copies: {c['dev_copy_links_on_different']}")
            print(f"copies: {c['linked']} of {c['copies']} re-posted copies linked to their first poster "
                  f"({100 * c['linked_share']:.1f}%), {c['linked_elsewhere']} linked to another post")
            print(f"restore in a new process: {c['restore_seconds']:.1f} s; placing one new post: median "
                  f"{c['place_one_median_ms']:.0f} ms, p95 {c['place_one_p95_ms']:.0f} ms")
    elif args.corpus_db:
        print(f"skipped copies and speed: no store in {args.corpus_db}")
    if args.json:
        print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
