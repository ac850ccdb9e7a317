"""``python -m tgsearch.pg.catchup`` (the database URL in TGSEARCH_DB, never on the command line):
bring a PostgreSQL database's vectors and stories up to its posts, then exit. Started detached by
a writing command (`tgsearch ingest --db URL`) so that it returns as soon as the posts are stored
and searchable; the advisory locks make a second one (or a serve worker doing the same) step aside.
It ends when the work is done or the database cannot be reached."""

from __future__ import annotations

import os
import subprocess
import sys


def spawn(url: str, previous=None):
    """Start the catch-up process unless the one started before is still running; returns it."""
    if previous is not None and previous.poll() is None:
        return previous
    env = {**os.environ, "TGSEARCH_DB": url}
    return subprocess.Popen([sys.executable, "-m", "tgsearch.pg.catchup"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def main() -> int:
    from ..errors import TgsearchError
    from .backend import PgBackend

    try:
        os.nice(10)       # behind the searches of a serving process (the embedding processes inherit it)
    except OSError:
        pass
    url = os.environ.get("TGSEARCH_DB", "")
    if not url.startswith(("postgresql://", "postgres://")):
        print("tgsearch.pg.catchup: TGSEARCH_DB must be a postgresql:// URL", file=sys.stderr)
        return 2
    try:
        backend = PgBackend(url, create=False, vectors=_process_to_sync("TGSEARCH_VECTORS"),
                            stories=_process_to_sync("TGSEARCH_STORIES"))
        _lower_server_priority(backend)
        try:
            total = 0
            for _ in range(100):      # until a round finds nothing (writes may go on meanwhile)
                done = backend.catch_up(modes=("sync",))
                total += sum(v or 0 for v in done.values())
                if not any(done.values()):
                    break
            if total >= 1000:         # after a big load: visibility map and statistics for the searches
                backend.vacuum()
        finally:
            backend.close()
    except TgsearchError as e:
        print(f"tgsearch.pg.catchup: {e.message}", file=sys.stderr)
        return 1
    return 0


def _lower_server_priority(backend) -> None:
    """Best effort, for a server on this machine that this user may renice (its own, or as root): the
    server process answering this catch-up's connection (index inserts) also yields to searches."""
    try:
        pid = int(backend.store.conn.execute("SELECT pg_backend_pid()").fetchone()[0])
        os.setpriority(os.PRIO_PROCESS, pid, 10)
    except Exception:  # noqa: BLE001 - another machine, another user: the searches just share the CPU
        pass


def _process_to_sync(env: str) -> str:
    mode = (os.environ.get(env) or "process").lower()
    return "off" if mode == "off" else "sync"


if __name__ == "__main__":
    sys.exit(main())
