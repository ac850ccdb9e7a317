"""Filling the vector index (index/vectors.py) from the store: embed what was written since its
high-water mark, in this process or a pool of embedding processes.

Where it runs (tgsearch.index.vector_service): `tgsearch ingest` starts a detached filler process
(``python -m tgsearch.index.vectors fill``) that completes the vectors after the command exits;
`tgsearch serve` fills in its one background worker thread (tgsearch.worker). Read-only commands
never fill.

A filler creates files only inside the data folder it started on (index/guard.py): when that
folder is deleted or replaced it stops (the process exits), and never recreates the folder, its
``index/`` directory or any file in it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from ..analyze.embed import Embedder, get_embedder
from ..errors import TgsearchError
from ..post import Post
from ..store import Store
from .guard import DataFolder, die_with_parent, file_lock, rw_uri
from .vectors import HNSW, Passage, VectorStore, active_model, passages_for, vectors_dir


@contextmanager
def _fill_lock(directory: Path, folder: DataFolder, wait: bool = True):
    """One filler per model folder (across processes); yields False when busy and not waiting."""
    folder.mkdirs(directory)
    with file_lock(directory / "fill.lock", wait=wait, mode=0o644) as mine:
        yield mine


_worker_embedder: Embedder | None = None


def _worker_init(model: str, threads: int, parent: int | None = None) -> None:
    global _worker_embedder
    # Linux: die with the filler (a killed filler must not leave workers embedding on)
    die_with_parent(parent if parent is not None else os.getppid())
    os.environ["TGSEARCH_EMBED_THREADS"] = str(threads)
    _worker_embedder = get_embedder(model)


def _worker_embed(texts: list[str]) -> np.ndarray:
    assert _worker_embedder is not None
    return _worker_embedder.embed_documents(texts)


def default_workers() -> int:
    value = os.environ.get("TGSEARCH_EMBED_WORKERS")
    if value and value.isdigit():
        return max(1, int(value))
    return max(1, min(2, os.cpu_count() or 1))


def fill(store: Store, model: str | None = None, *, embedder: Embedder | None = None, batch: int = 256,
         wait: bool = True, stop: threading.Event | None = None,
         on_batch: Callable[[int, int], None] | None = None, save_index: bool = True,
         workers: int | None = None, folder: DataFolder | None = None) -> int:
    """Embed every post written since the index's high-water mark; returns how many were embedded.

    Safe to kill at any point and to re-run: each batch commits its vectors with the new
    high-water mark, in store-version order (also with `workers` > 1 embedding processes,
    whose results are written in order). Only one filler works per model folder; with
    `wait=False` a busy folder returns 0 at once. A set `stop` ends it after the current batch.

    `folder`: the data folder as the caller found it when it started (default: now); filling
    stops when it is deleted or replaced, and nothing is created outside it
    (FolderGoneError when it is already gone).
    """
    own = folder is None
    folder = folder or DataFolder(store.root)
    try:
        model = model or active_model(store)
        workers = workers or default_workers()
        if workers > 1 and embedder is None and _backlog(store, model) > 2 * batch:
            return _fill_parallel(store, model, batch=batch, wait=wait, stop=stop, on_batch=on_batch,
                                  save_index=save_index, workers=workers, folder=folder)
        return _fill_here(store, model, embedder or get_embedder(model), batch=batch, wait=wait, stop=stop,
                          on_batch=on_batch, save_index=save_index, folder=folder)
    finally:
        if own:
            folder.close()


def _stopping(stop: threading.Event | None, folder: DataFolder) -> bool:
    return (stop is not None and stop.is_set()) or not folder.alive()


def _fill_here(store: Store, model: str, embedder: Embedder, *, batch: int, wait: bool, stop, on_batch,
               save_index: bool, folder: DataFolder) -> int:
    directory = vectors_dir(store.root, model)
    done = 0
    with _fill_lock(directory, folder, wait=wait) as locked:
        if not locked:
            return 0
        vstore = VectorStore(directory, embedder.name, embedder.dim, folder=folder)
        try:
            pending: list[tuple[int, Post]] = []

            def flush() -> None:
                nonlocal done
                if not pending:
                    return
                rows = _rows(pending)
                vectors = embedder.embed_documents([r[2].text for r in rows]) if rows else []
                vstore.write_batch([(pid, ver, p, vec) for (pid, ver, p), vec in zip(rows, vectors)],
                                   hwm=max(v for v, _ in pending), dropped=[p.id for _, p in pending if p.deleted])
                done += len(pending)
                pending.clear()
                if on_batch:
                    on_batch(done, vstore.hwm)

            for version, post in store.iter_since(vstore.hwm, batch=batch):
                pending.append((version, post))
                if len(pending) >= batch:
                    flush()
                    if _stopping(stop, folder):
                        break
            else:
                flush()
            _save(directory, vstore, folder, save_index and done > 0)
        finally:
            vstore.close()
    return done


def _save(directory: Path, vstore: VectorStore, folder: DataFolder, wanted: bool) -> None:
    """Save the graph for the readers, unless the folder has gone (its files are not ours to make)."""
    if wanted and folder.alive():
        HNSW(directory, vstore).sync(save=True)


def _backlog(store: Store, model: str) -> int:
    """Posts written since the model's high-water mark (enough to be worth a process pool?)."""
    path = vectors_dir(store.root, model) / "vectors.sqlite"
    hwm = 0
    if path.exists():
        try:
            conn = sqlite3.connect(rw_uri(path), uri=True, timeout=30)
        except sqlite3.Error:
            conn = None
        if conn is not None:
            try:
                row = conn.execute("SELECT value FROM meta WHERE key='hwm'").fetchone()
                hwm = int(row[0]) if row else 0
            except sqlite3.Error:
                hwm = 0
            finally:
                conn.close()
    return store.count_since(hwm)


def _batches(store: Store, hwm: int, batch: int):
    pending: list[tuple[int, Post]] = []
    for version, post in store.iter_since(hwm, batch=batch):
        pending.append((version, post))
        if len(pending) >= batch:
            yield pending
            pending = []
    if pending:
        yield pending


def _fill_parallel(store: Store, model: str, *, batch: int, wait: bool, stop, on_batch, save_index: bool,
                   workers: int, folder: DataFolder) -> int:
    """`fill` with several embedding processes (one BLAS thread each), written in version order."""
    import multiprocessing

    embedder = get_embedder(model)   # name and dim only: the model itself loads in the workers
    directory = vectors_dir(store.root, model)
    done = 0
    with _fill_lock(directory, folder, wait=wait) as locked:
        if not locked:
            return 0
        vstore = VectorStore(directory, embedder.name, embedder.dim, folder=folder)
        ctx = multiprocessing.get_context("spawn")
        try:
            with ctx.Pool(workers, initializer=_worker_init, initargs=(model, 1, os.getpid())) as pool:
                def jobs():
                    for posts in _batches(store, vstore.hwm, batch):
                        yield posts, _rows(posts)

                pending = []
                for posts, rows in jobs():
                    pending.append((posts, rows, pool.apply_async(_worker_embed, ([r[2].text for r in rows],))))
                    while len(pending) > workers or (pending and pending[0][2].ready()):
                        done += _write(vstore, *pending.pop(0), on_batch=on_batch, done=done)
                    if _stopping(stop, folder):
                        break
                while pending:
                    done += _write(vstore, *pending.pop(0), on_batch=on_batch, done=done)
            _save(directory, vstore, folder, save_index and done > 0)
        finally:
            vstore.close()
    return done


def _rows(posts: list[tuple[int, Post]]) -> list[tuple[str, int, Passage]]:
    """(post id, version, passage) to embed for a batch; a post deleted at the source has none."""
    return [(post.id, version, p) for version, post in posts if not post.deleted for p in passages_for(post)]


def _write(vstore: VectorStore, posts, rows, result, *, on_batch, done: int) -> int:
    vectors = result.get()
    vstore.write_batch([(pid, ver, p, vec) for (pid, ver, p), vec in zip(rows, vectors)],
                       hwm=max(v for v, _ in posts), dropped=[p.id for _, p in posts if p.deleted])
    if on_batch:
        on_batch(done + len(posts), vstore.hwm)
    return len(posts)


class VectorFiller:
    """Background thread that keeps a model's vectors up with the store (``TGSEARCH_VECTORS=thread``);
    it ends when the data folder is deleted or replaced."""

    def __init__(self, store: Store, model: str | None = None, *, embedder: Embedder | None = None,
                 on_batch: Callable[[int, int], None] | None = None, folder: DataFolder | None = None):
        self.store = store
        self.model = model or active_model(store)
        self.embedder = embedder
        self.on_batch = on_batch
        self.folder = folder or DataFolder(store.root)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.filled = 0

    def start(self) -> "VectorFiller":
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="tgsearch-vector-filler", daemon=True)
            self._thread.start()
        self.poke()
        return self

    def poke(self) -> None:
        """New posts were written: fill them."""
        self._wake.set()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(timeout=5.0)
                self._wake.clear()
                if self._stop.is_set() or not self.folder.alive():
                    break
                try:
                    self.filled += fill(self.store, self.model, embedder=self.embedder, stop=self._stop,
                                        on_batch=self.on_batch, wait=False, save_index=True, folder=self.folder)
                    self.error = None
                except BaseException as e:  # noqa: BLE001 - keep serving; error is surfaced in stats
                    self.error = e
                    time.sleep(1.0)
        finally:
            self.store.close()   # this thread's connection

    def stop(self, timeout: float | None = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def spawn_filler(root: str | os.PathLike, model: str | None = None, *, log: str | os.PathLike | None = None):
    """Start a detached `python -m tgsearch.index.vectors fill` process; returns its Popen."""
    import subprocess

    args = [sys.executable, "-m", "tgsearch.index.vectors", "fill", "--db", str(root), "--quiet"]
    if model:
        args += ["--model", model]
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(args, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        if log:
            out.close()


def reset(root: str | os.PathLike, model: str) -> None:
    """Delete a model's vector folder (it is derived; the next fill rebuilds it)."""
    import shutil

    directory = vectors_dir(root, model)
    if not directory.exists():
        return
    folder = DataFolder(root)
    try:
        with _fill_lock(directory, folder, wait=True):
            for child in directory.iterdir():
                if child.name not in ("fill.lock", "fill.log"):
                    if child.is_dir():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
    finally:
        folder.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m tgsearch.index.vectors fill --db FOLDER``: the background filler process."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tgsearch.index.vectors",
                                     description="Fill the vector index of a data folder from its store.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fill", help="embed every post not yet embedded (resumable)")
    p.add_argument("--db", required=True)
    p.add_argument("--model", default=None)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--workers", type=int, default=None, help="embedding processes (default: TGSEARCH_EMBED_WORKERS or 2)")
    p.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        folder = DataFolder(args.db)   # the folder as it is now: a folder made later under its name is not ours
        store = Store(args.db, create=False)
    except TgsearchError as e:
        print(f"error: {e.message}", file=sys.stderr, flush=True)
        return 1
    started = time.perf_counter()

    def report(done: int, hwm: int) -> None:
        if not args.quiet:
            rate = done / max(time.perf_counter() - started, 1e-9)
            print(f"embedded {done} posts (store version {hwm}, {rate:.0f} posts/s)", flush=True)

    stop = threading.Event()
    folder.stop_when_gone(stop)   # a filler outlives its command: a deleted folder ends it
    try:
        n = fill(store, args.model, batch=args.batch, on_batch=report, workers=args.workers, stop=stop,
                 folder=folder)
    except (OSError, sqlite3.Error, RuntimeError, TgsearchError):  # RuntimeError: usearch saving its graph
        if not folder.alive():
            return 0  # the folder went away mid-batch: nothing left to fill
        raise
    finally:
        stop.set()
        store.close()
    import resource

    wall = time.perf_counter() - started
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)
    # one summary line, also in quiet mode (the background filler's log): what a bench reads
    print(json.dumps({"filled": n, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                      "posts_per_s": round(n / wall, 1) if wall else None,
                      "posts_per_cpu_s": round(n / cpu, 1) if cpu else None,
                      "load_average": os.getloadavg()}), flush=True)
    return 0
