"""Telethon messages (Telegram API) -> frozen `Post` records, at the edge like every other reader.

A post is one message, or one album (messages sharing a `grouped_id`: text from the captioned
message, every message id in `message_ids`, every media kind). Ids are `<channel>/<first message
id>`; the channel is the lower-case username (`sources.channel_name`), `c<id>` without one (as the
Desktop export reader names chats). Text is the message's plain text (entities give its links),
cleaned like the other readers'.
"""

from __future__ import annotations

from typing import Iterable

from telethon import helpers
from telethon.tl import types

from ..clean.markup import derive_title, find_links, tidy, unique
from ..post import Post
from ..sources import channel_name

# document attribute / flags -> the Post.media kind (as the Desktop export reader names them)
_MEDIA = {
    types.MessageMediaPhoto: "photo",
    types.MessageMediaGeo: "location",
    types.MessageMediaGeoLive: "location",
    types.MessageMediaVenue: "location",
    types.MessageMediaContact: "contact",
    types.MessageMediaGame: "game",
    types.MessageMediaInvoice: "invoice",
    types.MessageMediaPoll: "poll",
    types.MessageMediaDice: "dice",
    types.MessageMediaWebPage: "webpage",
    types.MessageMediaStory: "story",
    types.MessageMediaGiveaway: "giveaway",
    types.MessageMediaGiveawayResults: "giveaway",
    types.MessageMediaPaidMedia: "paid_media",
}


def channel_slug(entity) -> str:
    """'riverdaily' for a channel with a username, else 'c<id>' (also for basic groups)."""
    username = getattr(entity, "username", None)
    if not username:
        names = [u.username for u in getattr(entity, "usernames", None) or () if getattr(u, "active", False)]
        username = names[0] if names else None
    if username:
        return channel_name(username)
    return f"c{entity.id}"


def is_content(message) -> bool:
    """A message that can make a post (not empty, not a service message)."""
    return isinstance(message, types.Message)


def media_kind(media) -> str:
    if media is None or isinstance(media, types.MessageMediaEmpty):
        return ""
    if isinstance(media, types.MessageMediaDocument):
        doc = media.document
        attrs = getattr(doc, "attributes", None) or ()
        for attr in attrs:
            if isinstance(attr, types.DocumentAttributeSticker):
                return "sticker"
            if isinstance(attr, types.DocumentAttributeAnimated):
                return "gif"
        for attr in attrs:
            if isinstance(attr, types.DocumentAttributeVideo):
                return "round_video" if attr.round_message or media.round else "video"
            if isinstance(attr, types.DocumentAttributeAudio):
                return "voice" if attr.voice or media.voice else "audio"
        if media.video:
            return "video"
        if media.voice:
            return "voice"
        return "file"
    return _MEDIA.get(type(media), "media")


def _fallback_text(media) -> str:
    """A text for a message that has none (a poll's question and answers, a file's name)."""
    if isinstance(media, types.MessageMediaPoll):
        poll = media.poll
        question = getattr(poll.question, "text", poll.question) or ""
        answers = [getattr(a.text, "text", a.text) or "" for a in poll.answers]
        return "\n".join([question] + ["- " + a for a in answers if a]).strip()
    if isinstance(media, types.MessageMediaDocument):
        for attr in getattr(media.document, "attributes", None) or ():
            if isinstance(attr, types.DocumentAttributeAudio) and (attr.performer or attr.title):
                return " – ".join(x for x in (attr.performer, attr.title) if x)
            if isinstance(attr, types.DocumentAttributeFilename):
                return attr.file_name or ""
    return ""


def entity_links(message) -> list[str]:
    """Links of a message's entities: text links' targets and the URLs written in the text."""
    raw = message.message or ""
    links: list[str] = []
    wide = None
    for ent in message.entities or ():
        if isinstance(ent, types.MessageEntityTextUrl):
            links.append(ent.url)
        elif isinstance(ent, types.MessageEntityUrl):
            if wide is None:
                wide = helpers.add_surrogate(raw)  # entity offsets count UTF-16 code units
            url = helpers.del_surrogate(wide[ent.offset:ent.offset + ent.length]).strip()
            if url:
                links.append(url if "://" in url else "https://" + url)
    return links


def forward_origin(message) -> tuple[str, object]:
    """(origin channel, original date) of a forwarded message; ("", None) otherwise."""
    fwd = message.fwd_from
    if fwd is None:
        return "", None
    origin = ""
    chat = None
    forward = getattr(message, "forward", None)
    if forward is not None:
        try:
            chat = forward.chat or forward.sender
        except Exception:  # noqa: BLE001 - the entity was not in the response: use the header
            chat = None
    if chat is not None:
        if getattr(chat, "username", None):
            origin = channel_name(chat.username)
        else:
            origin = getattr(chat, "title", None) or " ".join(
                x for x in (getattr(chat, "first_name", None), getattr(chat, "last_name", None)) if x)
    if not origin:
        origin = fwd.from_name or fwd.post_author or ""
    if not origin and isinstance(fwd.from_id, types.PeerChannel):
        origin = f"c{fwd.from_id.channel_id}"
    elif not origin and isinstance(fwd.from_id, types.PeerUser):
        origin = f"user{fwd.from_id.user_id}"
    return origin, fwd.date


def reply_and_topic(message) -> tuple[int | None, int | None]:
    """(reply_to message id in the same chat, forum topic id) of a message."""
    head = message.reply_to
    if not isinstance(head, types.MessageReplyHeader):
        return None, None
    if head.forum_topic:
        if head.reply_to_top_id:        # a reply inside a topic
            return (head.reply_to_msg_id if not head.reply_to_peer_id else None), head.reply_to_top_id
        return None, head.reply_to_msg_id    # a message in a topic: reply_to_msg_id is the topic's root
    if head.reply_to_peer_id:
        return None, None               # a reply to another chat's message: its id means nothing here
    return head.reply_to_msg_id, None


def reactions(message) -> dict[str, int]:
    out: dict[str, int] = {}
    result = message.reactions
    for item in getattr(result, "results", None) or ():
        reaction = item.reaction
        if isinstance(reaction, types.ReactionEmoji):
            key = reaction.emoticon
        elif isinstance(reaction, types.ReactionPaid):
            key = "⭐"
        elif isinstance(reaction, types.ReactionCustomEmoji):
            key = "custom_emoji"
        else:
            continue
        out[key] = out.get(key, 0) + int(item.count)
    return out


def group_albums(messages: Iterable) -> list[list]:
    """Content messages in id order, consecutive ones of one album (grouped_id) together."""
    groups: list[list] = []
    for message in sorted((m for m in messages if is_content(m)), key=lambda m: m.id):
        if groups and message.grouped_id and groups[-1][-1].grouped_id == message.grouped_id:
            groups[-1].append(message)
        else:
            groups.append([message])
    return groups


def to_post(messages, channel: str, channel_title: str = "", *, post_id: str | None = None) -> Post | None:
    """One Post from a message or an album's messages (None when there is nothing to keep)."""
    if not isinstance(messages, (list, tuple)):
        messages = [messages]
    messages = sorted((m for m in messages if is_content(m)), key=lambda m: m.id)
    if not messages:
        return None
    captioned = next((m for m in messages if (m.message or "").strip()), messages[0])
    text = tidy(captioned.message or "")
    media = unique(media_kind(m.media) for m in messages)
    if not text:
        text = tidy(next((t for t in (_fallback_text(m.media) for m in messages) if t), ""))
    if not text and not media:
        return None
    links = unique([link for m in messages for link in entity_links(m)] + find_links(text))
    preview = next((m.media.webpage for m in messages if isinstance(m.media, types.MessageMediaWebPage)
                    and isinstance(m.media.webpage, types.WebPage)), None)
    origin, forward_date = forward_origin(captioned)
    reply_to, topic_id = reply_and_topic(captioned)
    views = [m.views for m in messages if m.views is not None]
    counts: dict[str, int] = {}
    for m in messages:  # an album's reactions sit on one of its messages: the highest count each
        for key, count in reactions(m).items():
            counts[key] = max(counts.get(key, 0), count)
    edits = [m.edit_date for m in messages if m.edit_date is not None and not m.edit_hide]
    ids = tuple(m.id for m in messages)
    return Post(
        id=post_id or f"{channel}/{ids[0]}",
        channel=channel,
        channel_title=channel_title or channel,
        message_ids=ids,
        date=messages[0].date,
        edit_date=max(edits) if edits else None,
        title=derive_title(text),
        text=text,
        links=tuple(links),
        author=captioned.post_author or "",
        forwarded_from=origin,
        forward_date=forward_date,
        reply_to=reply_to,
        topic_id=topic_id,
        views=max(views) if views else None,
        reactions=counts,
        media=tuple(media),
        preview_site=(preview.site_name or "") if preview else "",
        preview_title=(preview.title or "") if preview else "",
        preview_description=(preview.description or "") if preview else "",
        preview_url=(preview.url or "") if preview else "",
        origin_file="telegram-api",
    )
