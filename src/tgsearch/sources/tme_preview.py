"""Saved Telegram public web-preview pages (t.me/s/<channel>) and single message wraps.

Every `.tgme_widget_message[data-post="channel/123"]` becomes one post. Fragments
of such a page (a link preview or a media block alone) carry no data-post; they
are recognised as this format and refused with an InputError that says so,
rather than being taken for a web article.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from selectolax.lexbor import LexborHTMLParser, LexborNode

from ..clean.markup import derive_title, find_links, unique
from ..errors import InputError
from ..post import Post, parse_datetime
from . import ReadContext, channel_name, guarded, read_text
from .tg_html import html_text

NAME = "tme-preview"

_MARKERS = ("tgme_widget_message", "tgme_channel_info", "tgme_channel_history")
_DATA_POST = re.compile(r"^([A-Za-z0-9_]+)/(\d+)$")
_VIEWS = re.compile(r"^([\d.,]+)\s*([KkMm]?)$")
_COUNT = re.compile(r"([\d.,]+\s*[KkMm]?)\s*$")

# media block selector -> Post.media kind, in the order they are looked for
_MEDIA = (
    (".tgme_widget_message_photo_wrap", "photo"),
    (".tgme_widget_message_video_player", "video"),
    (".tgme_widget_message_roundvideo_player", "round_video"),
    (".tgme_widget_message_voice_player", "voice"),
    (".tgme_widget_message_audio_player", "audio"),
    (".tgme_widget_message_document_wrap", "file"),
    (".tgme_widget_message_sticker_wrap", "sticker"),
    (".tgme_widget_message_poll", "poll"),
    (".tgme_widget_message_location_wrap", "location"),
    (".tgme_widget_message_link_preview", "link_preview"),
)


def sniff(path: Path, head: str) -> bool:
    if path.suffix.lower() not in (".html", ".htm", ""):
        return False
    return any(marker in head for marker in _MARKERS)


def parse_views(value: str) -> int | None:
    """'856' -> 856, '37.2K' -> 37200, '1.2M' -> 1200000."""
    m = _VIEWS.match((value or "").strip())
    if not m:
        return None
    number = float(m.group(1).replace(",", "."))
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]
    return int(round(number * scale))


def _text(node: LexborNode | None) -> str:
    return html_text(node)[0] if node is not None else ""


def read(path: Path, ctx: ReadContext) -> Iterator[Post]:
    yield from read_html(read_text(path, ctx.encoding), ctx, str(path))


def read_html(html: str, ctx: ReadContext, where: str) -> Iterator[Post]:
    """The posts of a t.me/s page given as HTML text (a saved file's or a fetched page's)."""
    tree = LexborHTMLParser(html)
    messages = tree.css(".tgme_widget_message[data-post]")
    if not messages:
        raise InputError(where, "no Telegram messages found (no element with data-post)",
                         "this looks like a fragment of a t.me/s page; save the whole page (t.me/s/<channel>)")
    page_title = _text(tree.css_first(".tgme_channel_info_header_title"))
    for node in messages:
        post = guarded(ctx, f"message {node.attributes.get('data-post')}", to_post, node, page_title, ctx)
        if post is not None:
            yield post


def to_post(node: LexborNode, page_title: str, ctx: ReadContext) -> Post | None:
    data_post = (node.attributes.get("data-post") or "").strip()
    m = _DATA_POST.match(data_post)
    if not m:
        ctx.error(f"unreadable data-post {data_post!r}", f"message {data_post!r}", "expected channel/123")
        return None
    channel, mid = channel_name(m.group(1)), int(m.group(2))
    where = f"message {data_post}"
    body = _main_text(node)
    text, links = html_text(body) if body is not None else ("", [])
    media = _media(node)
    preview = _link_preview(node)
    links += preview.pop("links")
    if not text:
        text = _poll_text(node) or _text(node.css_first(".tgme_widget_message_document_title"))
    if not text and not media:
        return None
    date = None
    time_node = node.css_first(".tgme_widget_message_date time[datetime]")
    if time_node is not None:
        try:
            date = parse_datetime(time_node.attributes.get("datetime"))
        except (ValueError, TypeError) as e:
            ctx.error(f"bad date {time_node.attributes.get('datetime')!r} ({e})", where)
            return None
    views_node = node.css_first(".tgme_widget_message_views")
    owner = _text(node.css_first(".tgme_widget_message_owner_name"))
    return Post(
        id=f"{channel}/{mid}",
        channel=channel,
        channel_title=page_title or owner or channel,
        message_ids=_album_ids(node, channel, mid),
        date=date,
        edited=_edited(node),
        edit_date=_edit_date(node, ctx, where),
        title=derive_title(text),
        text=text,
        links=tuple(unique(links + find_links(text))),
        author=_text(node.css_first(".tgme_widget_message_from_author")),
        forwarded_from=_text(node.css_first(".tgme_widget_message_forwarded_from_name")),
        reply_to=_reply_to(node, channel),
        views=parse_views(views_node.text(strip=True)) if views_node is not None else None,
        reactions=_reactions(node),
        media=tuple(media),
        origin_file=ctx.origin_file,
        **preview,
    )


def _inside(node: LexborNode, stop: LexborNode, classes: tuple[str, ...]) -> bool:
    # Nodes are compared by identity (mem_id): `!=` on selectolax nodes compares their serialised
    # HTML, which made a message nested in thousands of elements take quadratic time.
    stop_id = stop.mem_id
    parent = node.parent
    while parent is not None and parent.mem_id != stop_id:
        if any(c in (parent.attributes.get("class") or "").split() for c in classes):
            return True
        parent = parent.parent
    return False


def _main_text(node: LexborNode) -> LexborNode | None:
    """The message's own text block, not a quoted reply's."""
    for block in node.css(".tgme_widget_message_text"):
        if not _inside(block, node, ("tgme_widget_message_reply", "tgme_widget_message_link_preview")):
            return block
    return None


def _reply_to(node: LexborNode, channel: str) -> int | None:
    reply = node.css_first("a.tgme_widget_message_reply")
    if reply is None:
        return None
    m = re.search(r"t\.me/([A-Za-z0-9_]+)/(\d+)", reply.attributes.get("href") or "")
    return int(m.group(2)) if m and m.group(1).lower() == channel.lower() else None


def _media(node: LexborNode) -> list[str]:
    kinds = []
    for selector, kind in _MEDIA:
        for block in node.css(selector):
            if kind == "video":
                video = block.css_first("video")
                # GIFs play as looping muted videos
                if video is not None and "loop" in video.attributes:
                    kind = "gif"
            kinds.append(kind)
            break
    return unique(kinds)


_SINGLE = re.compile(r"^https://t\.me/([A-Za-z0-9_]+)/(\d+)\?single$")


def _album_ids(node: LexborNode, channel: str, mid: int) -> tuple[int, ...]:
    """An album is one message on the page; each of its photos and videos links to its own
    message (`https://t.me/<channel>/<id>?single`): all of them, the page's id first."""
    ids = [mid]
    for link in node.css(".tgme_widget_message_grouped_wrap a[href]"):
        m = _SINGLE.match((link.attributes.get("href") or "").strip())
        if m and m.group(1).lower() == channel.lower():
            ids.append(int(m.group(2)))
    return tuple(unique(ids))


def _link_preview(node: LexborNode) -> dict:
    """The link preview card as Post fields (its URL goes to links; the text stays the message's)."""
    preview = node.css_first(".tgme_widget_message_link_preview")
    if preview is None:
        return {"links": []}
    href = (preview.attributes.get("href") or "").strip()
    web = href.startswith(("http://", "https://"))
    return {
        "links": [href] if web else [],
        "preview_url": href if web else "",
        "preview_site": _text(preview.css_first(".link_preview_site_name")),
        "preview_title": _text(preview.css_first(".link_preview_title")),
        "preview_description": _text(preview.css_first(".link_preview_description")),
    }


def _poll_text(node: LexborNode) -> str:
    poll = node.css_first(".tgme_widget_message_poll")
    if poll is None:
        return ""
    lines = [_text(poll.css_first(".tgme_widget_message_poll_question"))]
    lines += ["- " + _text(option) for option in poll.css(".tgme_widget_message_poll_option_text")]
    return "\n".join(line for line in lines if line.strip("- "))


def _reactions(node: LexborNode) -> dict[str, int]:
    out: dict[str, int] = {}
    for reaction in node.css(".tgme_widget_message_reactions .tgme_reaction"):
        emoji = reaction.css_first(".emoji b") or reaction.css_first(".emoji") or reaction.css_first("tg-emoji")
        key = emoji.text(strip=True) if emoji is not None else ""
        if "tgme_reaction_paid" in (reaction.attributes.get("class") or ""):
            key = "⭐"
        elif not key and reaction.css_first("tg-emoji") is not None:
            key = "custom_emoji"
        count = _COUNT.search(reaction.text(strip=True))
        value = parse_views(count.group(1)) if count else None
        if key and value is not None:
            out[key] = out.get(key, 0) + value
    return out


# t.me prints an edited message's mark as bare text in the meta line, before the date link:
# `<span class="tgme_widget_message_meta">edited&nbsp;<a class="tgme_widget_message_date">…`
# (after the signature when there is one: `<span …from_author>Name</span>,&nbsp;edited&nbsp;<a …>`).
_EDITED = re.compile(r"(?<![^\W_])edited(?![^\W_])", re.IGNORECASE)


def _meta(node: LexborNode) -> LexborNode | None:
    return node.css_first(".tgme_widget_message_footer .tgme_widget_message_meta") or node.css_first(
        ".tgme_widget_message_meta")


def _edited(node: LexborNode) -> bool:
    meta = _meta(node)
    if meta is None:
        return False
    own = " ".join(child.text_content or "" for child in meta.iter(include_text=True) if child.is_text_node)
    return bool(_EDITED.search(own))


def _edit_date(node: LexborNode, ctx: ReadContext, where: str):
    """The edit time, where the page gives one: a <time> in the meta line besides the date link's.
    t.me itself gives none (a bare "edited"), so this is None there and `edited` alone is kept."""
    meta = _meta(node)
    if meta is None or not _edited(node):
        return None
    date_link = meta.css_first(".tgme_widget_message_date")
    skip = {t.mem_id for t in date_link.css("time")} if date_link is not None else set()
    stamp = next((t for t in meta.css("time[datetime]") if t.mem_id not in skip), None)
    if stamp is None:
        return None
    try:
        return parse_datetime(stamp.attributes.get("datetime"))
    except (ValueError, TypeError):
        ctx.warn(f"{where}: unreadable edit time {stamp.attributes.get('datetime')!r}")
        return None
