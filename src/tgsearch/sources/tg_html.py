"""Telegram Desktop HTML export (`messages.html`, `messages2.html`, ...), parsed with selectolax.

Each page is read on its own. HTML exports carry no chat id, so the channel slug is
made from the page header title ("html-" + its words), which every page of one
export shares; two different chats with the same title therefore share a slug.
The "html-" prefix keeps the slug from passing for a public username (no t.me link
is made from it).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from selectolax.lexbor import LexborHTMLParser, LexborNode

from ..clean.markup import derive_title, find_links, tidy, unique
from ..errors import InputError
from ..post import Post
from . import ReadContext, guarded, read_text

NAME = "tg-desktop-html"

_DATE = re.compile(r"(\d{2})\.(\d{2})\.(\d{4}) (\d{2}):(\d{2}):(\d{2})(?: UTC([+-])(\d{1,2}):?(\d{2}))?")
_MESSAGE_ID = re.compile(r"message(\d+)$")
_REPLY = re.compile(r"go_to_message(\d+)")
_SPACE = re.compile(r"[ \t\r\n\f]+")
_BLOCK_TAGS = {"div", "p", "blockquote", "pre", "li", "tr", "h1", "h2", "h3", "h4"}
_SKIP_TAGS = {"script", "style", "template", "noscript"}

# media block class -> Post.media kind (generic blocks are told apart by their title)
_MEDIA_CLASSES = (
    ("photo_wrap", "photo"), ("media_photo", "photo"), ("video_file_wrap", "video"),
    ("animated_wrap", "gif"), ("sticker_wrap", "sticker"), ("media_voice_message", "voice"),
    ("media_audio_file", "audio"), ("media_file", "file"), ("media_video", "video"),
    ("media_poll", "poll"), ("media_location", "location"), ("media_live_location", "location"),
    ("media_contact", "contact"), ("media_game", "game"), ("media_invoice", "invoice"),
)
_MEDIA_TITLES = {"video message": "round_video", "animation": "gif", "sticker": "sticker",
                 "video file": "video", "photo": "photo"}


def sniff(path: Path, head: str) -> bool:
    if path.suffix.lower() not in (".html", ".htm"):
        return False
    # Every page of an export (chat pages, and the lists/index pages of an account export).
    return 'class="page_wrap"' in head and 'class="page_header"' in head and (
        "chat_page" in head or 'class="message ' in head or "CheckLocation" in head)


def html_text(node: LexborNode) -> tuple[str, list[str]]:
    """Plain text of an HTML fragment as a reader sees it, and the http(s) links in it.

    Source whitespace collapses as in a browser; <br> and block ends become line
    breaks. Entities are decoded, so escaped markup in a message stays literal text.
    """
    parts: list[str] = []
    links: list[str] = []
    _walk(node, parts, links)
    return tidy(_collapse("".join(parts))), links


def _walk(node: LexborNode, parts: list[str], links: list[str]) -> None:
    for child in node.iter(include_text=True):
        tag = child.tag
        if tag == "-text":
            parts.append(_SPACE.sub(" ", child.text_content or ""))
        elif tag == "br":
            parts.append("\n")
        elif tag in _SKIP_TAGS or tag == "-comment":
            continue
        else:
            if tag in _BLOCK_TAGS:
                parts.append("\n")
            if tag == "a":
                href = (child.attributes.get("href") or "").strip()
                if href.startswith(("http://", "https://")):
                    links.append(href)
            _walk(child, parts, links)
            if tag in _BLOCK_TAGS:
                parts.append("\n")


def _collapse(text: str) -> str:
    # A space next to a line break is source indentation, not text.
    return re.sub(r" *\n *", "\n", text)


def parse_title_date(value: str) -> datetime | None:
    """'12.11.2020 12:54:07 UTC+03:00' (older exports: no offset, taken as UTC)."""
    m = _DATE.search(value or "")
    if not m:
        return None
    day, month, year, hour, minute, second = (int(g) for g in m.groups()[:6])
    tz = timezone.utc
    if m.group(7):
        offset = timedelta(hours=int(m.group(8)), minutes=int(m.group(9)))
        tz = timezone(offset if m.group(7) == "+" else -offset)
    return datetime(year, month, day, hour, minute, second, tzinfo=tz)


def title_slug(title: str) -> str:
    words = re.findall(r"\w+", title.lower())
    return "html-" + "-".join(words) if words else ""


def _own_text(node: LexborNode | None) -> str:
    """Text of a node without its nested elements (from_name carries a date or 'via @bot' span)."""
    if node is None:
        return ""
    return _SPACE.sub(" ", "".join(c.text_content or "" for c in node.iter(include_text=True) if c.tag == "-text")).strip()


def _name(node: LexborNode | None) -> str:
    """A sender name without the 'via @bot' the export appends."""
    return re.sub(r"\s+via\s+@\w+$", "", _own_text(node))


def read(path: Path, ctx: ReadContext) -> Iterator[Post]:
    raw = read_text(path, ctx.encoding)
    tree = LexborHTMLParser(raw)
    yield from _read_tree(path, tree, ctx)
    if "</html>" not in raw[-4096:].lower():
        # Export pages always close </html>: this one was cut off (an interrupted export or copy).
        ctx.error("the page ends before </html>: the export is truncated (the messages before the cut were read)",
                  f"byte {len(raw.encode('utf-8'))}", "re-export the chat from Telegram Desktop")


def _read_tree(path: Path, tree: LexborHTMLParser, ctx: ReadContext) -> Iterator[Post]:
    if tree.css_first(".chat_page") is None and tree.css_first("div.message") is None:
        ctx.warn("a list or index page of a Telegram export, not a chat: nothing to read")
        return
    header = tree.css_first(".page_header .text")
    title = _own_text(header) or (header.text(strip=True) if header else "")
    if not title:
        raise InputError(str(path), "no chat title in the page header",
                         "this does not look like a chat page of a Telegram Desktop HTML export")
    slug = title_slug(title)
    sender = ""
    for node in tree.css("div.message"):
        classes = (node.attributes.get("class") or "").split()
        if "default" not in classes:
            continue  # service messages and date separators
        m = _MESSAGE_ID.search(node.attributes.get("id") or "")
        if not m:
            ctx.error("message without an id", f"element {node.attributes.get('id')!r}")
            continue
        body = _main_body(node)
        from_name = ""
        if body is not None:
            from_name = next((_name(c) for c in body.iter() if "from_name" in (c.attributes.get("class") or "").split()), "")
        if from_name:
            sender = from_name
        elif "joined" not in classes:
            sender = ""
        post = guarded(ctx, f"message {m.group(1)}", _to_post, node, int(m.group(1)), slug, title, sender, ctx)
        if post is not None:
            yield post


def _main_body(node: LexborNode) -> LexborNode | None:
    for child in node.iter():
        if "body" in (child.attributes.get("class") or "").split():
            return child
    return None


def _to_post(node: LexborNode, mid: int, slug: str, title: str, sender: str, ctx: ReadContext) -> Post | None:
    body = _main_body(node)
    if body is None:
        ctx.error("message without a body", f"message {mid}")
        return None
    date_node = body.css_first(".date")
    date = parse_title_date(date_node.attributes.get("title") or "") if date_node else None
    if date_node is not None and date is None:
        ctx.warn(f"message {mid}: unreadable date {date_node.attributes.get('title')!r}")
    forwarded = body.css_first(".forwarded.body")
    text_node = (forwarded or body).css_first(".text")
    text, links = html_text(text_node) if text_node is not None else ("", [])
    media, media_text = _media(body)
    if not text:
        text = media_text
    if not text and not media:
        return None
    reply = body.css_first(".reply_to a")
    reply_m = _REPLY.search(reply.attributes.get("href") or "") if reply is not None else None
    signature = _own_text(body.css_first(".signature"))
    author = signature or (sender if sender != title else "")
    return Post(
        id=f"{slug}/{mid}",
        channel=slug,
        channel_title=title,
        message_ids=(mid,),
        date=date,
        title=derive_title(text),
        text=text,
        links=tuple(unique(links + find_links(text))),
        author=author,
        forwarded_from=_name(forwarded.css_first(".from_name")) if forwarded is not None else "",
        reply_to=int(reply_m.group(1)) if reply_m else None,
        reactions=_reactions(body),
        media=tuple(media),
        origin_file=ctx.origin_file,
    )


def _media(body: LexborNode) -> tuple[list[str], str]:
    kinds: list[str] = []
    fallback = ""
    for wrap in body.css(".media_wrap"):
        for node in wrap.css("a, div"):
            classes = set((node.attributes.get("class") or "").split())
            kind = next((k for cls, k in _MEDIA_CLASSES if cls in classes), None)
            if kind is None:
                continue
            title_node = node.css_first(".title")
            label = title_node.text(strip=True) if title_node is not None else ""
            if kind in ("video", "photo") and label.lower() in _MEDIA_TITLES:
                kind = _MEDIA_TITLES[label.lower()]
            kinds.append(kind)
            if kind == "poll":
                fallback = _poll_text(node)
            elif kind in ("file", "audio") and label and not fallback:
                fallback = label
            break
    return unique(kinds), fallback


def _poll_text(node: LexborNode) -> str:
    question = node.css_first(".question")
    lines = [_own_text(question) or (question.text(strip=True) if question else "")]
    for answer in node.css(".answer"):
        option = _own_text(answer).lstrip("-– ").strip()
        if option:
            lines.append("- " + option)
    return "\n".join(line for line in lines if line)


def _reactions(body: LexborNode) -> dict[str, int]:
    out: dict[str, int] = {}
    for reaction in body.css(".reactions .reaction"):
        emoji = reaction.css_first(".emoji")
        count = reaction.css_first(".count")
        key = emoji.text(strip=True) if emoji is not None else ""
        digits = re.sub(r"\D", "", count.text(strip=True)) if count is not None else ""
        if key and digits:
            out[key] = out.get(key, 0) + int(digits)
    return out
