"""Put Telegram messages back together from a flat text dump.

Two generic problems, both solved here without knowing the file:

* Mirror pages print each post twice: a teaser (headline + body) and then the full
  view (the body again, without the headline). `collapse_repeats` finds these
  tandem repeats and keeps one copy.
* Long posts are split over several messages with part markers: "⬇️⬇️⬇️" /
  "Продолжение 👇" at the end of a part, "⬆️⬆️⬆️" / "Начало☝️" at the start of the
  next, "🔚🔚🔚" at the very end. `split_stream` cuts a marker-delimited stream into
  messages and `stitch` joins the parts of one post.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .chrome import is_media_placeholder, is_reaction_line, parse_reactions

_VS = "\ufe0f\u20e3"  # emoji variation selector / keycap, ignored when matching markers
_DOWN = "⬇👇🔽↓⏬"
_UP = "⬆👆☝🔼↑⏫"

# Strong markers: recognised anywhere in a stream.
_ARROWS_DOWN = re.compile(rf"^[{_DOWN}{_VS}\s]{{2,}}$")
_ARROWS_UP = re.compile(rf"^[{_UP}{_VS}\s]{{2,}}$")
_FINAL = re.compile(rf"^(?:🔚[{_VS}\s]*)+$")
_END_PHRASE_STRONG = re.compile(
    rf"^[(\[]?(?:продолжение|читать продолжение|читайте продолжение|continued|to be continued)"
    rf"(?: ниже| следует| в следующем (?:посте|сообщении)| below)?[)\]]?[\s.:…]*[{_DOWN}{_VS}]+\s*$",
    re.IGNORECASE,
)
_START_PHRASE_STRONG = re.compile(
    rf"^[(\[]?(?:начало|начало выше|начало в предыдущем (?:посте|сообщении)|продолжение|окончание|"
    rf"continued|start above)[)\]]?[\s.:…]*[{_UP}{_VS}]+\s*$",
    re.IGNORECASE,
)
# Weak markers: only where a message is known to end (last line) or begin (first line).
_END_PHRASE = re.compile(
    r"^[(\[]?(?:продолжение(?: ниже| следует| в следующем (?:посте|сообщении))|"
    r"to be continued|continued below)[)\]]?[\s.:…]*$",
    re.IGNORECASE,
)
_START_PHRASE = re.compile(
    r"^[(\[]?(?:начало выше|начало в предыдущем (?:посте|сообщении)|окончание|продолжение|"
    r"continued from above)[)\]]?[\s.:…]*$",
    re.IGNORECASE,
)


def is_end_marker(line: str, *, at_end: bool = False) -> bool:
    s = line.strip()
    return bool(_ARROWS_DOWN.match(s) or _END_PHRASE_STRONG.match(s) or (at_end and _END_PHRASE.match(s)))


def is_start_marker(line: str, *, at_start: bool = False) -> bool:
    s = line.strip()
    return bool(_ARROWS_UP.match(s) or _START_PHRASE_STRONG.match(s) or (at_start and _START_PHRASE.match(s)))


def is_final_marker(line: str) -> bool:
    return bool(_FINAL.match(line.strip()))


def is_marker(line: str) -> bool:
    return is_end_marker(line) or is_start_marker(line) or is_final_marker(line)


# -- teaser + full view -----------------------------------------------------------------------

@dataclass
class Segment:
    lines: list[str]
    start: int  # index of the first line in the input
    repeated: bool  # True: a post printed as teaser + full view, kept once


# Shorter "repeats" (two equal short lines) are not a teaser/full pair; under a headline
# line the pattern is more telling, so less text is needed.
MIN_REPEAT_CHARS = 40
MIN_TITLED_REPEAT_CHARS = 20
MAX_REPEAT_LINES = 2000
MAX_CANDIDATES = 64  # a line recurring more often than this ("***") is not tried further


def _repeat_at(lines: list[str], body: int, where: dict[str, list[int]], min_chars: int = MIN_REPEAT_CHARS) -> int:
    """Length n of the smallest block lines[body:body+n] that is immediately repeated, or 0."""
    first = lines[body]
    if not first.strip():
        return 0
    positions = where.get(first, [])
    at = bisect.bisect_right(positions, body)
    for q in positions[at:at + MAX_CANDIDATES]:
        n = q - body
        if n > MAX_REPEAT_LINES or q + n > len(lines):
            break
        if lines[body:q] == lines[q:q + n] and sum(len(x) for x in lines[body:q]) >= min_chars:
            return n
    return 0


def collapse_repeats(lines: list[str]) -> list[Segment]:
    """Split lines into segments; a headline followed by a body printed twice becomes one segment.

    Blank lines are expected to be removed beforehand (mirror pages print none between
    posts, and blank lines inside a teaser are not reliably reproduced in the full view).
    """
    where: dict[str, list[int]] = {}
    for i, line in enumerate(lines):
        where.setdefault(line, []).append(i)
    out: list[Segment] = []
    plain: list[str] = []
    plain_start = 0
    i = 0
    while i < len(lines):
        # A line that closes a message (or stands for its media) is not the next one's headline.
        can_head = i + 1 < len(lines) and not (is_final_marker(lines[i]) or is_end_marker(lines[i])
                                               or is_media_placeholder(lines[i]))
        n = _repeat_at(lines, i + 1, where, MIN_TITLED_REPEAT_CHARS) if can_head else 0
        if n:
            block, span = lines[i:i + 1 + n], 1 + 2 * n
        else:
            n = _repeat_at(lines, i, where)  # a post without a separate headline line
            block, span = lines[i:i + n], 2 * n
        if n:
            if plain:
                out.append(Segment(plain, plain_start, False))
                plain = []
            out.append(Segment(block, i, True))
            i += span
            continue
        if not plain:
            plain_start = i
        plain.append(lines[i])
        i += 1
    if plain:
        out.append(Segment(plain, plain_start, False))
    return out


# -- parts and markers ------------------------------------------------------------------------

@dataclass
class Message:
    lines: list[str] = field(default_factory=list)
    continues: bool = False  # ended with "continued below"
    continued: bool = False  # began with "started above"
    final: bool = False  # ended with the end-of-post marker
    media: list[str] = field(default_factory=list)  # kinds of media the message carried
    reactions: dict[str, int] = field(default_factory=dict)
    forwarded_from: str = ""
    preview: tuple[str, str, str] | None = None  # link preview under it: (site, title, description)
    start: int = 0  # line index in the input, for error positions

    def has_text(self) -> bool:
        return any(line.strip() for line in self.lines)

    def add_reactions(self, line: str) -> None:
        for emoji, count in parse_reactions(line).items():
            self.reactions[emoji] = self.reactions.get(emoji, 0) + count


def trim_markers(msg: Message) -> Message:
    """Move part markers on a message's first/last lines into its flags."""
    lines = list(msg.lines)
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines and is_final_marker(lines[-1]):
        msg.final = True
        lines.pop()
    if lines and is_end_marker(lines[-1], at_end=True):
        msg.continues = True
        lines.pop()
    if lines and is_start_marker(lines[0], at_start=True):
        msg.continued = True
        lines.pop(0)
    msg.lines = lines
    return msg


def split_stream(lines: Iterable[str], *, starts_post: Callable[[str], bool] = lambda s: False,
                 first_index: int = 0) -> list[Message]:
    """Cut a stream of lines into messages at part markers (and where `starts_post` says so).

    Reaction counters printed right after a part or post ends are taken as that
    message's reactions, not as text.
    """
    out: list[Message] = []
    cur = Message(start=first_index)
    after_end = False  # just closed a message; reaction lines belong to it

    def close(**flags) -> None:
        nonlocal cur
        for k, v in flags.items():
            setattr(cur, k, v)
        out.append(cur)
        cur = Message()

    for offset, line in enumerate(lines):
        s = line.strip()
        if after_end and s and is_reaction_line(s):
            out[-1].add_reactions(s)
            continue
        if is_final_marker(s):
            close(final=True)
            after_end = True
            continue
        if is_end_marker(s):
            close(continues=True)
            after_end = True
            continue
        if is_start_marker(s):
            if cur.has_text():
                close()
            cur.continued = True
            cur.start = first_index + offset
            after_end = False
            continue
        if s and starts_post(s) and cur.has_text():
            close()
            cur.start = first_index + offset
        if s:
            after_end = False
            if not cur.has_text():
                cur.start = first_index + offset
        cur.lines.append(line)
    out.append(cur)
    return [m for m in out if m.has_text() or m.reactions]


def stitch(messages: list[Message], *, starts_post: Callable[[str], bool] = lambda s: False) -> list[list[Message]]:
    """Group messages into posts: a part that continues, or is continued, joins its neighbour."""
    posts: list[list[Message]] = []
    for msg in messages:
        first = next((line for line in msg.lines if line.strip()), "")
        joins = bool(posts) and (posts[-1][-1].continues or msg.continued) and not posts[-1][-1].final
        if joins and first and starts_post(first.strip()):
            joins = False
        if not msg.has_text():
            if posts:  # reactions alone: they belong to the post before
                for k, v in msg.reactions.items():
                    posts[-1][-1].reactions[k] = posts[-1][-1].reactions.get(k, 0) + v
            continue
        if joins:
            posts[-1].append(msg)
        else:
            posts.append([msg])
    return posts
