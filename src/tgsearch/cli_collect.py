"""The collecting commands: crawl, fetch-articles and the sources file (registered on `cli.main`)."""

from __future__ import annotations

import json
import sys

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .backend import open_backend
from .cli import _day_option, db_option, err, main, out


@main.command()
@click.argument("channels", nargs=-1, required=True)
@db_option
@click.option("--base-url", default="https://t.me", show_default=True, help="Site serving the /s/<channel> previews.")
@click.option("--since", default=None, help="Page back no further than this day, YYYY-MM-DD.")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="At most N posts per channel this run.")
@click.option("--delay", default=1.0, show_default=True, type=click.FloatRange(min=0), help="Seconds between requests.")
@click.option("--recheck", default=1, show_default=True, type=click.IntRange(min=0),
              help="Pages under the head read again for edits and view counts (when the new posts fit the head page).")
@click.option("--json", "as_json", is_flag=True, help="Print the per-channel report as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def crawl(channels, db, base_url, since, limit, delay, recheck, as_json, quiet):
    """Fetch public channels' web previews (t.me/s/CHANNEL) into the store; again: only what is new."""
    from .collect import CrawlConfig, crawl as run_crawl

    from datetime import datetime, timezone

    day = _day_option(since, "since")
    since_at = datetime(day.year, day.month, day.day, tzinfo=timezone.utc) if day else None
    config = CrawlConfig(base_url=base_url, since=since_at, limit=limit, delay=delay, recheck_pages=recheck)
    backend = open_backend(db)
    show_progress = not quiet and not as_json and err.is_terminal
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[counts]}"),
                        TimeElapsedColumn(), console=err, transient=True, disable=not show_progress)

    def on_page(report):
        progress.update(task, description=f"crawl {report.channel}", counts=f"pages {report.pages}  posts {report.posts}")

    def on_channel(report):
        for line in ([report.error] if report.error else []) + report.record_errors:
            err.print(f"[red]error:[/red] {line}", markup=True, highlight=False, soft_wrap=True)
        progress.update(task, advance=1)

    with progress:
        task = progress.add_task("crawl", total=len(channels), counts="")
        reports = run_crawl(backend, list(channels), config, on_page=on_page, on_channel=on_channel)
    if as_json:
        out.print_json(json.dumps([r.to_dict() for r in reports], ensure_ascii=False))
    else:
        for r in reports:
            state = "failed" if r.error else ("history complete" if r.complete else "history partial")
            out.print(f"{r.channel}: pages {r.pages}  posts {r.posts}  new {r.new}  updated {r.updated}  "
                      f"refreshed {r.refreshed}  unchanged {r.unchanged}  ({state})", highlight=False)
    backend.close()
    if any(r.error for r in reports):
        sys.exit(2)


@main.command("fetch-articles")
@db_option
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="HOST[:PORT]",
              help="Also fetch from this host (or host:port) even if it is a private or loopback address "
                   "(repeatable); nothing else non-global is ever fetched.")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="At most N links this run.")
@click.option("--retry-failed", is_flag=True, help="Try links whose fetch failed before again (never refused ones).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def fetch_articles(db, allow_hosts, limit, retry_failed, as_json):
    """Fetch the web articles stored posts link to and store them as articles (searchable, linked to
    the posts citing them).

    Takes the http(s) links not fetched yet, the most recent posts' first, skipping Telegram (t.me)
    links. Each link's outcome (fetched, refused by policy, failed) is recorded once: refused and
    failed links are not tried again (--retry-failed retries failures). Refusals and failures are
    reported one line each; they are not errors of the command: the exit status is 0 unless the
    command itself fails."""
    from .collect.articles import fetch_articles as run
    from .collect.safe_fetch import FetchConfig

    backend = open_backend(db, create=False, read_only=False)
    try:
        report = run(backend, FetchConfig(allow_hosts=tuple(allow_hosts)), limit=limit, retry_failed=retry_failed)
    finally:
        backend.close()
    if as_json:
        out.print_json(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    out.print(f"links fetched: {report.count('fetched')}  refused: {report.count('refused')}  "
              f"failed: {report.count('failed')}  (new articles: {report.new})", highlight=False)
    for o in report.outcomes:
        if o.status != "fetched":
            out.print(f"  {o.status}: {o.url}: {o.reason}", highlight=False, markup=False, soft_wrap=True)



# -- the sources file (<db>/sources.toml) --------------------------------------------------------
@main.group()
def sources() -> None:
    """The sources file, <db>/sources.toml: channels to crawl or sync and article fetching, each
    with an interval in seconds (`tgsearch watch`, coming next, runs them)."""


@sources.group("add")
def sources_add() -> None:
    """Add a source, or update the one of the same kind and channel (given values replace it)."""


def _added(db, source) -> None:
    from .collect import sources as sources_file

    from .backend import state_dir

    source, added = sources_file.add(state_dir(db), source)
    what = "added" if added else "updated"
    err.print(f"{what} {source.key} (every {source.interval} s) in {sources_file.path_of(state_dir(db))}",
              highlight=False, markup=False, soft_wrap=True)


@sources_add.command("crawl")
@click.argument("channel")
@db_option
@click.option("--interval", default=None, type=click.IntRange(min=1), help="Seconds between runs (default 900).")
@click.option("--base-url", default="", help="Site serving the /s/<channel> previews (default https://t.me).")
def sources_add_crawl(channel, db, interval, base_url):
    """A public channel read through its web preview (https://t.me/s/CHANNEL)."""
    from .collect import sources as sources_file

    _added(db, sources_file.make("crawl", channel, interval=interval, base_url=base_url, where="sources add crawl"))


@sources_add.command("sync")
@click.argument("channel")
@db_option
@click.option("--interval", default=None, type=click.IntRange(min=1), help="Seconds between runs (default 300).")
def sources_add_sync(channel, db, interval):
    """A channel read through the Telegram API."""
    from .collect import sources as sources_file

    _added(db, sources_file.make("sync", channel, interval=interval, where="sources add sync"))


@sources_add.command("articles")
@db_option
@click.option("--interval", default=None, type=click.IntRange(min=1), help="Seconds between runs (default 1800).")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="HOST[:PORT]",
              help="Also fetch from this private or loopback host (repeatable), as fetch-articles --allow-host.")
def sources_add_articles(db, interval, allow_hosts):
    """Fetch the articles stored posts link to (as `tgsearch fetch-articles`)."""
    from .collect import sources as sources_file

    _added(db, sources_file.make("articles", interval=interval, allow_hosts=allow_hosts, where="sources add articles"))


def _source_rows(db) -> list[dict]:
    """The backend's sources (with runs and cursors) when the data folder has a store; else the
    file's entries alone."""
    from pathlib import Path

    from .collect import sources as sources_file
    from .store import DB_FILE

    from .backend import is_url, state_dir

    if is_url(db) or (Path(db) / DB_FILE).exists():
        backend = open_backend(db, create=False)
        try:
            return backend.sources()
        finally:
            backend.close()
    return [{**s.to_dict(), "key": s.key, "channel": s.channel, "base_url": s.base_url,
             "allow_hosts": list(s.allow_hosts), "last_run": None, "posts": 0, "error": "",
             "next_run": None, "cursor": None} for s in sources_file.load(state_dir(db))]


@sources.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the sources (with their last runs) as JSON.")
def sources_list(db, as_json):
    """Every source: kind, channel, interval, last run, posts added, cursor, next run, last error."""
    rows = _source_rows(db)
    if as_json:
        out.print_json(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        err.print("no sources (add one with `tgsearch sources add crawl CHANNEL`)", highlight=False, markup=False)
        return
    table = Table()
    table.add_column("source", no_wrap=True)
    for name in ("every", "last run", "posts", "cursor", "next run", "error"):
        table.add_column(name, overflow="fold")
    for r in rows:
        c = r.get("cursor")
        span = f"{c['newest']}..{c['oldest']}" if c and c.get("oldest") is not None else f"up to {c['newest']}" if c else ""
        cursor = f"{span}{' complete' if c['complete'] else ''}" if c else ""
        extra = r["base_url"] or ", ".join(r["allow_hosts"])
        cells = (r["key"] + (f"\n{extra}" if extra else ""), f"{r['interval']} s", r["last_run"] or "never",
                 str(r["posts"]), cursor, r["next_run"] or "due", r["error"])
        table.add_row(*(Text(c) for c in cells))  # Text: no rich markup read from the file or errors
    out.print(table)


@sources.command("remove")
@click.argument("kind", type=click.Choice(["crawl", "sync", "articles"]))
@click.argument("channel", required=False, default="")
@db_option
def sources_remove(kind, channel, db):
    """Remove the source of KIND (crawl and sync: and CHANNEL)."""
    from .collect import sources as sources_file

    from .backend import state_dir

    removed = sources_file.remove(state_dir(db), kind, channel)
    err.print(f"removed {removed.key}", highlight=False, markup=False)


# -- keep sources current -------------------------------------------------------------------------
def _print_run(report) -> None:
    from rich.markup import escape

    if report.error:
        err.print(f"[red]error:[/red] {escape(report.key)}: {escape(report.error)}", markup=True, highlight=False,
                  soft_wrap=True)
    err.print(f"{report.finished_at} {report.key}: {report.posts} posts added or changed in {report.seconds:.1f} s",
              highlight=False, markup=False, soft_wrap=True)


@main.command()
@db_option
@click.option("--once", is_flag=True, help="Run the sources that are due once, then exit (e.g. from cron).")
@click.option("--tick", default=5.0, show_default=True, type=click.FloatRange(min=0.05),
              help="Seconds between looks at the schedule and the sources file.")
@click.option("--delay", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds between two requests of a crawl.")
def watch(db, once, tick, delay):
    """Keep the data folder current: run the sources file's entries (tgsearch sources add ...) on
    their intervals, until stopped (Ctrl-C or SIGTERM; a crawl stops before its next request).

    Searchable as collected: the indexes catch up in this process's background worker. A source
    whose run was cut short runs again at the next start and continues from its cursor."""
    import signal

    from .collect.watch import Watcher, WatchSettings

    backend = open_backend(db, worker=True)
    watcher = Watcher(backend, WatchSettings(tick=tick, crawl_delay=delay), on_run=_print_run,
                      on_problem=lambda line: err.print(f"warning: {line}", highlight=False, markup=False,
                                                        soft_wrap=True))

    def stop(signum, frame):
        if watcher.stop_event.is_set():
            raise KeyboardInterrupt   # a second signal: stop now
        err.print("stopping after the request in flight (again to stop now)", highlight=False, markup=False)
        watcher.stop_event.set()

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if not watcher.sources() and not once:
            err.print(f"no sources in {backend.root}/sources.toml yet (tgsearch sources add crawl CHANNEL); "
                      "watching the file", highlight=False, markup=False, soft_wrap=True)
        watcher.run(once=once)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        backend.close()   # the worker finishes its round: what was stored gets indexed at the next start otherwise
    if once and any(r.error for r in watcher.runs):
        sys.exit(2)
