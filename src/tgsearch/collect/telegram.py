"""`tgsearch sync`: channels, supergroups and groups read through the Telegram API (Telethon), with
the user's own api_id / api_hash and a session file kept in the data folder.

Library use takes a ready client (the caller's own, connected and authorised, or not yet
connected: `sync_async` connects it)::

    from tgsearch.backend import open_backend
    from tgsearch.collect.telegram import SyncConfig, sync

    reports = sync(open_backend("data"), ["riverdaily"], config=SyncConfig(recheck=50), client=my_client)

Per channel: the history from the cursor on, oldest first (`iter_messages(min_id=cursor,
reverse=True)`), in batches; each batch is stored, then the cursor moves to the newest id stored,
so a first backfill and every later sync resume where a killed run stopped. Then the most recent
`recheck` stored posts are asked for again by id: gone ones are marked deleted, edited ones get
their new text, new counters are refreshed in place (no re-index). Flood waits are the
collector's: short ones are waited (and reported), a long one stops that channel.
"""

from __future__ import annotations

import asyncio
import os
import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Awaitable, Callable

from telethon import TelegramClient, errors, utils
from telethon.tl import types

from ..errors import SyncError
from ..sources import channel_name
from .tg_messages import channel_slug, group_albums, to_post

CONFIG_FILE = "telegram.toml"
SESSION_NAME = "telegram"          # Telethon adds ".session": <db>/telegram.session
NOT_AUTHORISED = "not logged in to Telegram (no authorised session in {db}); run `tgsearch login --db {db}` first"
_NAME = re.compile(r"^(?:(?:https?://)?(?:www\.)?t(?:elegram)?\.me/(?:s/)?|@)?([A-Za-z][A-Za-z0-9_]{3,31})/?$")
_CHAT_ID = re.compile(r"^(?:c|-100)(\d+)$")


@dataclass
class SyncConfig:
    takeout: bool = False              # read through a takeout session (data export: fewer flood waits)
    recheck: int = 100                 # re-poll this many most recent stored posts for edits and deletions
    limit: int | None = None           # at most this many messages per channel and run
    batch: int = 100                   # messages stored per step (the cursor moves after each)
    max_flood_wait: float = 60.0       # wait out a flood wait up to this many seconds, else stop the channel
    sleep: Callable[[float], Awaitable] | None = None   # asyncio.sleep unless given (tests)


@dataclass
class SyncReport:
    channel: str
    title: str = ""
    messages: int = 0                  # messages read from the history this run
    batches: int = 0
    new: int = 0
    updated: int = 0
    refreshed: int = 0
    unchanged: int = 0
    deleted: int = 0
    rechecked: int = 0
    flood_waited: float = 0.0          # seconds waited on flood waits
    last_id: int = 0                   # the cursor: every message up to it is stored
    complete: bool = False             # the history has been read up to the newest message
    error: str = ""

    def add(self, result) -> None:
        self.new += result.new
        self.updated += result.updated
        self.refreshed += result.refreshed
        self.unchanged += result.unchanged

    def to_dict(self) -> dict:
        return asdict(self)


# -- credentials, session, client --------------------------------------------------------------
def load_credentials(db) -> tuple[int, str]:
    """(api_id, api_hash) from TGSEARCH_API_ID / TGSEARCH_API_HASH, else `<db>/telegram.toml`."""
    path = Path(db) / CONFIG_FILE
    api_id, api_hash = os.environ.get("TGSEARCH_API_ID"), os.environ.get("TGSEARCH_API_HASH")
    if not (api_id and api_hash) and path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise SyncError(f"{path}: cannot read ({e}); write api_id = 12345 and api_hash = \"...\"") from e
        api_id, api_hash = api_id or data.get("api_id"), api_hash or data.get("api_hash")
    if not api_id or not api_hash:
        raise SyncError(f"no Telegram API credentials: set TGSEARCH_API_ID and TGSEARCH_API_HASH or write {path} "
                        "(api_id = 12345, api_hash = \"...\"; get them at https://my.telegram.org)")
    try:
        api_id = int(api_id)
    except (TypeError, ValueError):
        raise SyncError(f"api_id must be a number (from https://my.telegram.org), not {str(api_id)[:20]!r}") from None
    if not isinstance(api_hash, str) or not re.fullmatch(r"[0-9a-fA-F]{32}", api_hash.strip()):
        raise SyncError("api_hash must be the 32 hexadecimal digits https://my.telegram.org shows")
    return api_id, api_hash.strip()


def make_client(db) -> TelegramClient:
    """A TelegramClient with the user's credentials and the session file `<db>/telegram.session`
    (created private: 0600, in a folder only the user can enter when tgsearch creates it)."""
    api_id, api_hash = load_credentials(db)
    root = Path(db)
    old = os.umask(0o077)
    try:
        root.mkdir(parents=True, exist_ok=True)
        client = TelegramClient(str(root / SESSION_NAME), api_id, api_hash)
    finally:
        os.umask(old)
    session = root / f"{SESSION_NAME}.session"
    if session.exists():
        os.chmod(session, 0o600)
    return client


# Tests (and embedders) replace this: db folder -> a TelegramClient.
client_factory: Callable[[Path], TelegramClient] = make_client


# -- errors ------------------------------------------------------------------------------------
def translate(channel: str, what: str, e: BaseException) -> SyncError:
    """A Telethon error met while `what` as one readable line naming the channel."""
    if isinstance(e, (errors.ChannelPrivateError, errors.ChatForbiddenError, errors.ChannelInvalidError)):
        return SyncError(f"{channel}: private, or this account cannot read it (banned or not a member); "
                         "join it with your account first")
    if isinstance(e, (errors.UsernameNotOccupiedError, errors.UsernameInvalidError, ValueError)):
        return SyncError(f"{channel}: no such channel or group on Telegram; check the name")
    if isinstance(e, errors.AuthKeyError) or isinstance(e, errors.UnauthorizedError):
        return SyncError(f"{channel}: the Telegram session is no longer authorised ({e.message}); "
                         "run `tgsearch login` again")
    if isinstance(e, errors.RPCError):
        return SyncError(f"{channel}: Telegram refused {what} ({e.message or type(e).__name__})")
    return SyncError(f"{channel}: connection to Telegram failed while {what} ({type(e).__name__}: {e}); run again")


def parse_target(value: str) -> tuple[str, object]:
    """'name', '@name', 't.me/name' -> ('name', 'name'); 'c123' / '-100123' -> ('c123', PeerChannel)."""
    value = str(value).strip()
    m = _CHAT_ID.match(value)
    if m:
        return f"c{m.group(1)}", types.PeerChannel(int(m.group(1)))
    m = _NAME.match(value)
    if not m:
        raise SyncError(f"{value!r}: not a channel (expected a username such as riverdaily, @riverdaily, "
                        "https://t.me/riverdaily, or c<id> for one synced before)")
    return channel_name(m.group(1)), m.group(1)


# -- one run -----------------------------------------------------------------------------------
class Syncer:
    """One sync run over one client (a takeout client when asked)."""

    def __init__(self, client, backend, config: SyncConfig, on_batch=None, stop=None):
        self.client, self.backend = client, backend
        self.config, self.on_batch, self.stop = config, on_batch, stop
        self.sleep = config.sleep or asyncio.sleep
        self.wrote = False

    async def call(self, report: SyncReport, what: str, request: Callable[[], Awaitable]):
        """`await request()`, waiting out short flood waits (never swallowing one)."""
        while True:
            try:
                return await request()
            except errors.FloodWaitError as e:
                if e.seconds > self.config.max_flood_wait:
                    raise SyncError(f"{report.channel}: Telegram asks to wait {e.seconds} s before {what} "
                                    f"(flood wait longer than --max-flood-wait {self.config.max_flood_wait:g}); "
                                    "stopped this channel, run again later") from e
                report.flood_waited += e.seconds
                await self.sleep(e.seconds)
            except SyncError:
                raise
            except (errors.RPCError, ValueError, ConnectionError, OSError) as e:
                raise translate(report.channel, what, e) from e

    async def resolve(self, report: SyncReport, lookup, cursor: dict | None):
        """The channel's entity: by the peer recorded in its cursor (no username lookup), else by name."""
        if cursor and cursor["peer_id"] is not None:
            real, kind = utils.resolve_id(cursor["peer_id"])
            peer = (types.InputPeerChannel(real, cursor["access_hash"] or 0) if kind is types.PeerChannel
                    else types.InputPeerChat(real))
            try:
                return await self.call(report, "looking up the channel", lambda: self.client.get_entity(peer))
            except SyncError as e:
                if "flood wait" in e.message or isinstance(lookup, types.PeerChannel):
                    raise
        return await self.call(report, "looking up the channel", lambda: self.client.get_entity(lookup))

    async def channel(self, value: str) -> SyncReport:
        slug, lookup = parse_target(value)
        report = SyncReport(slug)
        try:
            await self._channel(report, slug, lookup)
        except SyncError as e:
            report.error = e.message
        return report

    async def _channel(self, report: SyncReport, slug: str, lookup) -> None:
        backend, config = self.backend, self.config
        cursor = backend.get_sync_cursor(slug)
        entity = await self.resolve(report, lookup, cursor)
        if not isinstance(entity, (types.Channel, types.Chat)):
            raise SyncError(f"{slug}: not a channel or group (a user or bot); not synced")
        if channel_slug(entity) != slug:
            slug = report.channel = channel_slug(entity)
            cursor = backend.get_sync_cursor(slug)
        report.title = title = entity.title or slug
        peer = {"peer_id": utils.get_peer_id(entity), "access_hash": getattr(entity, "access_hash", None)}
        last = start = cursor["last_id"] if cursor else 0
        complete = bool(cursor and cursor["complete"])
        report.last_id, report.complete = last, complete
        budget = config.limit
        batch = max(20, config.batch)   # above an album's size (10), so a batch always moves on
        while (budget is None or budget > 0) and not (self.stop is not None and self.stop.is_set()):
            n = batch if budget is None else min(batch, budget)
            got = await self.call(report, "reading the history", lambda: self.client.get_messages(
                entity, limit=n, min_id=last, reverse=True, wait_time=0))
            got = sorted((m for m in got if m is not None and m.id > last), key=lambda m: m.id)
            full = len(got) >= n
            keep = got
            if full and got[-1].grouped_id:
                # an album the batch cut goes whole into the next batch (its messages are consecutive)
                cut = len(got)
                while cut > 0 and got[cut - 1].grouped_id == got[-1].grouped_id:
                    cut -= 1
                keep = got[:cut] or got
            if keep:
                posts = [p for g in group_albums(keep) if (p := to_post(g, slug, title)) is not None]
                report.add(backend.write_posts(posts))
                self.wrote = self.wrote or bool(posts)
                last = max(m.id for m in keep)
                report.messages += len(keep)
                report.batches += 1
                if budget is not None:
                    budget -= len(keep)
            complete = complete or not full
            backend.set_sync_cursor(slug, last_id=last, complete=complete, **peer)   # after the batch is stored
            report.last_id, report.complete = last, complete
            if self.on_batch:
                self.on_batch(report)
            if not full:
                break
        if config.recheck > 0 and start > 0 and not (self.stop is not None and self.stop.is_set()):
            recent = backend.recent_messages(slug, config.recheck, up_to=start)
            report.rechecked = len(recent)
            await self.refresh(report, entity, slug, title, recent)

    async def refresh(self, report: SyncReport, entity, slug: str, title: str, posts) -> None:
        """Ask for stored posts' messages again by id: gone -> marked deleted; else stored again
        (an edit updates the post, new counters are refreshed in place)."""
        ids = sorted({m for _, mids in posts for m in mids})
        found = {}
        for start in range(0, len(ids), 100):
            chunk = ids[start:start + 100]
            got = await self.call(report, "re-reading recent messages", lambda: self.client.get_messages(
                entity, ids=chunk, wait_time=0))
            found.update({mid: m for mid, m in zip(chunk, got) if isinstance(m, types.Message)})
        gone, again = [], []
        for post_id, mids in posts:
            post = to_post([found[m] for m in mids if m in found], slug, title, post_id=post_id)
            (again if post is not None else gone).append(post if post is not None else post_id)
        report.add(self.backend.write_posts(again))
        report.deleted += self.backend.write_deleted(gone)
        self.wrote = self.wrote or bool(again or gone)


async def sync_async(backend, channels: list[str], config: SyncConfig | None = None, *, client=None,
                     on_batch: Callable[[SyncReport], None] | None = None,
                     on_channel: Callable[[SyncReport], None] | None = None, stop=None) -> list[SyncReport]:
    """Sync every channel (one failing costs only itself), then bring the indexes up to date.
    `stop` (a threading.Event, `tgsearch watch`): set, the run ends before its next request.

    `client`: a TelegramClient (your own; connected here if it is not); None = the data folder's
    (`client_factory(backend.root)`, disconnected at the end). Raises SyncError when Telegram
    cannot be reached or the session is not authorised; a channel's failure is its report's error."""
    config = config or SyncConfig()
    own = client is None
    if own:
        client = client_factory(backend.root)
    client.flood_sleep_threshold = 0   # flood waits come to us (Telethon ignores a per-call threshold)
    reports: list[SyncReport] = []
    syncer = None
    try:
        try:
            if not client.is_connected():
                await client.connect()
            authorised = await client.is_user_authorized()
        except (OSError, ConnectionError, errors.RPCError) as e:
            raise SyncError(f"cannot reach Telegram ({type(e).__name__}: {e}); check the network and run again") from e
        if not authorised:
            raise SyncError(NOT_AUTHORISED.format(db=backend.root))

        async def run(c) -> None:
            nonlocal syncer
            syncer = Syncer(c, backend, config, on_batch, stop)
            for value in channels:
                if stop is not None and stop.is_set():
                    break
                try:
                    report = await syncer.channel(value)
                except SyncError as e:
                    report = SyncReport(str(value), error=e.message)
                reports.append(report)
                if on_channel:
                    on_channel(report)

        if config.takeout:
            try:
                async with client.takeout(finalize=True, channels=True, megagroups=True, chats=True) as takeout:
                    await run(takeout)
            except errors.TakeoutInitDelayError as e:
                raise SyncError(f"Telegram wants the data export (--takeout) confirmed in a Telegram app; "
                                f"allow it there, or wait {e.seconds} s, then run again") from e
            except errors.RPCError as e:
                raise SyncError(f"Telegram refused the takeout session ({e.message}); run without --takeout") from e
            except ValueError as e:   # Telethon: a takeout of this session is still open, or did not finish
                raise SyncError(f"takeout session: {e}; run without --takeout") from e
        else:
            await run(client)
    finally:
        if own:
            await client.disconnect()
        if syncer is not None and syncer.wrote:
            backend.after_write()
    return reports


def sync(backend, channels: list[str], config: SyncConfig | None = None, *, client=None,
         on_batch: Callable[[SyncReport], None] | None = None,
         on_channel: Callable[[SyncReport], None] | None = None, stop=None) -> list[SyncReport]:
    """`sync_async` for callers without an event loop (the client must not be bound to another loop)."""
    return asyncio.run(sync_async(backend, channels, config, client=client, on_batch=on_batch,
                                  on_channel=on_channel, stop=stop))


def sync_source(backend, source, *, stop=None, client=None, **options) -> list[SyncReport]:
    """One `sync` entry of the sources file (`tgsearch watch`): `options` are SyncConfig fields.
    A run that cannot start (not logged in, Telegram unreachable) is the report's error."""
    try:
        return sync(backend, [source.channel], SyncConfig(**options), client=client, stop=stop)
    except SyncError as e:
        return [SyncReport(source.channel, error=e.message)]


from .tg_live import attach_live  # noqa: E402  (live events for `tgsearch watch`; uses Syncer helpers)

__all__ = ["SyncConfig", "SyncReport", "Syncer", "attach_live", "client_factory", "load_credentials",
           "make_client", "sync", "sync_async", "sync_source"]
