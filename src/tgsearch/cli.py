"""The command line: a thin layer over the library (see `tgsearch --help`)."""

from __future__ import annotations

import json
import sys
import time

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from .backend import open_backend
from .errors import TgsearchError
from .export import CLI_FORMATS, write_csv, write_jsonl

err = Console(stderr=True)
out = Console()

db_option = click.option(
    "--db", "db", envvar="TGSEARCH_DB", default="./tgsearch-data", show_default=True,
    help="Data folder (store and indexes), or a postgresql:// URL (the server backend). Env: TGSEARCH_DB.",
)


def search_options(command):
    """--mode, --sort, --channel, --since, --until: the search options `search` and `export` share."""
    for option in reversed((
        click.option("--mode", type=click.Choice(["hybrid", "lexical", "semantic"]), default="hybrid", show_default=True),
        click.option("--sort", type=click.Choice(["relevance", "date", "date_asc"]), default="relevance",
                     show_default=True),
        click.option("--channel", "channels", multiple=True, help="Channel slug or title (repeatable)."),
        click.option("--since", default=None, help="From this day, YYYY-MM-DD."),
        click.option("--until", default=None, help="Up to this day, YYYY-MM-DD."),
    )):
        command = option(command)
    return command


def fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", markup=True, highlight=False, soft_wrap=True)
    sys.exit(code)


class Main(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TgsearchError as e:
            fail(e.message)


@click.group(cls=Main)
@click.version_option(__version__, prog_name="tgsearch")
def main() -> None:
    """tgsearch: search Telegram channels, groups and the articles they carry."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@db_option
@click.option("--format", "fmt", default=None, help="Force a reader instead of auto-detecting (e.g. jsonl).")
@click.option("--encoding", default=None, help="Text encoding of the inputs when not UTF-8 (e.g. cp1251).")
@click.option("--channel", default=None,
              help="Channel name for inputs that carry none (text dumps, articles, JSON Lines without \"channel\").")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def ingest(paths, db, fmt, encoding, channel, as_json, quiet):
    """Read files or folders (auto-detected formats) into the store."""
    backend = open_backend(db)
    show_progress = not quiet and not as_json and err.is_terminal
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, transient=True, disable=not show_progress)

    def on_file(report):
        for line in [report.error, *report.record_errors]:
            if line:
                err.print(f"[red]error:[/red] {line}", markup=True, highlight=False, soft_wrap=True)
        for line in report.warnings:
            err.print(f"[yellow]warning:[/yellow] {line}", markup=True, highlight=False, soft_wrap=True)
        progress.update(task, advance=1, description=f"ingest {report.path[-40:]}")

    from .sources import walk

    files = list(walk(list(paths)))
    with progress:
        task = progress.add_task("ingest", total=len(files))
        extra = {}
        if hasattr(backend, "catch_up"):       # PostgreSQL: vectors and stories follow in this command
            def on_derived(kind, done):
                progress.update(task, description=f"{kind}: {done} posts")
            extra["on_derived"] = on_derived
        report = backend.ingest(files, encoding=encoding, format=fmt, channel=channel, on_file=on_file, **extra)
    summary = report.to_dict()
    if as_json:
        out.print_json(json.dumps(summary, ensure_ascii=False))
    else:
        out.print(
            f"files: {summary['files']}  posts: {summary['posts']}  new: {summary['new']}  "
            f"updated: {summary['updated']}  refreshed: {summary['refreshed']}  unchanged: {summary['unchanged']}  "
            f"errors: {len(summary['errors'])}  (store: {backend.where})",
            highlight=False,
        )
        for fmt_name, n in summary["by_format"].items():
            out.print(f"  {fmt_name}: {n} posts", highlight=False)
    backend.close()
    if report.failed_files:
        sys.exit(2)


@main.command()
@db_option
@click.option("--format", "fmt", type=click.Choice(CLI_FORMATS), default="jsonl", show_default=True,
              help="jsonl/csv: every field; digest: posts with a publication, as a digest channel prints them "
                   "(read back by `ingest` when the file ends in .txt).")
@click.option("--output", "-o", type=click.Path(), default="-", help="File to write (default: stdout).")
@click.option("--q", "query", default=None, help="Export the results of this search (every one), in its order.")
@search_options
@click.option("--include-deleted", is_flag=True, help="Also posts deleted at the source (field deleted=true).")
def export(db, fmt, output, query, mode, sort, channels, since, until, include_deleted):
    """Write every post (or every result of a search) with all its fields as JSON Lines or CSV,
    or the press-digest posts among them as a digest channel's messages."""
    backend = open_backend(db, create=False)
    if query is not None or channels or since or until:
        from .search.types import SearchRequest

        req = SearchRequest(q=query or "", mode=mode, sort=sort, channels=tuple(channels),
                            since=_day_option(since, "since"), until=_day_option(until, "until", end=True))
        _, posts = backend.search_all(req)
    else:
        posts = backend.iter_posts(deleted=include_deleted)
    stream = sys.stdout if output == "-" else open(output, "w", encoding="utf-8", newline="")
    counts: dict = {}
    try:
        if fmt == "digest":
            from .export_digest import write_digest

            n = write_digest(posts, stream, counts=counts)
        else:
            writer = write_csv if fmt == "csv" else write_jsonl
            n = writer(posts, stream, getattr(backend, "export_fields", None))
    finally:
        if stream is not sys.stdout:
            stream.close()
    if fmt == "digest":
        err.print(f"exported {n} digest posts in {counts['messages']} messages to {'stdout' if output == '-' else output}; "
                  f"skipped {counts['skipped']} posts without a publication", highlight=False)
    elif output != "-":
        err.print(f"exported {n} posts to {output}", highlight=False)


@main.command()
@db_option
@click.option("--json", "as_json", is_flag=True)
def stats(db, as_json):
    """Counts: posts, channels, dates, files, index state."""
    backend = open_backend(db, create=False)
    data = backend.stats()
    if as_json:
        out.print_json(json.dumps(data, ensure_ascii=False, default=str))
        return
    out.print(f"store: {data['db']}", highlight=False)
    out.print(f"posts: {data['posts']}  ({', '.join(f'{k}: {v}' for k, v in data['kinds'].items())})", highlight=False)
    out.print(f"dates: {data['first_date']} .. {data['last_date']}", highlight=False)
    for key in ("index", "vectors", "stories"):
        if key in data:
            out.print(f"{key}: {data[key]}", highlight=False)
    table = Table("channel", "title", "posts", "first", "last")
    for ch in data["channels"]:
        table.add_row(ch["channel"], ch["title"] or "", str(ch["posts"]), ch["first"] or "", ch["last"] or "")
    out.print(table)


@main.command()
@click.argument("post_id")
@db_option
def show(post_id, db):
    """Print one post with every field as JSON."""
    backend = open_backend(db, create=False)
    out.print_json(json.dumps(backend.get(post_id).to_dict(), ensure_ascii=False))


@main.group()
def channels() -> None:
    """List channels; give a channel the name the UI shows."""


@channels.command("list")
@db_option
def channels_list(db):
    """Every channel: slug, title shown, posts, first and last date."""
    backend = open_backend(db, create=False)
    table = Table("channel", "title", "posts", "first", "last")
    for ch in backend.channels():
        table.add_row(ch["channel"], ch["title"] or "", str(ch["posts"]), ch["first"] or "", ch["last"] or "")
    out.print(table)


@channels.command("rename")
@click.argument("channel")
@click.argument("title")
@db_option
def channels_rename(channel, title, db):
    """Show CHANNEL (its slug, see `channels list`) as TITLE everywhere, for good (kept across ingests)."""
    backend = open_backend(db, create=False, read_only=False)
    n = backend.rename_channel(channel, title.strip())
    err.print(f"{channel}: now shown as {title.strip()!r} ({n} posts)", highlight=False, markup=False)


# -- search, serve, reindex, check -----------------------------------------------------------------
def _day_option(value, name, end=False):
    if not value:
        return None
    from .search.query import parse_day

    return parse_day(value, f"--{name} {value}", len(name) + 3, end=end)


@main.command()
@click.argument("query", nargs=-1)
@db_option
@click.option("--limit", default=10, show_default=True, type=int)
@click.option("--offset", default=0, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@search_options
@click.option("--kind", type=click.Choice(["post", "article"]), default=None)
def search(query, db, limit, offset, as_json, sort, mode, channels, since, until, kind):
    """Search posts (see docs/query-language.md): words, "phrases", -exclude, OR, channel:, since:, ..."""
    from .search.types import SearchRequest

    backend = open_backend(db, create=False)
    req = SearchRequest(q=" ".join(query), limit=limit, offset=offset, sort=sort, mode=mode, channels=tuple(channels),
                        since=_day_option(since, "since"), until=_day_option(until, "until", end=True), kind=kind)
    loading = ""
    if mode != "lexical" and backend.semantic_available():
        # A one-shot command loads the query model first; took_ms then times the search alone.
        started = time.perf_counter()
        backend.warm_up()
        loading = f"; query model loaded in {time.perf_counter() - started:.1f} s"
    result = backend.search(req)
    if as_json:
        out.print_json(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    import html as _html
    import re as _re

    if result.notice:
        err.print(f"note: {result.notice}", highlight=False, markup=False)
    out.print(f"{result.total} posts  ({result.took_ms:.1f} ms{loading})", highlight=False)
    for hit in result.hits:
        marked = _re.sub(r"<mark>(.*?)</mark>", lambda m: "[bold yellow]" + _esc(_html.unescape(m.group(1))) + "[/]",
                         _esc_outside(hit.snippet)).replace("\n", " ")
        out.print(f"[bold]{_esc(hit.date or '')[:16]}[/]  [cyan]{_esc(hit.channel_title or hit.channel)}[/]  "
                  f"{_esc(hit.url or hit.id)}  [dim]{hit.score:.3f}[/]", highlight=False)
        if hit.title:
            out.print(f"  [bold]{_esc(hit.title)}[/]", highlight=False)
        out.print("  " + marked, highlight=False)


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _esc_outside(snippet: str) -> str:
    """Escape rich markup in an HTML snippet while keeping <mark> tags; unescape HTML entities outside them."""
    import html as _html
    import re as _re

    parts = _re.split(r"(<mark>.*?</mark>)", snippet)
    return "".join(p if p.startswith("<mark>") else _esc(_html.unescape(p)) for p in parts)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_bind(host: str, token: str | None) -> None:
    """Refuse to expose the server beyond this machine without a token."""
    if host not in LOOPBACK and not host.startswith("127.") and not token:
        raise click.UsageError(f"refusing to listen on {host} without a token: pass --token or set TGSEARCH_TOKEN "
                               "(or bind 127.0.0.1)")


def _quiet_gc() -> None:
    """A long-lived server: what warm-up loaded (model, caches) leaves the cyclic collector's view,
    and young collections run less often. A search allocates many short-lived objects; with the
    defaults a full collection over everything in memory ran every few searches (~100 ms each)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


@main.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--token", envvar="TGSEARCH_TOKEN", default=None,
              help="Require 'Authorization: Bearer TOKEN' on the API (and a login in the UI). Env: TGSEARCH_TOKEN.")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Without a token only loopback Host names are answered (DNS rebinding); also answer NAME "
                   "(repeatable).")
@click.option("--concurrency", type=click.IntRange(min=0), envvar="TGSEARCH_CONCURRENCY", default=None,
              help="Searches/exports running at once (default: one per core; 0: no limit). Env: TGSEARCH_CONCURRENCY.")
@click.option("--queue", "queue", type=click.IntRange(min=0), envvar="TGSEARCH_QUEUE", default=None,
              help="Searches waiting for a slot (default: 4 per running one); the rest get 503 + Retry-After. "
                   "Env: TGSEARCH_QUEUE.")
@click.option("--queue-wait", type=click.FloatRange(min=0), envvar="TGSEARCH_QUEUE_WAIT", default=5.0,
              show_default=True, help="Seconds a search may wait for a slot before a 503. Env: TGSEARCH_QUEUE_WAIT.")
@click.option("--watch", "watch_sources", is_flag=True,
              help="Also keep the sources file's channels current in this process (as `tgsearch watch`).")
@click.option("--crawl-delay", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="With --watch: seconds between two requests of a crawl.")
@click.option("--read-replica", envvar="TGSEARCH_READ_REPLICA", default=None, metavar="URL",
              help="With a postgresql:// --db: send searches to this streaming replica (writes go to --db).")
def serve(db, host, port, token, allow_hosts, concurrency, queue, queue_wait, watch_sources, crawl_delay, read_replica):
    """Run the web UI and HTTP API (docs at /api/docs)."""
    check_bind(host, token)
    import uvicorn

    from .api.app import create_app
    from .api.limits import LimitConfig, default_concurrency

    min_length = 16    # guessing is throttled (429 past 10 per address), not stopped: the length does that
    if token and len(token) < min_length:
        err.print(f"[yellow]warning:[/yellow] the token has {len(token)} characters; a wrong guess is refused with 429 "
                  f"after 10 per address, but the right one always passes, so use {min_length}+ random characters "
                  "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))')", highlight=False)

    running = default_concurrency() if concurrency is None else concurrency
    limits = LimitConfig(concurrency=running, queue=4 * running if queue is None else queue, queue_wait=queue_wait)
    backend = open_backend(db, worker=True, read_replica=read_replica)   # one background thread catches the indexes up
    watcher = None
    try:
        if watch_sources:
            from .cli_collect import _print_run
            from .collect.watch import Watcher, WatchSettings

            watcher = Watcher(backend, WatchSettings(crawl_delay=crawl_delay), on_run=_print_run,
                              on_problem=lambda line: err.print(f"warning: {line}", highlight=False, markup=False,
                                                                soft_wrap=True)).start()
        backend.warm_up()  # open the index, load the query embedder, before taking requests
        err.print(f"tgsearch: http://{host}:{port}/  (API docs: /api/docs; store: {backend.where})"
                  + ("; watching the sources file" if watcher else ""), highlight=False)
        app = create_app(backend, token=token, allowed_hosts=allow_hosts, limits=limits)
        _quiet_gc()
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        if watcher is not None:
            watcher.stop()   # a crawl stops before its next request
        backend.close()   # stops and joins the worker


@main.command()
@db_option
@click.option("--vectors", "vectors_model", default=None, metavar="MODEL",
              help="Instead: switch the embedding model and rebuild the vectors (use-multilingual-v3, e5-small-4bit, st:/path).")
@click.option("--stories", "stories", is_flag=True,
              help="Instead: rebuild stories, copies and entities from scratch (a progress line per 500 posts).")
def reindex(db, vectors_model, stories):
    """Rebuild the search index from the store (after an analyzer upgrade or index damage).

    The new index is built beside the live one, which keeps answering searches until it is swapped in."""
    backend = open_backend(db, create=False, read_only=False)
    started = time.perf_counter()
    if vectors_model:
        def progress(done, hwm):
            err.print(f"embedded {done} posts ({done / max(time.perf_counter() - started, 1e-9):.0f} posts/s)", highlight=False)

        n = backend.reindex_vectors(vectors_model, on_progress=progress)
        took = time.perf_counter() - started
        out.print(f"vectors ({vectors_model}): {n} posts in {took:.1f} s ({n / max(took, 1e-9):.0f} posts/s)", highlight=False)
        backend.close()
        return
    if stories:
        with Progress(TextColumn("stories"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err,
                      transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task("stories", total=None)
            n, status = backend.reindex_stories(
                on_progress=lambda done, total: bar.update(task, completed=done, total=total))
        took = time.perf_counter() - started
        backend.close()
        out.print(f"stories: {n} posts placed in {took:.1f} s ({n / max(took, 1e-9):.0f} posts/s): "
                  f"{status['stories']} stories, {status['copies']} copies", highlight=False)
        return
    n = backend.reindex()
    took = time.perf_counter() - started
    backend.close()
    out.print(f"indexed {n} posts in {took:.1f} s ({n / max(took, 1e-9):.0f} posts/s)", highlight=False)


@main.command()
@db_option
@click.option("--json", "as_json", is_flag=True)
def check(db, as_json):
    """Compare the search index with the store: counts, missing ids, high-water marks."""
    backend = open_backend(db, create=False)
    report = backend.check()
    if as_json:
        out.print_json(json.dumps(report, ensure_ascii=False))
    else:
        out.print(f"store: {report['store_posts']} posts (version {report['store_version']})  "
                  f"index: {report['indexed_posts']} posts (hwm {report['hwm']})  analyzer: {report['analyzer']}",
                  highlight=False)
        if report["missing_count"]:
            out.print(f"missing from index: {report['missing_count']} e.g. {', '.join(report['missing'][:5])}", highlight=False)
        if report["extra_count"]:
            out.print(f"in index but not in store: {report['extra_count']} e.g. {', '.join(report['extra'][:5])}", highlight=False)
        out.print("ok" if report["ok"] else "drift: run `tgsearch reindex`", highlight=False)
    if not report["ok"]:
        sys.exit(3)


# Collecting (crawl, fetch-articles, sources) lives in cli_collect; importing it registers its commands.
from . import cli_collect  # noqa: E402,F401
from . import cli_sync  # noqa: E402,F401  (login, sync: the Telegram API)
from . import cli_alerts  # noqa: E402,F401  (alerts: saved searches)
from . import cli_pg  # noqa: E402,F401  (postgres: a local PostgreSQL server)

if __name__ == "__main__":  # pragma: no cover
    # `python -m tgsearch.cli`: run the package module's group, the one cli_collect registered on
    from tgsearch.cli import main as _main

    _main()
