"""The command line: a thin layer over the library (see `tgsearch --help`)."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from .backend import open_backend
from .errors import TgsearchError
from .export import FORMATS, write_csv, write_jsonl

err = Console(stderr=True)
out = Console()

db_option = click.option(
    "--db", "db", envvar="TGSEARCH_DB", default="./tgsearch-data", show_default=True,
    help="Data folder (store and indexes). Env: TGSEARCH_DB.",
)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False, soft_wrap=True)
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
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def ingest(paths, db, fmt, encoding, as_json, quiet):
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
        report = backend.ingest(files, encoding=encoding, format=fmt, on_file=on_file)
    summary = report.to_dict()
    if as_json:
        out.print_json(json.dumps(summary, ensure_ascii=False))
    else:
        out.print(
            f"files: {summary['files']}  posts: {summary['posts']}  new: {summary['new']}  "
            f"updated: {summary['updated']}  unchanged: {summary['unchanged']}  "
            f"errors: {len(summary['errors'])}  (store: {backend.root})",
            highlight=False,
        )
        for fmt_name, n in summary["by_format"].items():
            out.print(f"  {fmt_name}: {n} posts", highlight=False)
    backend.close()
    if report.failed_files:
        sys.exit(2)


@main.command()
@db_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True)
@click.option("--output", "-o", type=click.Path(), default="-", help="File to write (default: stdout).")
def export(db, fmt, output):
    """Write every post with all its fields as JSON Lines or CSV."""
    backend = open_backend(db, create=False)
    stream = sys.stdout if output == "-" else open(output, "w", encoding="utf-8", newline="")
    try:
        writer = write_csv if fmt == "csv" else write_jsonl
        n = writer(backend.iter_posts(), stream)
    finally:
        if stream is not sys.stdout:
            stream.close()
    if output != "-":
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
    for key in ("index", "vectors"):
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


if __name__ == "__main__":  # pragma: no cover
    main()
