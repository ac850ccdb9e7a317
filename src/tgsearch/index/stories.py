"""Stories, copies and entities of a data folder: derived data in `<db>/analysis.sqlite`.

Caught up from the store's high-water mark like the lexical index and the vectors: every post
written after `hwm` is placed by analyze/stories.py (`StoryClusterer`) and its outcome written
here, a batch per transaction together with the new mark, so a process stopped at any point
redoes at most one batch. Deleting the file (or `rebuild()`) recomputes everything. Counter
refreshes (views, reactions) keep a post's version, so they never reach this.

Tables: `post_story` (post -> story, copy_of, the score and post that placed it, its date and
channel), `stories` (id, its most typical post (the title), first post, size, channels, first/last date), `entities` (post,
type, name, key), `state` (hwm, the analyzer and entity model that built it).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Iterable

from ..post import iso
from ..store import ThreadConnections

FILE = "analysis.sqlite"
BATCH = 500
PARALLEL_FROM = 3000    # backlog from which entities are found in worker processes
NER_PROCESSES = min(2, os.cpu_count() or 1)
BUILT_BY = "stories-1"      # bump when placing changes: the folder's stories are rebuilt

SCHEMA = """
CREATE TABLE IF NOT EXISTS state(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS post_story(
    post_id TEXT PRIMARY KEY, story INTEGER NOT NULL, copy_of TEXT, score REAL NOT NULL,
    matched TEXT, date TEXT, channel TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS post_story_story ON post_story(story);
CREATE INDEX IF NOT EXISTS post_story_copy ON post_story(copy_of);
CREATE TABLE IF NOT EXISTS stories(
    id INTEGER PRIMARY KEY, title_post TEXT NOT NULL, first_post TEXT NOT NULL, size INTEGER NOT NULL,
    channels INTEGER NOT NULL, first_date TEXT, last_date TEXT);
CREATE INDEX IF NOT EXISTS stories_last ON stories(last_date);
CREATE TABLE IF NOT EXISTS entities(post_id TEXT NOT NULL, type TEXT NOT NULL, name TEXT NOT NULL,
    key TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS entities_post ON entities(post_id);
CREATE INDEX IF NOT EXISTS entities_key ON entities(type, key);
"""


class StoryIndex:
    """See the module docstring. One writer (the worker, or the process catching up)."""

    def __init__(self, root: str | Path, analyzer, *, entities: Callable | None = None,
                 entity_model: str = "", read_only: bool = False, vectors: Callable | None = None):
        self.root = Path(root)
        self.path = self.root / FILE
        self.analyzer = analyzer
        self.entity_fn = entities           # texts -> per text a list of (type, name, key)
        self.entity_model = entity_model
        self.vectors_fn = vectors           # ids -> {id: (model, unit lead vector)} (optional)
        self.read_only = read_only
        self._conns = ThreadConnections(self.path, timeout=30, what="analysis database")
        self._clusterer = None
        self._write_lock = threading.Lock()
        if not read_only:
            self.conn.executescript(SCHEMA)
            if self._get("built_by") not in (None, self.built_by):
                self._reset()

    @property
    def built_by(self) -> str:
        return f"{BUILT_BY}; entities {self.entity_model or 'none'}"

    @property
    def conn(self):
        """This thread's connection; None when read-only and the folder has no analysis database."""
        if self.read_only and not self.path.exists():
            return None
        return self._conns.get()

    def close(self) -> None:
        self._conns.close()

    # -- state ------------------------------------------------------------------------------------
    def _get(self, key: str) -> str | None:
        if self.conn is None:
            return None
        row = self.conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def hwm(self) -> int:
        try:
            return int(self._get("hwm") or 0)
        except Exception:   # noqa: BLE001 - a missing table in a read-only open
            return 0

    def _reset(self) -> None:
        with self.conn:
            for table in ("post_story", "stories", "entities", "state"):
                self.conn.execute(f"DELETE FROM {table}")
        self._clusterer = None

    def rebuild(self, store, on_progress=None, stop: threading.Event | None = None) -> int:
        """Forget everything and place every post again."""
        with self._write_lock:
            self._reset()
        return self.catch_up(store, on_progress=on_progress, stop=stop)

    # -- the clusterer, restored from this database -------------------------------------------------
    def _post_entities(self, ids: list[str]) -> dict[str, list[tuple[str, str, str]]]:
        out: dict[str, list] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for pid, t, name, key in self.conn.execute(
                    f"SELECT post_id, type, name, key FROM entities WHERE post_id IN ({marks}) ORDER BY rowid", chunk):
                out.setdefault(pid, []).append((t, name, key))
        return out

    def clusterer(self, store):
        """The in-memory state, rebuilt from the placed posts on first use (date order)."""
        if self._clusterer is None:
            from ..analyze.stories import StoryClusterer

            c = StoryClusterer(self.analyzer)
            placed = {pid: (story, copy_of) for pid, story, copy_of in
                      self.conn.execute("SELECT post_id, story, copy_of FROM post_story")}
            if placed:
                ids = list(placed)
                for start in range(0, len(ids), 2000):
                    chunk = ids[start:start + 2000]
                    posts = store.get_many(chunk)
                    ents = self._post_entities(chunk)
                    vecs = self._vectors(chunk)
                    for pid in sorted(chunk, key=lambda p: (posts[p].date is None, posts[p].date or 0, p)
                                      if p in posts else (True, 0, p)):
                        post = posts.get(pid)
                        if post is None:
                            continue
                        f = c.features(post, [f"{t}:{k}" for t, _, k in ents.get(pid, ())], vecs.get(pid))
                        story, copy_of = placed[pid]
                        c.restore(f, story, copy_of)
            self._clusterer = c
        return self._clusterer

    # -- catching up --------------------------------------------------------------------------------
    def backlog(self, store) -> int:
        return store.count_since(self.hwm())

    def catch_up(self, store, on_progress: Callable[[int, int], None] | None = None,
                 stop: threading.Event | None = None) -> int:
        """Place every post written since the mark; returns how many were placed or removed.

        A big backlog (a first build) finds entities in `NER_PROCESSES` processes a few batches
        ahead of placing (the NER model is the slow part); a small one in this thread."""
        if self.read_only:
            return 0
        with self._write_lock:
            c = self.clusterer(store)
            hwm = self.hwm()
            pool = None
            if (self.entity_fn is not None and getattr(self.entity_fn, "picklable", False)
                    and NER_PROCESSES > 1 and store.count_since(hwm) >= PARALLEL_FROM):
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                pool = ProcessPoolExecutor(NER_PROCESSES, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_one_thread)
            try:
                return self._catch_up(store, c, hwm, pool, on_progress, stop)
            finally:
                if pool is not None:
                    pool.shutdown(cancel_futures=True)

    def _catch_up(self, store, c, hwm, pool, on_progress, stop) -> int:
        from collections import deque

        def batches():
            batch: list = []
            for version, post in self._changes(store, hwm):
                batch.append((version, post))
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
            if batch:
                yield batch

        ahead: deque = deque()
        source = batches()
        done = 0
        while True:
            while pool is not None and len(ahead) < 2 * NER_PROCESSES:
                batch = next(source, None)
                if batch is None:
                    break
                live = [p for _, p in batch if not p.deleted and (p.text or p.title)]
                try:
                    future = pool.submit(self.entity_fn, [_ner_text(p) for p in live])
                except Exception:   # noqa: BLE001 - a broken pool (e.g. no __main__ guard): NER here instead
                    future, pool = None, None
                ahead.append((batch, live, future))
            if ahead:
                batch, live, future = ahead.popleft()
                found = None          # _apply finds them in this thread
                if future is not None:
                    try:
                        found = {p.id: list(e) for p, e in zip(live, future.result())}
                    except Exception:   # noqa: BLE001 - as above, for this batch
                        pool = None
                done += self._apply(c, batch, found)
            else:
                batch = next(source, None)
                if batch is None:
                    break
                done += self._apply(c, batch)
            if on_progress:
                on_progress(done, store.max_version())
            if stop is not None and stop.is_set():
                return done
        self._caught_up()
        return done

    def _changes(self, store, hwm: int):
        """(version, post) for every post to place, oldest write first (a server store: by its marks)."""
        return store.iter_since(hwm)

    def _caught_up(self) -> None:
        """Every change `_changes` gave is placed (a server store moves its mark here)."""

    def _entities(self, posts: list) -> dict[str, list[tuple[str, str, str]]]:
        """post id -> [(type, name, key)] for a batch (the NER model runs on the batch at once)."""
        if self.entity_fn is None or not posts:
            return {}
        texts = [_ner_text(p) for p in posts]
        try:
            found = self.entity_fn(texts)
        except Exception:   # noqa: BLE001 - a model failing on a batch costs that batch's entities
            return {}
        return {p.id: list(ents) for p, ents in zip(posts, found)}

    def _vectors(self, ids: list[str]) -> dict:
        if self.vectors_fn is None or not ids:
            return {}
        try:
            return self.vectors_fn(ids)
        except Exception:   # noqa: BLE001 - vectors are a bonus: placing goes on without them
            return {}

    def _apply(self, c, batch: list, found: dict | None = None) -> int:
        """Place one batch (date order within it), write the outcome and the mark together."""
        last_version = max(max(v for v, _ in batch), self.hwm())
        touched_stories: set[int] = set()
        rows, ent_rows, removed, copy_updates = [], [], [], {}
        posts = sorted((p for _, p in batch), key=lambda p: (p.date is None, p.date.timestamp() if p.date else 0, p.id))
        if found is None:
            found = self._entities([p for p in posts if not p.deleted and (p.text or p.title)])
        vecs = self._vectors([p.id for p in posts if not p.deleted])
        for post in posts:
            old = c.story_of.get(post.id)
            if old is not None:
                touched_stories.add(old)
                for pid in c.forget(post.id):
                    copy_updates[pid] = c.copy_of.get(pid)
            if post.deleted or not (post.text or post.title):
                removed.append(post.id)
                continue
            ents = found.get(post.id, [])
            f = c.features(post, [f"{t}:{k}" for t, _, k in ents], vecs.get(post.id))
            d = c.place(f)
            touched_stories.add(d.story)
            for pid in d.changed:
                copy_updates[pid] = c.copy_of.get(pid)
            rows.append((post.id, d.story, d.copy_of, round(d.score, 4), d.matched,
                         iso(post.date) if post.date else None, post.channel))
            ent_rows += [(post.id, t, name, key) for t, name, key in ents]
        conn = self.conn
        with conn:
            ids = [p.id for p in posts]
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM entities WHERE post_id IN ({marks})", chunk)
                conn.execute(f"DELETE FROM post_story WHERE post_id IN ({marks})", chunk)
            conn.executemany("INSERT INTO post_story(post_id, story, copy_of, score, matched, date, channel) "
                             "VALUES(?, ?, ?, ?, ?, ?, ?)", rows)
            conn.executemany("INSERT INTO entities(post_id, type, name, key) VALUES(?, ?, ?, ?)", ent_rows)
            conn.executemany("UPDATE post_story SET copy_of = ? WHERE post_id = ?",
                             [(of, pid) for pid, of in copy_updates.items()])
            self._refresh_stories(conn, c, touched_stories)
            conn.execute("INSERT INTO state(key, value) VALUES('hwm', ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                         (str(last_version),))
            conn.execute("INSERT INTO state(key, value) VALUES('built_by', ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                         (self.built_by,))
        return len(batch)

    def _refresh_stories(self, conn, c, story_ids: Iterable[int]) -> None:
        """Recompute each story's row: size, channels, first/last date, first post, title."""
        for sid in story_ids:
            members = c.story_members(sid)
            if not members:
                conn.execute("DELETE FROM stories WHERE id = ?", (sid,))
                continue
            feats = [c.posts[m] for m in members if m in c.posts]
            dated = sorted((f for f in feats if f.date is not None), key=lambda f: (f.date, f.id))
            first = dated[0] if dated else feats[0]
            typical = _typical(c, feats)
            first_date = iso_ts(dated[0].date) if dated else None
            last_date = iso_ts(dated[-1].date) if dated else None
            conn.execute("INSERT INTO stories(id, title_post, first_post, size, channels, first_date, last_date) "
                         "VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET title_post=excluded.title_post, "
                         "first_post=excluded.first_post, size=excluded.size, channels=excluded.channels, "
                         "first_date=excluded.first_date, last_date=excluded.last_date",
                         (sid, typical.id, first.id, len(feats), len({f.channel for f in feats}), first_date, last_date))

    # -- reads --------------------------------------------------------------------------------------
    def placements(self, ids: list[str]) -> dict[str, dict]:
        """post id -> {"story", "copy_of", "story_size", "story_channels"} for placed posts."""
        out: dict[str, dict] = {}
        if self.conn is None:
            return out
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for pid, story, copy_of, size, channels in self.conn.execute(
                    "SELECT p.post_id, p.story, p.copy_of, s.size, s.channels FROM post_story p "
                    f"JOIN stories s ON s.id = p.story WHERE p.post_id IN ({marks})", chunk):
                out[pid] = {"story": story, "copy_of": copy_of, "story_size": size, "story_channels": channels}
        return out

    def entities_of(self, ids: list[str]) -> dict[str, list[dict]]:
        if self.conn is None:
            return {}
        return {pid: [{"type": t, "name": name} for t, name, _ in ents]
                for pid, ents in self._post_entities(ids).items()}

    def story(self, story_id: int) -> dict | None:
        if self.conn is None:
            return None
        row = self.conn.execute("SELECT id, title_post, first_post, size, channels, first_date, last_date FROM stories "
                                "WHERE id = ?", (story_id,)).fetchone()
        if row is None:
            return None
        posts = [{"id": pid, "copy_of": of, "date": d, "channel": ch, "score": score, "matched": m}
                 for pid, of, d, ch, score, m in self.conn.execute(
                     "SELECT post_id, copy_of, date, channel, score, matched FROM post_story WHERE story = ? "
                     "ORDER BY date IS NULL, date, post_id", (story_id,))]
        return {"id": row[0], "title_post": row[1], "first_post": row[2], "size": row[3], "channels": row[4],
                "first_date": row[5], "last_date": row[6], "posts": posts}

    def posts_with_entity(self, type_: str, value: str) -> list[str]:
        """Ids of the posts naming an entity: its key, or a longer name ending with it
        ("Токаев" finds "Касым-Жомарт Токаев"; any case form: keys are lemmatised)."""
        if self.conn is None or not value.strip():
            return []
        from ..analyze.entities import entity_key

        key = entity_key(value)
        if not key:
            return []
        return sorted({r[0] for r in self.conn.execute(
            "SELECT post_id FROM entities WHERE type = ? AND (key = ? OR key LIKE ? ESCAPE '\\')",
            (type_, key, "% " + key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")))})

    def entity_facets(self, ids: list[str], size: int = 50) -> dict[str, list[dict]]:
        """{"person"|"org"|"place": [{"value", "label", "count"}]}: how many of `ids` name each
        entity (counted once per post), most frequent first."""
        out: dict[str, list[dict]] = {"person": [], "org": [], "place": []}
        if self.conn is None or not ids:
            return out
        counts: dict[tuple[str, str], set] = {}
        names: dict[tuple[str, str], dict[str, int]] = {}
        for pid, ents in self._post_entities(list(ids)).items():
            for t, name, key in ents:
                counts.setdefault((t, key), set()).add(pid)
                forms = names.setdefault((t, key), {})
                forms[name] = forms.get(name, 0) + 1
        for (t, key), posts in counts.items():
            if t in out:
                label = max(names[(t, key)].items(), key=lambda x: (x[1], -len(x[0])))[0]
                out[t].append({"value": label, "label": label, "count": len(posts)})
        for t in out:
            out[t] = sorted(out[t], key=lambda b: (-b["count"], b["label"]))[:size]
        return out

    def story_rows(self, ids: list[int]) -> list[dict]:
        out = []
        if self.conn is None:
            return out
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute("SELECT id, title_post, first_post, size, channels, first_date, last_date "
                                         f"FROM stories WHERE id IN ({marks})", chunk):
                out.append(dict(zip(("id", "title_post", "first_post", "size", "channels", "first_date", "last_date"), row)))
        return out

    def status(self, store) -> dict:
        if self.conn is None:
            return {"complete": False, "stories": 0, "posts": 0, "behind": store.count(), "built_by": None}
        stories = self.conn.execute("SELECT COUNT(*), COALESCE(SUM(size > 1), 0) FROM stories").fetchone()
        placed, copies = self.conn.execute("SELECT COUNT(*), COUNT(copy_of) FROM post_story").fetchone()
        behind = store.count_since(self.hwm())
        return {"complete": behind == 0, "stories": stories[0], "multi_post_stories": stories[1],
                "posts": placed, "copies": copies, "behind": behind, "built_by": self._get("built_by")}


def _one_thread() -> None:
    """In an NER worker process: one BLAS/OpenMP thread each (the processes are the parallelism)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def _ner_text(post) -> str:
    return post.text if not post.title or post.text.startswith(post.title) else f"{post.title}\n{post.text}"


def iso_ts(ts: float) -> str:
    from datetime import datetime, timezone

    return iso(datetime.fromtimestamp(ts, tz=timezone.utc))


def _typical(c, feats):
    """The member closest to the others (highest summed TF-IDF cosine; the earliest on ties)."""
    if len(feats) <= 2:
        return sorted(feats, key=lambda f: (f.date is None, f.date or 0, f.id))[0]
    sample = feats[:50]
    best, best_s = sample[0], -1.0
    for f in sample:
        s = sum(c.cosine(f, g) for g in sample if g is not f)
        if s > best_s + 1e-9:
            best, best_s = f, s
    return best
