"""Channel dumps saved as plain text: mirror pages ("Telegram Group Search" and alike) and copies.

What such a file looks like, and what this reader does about it:
* site chrome (page title, "Back to Top", "HTML Embed Code:", save stamp, "Live stream
  finished") is dropped; reaction counters after a post are read as reactions;
* posts printed twice (teaser, then full view) are kept once (`clean.stitch.collapse_repeats`);
* posts split over several messages (⬇️⬇️⬇️/⬆️⬆️⬆️/🔚🔚🔚, «Продолжение 👇»/«Начало☝️»)
  are stitched into one post;
* press-digest posts ("Издание: …", "Автор:", "Дата:", "Ссылка:") get structured fields;
* a post whose media the page cannot show ("Please open Telegram to view this post") is
  kept with its teaser, media=("media",); a short name line above such a teaser is the
  post's channel: one name throughout the page is the page's own channel (its title, and
  those posts are its own), several names are the channels the posts were forwarded from;
* a short block right after a post, not repeated and without a placeholder
  ("Telegram" / site title / description), is that post's link preview: not a post and
  not text, but the post's preview_site / preview_title / preview_description (searchable),
  and the post gets media "webpage".

Messages copied out of Telegram Desktop as text ("Name, [21.04.2025 10:15]" above each
message, "[Forwarded from X]", "[ Photo ]") are split at those headers and keep their
date, forward origin and media; a single sender name across the file is the channel.

The file names no channel, so the channel is a slug of the file name (stem), unless the
first line names it ("Канал: Name", "@username", "https://t.me/username"); callers may
pass `channel=` to override. The channel's title is the name the content gives (that line,
the single sender of a copy, the name line of a mirror page), else "unnamed dump: <file
name>", so the UI says the channel is unknown rather than showing a slug. Posts carry no message ids and mostly no dates; ids are
content hashes of the channel and the digest's source URL, else the headline (or the
opening text) plus the date where known, so re-ingesting gives the same ids.
"""

from __future__ import annotations

import re
from pathlib import Path
from datetime import datetime, timezone
from typing import Iterator

from ..clean.chrome import is_media_placeholder, is_page_chrome, is_page_footer, is_reaction_line
from ..clean.digest import is_digest_start, parse_header
from ..clean.markup import derive_title, find_links, tidy, unique
from ..clean.stitch import (Message, collapse_repeats, is_final_marker, is_marker, split_stream, stitch,
                            trim_markers)
from ..post import Post, content_id, is_username
from . import ReadContext, channel_name, read_text

NAME = "text-dump"
SUFFIXES = (".txt", ".text", ".md", "")
TITLE_MAX = 300  # mirror pages print the headline as its own line; it can be long

_COPY_HEADER = re.compile(r"^(?P<name>[^\[\]]{1,128}?),\s*\[(?P<stamp>[0-9./\-: ]{8,22}(?:\s?[AaPp][Mm])?)\]$")
_FORWARD_LINE = re.compile(r"^\[(?:Forwarded from|Переслано от|Пересланное сообщение от)\s+(.+?)\]$", re.IGNORECASE)
_MEDIA_LINE = re.compile(
    r"^\[\s*(Photo|Video|Sticker|File|Album|Voice message|Video message|GIF|Audio|Poll|"
    r"Фото|Фотография|Видео|Стикер|Файл|Альбом|Голосовое сообщение|Видеосообщение|Аудио|Опрос)"
    r"(?:\s*:[^\]]*)?\s*\]$", re.IGNORECASE)
_STAMP_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%y %H:%M:%S", "%d.%m.%y %H:%M",
                  "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%y %I:%M %p", "%m/%d/%Y %I:%M %p",
                  "%m/%d/%y %H:%M", "%m/%d/%Y %H:%M")
_CHANNEL_LINE = re.compile(r"^(?:Канал|Channel|Группа|Group|Чат|Chat)\s*:\s*(.+)$", re.IGNORECASE)
_TME = re.compile(r"^(?:https?://)?t\.me/(?:s/)?([A-Za-z][A-Za-z0-9_]{3,31})/?$")


def slug(value: str) -> str:
    return channel_name(value) or "dump"


def sniff(path: Path, head: str) -> bool:
    if path.suffix.lower() not in SUFFIXES:
        return False
    lines = [line for line in tidy(head).split("\n") if line.strip()]
    if not lines:
        return False
    if any(is_page_chrome(line) for line in lines[:3]):
        return True
    if any(is_media_placeholder(line) or is_final_marker(line) for line in lines):
        return True
    if sum(1 for line in lines if is_marker(line)) >= 2:
        return True
    # Digest posts: several headers, or one at the top (a single copied post).
    if sum(1 for line in lines if is_digest_start(line)) >= 2 or any(is_digest_start(x) for x in lines[:3]):
        return True
    if any(copy_header(line) for line in lines[:50]):
        return True
    # A teaser/full page: several posts each printed twice.
    return sum(1 for seg in collapse_repeats(lines[:3000]) if seg.repeated) >= 2


def copy_header(line: str) -> tuple[str, datetime | None] | None:
    """('Name', date) for a Telegram Desktop copy header 'Name, [21.04.2025 10:15]'."""
    m = _COPY_HEADER.match(line.strip())
    if not m:
        return None
    stamp = " ".join(m.group("stamp").upper().split())
    for fmt in _STAMP_FORMATS:
        try:
            return m.group("name").strip(), datetime.strptime(stamp, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def starts_post(line: str) -> bool:
    return is_digest_start(line) or copy_header(line) is not None


def _name_like(line: str, max_len: int = 40) -> bool:
    s = line.strip()
    return 0 < len(s) <= max_len and len(s.split()) <= 4 and s[-1] not in ".!?…:;," and not s[0].isdigit()


def _channel_from_first_line(lines: list[str]) -> tuple[str, str] | None:
    first = next((line.strip() for line in lines if line.strip()), "")
    m = _CHANNEL_LINE.match(first)
    if m:
        return slug(m.group(1)), m.group(1).strip()
    m = _TME.match(first)
    if m:
        return m.group(1), m.group(1)
    if first.startswith("@") and is_username(first[1:]):
        return first[1:], first[1:]
    return None


def _drop_channel_line(lines: list[str]) -> list[str]:
    for i, line in enumerate(lines):
        if line.strip():
            return lines[:i] + lines[i + 1:]
    return lines


UNNAMED = "unnamed dump:"  # channel title of a dump that names no channel, followed by the file name


def own_name(messages: list[Message], title: str) -> str:
    """The channel's title: `title` when the dump named the channel, else the name a mirror page
    prints above the posts it cannot show, when that is one name throughout the page (the page's
    own channel -- t.me prints "Forwarded from" for a forward). Posts under the channel's own name
    are not forwards."""
    names = {m.forwarded_from for m in messages if m.forwarded_from}
    if not title and len(names) == 1:
        title = names.pop()
    for msg in messages:
        if title and msg.forwarded_from == title:
            msg.forwarded_from = ""
    return title


def messages_from_lines(lines: list[str]) -> list[Message]:
    """Page lines (chrome already removed) to messages in page order."""
    nonblank = [i for i, line in enumerate(lines) if line.strip()]
    segments = collapse_repeats([lines[i] for i in nonblank])
    out: list[Message] = []
    prev_repeated = False
    for seg in segments:
        if seg.repeated:
            # One message as a rule, but markers inside it still cut it (a copy of a copy).
            kept = [line for line in seg.lines if not is_media_placeholder(line)]
            parts = split_stream(kept, starts_post=starts_post, first_index=nonblank[seg.start])
            if parts and len(kept) < len(seg.lines):
                parts[-1].media.append("media")
            out.extend(trim_markers(m) for m in parts)
            prev_repeated = True
            continue
        lo = nonblank[seg.start]
        hi = nonblank[seg.start + len(seg.lines) - 1] + 1
        out.extend(_plain_messages(lines[lo:hi], lo, out, prev_repeated))
        prev_repeated = False
    return out


def _plain_messages(lines: list[str], start: int, before: list[Message], after_post: bool) -> list[Message]:
    """Lines not printed twice: a marker-delimited stream, media teasers, link previews, reactions."""
    out: list[Message] = []
    chunk: list[str] = []
    chunk_start = start
    i = 0
    while i < len(lines):
        if is_media_placeholder(lines[i]):
            while i < len(lines) and (is_media_placeholder(lines[i]) or not lines[i].strip()):
                i += 1
            parts = split_stream(chunk, starts_post=starts_post, first_index=chunk_start)
            if parts:
                _mark_media_teaser(parts[-1])
            elif out or before:
                # Right after a post printed twice: the placeholder is that post's media.
                target = out[-1] if out else before[-1]
                if "media" not in target.media:
                    target.media.append("media")
            out.extend(trim_markers(m) for m in parts)
            chunk, chunk_start = [], start + i
            continue
        chunk.append(lines[i])
        i += 1
    text_lines = [line for line in chunk if line.strip()]
    if text_lines and not out and after_post and before and _is_link_preview(text_lines):
        if "webpage" not in before[-1].media:
            before[-1].media.append("webpage")
        before[-1].preview = _preview_fields(text_lines)
        return out
    if text_lines and all(is_reaction_line(line) for line in text_lines) and (out or before):
        target = out[-1] if out else before[-1]
        for line in text_lines:
            target.add_reactions(line)
        return out
    out.extend(trim_markers(m) for m in split_stream(chunk, starts_post=starts_post, first_index=chunk_start))
    return out


def _is_link_preview(lines: list[str]) -> bool:
    # Site name, then title and/or description; nothing that marks a post of its own.
    return 2 <= len(lines) <= 3 and _name_like(lines[0]) and not any(is_marker(line) for line in lines)


PREVIEW_TITLE_MAX = 200  # a second line longer than this is the card's description, not its title


def _preview_fields(lines: list[str]) -> tuple[str, str, str]:
    """(site, title, description) of a link preview block: site name, then title and/or description."""
    site, *rest = [line.strip() for line in lines]
    if len(rest) == 2:
        return site, rest[0], rest[1]
    if len(rest[0]) > PREVIEW_TITLE_MAX or rest[0].endswith("…"):
        return site, "", rest[0]
    return site, rest[0], ""


def _mark_media_teaser(msg: Message) -> None:
    msg.media.append("media")
    text = [line for line in msg.lines if line.strip()]
    if len(text) == 2 and _name_like(text[0]) and len(text[1]) > len(text[0]):
        msg.forwarded_from = text[0].strip()
        msg.lines = [text[1]]


def read(path: Path, ctx: ReadContext, *, channel: str | None = None) -> Iterator[Post]:
    raw = tidy(read_text(path, ctx.encoding)).split("\n")
    named = _channel_from_first_line(raw)
    if named:
        raw = _drop_channel_line(raw)
    channel = channel or ctx.channel
    if channel:
        chan, chan_title = slug(channel), channel
    elif named:
        chan, chan_title = named
    else:
        chan, chan_title = slug(path.stem), ""
        senders = {h[0] for h in map(copy_header, raw) if h}
        if len(senders) == 1:  # one sender throughout: a channel's messages
            chan_title = senders.pop()
            chan = slug(chan_title)
    lines: list[str] = []
    for line in raw:
        if is_page_footer(line):
            break
        if not is_page_chrome(line):
            lines.append(line)
    messages = messages_from_lines(lines)
    chan_title = own_name(messages, chan_title) or f"{UNNAMED} {path.name}"
    seen: dict[str, int] = {}
    for group in stitch(messages, starts_post=starts_post):
        post = _to_post(group, chan, chan_title, ctx)
        if post is None:
            continue
        n = seen.get(post.id, 0)
        seen[post.id] = n + 1
        if n:
            # The same headline twice in one file: keep both, in page order.
            post = post.evolve(id=f"{post.id}.{n + 1}")
        yield post


def _to_post(group: list[Message], channel: str, channel_title: str, ctx: ReadContext) -> Post | None:
    lines: list[str] = []
    reactions: dict[str, int] = {}
    media: list[str] = []
    forwarded = ""
    extra: dict = {}
    for msg in group:
        lines.extend(msg.lines)
        for k, v in msg.reactions.items():
            reactions[k] = reactions.get(k, 0) + v
        media.extend(msg.media)
        forwarded = forwarded or msg.forwarded_from
        if msg.preview:
            extra.update(zip(("preview_site", "preview_title", "preview_description"), msg.preview))
    lines, copied = _strip_copy_lines(lines, media)
    if copied:
        name, date = copied[0]
        forwarded = forwarded or copied[1]
        extra["date"] = date
        if slug(name) != channel:
            extra["author"] = name  # a group chat: the sender
    header = parse_header(lines)
    if header is not None:
        body = [header.title, *header.lead, "", *lines[header.body_start:]]
        text = tidy("\n".join(body))
        title = header.title
        if not title:
            ctx.warn(f"line {group[0].start + 1}: digest post without a headline")
        extra.update(publication=header.publication, publication_country=header.publication_country,
                     author=header.author or extra.get("author", ""), date=header.date or extra.get("date"),
                     source_url=header.source_url)
        # The article's URL is its most stable identity; the headline where there is none.
        post_id = content_id(channel, header.source_url or title or text[:300])
    else:
        text = tidy("\n".join(lines))
        title = derive_title(text, max_len=TITLE_MAX)
        stamp = extra["date"].isoformat() if extra.get("date") else ""
        post_id = content_id(channel, title or text[:300], *([stamp] if stamp else []))
    if not text and not media:
        return None
    links = find_links(text)
    if extra.get("source_url"):
        links.insert(0, extra["source_url"])
    return Post(
        id=post_id,
        channel=channel,
        channel_title=channel_title,
        text=text,
        title=title,
        links=tuple(unique(links)),
        forwarded_from=forwarded,
        reactions=reactions,
        media=tuple(unique(media)),
        kind="post",
        origin_file=ctx.origin_file,
        **extra,
    )


def _strip_copy_lines(lines: list[str], media: list[str]) -> tuple[list[str], tuple | None]:
    """Take a Desktop copy header, "[Forwarded from X]" and "[ Photo ]" lines out of a post's lines."""
    idx = [i for i, line in enumerate(lines) if line.strip()]
    if not idx:
        return lines, None
    header = copy_header(lines[idx[0]])
    if header is None:
        return lines, None
    rest = lines[idx[0] + 1:]
    forwarded = ""
    out = []
    for line in rest:
        s = line.strip()
        m = _FORWARD_LINE.match(s)
        if m and not forwarded and not any(x.strip() for x in out):
            forwarded = m.group(1).strip()
            continue
        m = _MEDIA_LINE.match(s)
        if m:
            media.append(m.group(1).lower())
            continue
        out.append(line)
    return out, (header, forwarded)
