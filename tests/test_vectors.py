"""The vector index: fill, incremental updates, passages, model mismatch, reload, kill-and-resume."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

from tgsearch.errors import IndexMismatchError
from tgsearch.index.vector_fill import fill
from tgsearch.index.vectors import MAX_PASSAGES, VectorIndex, VectorStore, passages_for, vector_status, vectors_dir
from tgsearch.post import Post
from tgsearch.search.semantic import SemanticRetriever
from tgsearch.store import Store

MODEL = "use-multilingual-v3"

# Our own posts: a few distinct topics, plus numbered filler posts so the index has some size.
TOPICS = {
    "oil": "Цены на нефть марки Brent выросли до максимума за полгода после сокращения добычи странами ОПЕК.",
    "football": "Футбольный клуб из Казани проиграл в финале кубка, уступив сопернику в серии пенальти.",
    "vaccine": "Минздрав сообщил о начале массовой вакцинации от гриппа в поликлиниках города.",
    "metro": "В Москве открыли три новые станции метро на Большой кольцевой линии.",
    "election": "Центризбирком объявил предварительные итоги парламентских выборов, явка составила 54 процента.",
}
FILLER = ["Погода на выходных будет облачной, местами пройдут дожди.",
          "Курс рубля к доллару почти не изменился по итогам торгов.",
          "В городском парке прошёл фестиваль уличной еды и музыки.",
          "Библиотека продлила часы работы читального зала до полуночи."]


def make_posts(n_filler: int = 20) -> list[Post]:
    posts = [Post(id=f"news/{i + 1}", channel="news", text=text, message_ids=(i + 1,))
             for i, text in enumerate(TOPICS.values())]
    for j in range(n_filler):
        posts.append(Post(id=f"misc/{j + 1}", channel="misc", text=f"{FILLER[j % len(FILLER)]} Выпуск {j + 1}.",
                          message_ids=(j + 1,)))
    return posts


def long_text(n_sentences: int = 40) -> str:
    return " ".join(f"Предложение номер {i} рассказывает о событиях недели в регионе и их последствиях." for i in range(n_sentences))


@pytest.fixture
def filled(store):
    store.upsert(make_posts())
    fill(store, MODEL)
    return store


def entries(store: Store) -> list[tuple[str, int]]:
    path = vectors_dir(store.root, MODEL) / "vectors.sqlite"
    with sqlite3.connect(path) as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT post_id, passage FROM entries")]


def test_fill_embeds_every_post_once_and_records_the_high_water_mark(filled):
    rows = entries(filled)
    assert Counter(pid for pid, _ in rows) == Counter({p.id: 1 for p in filled.iter_posts()})
    status = VectorIndex(filled, MODEL).status()
    assert status["posts_with_vectors"] == status["posts"] == filled.count()
    assert status["hwm"] == filled.max_version() and status["complete"]
    assert fill(filled, MODEL) == 0  # nothing new: nothing embedded


def test_cross_lingual_query_finds_the_russian_post(filled):
    index = VectorIndex(filled, MODEL)
    qvec = index.embed_query("oil prices rise after OPEC production cut")
    found = index.search_vector(qvec, limit=5)
    assert found[0][0] == "news/1"
    assert found[0][1] > found[1][1]


def test_updated_post_is_re_embedded_and_its_old_vector_is_gone(filled):
    index = VectorIndex(filled, MODEL)
    filled.upsert([Post(id="news/4", channel="news", text="Археологи нашли в Крыму древнегреческую амфору с вином.",
                        message_ids=(4,))])
    assert fill(filled, MODEL) == 1
    assert Counter(pid for pid, _ in entries(filled))["news/4"] == 1
    time.sleep(0.6)  # let the reader's refresh interval pass
    ids = [pid for pid, _, _ in index.search_vector(index.embed_query("новые станции метро в Москве"), limit=3)]
    assert "news/4" not in ids[:1]
    top = index.search_vector(index.embed_query("раскопки античной амфоры"), limit=1)
    assert top[0][0] == "news/4"
    assert len(index.graph.index) == len(entries(filled))  # the stale vector left the graph


def test_long_post_gets_passages_mapped_back_to_it(store):
    text = long_text() + " В конце сообщили, что археологи обнаружили клад серебряных монет XII века."
    post = Post(id="long/1", channel="long", text=text, title="Итоги недели", message_ids=(1,))
    parts = passages_for(post)
    assert 2 <= len(parts) <= MAX_PASSAGES
    assert parts[0].text.startswith("Итоги недели")
    assert all(0 <= p.start < p.end <= len(text) for p in parts)
    short = Post(id="s/1", channel="s", text="Коротко: всё спокойно.", message_ids=(1,))
    assert [(p.start, p.end) for p in passages_for(short)] == [(0, len(short.text))]
    store.upsert([post, short] + make_posts(4))
    fill(store, MODEL)
    rows = entries(store)
    assert sorted(n for pid, n in rows if pid == "long/1") == list(range(len(parts)))
    index = VectorIndex(store, MODEL)
    found = index.search_vector(index.embed_query("еженедельный обзор событий в регионе"), limit=10)
    assert [pid for pid, _, _ in found].count("long/1") == 1  # one result per post, its best passage


def test_a_folder_built_by_another_model_is_refused(tmp_path):
    directory = tmp_path / "vec"
    VectorStore(directory, "use-multilingual-v3", 512).close()
    with pytest.raises(IndexMismatchError) as info:
        VectorStore(directory, "e5-small-4bit", 384)
    message = str(info.value)
    assert "use-multilingual-v3" in message and "e5-small-4bit" in message and "reindex --vectors" in message
    assert info.value.status == 409


def test_graph_reloads_from_its_file_and_rebuilds_without_it(filled):
    directory = vectors_dir(filled.root, MODEL)
    saved = list(directory.glob("hnsw-*.usearch"))
    assert saved, "fill saves the graph"
    index = VectorIndex(filled, MODEL)
    index.refresh()
    assert len(index.graph.index) == len(entries(filled))
    for path in directory.glob("hnsw-*"):
        path.unlink()
    rebuilt = VectorIndex(filled, MODEL)
    qvec = rebuilt.embed_query("вакцинация от гриппа")
    assert rebuilt.search_vector(qvec, limit=1)[0][0] == "news/3"


def test_similar_posts(filled):
    retriever = SemanticRetriever(filled, VectorIndex(filled, MODEL))
    similar = retriever.similar("misc/1", limit=4)
    assert "misc/1" not in [pid for pid, _ in similar]
    # misc/5, 9, 13, 17 repeat misc/1's sentence with other issue numbers
    assert {pid for pid, _ in similar} == {"misc/5", "misc/9", "misc/13", "misc/17"}


def test_vector_status_without_loading_a_model(store):
    store.upsert(make_posts(2))
    assert vector_status(store, MODEL)["posts_with_vectors"] == 0
    fill(store, MODEL)
    status = vector_status(store, MODEL)
    assert status["posts_with_vectors"] == store.count() and status["complete"]


@pytest.mark.slow
def test_background_filler_resumes_after_sigkill(store):
    posts = make_posts(n_filler=300) + [
        Post(id=f"long/{i}", channel="long", text=long_text(30 + i), message_ids=(i,)) for i in range(1, 6)
    ]
    store.upsert(posts)
    db = str(store.root)
    env = dict(os.environ, TGSEARCH_EMBED_THREADS="1")
    cmd = [sys.executable, "-m", "tgsearch.index.vectors", "fill", "--db", db, "--model", MODEL, "--batch", "16"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    path = vectors_dir(db, MODEL) / "vectors.sqlite"
    deadline = time.monotonic() + 300
    done_before_kill = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists():
            try:
                with sqlite3.connect(path, timeout=5) as conn:
                    done_before_kill = conn.execute("SELECT COUNT(DISTINCT post_id) FROM entries").fetchone()[0]
            except sqlite3.Error:
                done_before_kill = 0
            if done_before_kill >= 40:
                break
        time.sleep(0.05)
    assert proc.poll() is None, f"filler ended before it could be killed: {proc.stderr.read().decode()[-500:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < done_before_kill < len(posts)
    before = vector_status(store, MODEL)
    assert not before["complete"] and before["posts_with_vectors"] < len(posts)

    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)

    expected = {p.id: len(passages_for(p)) for p in posts}
    rows = entries(store)
    per_post = Counter(pid for pid, _ in rows)
    assert set(per_post) == set(expected)                      # none missing
    assert per_post == Counter(expected)                       # each passage exactly once
    assert len(set(rows)) == len(rows)
    index = VectorIndex(store, MODEL)
    index.refresh()
    labels = np.asarray(index.graph.index.keys, dtype=np.uint64)
    assert len(labels) == len(set(labels.tolist())) == len(rows)  # the graph holds each vector once
    assert vector_status(store, MODEL)["complete"]


def test_graph_missing_vectors_is_repaired_on_open(filled):
    """A saved graph that lags vectors.sqlite (another process saved an older graph last) is topped up."""
    index = VectorIndex(filled, MODEL)
    index.refresh()
    graph = index.graph
    some = np.asarray(graph.index.keys, dtype=np.uint64)[:5]
    graph.index.remove(some)
    graph.save()                                  # graph file without 5 vectors, info says it has them all
    reopened = VectorIndex(filled, MODEL)
    reopened.refresh()
    assert len(reopened.graph.index) == len(entries(filled))
    assert all(int(k) in reopened.graph.index for k in some)



@pytest.mark.slow
def test_background_filler_stops_when_its_folder_is_deleted(tmp_path):
    import shutil

    root = tmp_path / "db"
    store = Store(root)
    store.upsert(make_posts(n_filler=6000))      # a few minutes of embedding at full speed
    store.close()
    env = dict(os.environ, TGSEARCH_EMBED_THREADS="1")
    cmd = [sys.executable, "-m", "tgsearch.index.vectors", "fill", "--db", str(root), "--model", MODEL,
           "--batch", "16", "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()                # the first batch is written: the model is loaded
    assert first.startswith("embedded"), proc.stderr.read()[-500:]
    shutil.rmtree(root)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the filler kept embedding for a data folder that no longer exists")
    assert proc.returncode == 0, proc.stderr.read()[-500:]


def test_fill_never_recreates_a_deleted_data_folder(store):
    import shutil

    from tgsearch.errors import StoreError

    store.upsert(make_posts(2))
    shutil.rmtree(store.root)                    # e.g. a script removed the folder; the store was open
    with pytest.raises(StoreError, match="gone|deleted"):
        fill(store, MODEL)
    assert not store.root.exists()


def test_fill_does_not_write_into_a_folder_made_since_under_the_same_name(store):
    import shutil

    from tgsearch.errors import StoreError
    from tgsearch.index.guard import DataFolder

    store.upsert(make_posts(2))
    folder = DataFolder(store.root)              # as the filler found it when it started
    shutil.rmtree(store.root)
    store.root.mkdir()                           # a new folder of the same name
    with pytest.raises(StoreError, match="deleted or replaced"):
        fill(store, MODEL, folder=folder)
    assert list(store.root.iterdir()) == []


def _opened(pid: int, name: str) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}").endswith(name) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="watches the filler's open files in /proc")
def test_an_ingest_filler_exits_when_its_folder_is_deleted_and_never_recreates_it(tmp_path, monkeypatch):
    import json
    import shutil

    from tgsearch.backend import EmbeddedBackend

    monkeypatch.setenv("TGSEARCH_EMBED_THREADS", "1")
    root = tmp_path / "db"
    src = tmp_path / "posts.jsonl"
    src.write_text("".join(json.dumps({"id": p.message_ids[0], "channel": p.channel, "text": p.text},
                                      ensure_ascii=False) + "\n" for p in make_posts(40)), encoding="utf-8")
    backend = EmbeddedBackend(root, vectors="process")
    backend.ingest([src])                        # starts the background filler (`tgsearch ingest` does)
    proc = backend.vectors._proc
    assert proc is not None
    backend.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not _opened(proc.pid, "store.sqlite-shm"):
        time.sleep(0.001)
    # The filler has opened the store and is about to make its vector folder; the folder goes now
    # (as `rm -rf`, again while the filler still adds files: a deletion racing a creation).
    for _ in range(100):
        shutil.rmtree(root, ignore_errors=True)
        if not root.exists():
            break
    assert not root.exists()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("the filler kept running for a data folder that no longer exists")
    assert not root.exists(), sorted(str(p) for p in root.rglob("*"))
