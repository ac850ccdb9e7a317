"""The Telegram API commands: login and sync (registered on `cli.main`)."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from .backend import open_backend
from .cli import db_option, err, main, out
from .errors import SyncError


class _PrivateUmask:
    """Files the command creates in the data folder (session, store) are the user's only."""

    def __enter__(self):
        self.old = os.umask(0o077)

    def __exit__(self, *exc):
        os.umask(self.old)


@main.command()
@db_option
def login(db):
    """Log in to Telegram with your account (phone, code, 2FA password); the session is kept in
    the data folder (DB/telegram.session, private) for `tgsearch sync`. Needs your API id and hash
    (TGSEARCH_API_ID / TGSEARCH_API_HASH, or DB/telegram.toml), from https://my.telegram.org."""
    from .collect import telegram

    async def run() -> str:
        from .backend import state_dir

        client = telegram.client_factory(state_dir(db))
        try:
            await client.start(phone=lambda: click.prompt("Phone number (international format, e.g. +7...)"),
                               code_callback=lambda: click.prompt("Code Telegram sent you"),
                               password=lambda: click.prompt("Two-step verification password", hide_input=True))
            me = await client.get_me()
        except (OSError, ConnectionError) as e:
            raise SyncError(f"cannot reach Telegram ({type(e).__name__}: {e}); check the network and try again") from e
        except RuntimeError as e:   # Telethon: too many wrong codes / passwords
            raise SyncError(f"login failed ({e})") from e
        finally:
            await client.disconnect()
        name = " ".join(x for x in (getattr(me, "first_name", ""), getattr(me, "last_name", "")) if x)
        return name + (f" (@{me.username})" if getattr(me, "username", None) else "")

    with _PrivateUmask():
        who = asyncio.run(run())
    err.print(f"logged in as {who}; session kept in {db}", highlight=False, markup=False, soft_wrap=True)


@main.command()
@click.argument("channels", nargs=-1)
@db_option
@click.option("--takeout", is_flag=True, help="Read through a takeout (data export) session: fewer flood waits "
                                              "on long histories; Telegram may ask you to allow it in an app.")
@click.option("--recheck", default=100, show_default=True, type=click.IntRange(min=0), metavar="N",
              help="Ask again for the N most recent stored posts per channel (edits, deletions, views).")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="At most N messages per channel this run.")
@click.option("--max-flood-wait", default=60.0, show_default=True, type=click.FloatRange(min=0), metavar="S",
              help="Wait out a flood wait of up to S seconds; a longer one stops that channel.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-channel report as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def sync(channels, db, takeout, recheck, limit, max_flood_wait, as_json, quiet):
    """Read channels, supergroups and groups your account can read through the Telegram API into
    the store: the whole history the first time, then what is new, edits and deletions. Without
    CHANNEL, the sync sources of DB/sources.toml. Needs `tgsearch login` first; never prompts."""
    from .collect import sources as sources_file
    from .collect.telegram import SyncConfig, sync_async

    from .backend import state_dir

    channels = list(channels) or [s.channel for s in sources_file.load(state_dir(db)) if s.kind == "sync"]
    if not channels:
        raise SyncError(f"nothing to sync: name a CHANNEL, or add one with `tgsearch sources add sync CHANNEL --db {db}`")
    config = SyncConfig(takeout=takeout, recheck=recheck, limit=limit, max_flood_wait=max_flood_wait)
    show_progress = not quiet and not as_json and err.is_terminal
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[counts]}"),
                        TimeElapsedColumn(), console=err, transient=True, disable=not show_progress)

    def on_batch(report):
        progress.update(task, description=f"sync {report.channel}",
                        counts=f"messages {report.messages}  new {report.new}")

    def on_channel(report):
        if report.error:
            err.print(f"[red]error:[/red] {report.error}", markup=True, highlight=False, soft_wrap=True)
        progress.update(task, advance=1)

    with _PrivateUmask():
        backend = open_backend(db)
        try:
            with progress:
                task = progress.add_task("sync", total=len(channels), counts="")
                reports = asyncio.run(sync_async(backend, channels, config, on_batch=on_batch, on_channel=on_channel))
        finally:
            backend.close()
    if as_json:
        out.print_json(json.dumps([r.to_dict() for r in reports], ensure_ascii=False))
    else:
        for r in reports:
            state = "failed" if r.error else ("history complete" if r.complete else "history partial")
            flood = f"  flood waited {r.flood_waited:g} s" if r.flood_waited else ""
            out.print(f"{r.channel}: messages {r.messages}  new {r.new}  updated {r.updated}  refreshed {r.refreshed}  "
                      f"deleted {r.deleted}{flood}  ({state})", highlight=False, markup=False, soft_wrap=True)
    if any(r.error for r in reports):
        sys.exit(2)
