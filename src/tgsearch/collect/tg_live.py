"""Live Telegram events for `tgsearch watch`: new messages, albums, edits and deletions stored the
way `tgsearch sync` stores them. The handlers never move a sync cursor (a live message may follow
a gap only the next sync fills), so the next `sync` still reads everything since its cursor.

    handlers = attach_live(client, backend, ["riverdaily"])   # [(callback, event builder), ...]
    ...
    for callback, event in handlers:
        client.remove_event_handler(callback, event)

Each `on_*` coroutine takes the backend and a Telethon event and can be called directly.
"""

from __future__ import annotations

from telethon import events, utils
from telethon.tl import types

from .tg_messages import channel_slug, is_content, to_post


async def _channel_of(backend, event) -> tuple[str, str, object]:
    """(slug, title, entity or input peer or None) of an event's chat: the entity Telethon has,
    else the channel whose sync cursor records that peer (no request), else the entity asked for."""
    chat = getattr(event, "chat", None)
    if isinstance(chat, (types.Channel, types.Chat)):
        return channel_slug(chat), chat.title or "", chat
    chat_id = getattr(event, "chat_id", None)
    slug = backend.sync_channel_of_peer(chat_id) if chat_id is not None else None
    if slug:
        cursor = backend.get_sync_cursor(slug)
        real, kind = utils.resolve_id(chat_id)
        peer = (types.InputPeerChannel(real, cursor["access_hash"] or 0) if kind is types.PeerChannel
                else types.InputPeerChat(real))
        return slug, "", peer
    try:
        chat = await event.get_chat()
    except (ValueError, TypeError, ConnectionError, OSError):
        chat = None
    if isinstance(chat, (types.Channel, types.Chat)):
        return channel_slug(chat), chat.title or "", chat
    return "", "", None


def _store(backend, posts) -> None:
    posts = [p for p in posts if p is not None]
    if posts:
        backend.write_posts(posts, after_write=True, wait=False)


async def _rebuild(backend, client, entity, slug: str, title: str, post_id: str, message_ids) -> None:
    """Store a post again from its messages as Telegram has them now (gone: marked deleted)."""
    got = await client.get_messages(entity, ids=list(message_ids)) if message_ids else []
    if not title:   # the chat's title is not known here: keep the one stored
        title = backend.get(post_id).channel_title
    post = to_post([m for m in got if is_content(m)], slug, title, post_id=post_id)
    if post is None:
        backend.write_deleted([post_id], after_write=True, wait=False)
    else:
        _store(backend, [post])


async def on_new_message(backend, event) -> None:
    """A new message (an album's messages come through `on_album`)."""
    message = event.message
    if message.grouped_id or not is_content(message):
        return
    slug, title, _ = await _channel_of(backend, event)
    if slug:
        _store(backend, [to_post(message, slug, title)])


async def on_album(backend, event) -> None:
    """An album: one post."""
    slug, title, _ = await _channel_of(backend, event)
    if slug:
        _store(backend, [to_post(list(event.messages), slug, title)])


async def on_message_edited(backend, event) -> None:
    """An edit: the stored post gets the new text (an album's post is rebuilt from all its messages)."""
    message = event.message
    if not is_content(message):
        return
    slug, title, entity = await _channel_of(backend, event)
    if not slug:
        return
    stored = backend.posts_with_message(slug, [message.id])
    if stored and len(stored[0][1]) > 1:
        await _rebuild(backend, event.client, entity or message.peer_id, slug, title, *stored[0])
        return
    _store(backend, [to_post(message, slug, title, post_id=stored[0][0] if stored else None)])


async def on_message_deleted(backend, event) -> None:
    """Deletions: posts whose messages are all gone are marked deleted (kept, hidden from search);
    an album that lost some is rebuilt from the rest. Telegram names the chat only for channels
    and supergroups: other deletions are left to the next `sync --recheck`."""
    if event.chat_id is None:
        return
    slug, title, entity = await _channel_of(backend, event)
    if not slug:
        return
    deleted = set(event.deleted_ids)
    gone = []
    for post_id, mids in backend.posts_with_message(slug, deleted):
        rest = [m for m in mids if m not in deleted]
        if rest:
            await _rebuild(backend, event.client, entity or utils.get_peer(event.chat_id), slug, title, post_id, rest)
        else:
            gone.append(post_id)
    backend.write_deleted(gone, after_write=True, wait=False)


def attach_live(client, backend, channels) -> list[tuple[object, object]]:
    """Register the live handlers on `client` for `channels` (names, ids or entities; None or
    empty = every chat) and return them as [(callback, event builder)] for remove_event_handler."""
    chats = list(channels) if channels else None

    def bind(handler):
        async def callback(event):
            await handler(backend, event)
        callback.__name__ = handler.__name__
        return callback

    handlers = [(bind(on_new_message), events.NewMessage(chats=chats)),
                (bind(on_album), events.Album(chats=chats)),
                (bind(on_message_edited), events.MessageEdited(chats=chats)),
                (bind(on_message_deleted), events.MessageDeleted(chats=chats))]
    for callback, event in handlers:
        client.add_event_handler(callback, event)
    return handlers
