"""Helpers the templates use (Jinja filters) and small date/text helpers of the web UI.

Post content is hostile: `safe_snippet` keeps only the engine's ``<mark>`` tags and escapes the rest;
`mark_title` and `linkify` build their markup from escaped text; only http(s) URLs become links
(`safe_url`).
"""

from __future__ import annotations

import calendar
import html
import re
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from markupsafe import Markup, escape


_MARK_SPLIT = re.compile(r"(</?mark>)")


def safe_snippet(snippet: str) -> Markup:
    """The engine's snippet is escaped text with <mark> tags. Trust only the <mark> tags: every
    other part is unescaped and escaped again, so a snippet that was not escaped still cannot
    carry markup, and an escaped one comes out unchanged."""
    out: list[str] = []
    depth = 0
    for part in _MARK_SPLIT.split(snippet or ""):
        if part == "<mark>":
            if depth == 0:
                out.append(part)
            depth += 1
        elif part == "</mark>":
            if depth == 1:
                out.append(part)
            depth = max(depth - 1, 0)
        else:
            out.append(str(escape(html.unescape(part))))
    if depth:
        out.append("</mark>")
    return Markup("".join(out))


def drop_lead(snippet: Markup, title: str, keep_marks: bool = True) -> Markup:
    """A snippet that starts with the post's title (shown just above it) without that repeat.

    Works on the safe snippet's visible text, keeping the <mark> tags balanced; returns the
    snippet unchanged when it does not start with the title, nothing would be left, or (with
    `keep_marks`, for a title shown without marks) every highlighted match would go with the cut."""
    title = " ".join((title or "").split())
    if not title:
        return snippet
    parts = _MARK_SPLIT.split(str(snippet))
    visible = "".join(html.unescape(p) for p in parts if p not in ("<mark>", "</mark>"))
    flat = " ".join(visible.split())
    if not flat.startswith(title) or len(flat) < len(title) + 20:
        return snippet
    # Consume visible characters (whitespace-insensitively) until the title is used up.
    need = title.replace(" ", "")
    out: list[str] = []
    for i, part in enumerate(parts):
        if part in ("<mark>", "</mark>"):
            out.append(part)
            continue
        text = html.unescape(part)
        j = 0
        while need and j < len(text):
            if not text[j].isspace():
                need = need[1:]
            j += 1
        if need:
            continue
        rest = text[j:].lstrip(" \t\n.,:;—–-")
        out.append(str(escape(rest)))
        out.extend(parts[i + 1:])
        break
    cleaned = re.sub(r"<mark></mark>", "", "".join(out))
    cleaned = re.sub(r"^((?:</?mark>)*)[\s.,:;—–-]+", r"\1", cleaned)
    if not _MARK_SPLIT.sub("", cleaned).strip():
        return snippet
    if keep_marks and "<mark>" in str(snippet) and "<mark>" not in cleaned:
        return snippet      # the matches were all in the (unmarked) title: keep them visible
    return Markup(cleaned)


_MARKED = re.compile(r"<mark>(.*?)</mark>", re.S)
_WORD = re.compile(r"\w+")


def mark_title(title: str, snippet: str) -> Markup:
    """The title, escaped, with the words the engine marked in the snippet marked here too."""
    marked = {html.unescape(m).lower() for m in _MARKED.findall(str(snippet or ""))}
    marked = {w for w in marked if w.strip()}
    if not marked or not title:
        return Markup(escape(title or ""))
    out: list[str] = []
    last = 0
    for match in _WORD.finditer(title):
        if match.group(0).lower() in marked:
            out.append(str(escape(title[last:match.start()])))
            out.append(f"<mark>{escape(match.group(0))}</mark>")
            last = match.end()
    out.append(str(escape(title[last:])))
    return Markup("".join(out))


def safe_url(value: str | None) -> str:
    """Only http(s) links leave the page as links (no javascript:, data:, …)."""
    if not value:
        return ""
    value = str(value).strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    return value


def post_path(post_id: str) -> str:
    return "/posts/" + quote(post_id, safe="")


def fmt_delay(seconds: float) -> str:
    """A delay after the first post: "0 min", "+12 min", "+3 h 5 min", "+2 d 4 h"."""
    s = int(round(seconds))
    sign = "-" if s < 0 else "+"
    s = abs(s)
    if s < 60:
        return "0 min" if s == 0 else f"{sign}{s} s"
    m = s // 60
    if m < 60:
        return f"{sign}{m} min"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{sign}{h} h {m} min" if m else f"{sign}{h} h"
    d, h = divmod(h, 24)
    return f"{sign}{d} d {h} h" if h else f"{sign}{d} d"


def fmt_date(value: Any, with_time: bool = True) -> str:
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") if with_time else value.strftime("%Y-%m-%d")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def fmt_count(value: Any) -> str:
    if value is None or value == "":
        return ""
    try:
        return f"{int(value):,}".replace(",", "\u202f")
    except (TypeError, ValueError):
        return str(value)


_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"'«»]+", re.IGNORECASE)


def linkify(text: str) -> Markup:
    """Escape the text and turn bare http(s) URLs into links (the only markup added)."""
    out: list[str] = []
    last = 0
    for match in _URL_IN_TEXT.finditer(text or ""):
        url = match.group(0).rstrip(".,;:!?)]}")
        end = match.start() + len(url)
        out.append(str(escape(text[last:match.start()])))
        href = safe_url(url)
        if href:
            out.append(f'<a href="{escape(href)}" rel="noopener noreferrer nofollow">{escape(url)}</a>')
        else:
            out.append(str(escape(url)))
        last = end
    out.append(str(escape((text or "")[last:])))
    return Markup("".join(out))


def excerpt(text: str, length: int = 240) -> str:
    text = " ".join((text or "").split())
    if len(text) <= length:
        return text
    cut = text[:length].rsplit(" ", 1)[0]
    return cut + "…"


def body_without_title(text: str, title: str) -> str:
    """The post text for display under its title: without a first line that only repeats it."""
    first, sep, rest = (text or "").partition("\n")
    if title and sep and " ".join(first.split()).strip("*_ ") == " ".join(title.split()) and rest.strip():
        return rest.lstrip("\n")
    return text or ""


def month_range(value: str) -> tuple[date, date] | None:
    match = re.match(r"^(\d{4})-(\d{2})", value or "")
    if not match:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12:
        return None
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def to_day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None
