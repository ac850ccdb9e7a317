"""Export press-digest posts as a digest channel prints them, in the form the text-dump reader
(`sources/text_dump.py`, `clean/digest.py`, `clean/stitch.py`) reads back into the same posts.

One post:

    Издание: The Diplomat (США)

    HEADLINE
    lead line(s)

    Автор: Name                (when the post has an author)
    Дата: 21.04.2025 г.        (when it has a date)
    Ссылка: https://...        (when it has a source URL)

    text ...

A post longer than one Telegram message (4,096 characters) is cut into messages at line
(paragraph) boundaries: every part but the last ends with a "⬇️⬇️⬇️" line, every part but the
first starts with a "⬆️⬆️⬆️" line, and the last part ends with "🔚🔚🔚". A post that fits in one
message carries no markers. Messages and posts follow each other line by line, as on the mirror
page the seed channel was saved from: a marker line, or the next "Издание:" line, is the boundary.

Lengths are counted in UTF-16 code units (what Telegram counts; never fewer than characters), so
no message, markers included, is longer than `MESSAGE_LIMIT` either way.

What the reader cannot get back (see README "Digest export"):
* a blank line where a post is cut between messages (the reader trims every message), so cuts
  are placed between two text lines where there is one;
* a paragraph longer than one message is cut at sentence ends (else between words, else anywhere):
  those cuts come back as line breaks instead of spaces;
* a post whose text does not begin with its headline (articles fetched from the web) comes back
  with the headline and a blank line in front of the text; only the date (not the time) is kept.
"""

from __future__ import annotations

import re
from datetime import timezone
from typing import Iterable, TextIO

from .clean.markup import tidy
from .post import Post

MESSAGE_LIMIT = 4096
DOWN = "⬇️⬇️⬇️"    # this part continues in the next message
UP = "⬆️⬆️⬆️"      # this part continues the previous message
FINAL = "🔚🔚🔚"   # the post ends here
MAX_LEAD_LINES = 3  # the reader takes at most four lines (headline + lead) before the fields

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def units(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


# Room for the text of a message: the worst case carries both markers, each on its own line.
BUDGET = MESSAGE_LIMIT - units(UP + "\n") - units("\n" + DOWN)


def has_publication(post: Post) -> bool:
    return bool((post.publication or "").strip())


def _date_line(post: Post) -> str:
    d = post.date
    if d.tzinfo is not None:
        d = d.astimezone(timezone.utc)
    return f"Дата: {d.day:02d}.{d.month:02d}.{d.year:04d} г."


def _split_text(post: Post) -> tuple[str, list[str], list[str]]:
    """(headline, lead lines, body lines) of a post's text, as the reader put it together:
    headline, lead lines, a blank line, the body."""
    text = tidy(post.text or "")
    title = tidy(post.title or "").replace("\n", " ")
    lines = text.split("\n") if text else []
    if not title:
        return "", [], lines
    if not lines or lines[0] != title:
        return title, [], lines
    i = 1
    lead: list[str] = []
    while i < len(lines) and lines[i]:
        lead.append(lines[i])
        i += 1
    body = lines[i + 1:] if i < len(lines) else []
    if len(lead) > MAX_LEAD_LINES:
        # More lead lines than the reader takes before the fields: the rest opens the body.
        body = lead[MAX_LEAD_LINES:] + ([""] + body if body else [])
        lead = lead[:MAX_LEAD_LINES]
    return title, lead, body


def render_lines(post: Post) -> tuple[list[str], int]:
    """A post's lines as the digest prints them, and how many of them are the header."""
    pub = " ".join(post.publication.split())
    country = " ".join((post.publication_country or "").split())
    title, lead, body = _split_text(post)
    lines = [f"Издание: {pub} ({country})" if country else f"Издание: {pub}", ""]
    if title:
        lines += [title, *lead, ""]
    fields = []
    if post.author:
        fields.append(f"Автор: {' '.join(post.author.split())}")
    if post.date is not None:
        fields.append(_date_line(post))
    if post.source_url:
        fields.append(f"Ссылка: {post.source_url.strip()}")
    if fields:
        lines += [*fields, ""]
    header = len(lines)
    lines += body
    while lines and not lines[-1].strip():
        lines.pop()
    return lines, header


def _pieces(line: str, budget: int) -> list[str]:
    """A line cut into pieces of at most `budget` units: at sentence ends, else between words,
    else anywhere. Pieces are greedy, so two neighbours never fit in one message together."""
    if units(line) <= budget:
        return [line]
    tokens: list[str] = []
    for sentence in _SENTENCE_END.split(line):
        if units(sentence) <= budget:
            tokens.append(sentence)
            continue
        for word in sentence.split(" "):
            while units(word) > budget:
                cut = budget
                while units(word[:cut]) > budget:
                    cut -= 1
                tokens.append(word[:cut])
                word = word[cut:]
            tokens.append(word)
    out: list[str] = []
    cur = ""
    for token in tokens:
        if not token:
            continue
        joined = f"{cur} {token}" if cur else token
        if units(joined) <= budget:
            cur = joined
        else:
            out.append(cur)
            cur = token
    if cur:
        out.append(cur)
    return out


def _pack(lines: list[str], budget: int, header: int) -> list[list[str]]:
    """Lines grouped into messages of at most `budget` units (lines joined by newlines).

    Each message takes as many lines as fit, cut back to the last place between two text lines
    (a blank line at a cut would be lost on reading) and not inside the header, where possible."""
    out: list[list[str]] = []
    n = len(lines)
    start = 0
    while start < n:
        while start < n and not lines[start].strip():
            start += 1
        if start >= n:
            break
        end, size = start, -1
        while end < n and size + 1 + units(lines[end]) <= budget:
            size += 1 + units(lines[end])
            end += 1
        if end == n:
            out.append(lines[start:end])
            break
        cuts = [k for k in range(end, start, -1) if lines[k - 1].strip()]
        body_cuts = [k for k in cuts if k >= header] or cuts
        k = next((k for k in body_cuts if lines[k].strip()), body_cuts[0])
        out.append(lines[start:k])
        start = k
    return out


def messages(post: Post) -> list[str]:
    """The Telegram messages one post is printed as (each at most MESSAGE_LIMIT units)."""
    lines, header = render_lines(post)
    pieces: list[str] = []
    header_pieces = 0
    for i, line in enumerate(lines):
        if i == header:
            header_pieces = len(pieces)
        pieces.extend(_pieces(line, BUDGET) if line else [line])
    if header >= len(lines):
        header_pieces = len(pieces)
    parts = _pack(pieces, BUDGET, header_pieces)
    if len(parts) == 1:
        return ["\n".join(parts[0])]
    msgs = []
    for i, part in enumerate(parts):
        head = [] if i == 0 else [UP]
        tail = [FINAL] if i == len(parts) - 1 else [DOWN]
        msgs.append("\n".join(head + part + tail))
    return msgs


def write_digest(posts: Iterable[Post], out: TextIO, *, counts: dict | None = None) -> int:
    """Write the posts that carry publication fields as digest messages; returns how many were
    written. `counts`, when given, receives "written", "skipped" (posts without a publication)
    and "messages"."""
    written = skipped = n_messages = 0
    for post in posts:
        if not has_publication(post):
            skipped += 1
            continue
        for msg in messages(post):
            out.write(msg + "\n")
            n_messages += 1
        written += 1
    if counts is not None:
        counts.update(written=written, skipped=skipped, messages=n_messages)
    return written
