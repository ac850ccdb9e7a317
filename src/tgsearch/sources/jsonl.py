"""The documented JSON Lines format: one post per line, for anything else.

Required: "text" and either "id" or enough to derive one. Recognised keys:
id, channel, channel_title, date, edit_date, title, text, url (= source_url),
source_url, publication, publication_country, author, forwarded_from, reply_to,
views, reactions, media, links, kind, language, message_ids.
A line that cannot be read is reported with its number; the other lines still ingest.
"""

from __future__ import annotations

import codecs
import io
import json
from pathlib import Path
from typing import Iterator

from ..clean.markup import find_links, tidy, unique
from ..errors import InputError
from ..post import Post, content_id, parse_datetime
from . import ReadContext, channel_name, decode, file_encoding, guarded

NAME = "jsonl"
STREAMING = True  # one line in memory at a time: no file size limit


def sniff(path: Path, head: str) -> bool:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return True
    first = head.lstrip().split("\n", 1)[0]
    return first.startswith("{") and first.rstrip().endswith("}") and '"text"' in first


def to_post(data: dict, ctx: ReadContext, lineno: int) -> Post | None:
    if not isinstance(data, dict):
        ctx.error("expected a JSON object", f"line {lineno}")
        return None
    text = data.get("text")
    if not isinstance(text, str) or not (text.strip() or data.get("title")):
        ctx.error('missing "text"', f"line {lineno}", 'every line needs a "text" string')
        return None
    text = tidy(text)
    channel = channel_name(data.get("channel")) or channel_name(ctx.channel, "jsonl")
    raw_id = data.get("id")
    message_ids = data.get("message_ids") or ()
    if raw_id is None or raw_id == "":
        post_id = content_id(channel, text, str(data.get("date")))
    elif isinstance(raw_id, int) and not isinstance(raw_id, bool) or (isinstance(raw_id, str) and raw_id.isascii() and raw_id.isdigit()):
        post_id = f"{channel}/{int(raw_id)}"
        message_ids = message_ids or (int(raw_id),)
    else:
        post_id = str(raw_id) if "/" in str(raw_id) else f"{channel}/{raw_id}"
    try:
        date = parse_datetime(data["date"]) if data.get("date") else None
        edit_date = parse_datetime(data["edit_date"]) if data.get("edit_date") else None
    except ValueError as e:
        ctx.error(f"bad date ({e})", f"line {lineno}", "use ISO 8601, e.g. 2025-05-28T10:00:00+05:00")
        return None
    links = data.get("links") or []
    if not isinstance(links, list):
        raise ValueError(f"links must be a list of URLs, not {type(links).__name__}")
    # Everything else is checked by Post: a bad value is a ValueError naming the field.
    return Post(
        id=post_id,
        channel=channel,
        channel_title=str(data.get("channel_title") or data.get("channel") or ctx.channel or channel),
        message_ids=message_ids,
        date=date,
        edit_date=edit_date,
        title=str(data.get("title") or ""),
        text=text,
        links=tuple(unique(links + find_links(text))),
        source_url=str(data.get("source_url") or data.get("url") or ""),
        publication=str(data.get("publication") or ""),
        publication_country=str(data.get("publication_country") or ""),
        author=str(data.get("author") or ""),
        forwarded_from=str(data.get("forwarded_from") or ""),
        reply_to=data.get("reply_to"),
        views=data.get("views"),
        reactions=data.get("reactions") or {},
        media=data.get("media") or (),
        language=str(data.get("language") or ""),
        kind=str(data.get("kind") or "post"),
        origin_file=ctx.origin_file,
        edited=data.get("edited") is True,
        preview_site=data.get("preview_site") or "",
        preview_title=data.get("preview_title") or "",
        preview_description=data.get("preview_description") or "",
        preview_url=data.get("preview_url") or "",
        deleted=data.get("deleted") is True,
    )


def lines(path: Path, ctx: ReadContext) -> Iterator[tuple[int, str | None]]:
    """(line number, text) of each non-blank line; text is None for a line that could not be
    decoded (reported). UTF-8 is read line by line as bytes, so one bad line costs only itself;
    a file with a UTF-16/32 byte order mark is decoded as a stream."""
    codec, skip = file_encoding(path, ctx.encoding)
    try:
        handle = open(path, "rb")
    except OSError as e:
        raise InputError(str(path), f"cannot read ({e.strerror})") from e
    with handle:
        if codecs.lookup(codec).name.startswith(("utf-16", "utf-32")):  # newlines are not single bytes
            handle.read(skip)
            stream = io.TextIOWrapper(handle, encoding=codec, newline=None)
            lineno = 0
            try:
                for lineno, line in enumerate(stream, start=1):
                    if line.strip():
                        yield lineno, line
            except UnicodeDecodeError as e:
                raise InputError(str(path), f"not valid {codec} after line {lineno} ({e.reason})",
                                 "re-save the file as UTF-8", position=f"line {lineno + 1}") from e
            return
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield lineno, decode(path, raw, ctx.encoding)
            except InputError as e:
                ctx.error(e.problem, f"line {lineno}", e.hint)
                yield lineno, None


def read(path: Path, ctx: ReadContext) -> Iterator[Post]:
    for lineno, line in lines(path, ctx):
        if line is None:
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            ctx.error(f"malformed JSON ({e.msg})", f"line {lineno} col {e.colno}", "fix or remove that line")
            continue
        except (ValueError, RecursionError) as e:  # a number of over 4300 digits, nesting too deep
            ctx.error(f"unreadable JSON ({'nested too deeply' if isinstance(e, RecursionError) else e})",
                      f"line {lineno}", "fix or remove that line")
            continue
        post = guarded(ctx, f"line {lineno}", to_post, data, ctx, lineno)
        if post is not None:
            yield post
