"""Writing the lexical index (index/lexical.py): the writer lock, catch-up batches, whole builds.

- `feed`: analyze posts (in forked worker processes when there are many) and write them with
  one tantivy writer, committed together with the high-water mark they reach.
- `build_beside`: a whole index (`tgsearch reindex`, a first catch-up) is built in a scratch
  folder beside the live one (``index/.lexical-build-<pid>/``), holding the index's writer lock,
  and swapped in when complete; the live index answers meanwhile, and a build that fails or is
  killed leaves it as it was (the next build clears the scratch). A big store is built in shards:
  each worker writes its own tantivy segments, and `join_shards` lists them all in one
  ``meta.json`` (tantivy's on-disk catalogue of segments). That reads tantivy's layout, so
  `tantivy` is pinned to the versions checked (pyproject.toml); an unknown layout raises
  `ShardJoinError` and the build falls back to one writer.
- `swap_in` exchanges the built folder with the live one in one step (Linux
  ``renameat2(RENAME_EXCHANGE)``), so a reader opening the index never finds it missing.
- Workers are forked (they inherit the loaded analyzer), die with the process that forked them
  and close their inherited copy of the writer lock at once (index/guard.py): a killed build
  never leaves the index locked. A busy lock names the processes holding it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import multiprocessing
import os
import shutil
import threading
import warnings
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path

import tantivy

from ..errors import StoreError
from .guard import die_with_parent, lock_holders


class ShardJoinError(StoreError):
    """The shards of a parallel build could not be joined (an unexpected tantivy index layout);
    the build falls back to one writer."""


# -- worker pool ------------------------------------------------------------------------------
def _ranges(versions: list[int], start: int, size: int) -> list[tuple[int, int]]:
    out, lo = [], start
    for i in range(size - 1, len(versions), size):
        out.append((lo, versions[i]))
        lo = versions[i]
    if versions and lo < versions[-1]:
        out.append((lo, versions[-1]))
    return out


def _pool_init(parent: int, inherited: tuple[int, ...]) -> None:
    """In a forked worker: die with the parent, and close its copy of the writer lock (a flock
    lives as long as any copy of its descriptor: a worker keeping one would keep the lock)."""
    die_with_parent(parent)
    for fd in inherited:
        try:
            os.close(fd)
        except OSError:
            pass


def _fork_pool(workers: int, inherited: tuple[int, ...] = ()) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_pool_init, initargs=(os.getpid(), inherited))


def _bounded(pool, db_path: str, ranges: list[tuple[int, int]], depth: int):
    """Results in order, with at most `depth` batches in flight (bounded memory at 1M posts)."""
    from . import lexical as lx

    pending = []
    for lo, hi in ranges:
        pending.append(pool.submit(lx._analyze_range, db_path, lo, hi))
        if len(pending) >= depth:
            yield pending.pop(0).result()
    for fut in pending:
        yield fut.result()


def feed(index, open_writer, store, versions: list[int], start: int, *, replace: bool, on_progress=None,
         stop: threading.Event | None = None, inherited: tuple[int, ...] = ()) -> int:
    """Analyze the posts of `versions` (after `start`) and write them with one writer, committed
    with the high-water mark reached: all of them, or as far as a set `stop` let it go.

    `replace`: delete each post's old document first (a catch-up; a fresh index needs not)."""
    from . import lexical as lx

    ranges = _ranges(versions, start, lx.BATCH)
    lx._worker_analyzer = index.analyzer
    db_path = str(store.path)
    pool = None
    if index._parallel(versions):
        pool = _fork_pool(index.workers, inherited)
        pool.submit(int).result()  # fork the workers now, before this process starts a writer thread
    try:
        if pool is None:
            batches = (lx._analyze_range(db_path, lo, hi) for lo, hi in ranges)
        else:
            batches = _bounded(pool, db_path, ranges, index.workers * 3)
        writer = open_writer()
        done, hwm = 0, start
        try:
            for (_, hi), batch in zip(ranges, batches):
                for a in batch:
                    if replace or a.deleted:
                        writer.delete_documents_by_term("id", a.id)
                    if not a.deleted:
                        writer.add_document(lx.to_document(a))
                done, hwm = done + len(batch), hi
                if on_progress:
                    on_progress(done)
                if stop is not None and stop.is_set():
                    break
            writer.delete_documents_by_term("id", lx.META_ID)
            writer.add_document(tantivy.Document(id=lx.META_ID, hwm=hwm))
            writer.commit()
            writer.wait_merging_threads()
        except BaseException:
            writer.rollback()
            raise
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return done


# -- the writer lock --------------------------------------------------------------------------
def record_owner(fd: int) -> None:
    """Write our pid into a lock file we hold (named when another process finds the index busy)."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass


def _recorded_owner(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return None
    return int(text) if text.isdigit() else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def busy_error(index_path: Path, lock: Path):
    """The error for a busy writer lock, naming the processes that hold it."""
    from .lexical import IndexBusyError

    holders, recorded = lock_holders(lock), _recorded_owner(lock)
    pids = holders or ([recorded] if recorded else [])
    who = f" (pid {', '.join(map(str, pids))})" if pids else ""
    hint = "run the command again when it has finished"
    if holders and recorded and recorded not in holders and not _pid_alive(recorded):
        hint = (f"pid {recorded}, which took the lock, has exited and left {'them' if len(holders) > 1 else 'it'} "
                f"holding it: stop {' '.join(map(str, holders))} and run the command again")
    return IndexBusyError(f"{index_path}: another tgsearch process{who} is writing this index; {hint}")


def take_lock(index_path: Path, lock: Path) -> int:
    """Take the index's writer lock (the file lock tantivy's own writers take) without starting a
    tantivy writer, so that worker processes never fork off a writer thread; returns its fd."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        os.close(fd)
        raise busy_error(index_path, lock) from e
    record_owner(fd)
    return fd


# -- whole builds -----------------------------------------------------------------------------
# Shared with the forked workers of a parallel build (set before forking; synchronized
# multiprocessing objects cannot travel as task arguments): posts analyzed so far, and for
# each pair of workers the [first, last] batch indexes not yet claimed.
_progress = None
_claims: list = []


def build_beside(index, store, on_progress=None, versions: list[int] | None = None) -> int:
    """Build `index` (a LexicalIndex) whole from the store in a scratch folder beside it, holding
    its writer lock, and swap the result in; the live index keeps answering until then."""
    from . import lexical as lx

    index._writable()
    lx._mkdir_below(index.root, index.path)   # the lock lives there (a first build, a damaged folder)
    lock = take_lock(index.path, index.path / lx.WRITER_LOCK)
    scratch = index.path.parent / f"{lx.BUILD_PREFIX}{os.getpid()}"
    try:
        for stale in index.path.parent.glob(lx.BUILD_PREFIX + "*"):  # left by a killed build
            shutil.rmtree(stale, ignore_errors=True)
        scratch.mkdir()
        versions = store.versions_since(0) if versions is None else versions
        built, done = scratch / "0", None
        if index._parallel(versions):
            try:
                done = _build_shards(index, store, versions, scratch, lock, on_progress)
            except ShardJoinError as e:
                warnings.warn(f"{e}; building the index with one writer instead", RuntimeWarning, stacklevel=4)
                for child in scratch.iterdir():
                    shutil.rmtree(child)
        if done is None:
            built.mkdir()
            target = lx._open_tantivy(built)
            done = feed(index, lambda: target.writer(lx.WRITER_HEAP, 1), store, versions, 0, replace=False,
                        on_progress=on_progress, inherited=(lock,))
            del target
        _write_json(built / lx.IDENTITY_FILE, index.identity)
        swap_in(built, index.path)
    finally:
        os.close(lock)
        shutil.rmtree(scratch, ignore_errors=True)
    index._open()
    return done


def _build_shards(index, store, versions: list[int], scratch: Path, lock: int, on_progress) -> int:
    """Build the index in worker shards under `scratch` and join them into `scratch/0`."""
    global _progress
    from . import lexical as lx

    ranges = _ranges(versions, 0, lx.BATCH)
    workers = min(index.workers, len(ranges))
    pairs = (workers + 1) // 2
    shards = [scratch / str(k) for k in range(workers)]
    lx._worker_analyzer = index.analyzer
    ctx = multiprocessing.get_context("fork")
    _progress = ctx.Value("q", 0)
    _claims[:] = [ctx.Array("q", [len(ranges) * p // pairs, len(ranges) * (p + 1) // pairs - 1])
                  for p in range(pairs)]
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_pool_init,
                                 initargs=(os.getpid(), (lock,))) as pool:
            futures = [pool.submit(_build_shard, str(shard), str(store.path), ranges, k // 2, k % 2 == 0,
                                   versions[-1] if k == 0 else None)
                       for k, shard in enumerate(shards)]
            pending = set(futures)
            try:
                while pending:
                    finished, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
                    for f in finished:
                        f.result()   # a worker's error stops the build here; the old index stays
                    if on_progress:
                        on_progress(_progress.value)
            except BaseException:
                for bounds in _claims:   # the other workers stop after their current batch
                    with bounds.get_lock():
                        bounds[0], bounds[1] = 1, 0
                raise
        done = sum(f.result() for f in futures)
        joined = join_shards(shards[0], shards[1:])
        if joined != done + 1 or lx._open_tantivy(shards[0]).searcher().num_docs != joined:
            raise ShardJoinError(f"{index.path}: joined index holds {joined} documents, expected {done + 1}")
    finally:
        _progress = None
        _claims.clear()
    return done


def _build_shard(path: str, db_path: str, ranges: list[tuple[int, int]], pair: int, forward: bool,
                 hwm: int | None) -> int:
    """In a worker: analyze batches of `ranges` and write them into a new index at `path`.

    Two workers share one run of batches and eat it from both ends (batches are claimed one
    at a time through a shared pair of bounds), so they finish together however the text
    length varies along the store, and each still sees neighbouring posts (one channel's
    vocabulary) in a row, which keeps their analyzer caches' overlap small.
    """
    from . import lexical as lx

    Path(path).mkdir()   # in the parent's scratch folder (never recreated if it is gone)
    writer = lx._open_tantivy(Path(path)).writer(lx.SHARD_HEAP, 1)
    done = 0
    while (i := _claim(_claims[pair], forward)) is not None:
        batch = lx._analyze_range(db_path, *ranges[i])
        for a in batch:
            if not a.deleted:
                writer.add_document(lx.to_document(a))
                done += 1
        with _progress.get_lock():
            _progress.value += len(batch)
    if hwm is not None:
        writer.add_document(tantivy.Document(id=lx.META_ID, hwm=hwm))
    writer.commit()
    writer.wait_merging_threads()
    return done


def _claim(bounds, forward: bool) -> int | None:
    """The next batch index from the front (or the back) of a shared [first, last] run."""
    with bounds.get_lock():
        first, last = bounds[0], bounds[1]
        if first > last:
            return None
        if forward:
            bounds[0] = first + 1
            return first
        bounds[1] = last - 1
        return last


# -- joining shards, swapping the result in ----------------------------------------------------
def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ShardJoinError(f"{path}: unreadable while joining index shards ({e})") from e


def _write_json(path: Path, value) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value), encoding="utf-8")
    os.replace(tmp, path)


def join_shards(target: Path, shards: list[Path]) -> int:
    """Move the segments of each shard index into `target` and list them in its meta.json.

    All indexes share one schema and settings (checked), so a segment is valid in any of
    them; `.managed.json` learns the moved files so tantivy deletes them after later merges.
    Returns the joined index's document count.
    """
    meta = _read_json(target / "meta.json")
    managed = _read_json(target / ".managed.json")
    if not (isinstance(meta.get("segments"), list) and isinstance(meta.get("opstamp"), int)
            and isinstance(managed, list)):
        raise ShardJoinError(f"{target}: unknown tantivy index layout; cannot join shards")
    for shard in shards:
        other = _read_json(shard / "meta.json")
        if other.get("schema") != meta.get("schema") or other.get("index_settings") != meta.get("index_settings"):
            raise ShardJoinError(f"{shard}: index shard built with another schema; cannot join it")
        for segment in other["segments"]:
            stem = segment["segment_id"].replace("-", "") + "."
            for f in shard.iterdir():
                if f.name.startswith(stem):
                    os.replace(f, target / f.name)
                    managed.append(f.name)
            meta["segments"].append(segment)
        meta["opstamp"] = max(meta["opstamp"], other["opstamp"])
    _write_json(target / ".managed.json", sorted(set(managed)))
    _write_json(target / "meta.json", meta)
    return sum(s["max_doc"] for s in meta["segments"])


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        import ctypes

        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
        return False   # a filesystem or kernel without the exchange: two renames instead
    raise OSError(code, os.strerror(code), str(b))


def swap_in(built: Path, live: Path) -> None:
    """Put the index folder `built` at `live`. The old index ends up at `built` (or beside it
    where the exchange is not available), for the caller to delete with the scratch folder."""
    if live.exists() and _exchange(built, live):
        return
    if live.exists():
        os.rename(live, built.with_name(built.name + ".old"))
    os.rename(built, live)
