"""The documented JSON Lines format: one post per line, for anything else.

Required: "text" and either "id" or enough to derive one. Recognised keys:
id, channel, channel_title, date, edit_date, title, text, url (= source_url),
source_url, publication, publication_country, author, forwarded_from, reply_to,
views, reactions, media, links, kind, language, message_ids.
A line that cannot be read is reported with its number; the other lines still ingest.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

from ..clean.markup import find_links, tidy, unique
from ..errors import InputError
from ..post import Post, content_id, parse_datetime
from . import ReadContext, decode
from .text_dump import slug

NAME = "jsonl"


def sniff(path: Path, head: str) -> bool:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return True
    first = head.lstrip().split("\n", 1)[0]
    return first.startswith("{") and first.rstrip().endswith("}") and '"text"' in first


def _slug(value: str) -> str:
    value = value.strip().lstrip("@")
    return re.sub(r"[^\w.-]+", "_", value).strip("_") or "unknown"


def to_post(data: dict, ctx: ReadContext, lineno: int) -> Post | None:
    if not isinstance(data, dict):
        ctx.error("expected a JSON object", f"line {lineno}")
        return None
    text = data.get("text")
    if not isinstance(text, str) or not (text.strip() or data.get("title")):
        ctx.error('missing "text"', f"line {lineno}", 'every line needs a "text" string')
        return None
    text = tidy(text)
    if data.get("channel"):
        channel = _slug(str(data["channel"]))
    else:
        channel = slug(ctx.channel) if ctx.channel else "jsonl"
    raw_id = data.get("id")
    message_ids: tuple[int, ...] = tuple(int(m) for m in data.get("message_ids") or ())
    if raw_id is None or raw_id == "":
        post_id = content_id(channel, text, str(data.get("date")))
    elif isinstance(raw_id, int) or (isinstance(raw_id, str) and raw_id.isdigit()):
        post_id = f"{channel}/{int(raw_id)}"
        message_ids = message_ids or (int(raw_id),)
    else:
        post_id = str(raw_id) if "/" in str(raw_id) else f"{channel}/{raw_id}"
    try:
        date = parse_datetime(data["date"]) if data.get("date") else None
        edit_date = parse_datetime(data["edit_date"]) if data.get("edit_date") else None
    except (ValueError, TypeError, OSError) as e:
        ctx.error(f"bad date ({e})", f"line {lineno}", "use ISO 8601, e.g. 2025-05-28T10:00:00+05:00")
        return None
    reactions = data.get("reactions") or {}
    if not isinstance(reactions, dict):
        reactions = {}
    links = list(data.get("links") or []) + find_links(text)
    try:
        return Post(
            id=post_id,
            channel=channel,
            channel_title=str(data.get("channel_title") or data.get("channel") or ctx.channel or channel),
            message_ids=message_ids,
            date=date,
            edit_date=edit_date,
            title=str(data.get("title") or ""),
            text=text,
            links=tuple(unique(links)),
            source_url=str(data.get("source_url") or data.get("url") or ""),
            publication=str(data.get("publication") or ""),
            publication_country=str(data.get("publication_country") or ""),
            author=str(data.get("author") or ""),
            forwarded_from=str(data.get("forwarded_from") or ""),
            reply_to=int(data["reply_to"]) if data.get("reply_to") is not None else None,
            views=int(data["views"]) if data.get("views") is not None else None,
            reactions={str(k): int(v) for k, v in reactions.items()},
            media=tuple(data.get("media") or ()),
            language=str(data.get("language") or ""),
            kind=str(data.get("kind") or "post"),
            origin_file=ctx.origin_file,
        )
    except (ValueError, TypeError) as e:
        ctx.error(f"bad field value ({e})", f"line {lineno}")
        return None


def read(path: Path, ctx: ReadContext) -> Iterator[Post]:
    try:
        handle = open(path, "rb")
    except OSError as e:
        raise InputError(str(path), f"cannot read ({e.strerror})") from e
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                line = decode(path, raw, ctx.encoding)
            except InputError as e:
                ctx.error(e.problem, f"line {lineno}", e.hint)
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as e:
                ctx.error(f"malformed JSON ({e.msg})", f"line {lineno} col {e.colno}", "fix or remove that line")
                continue
            post = to_post(data, ctx, lineno)
            if post is not None:
                yield post
