"""Keeping background work from outliving its reason.

- `die_with_parent`: a worker process (an index-build shard, an embedding worker) is killed by
  the kernel when the process that started it dies (Linux ``PR_SET_PDEATHSIG``), so a killed
  `tgsearch ingest` never leaves workers running on, holding the index's writer lock.
- `DataFolder`: a long-running writer (the background vector filler, the serve worker) notices
  its data folder being deleted or replaced, and creates directories and files only *inside*
  the folder it started on: never the folder itself, never a new folder of the same name that a
  script made after removing the old one.
- `lock_holders`: which processes hold a lock file open (to name them when an index is busy).
- `file_lock`: one writer of a kind per folder, across processes (an advisory lock on a file; the
  kernel drops it with its process).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from ..errors import StoreError


class FolderGoneError(StoreError):
    """The data folder was deleted or replaced under a running process; it must stop, not recreate it."""


def die_with_parent(parent: int) -> None:
    """In a child process: be killed when `parent` dies; exit now if it already has.

    Linux only (elsewhere a no-op). The death signal follows the *thread* that forked us, so
    the pool that starts us must be shut down before that thread ends (ours always are).
    """
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)   # the parent died before the death signal was armed


def lock_holders(path: str | os.PathLike) -> list[int]:
    """Pids (other than ours) with `path` open, from /proc (Linux; [] elsewhere or when unreadable).

    flock locks belong to open files, not processes: a child that inherited the descriptor keeps
    the lock after the process that took it has died, so the holder is whoever has the file open.
    """
    try:
        st = os.stat(path)
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
    me, found = os.getpid(), []
    for pid in pids:
        if pid == me:
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            for fd in os.listdir(fd_dir):
                try:
                    other = os.stat(f"{fd_dir}/{fd}")
                except OSError:
                    continue
                if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                    found.append(pid)
                    break
        except OSError:
            continue
    return sorted(found)


class DataFolder:
    """The identity of a data folder, taken when a long-running writer starts.

    Holds an open descriptor on the folder: directories are created relative to it, so once the
    folder is deleted they cannot be made (the kernel refuses new entries in a removed directory)
    and a folder of the same name made since is never touched.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._fd = -1
        try:
            self._fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise FolderGoneError(f"{self.root}: the data folder is gone ({e.strerror})") from e
        st = os.fstat(self._fd)
        self._id = (st.st_dev, st.st_ino)

    def stop_when_gone(self, stop, interval: float = 0.5) -> None:
        """Set `stop` (from a daemon thread) when the folder is deleted or replaced: a background
        process outliving its command stops instead of burning CPU for a folder that is gone.
        `stop` is a threading.Event."""
        import threading

        def watch() -> None:
            while not stop.wait(interval):
                if not self.alive():
                    stop.set()

        threading.Thread(target=watch, name="tgsearch-folder-watch", daemon=True).start()

    def alive(self) -> bool:
        """Whether the path still names the folder we started on."""
        if self._fd < 0:
            return False
        try:
            st = os.stat(self.root)
            return (st.st_dev, st.st_ino) == self._id and os.fstat(self._fd).st_nlink > 0
        except OSError:
            return False

    def check(self) -> None:
        if not self.alive():
            raise FolderGoneError(f"{self.root}: the data folder was deleted or replaced; stopping")

    def mkdirs(self, path: str | os.PathLike) -> Path:
        """Create `path` (inside the folder) level by level below the folder; never the folder itself."""
        rel = Path(path).relative_to(self.root)
        self.check()
        fd = os.dup(self._fd)
        try:
            for part in rel.parts:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                except FileNotFoundError as e:   # a parent was removed under us
                    raise FolderGoneError(f"{self.root}: the data folder was deleted; stopping") from e
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
                os.close(fd)
                fd = child
        finally:
            os.close(fd)
        self.check()
        return Path(path)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except OSError:
            pass


def rw_uri(path: str | os.PathLike) -> str:
    """An SQLite URI opening an existing file read-write without ever creating it."""
    return Path(path).absolute().as_uri() + "?mode=rw"


@contextmanager
def file_lock(path: str | os.PathLike, *, wait: bool = False, mode: int = 0o600):
    """Yield True holding an exclusive lock on `path` (created), False when another process holds
    it and `wait` is false."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
