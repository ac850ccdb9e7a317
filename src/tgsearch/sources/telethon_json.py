"""Telethon-style JSON: an array of {message_id, channel, date, text, ...} objects.

Written by scripts that iterate `client.iter_messages` and dump a few fields
(as in the tg-news-posts-ru corpus). Text keeps Telethon markdown.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

from ..clean.markup import derive_title, find_links, strip_markdown, tidy, unique
from ..errors import InputError
from ..post import Post, content_id, is_username, parse_datetime
from . import ReadContext, channel_name, guarded, read_text

NAME = "telethon-json"

_HEAD = re.compile(r'^\s*\[\s*(\{\s*"(message_id|id|date|channel|text|sender_id)"|\])')


def sniff(path: Path, head: str) -> bool:
    if path.suffix.lower() not in (".json", ""):
        return False
    if not _HEAD.match(head):
        return False
    return '"message_id"' in head or ('"channel"' in head and '"text"' in head)


def channel_slug(record: dict) -> str:
    for key in ("username", "channel_username"):
        value = record.get(key)
        if isinstance(value, str) and is_username(value.lstrip("@")):
            return channel_name(value)
    peer = record.get("channel_id") or record.get("peer_id") or record.get("sender_id")
    if isinstance(peer, (int, str)) and str(peer).lstrip("-").isdigit():
        digits = str(peer).lstrip("-")
        if digits.startswith("100") and len(digits) > 10:
            digits = digits[3:]
        return f"c{digits}"
    title = record.get("channel")
    if isinstance(title, str) and is_username(title.lstrip("@")):
        return channel_name(title)
    return ""


def to_post(record: dict, ctx: ReadContext, index: int) -> Post | None:
    if not isinstance(record, dict):
        ctx.error(f"item {index} is {type(record).__name__}, not an object", f"item {index}")
        return None
    message_id = record.get("message_id", record.get("id"))
    raw_text = record.get("text") or record.get("message") or ""
    if not isinstance(raw_text, str):
        ctx.error("text is not a string", f"item {index}")
        return None
    try:
        date = parse_datetime(record["date"]) if record.get("date") else None
    except ValueError as e:
        ctx.error(f"bad date ({e})", f"item {index}")
        return None
    slug = channel_slug(record)
    title = record.get("channel") if isinstance(record.get("channel"), str) else ""
    if not slug:
        slug = channel_name(title) or channel_name(Path(ctx.origin_file).stem, "telethon")
    text, md_links = strip_markdown(raw_text)
    text = tidy(text)
    media = []
    if record.get("media"):
        media.append(str(record["media"]) if isinstance(record["media"], str) else "media")
    if not text and not media:
        return None
    if isinstance(message_id, (int, float)) and not isinstance(message_id, bool) and float(message_id).is_integer() \
            or isinstance(message_id, str) and message_id.isascii() and message_id.isdigit():
        mid = int(message_id)
    elif message_id is None:
        mid = None
    else:
        ctx.error(f"message_id {str(message_id)[:40]!r} is not a whole number", f"item {index}")
        return None
    post_id = f"{slug}/{mid}" if mid is not None else content_id(slug, text, str(date))
    # Post checks the rest (ids, counts and dates within range): a bad value is a ValueError.
    return Post(
        id=post_id,
        channel=slug,
        channel_title=title or slug,
        message_ids=(mid,) if mid is not None else (),
        date=date,
        edit_date=record.get("edit_date") or None,
        title=derive_title(text),
        text=text,
        links=tuple(unique(md_links + find_links(text))),
        views=record.get("views") if isinstance(record.get("views"), (int, float)) else None,
        forwarded_from=str(record.get("fwd_from") or record.get("forwarded_from") or ""),
        reply_to=record.get("reply_to_msg_id") if isinstance(record.get("reply_to_msg_id"), (int, float)) else None,
        media=tuple(media),
        origin_file=ctx.origin_file,
    )


def read(path: Path, ctx: ReadContext) -> Iterator[Post]:
    text = read_text(path, ctx.encoding)
    try:
        records = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(str(path), f"malformed JSON ({e.msg})", "the file may be truncated; re-export it",
                         position=f"line {e.lineno} col {e.colno}") from e
    except (ValueError, RecursionError) as e:  # a number of over 4300 digits, nesting too deep
        problem = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise InputError(str(path), f"unreadable JSON ({problem})", "fix the file or split it") from e
    if not isinstance(records, list):
        raise InputError(str(path), "expected a JSON array of messages", "see README 'Sources'")
    for index, record in enumerate(records):
        post = guarded(ctx, f"item {index}", to_post, record, ctx, index)
        if post is not None:
            yield post
