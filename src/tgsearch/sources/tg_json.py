"""Telegram Desktop JSON export (`result.json`), streamed with ijson.

Two layouts: one chat ({name, type, id, messages: [...]}) and a whole account
({..., "chats": {"list": [chat, ...]}, "left_chats": {"list": [...]}}).
Two schemas: the current one (text_entities, date_unixtime, reactions, ...) and
the 2020-21 one (text as a string or a list of strings and {type, text, href}
parts, no unix times). Messages are built one at a time from parse events, so
memory does not grow with the export; a cut-off export yields every complete
message and then raises InputError.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import ijson
from ijson.common import ObjectBuilder

from ..clean.markup import derive_title, find_links, tidy, unique
from ..errors import InputError
from ..post import Post, parse_datetime
from . import ReadContext, Utf8Stream, channel_name, guarded

NAME = "tg-desktop-json"
STREAMING = True  # one message in memory at a time: no file size limit

_SINGLE_HEAD = re.compile(r'"messages"\s*:\s*\[')
_CHAT_TYPE = re.compile(r'"type"\s*:\s*"(message|service|personal_chat|bot_chat|saved_messages|'
                        r'private_group|private_supergroup|public_supergroup|private_channel|public_channel)"')
_ACCOUNT_HEAD = re.compile(r'"(chats|left_chats|personal_information)"\s*:\s*\{')
# Where chats and their messages sit in either layout ("" = a one-chat export).
_CHAT_PREFIXES = ("", "chats.list.item", "left_chats.list.item")
_MESSAGE_PREFIXES = tuple(f"{p}.messages.item".lstrip(".") for p in _CHAT_PREFIXES)

# media_type of a document -> the Post.media kind
_MEDIA_TYPES = {
    "voice_message": "voice",
    "audio_file": "audio",
    "video_file": "video",
    "video_message": "round_video",
    "animation": "gif",
    "sticker": "sticker",
}
MAX_DEPTH = 100  # nesting within one message; real text entity lists go 2-3 levels deep
_NOT_INCLUDED = "("  # "(File not included. Change data exporting settings to download.)"


def sniff(path: Path, head: str) -> bool:
    if path.suffix.lower() != ".json":
        return False
    if not head.lstrip().startswith("{"):
        return False
    if _ACCOUNT_HEAD.search(head):
        return True
    return bool(_SINGLE_HEAD.search(head) and _CHAT_TYPE.search(head))


class _CountingReader:
    """File wrapper that remembers which bytes the parser is working on (for error positions)."""

    def __init__(self, handle):
        self.handle = handle
        self.start = 0
        self.end = 0

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.start = self.end
        self.end += len(data)
        return data


class _Chat:
    def __init__(self) -> None:
        self.name = ""
        self.type = ""
        self.id = None

    @property
    def slug(self) -> str:
        return chat_slug(self.id)


def chat_slug(chat_id) -> str:
    if chat_id is None:
        return ""
    digits = str(chat_id).lstrip("-")
    if not digits.isdigit():
        return ""
    if str(chat_id).startswith("-100") and len(digits) > 10:
        digits = digits[3:]
    return f"c{digits}"


def read(path: Path, ctx: ReadContext) -> Iterator[Post]:
    try:
        handle = open(path, "rb")
    except OSError as e:
        raise InputError(str(path), f"cannot read ({e.strerror})", "check the path and permissions") from e
    with handle:
        reader = _CountingReader(handle)
        yield from _stream(path, Utf8Stream(reader, path, ctx.encoding), reader, ctx)


def _stream(path: Path, stream, reader: _CountingReader, ctx: ReadContext) -> Iterator[Post]:
    # basic_parse, not parse: ijson's prefixes are strings as long as the nesting is deep, built
    # for every event (quadratic in a message nested 100,000 levels deep). The path is kept here
    # and joined only near the top, where chats and messages sit.
    chat = _Chat()
    builder: ObjectBuilder | None = None
    in_message = False
    depth = 0
    last_id = None
    messages = 0
    path_keys: list = []
    try:
        # Numbers as Python ints (any size) and Decimals, not yajl's: those abort the whole parse on
        # one out-of-range number. Decimals become floats (1e400 -> inf, refused by Post).
        for event, value in ijson.basic_parse(stream):
            if in_message:
                if event == "start_map" or event == "start_array":
                    depth += 1
                    if depth > MAX_DEPTH and builder is not None:
                        # Skip the rest of this message without building it; the export goes on.
                        mid = builder.value.get("id") if isinstance(builder.value, dict) else None
                        builder = None
                        ctx.error(f"message nested more than {MAX_DEPTH} levels deep: skipped",
                                  f"message {mid if mid is not None else f'#{messages}'}",
                                  "the other messages were read; check this one in Telegram")
                elif event == "end_map" or event == "end_array":
                    depth -= 1
                elif event == "number" and type(value) is Decimal:
                    value = float(value)
                if builder is not None:
                    builder.event(event, value)
                if depth == 0:
                    in_message = False
                    if builder is not None:
                        record = builder.value
                        builder = None
                        if isinstance(record, dict):
                            last_id = record.get("id", last_id)
                        where = f"message {record.get('id')}" if isinstance(record, dict) else f"message #{messages}"
                        post = guarded(ctx, where, to_post, record, chat, ctx)
                        if post is not None:
                            yield post
                continue
            if event == "map_key":
                prefix = _join(path_keys[:-1])
                path_keys[-1] = value
            elif event in ("start_map", "start_array"):
                prefix = _join(path_keys)
                if prefix in _MESSAGE_PREFIXES and event == "start_map":
                    builder = ObjectBuilder()
                    builder.event(event, value)
                    in_message, depth = True, 1
                    messages += 1
                    continue
                path_keys.append(None if event == "start_map" else "item")
            elif event in ("end_map", "end_array"):
                path_keys.pop()
                continue
            else:
                prefix = _join(path_keys)
            if prefix in _MESSAGE_PREFIXES:
                if event in ("string", "number", "boolean", "null", "start_array"):
                    ctx.error(f"item {messages} of messages is not an object", f"message #{messages}")
                    messages += 1
                continue
            if prefix in _CHAT_PREFIXES and event == "start_map":
                chat = _Chat()  # next chat of an account export
                continue
            if event in ("string", "number") and prefix is not None:
                parent, _, key = prefix.rpartition(".")
                if parent in _CHAT_PREFIXES:
                    _chat_key(chat, key, value)
    except ijson.IncompleteJSONError as e:
        raise _parse_error(path, reader, e, last_id) from e
    except ijson.JSONError as e:
        raise _parse_error(path, reader, e, last_id) from e
    except UnicodeDecodeError as e:
        what = "UTF-8" if stream.codec.lower().replace("_", "-") in ("utf-8", "utf8") else stream.codec
        raise InputError(str(path), f"not {what} ({e.reason})", "Telegram exports are UTF-8; re-export it",
                         position=f"bytes {reader.start}-{reader.end}") from e


def _join(keys: list) -> str | None:
    """ijson's prefix for a path, or None below the depth where chats and messages sit."""
    if len(keys) > 5:
        return None
    return ".".join(k for k in keys if k is not None)


def _chat_key(chat: _Chat, key: str, value) -> None:
    if key == "name" and isinstance(value, str):
        chat.name = value
    elif key == "type" and isinstance(value, str):
        chat.type = value
    elif key == "id":
        chat.id = int(value) if isinstance(value, (int, float)) else value


def _parse_error(path: Path, reader: _CountingReader, error: Exception, last_id) -> InputError:
    detail = str(error).strip().split("\n", 1)[0]
    after = f" after message {last_id}" if last_id is not None else " before the first message"
    if "premature EOF" in detail or "Incomplete JSON" in detail:
        return InputError(str(path), f"the export ends in the middle{after}",
                          "the export is truncated; re-export it from Telegram Desktop",
                          position=f"byte {reader.end}")
    return InputError(str(path), f"malformed JSON ({detail}){after}",
                      "the export is damaged; re-export it from Telegram Desktop",
                      position=f"bytes {reader.start}-{reader.end}")


def to_post(record, chat: _Chat, ctx: ReadContext) -> Post | None:
    if not isinstance(record, dict):
        ctx.error(f"a message is {type(record).__name__}, not an object")
        return None
    mid = record.get("id")
    where = f"message {mid}"
    if record.get("type", "message") != "message" or "action" in record:
        return None  # service message: joins, pins, channel created, ...
    if not isinstance(mid, int):
        ctx.error(f"message id {mid!r} is not a number", where)
        return None
    try:
        date = _date(record, "date_unixtime", "date")
        edit_date = _date(record, "edited_unixtime", "edited")
    except (ValueError, TypeError, OverflowError, OSError) as e:
        ctx.error(f"bad date ({e})", where, "dates should be ISO 8601 or unix times")
        return None
    parts = record.get("text_entities")
    if not isinstance(parts, list):
        parts = record.get("text", "")
    text, entity_links = flatten_text(parts)
    media, media_text = media_kinds(record)
    text = tidy(text)
    if not text:
        text = tidy(media_text)
    if not text and not media:
        return None
    # Exports always carry the chat id; without one, name the chat after its title or the file.
    slug = chat.slug or channel_name(chat.name) or channel_name(Path(ctx.origin_file).stem, "export")
    sender = record.get("from") if isinstance(record.get("from"), str) else ""
    author = record.get("author") if isinstance(record.get("author"), str) else ""
    if not author and sender and sender != chat.name:
        author = sender
    reply_to = record.get("reply_to_message_id")
    if record.get("reply_to_peer_id"):
        reply_to = None  # a reply to a message of another chat: its id means nothing here
    return Post(
        id=f"{slug}/{mid}",
        channel=slug,
        channel_title=chat.name or ("Saved Messages" if chat.type == "saved_messages" else slug),
        message_ids=(mid,),
        date=date,
        edit_date=edit_date,
        title=derive_title(text),
        text=text,
        links=tuple(unique(entity_links + find_links(text))),
        author=author,
        forwarded_from=str(record.get("forwarded_from") or record.get("saved_from") or ""),
        reply_to=reply_to if isinstance(reply_to, int) else None,
        reactions=reactions(record.get("reactions")),
        media=tuple(media),
        origin_file=ctx.origin_file,
    )


def _date(record: dict, unix_key: str, iso_key: str) -> datetime | None:
    unix = record.get(unix_key)
    if unix not in (None, ""):
        return datetime.fromtimestamp(int(unix), tz=timezone.utc)
    value = record.get(iso_key)
    if not value:
        return None
    # Without a unix time the export gives the exporting machine's local time; taken as UTC.
    return parse_datetime(value)


def flatten_text(parts) -> tuple[str, list[str]]:
    """Text and link targets from a string, a list of strings/parts, or text_entities."""
    if isinstance(parts, str):
        return parts, []
    if not isinstance(parts, list):
        return "", []
    out: list[str] = []
    links: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        if not isinstance(part, dict):
            continue
        value = part.get("text")
        value = value if isinstance(value, str) else ""
        out.append(value)
        kind = part.get("type")
        if isinstance(part.get("href"), str):
            links.append(part["href"])
        elif kind == "link" and value:
            links.append(value if "://" in value else "https://" + value)
    return "".join(out), links


def media_kinds(record: dict) -> tuple[list[str], str]:
    """Media kinds of a message, and a text to use when the message has none."""
    media: list[str] = []
    fallback = ""
    if record.get("photo"):
        media.append("photo")
    media_type = record.get("media_type")
    if media_type is not None and not isinstance(media_type, str):
        raise ValueError(f"media_type must be a string, not {type(media_type).__name__}")
    if record.get("file") or media_type:
        kind = _MEDIA_TYPES.get(media_type, "file")
        media.append(kind)
        if kind == "audio":
            fallback = " – ".join(str(record[k]) for k in ("performer", "title") if record.get(k))
        if kind in ("file", "audio") and not fallback:
            fallback = _file_name(record)
        if kind == "sticker" and isinstance(record.get("sticker_emoji"), str):
            fallback = record["sticker_emoji"]
    poll = record.get("poll")
    if isinstance(poll, dict):
        media.append("poll")
        answers = [a.get("text") for a in poll.get("answers") or () if isinstance(a, dict) and isinstance(a.get("text"), str)]
        question = poll.get("question") if isinstance(poll.get("question"), str) else ""
        fallback = "\n".join([question] + ["- " + a for a in answers]).strip()
    for key, kind in (("location_information", "location"), ("contact_information", "contact"),
                      ("game_title", "game"), ("invoice_information", "invoice")):
        if record.get(key):
            media.append(kind)
    if record.get("game_title") and not fallback:
        fallback = str(record["game_title"])
    return unique(media), fallback


def _file_name(record: dict) -> str:
    name = record.get("file_name")
    if isinstance(name, str) and name:
        return name
    file = record.get("file")
    if isinstance(file, str) and file and not file.startswith(_NOT_INCLUDED):
        return file.rsplit("/", 1)[-1]
    return ""


def reactions(raw) -> dict[str, int]:
    out: dict[str, int] = {}
    if not isinstance(raw, list):
        return out
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("count"), (int, float)):
            continue
        kind = item.get("type")
        if kind == "emoji" and isinstance(item.get("emoji"), str):
            key = item["emoji"]
        elif kind == "paid":
            key = "⭐"
        elif kind == "custom_emoji":
            key = "custom_emoji"
        else:
            continue
        out[key] = out.get(key, 0) + item["count"]  # Post checks it is a whole number in range
    return out
