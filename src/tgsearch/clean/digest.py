"""Press-digest headers: "Издание: X (Страна)", "Автор: …", "Дата: …", "Ссылка: URL".

Digest channels repost foreign articles in translation under such a header. The
parser takes any post's lines (or text), recognises the header block however its
fields are ordered or spelled, and returns the fields plus where the body starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .markup import URL_RE, tidy

MONTHS = {
    "январ": 1, "феврал": 2, "март": 3, "апрел": 4, "ма": 5, "июн": 6, "июл": 7, "август": 8,
    "сентябр": 9, "октябр": 10, "ноябр": 11, "декабр": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9,
    "oct": 10, "nov": 11, "dec": 12,
}
_MONTH_WORD = r"([A-Za-zА-Яа-яЁё]{3,12})\.?"
_DATE_FORMS = [
    # 21.04.2025 г. / 4.06.2025 / 21/04/2025 / 21-04-2025
    (re.compile(r"\b(\d{1,2})[./-](\d{1,2})[./-](\d{4})\b"), "dmy"),
    # 2025-05-12 / 2025.05.12 / 2025/05/12
    (re.compile(r"\b(\d{4})[./-](\d{1,2})[./-](\d{1,2})\b"), "ymd"),
    # 18 августа 2025 г. / 18 Aug 2025
    (re.compile(rf"\b(\d{{1,2}})\s+{_MONTH_WORD},?\s+(\d{{4}})\b"), "d_month_y"),
    # August 18, 2025
    (re.compile(rf"\b{_MONTH_WORD}\s+(\d{{1,2}}),?\s+(\d{{4}})\b"), "month_d_y"),
]


def month_number(word: str) -> int | None:
    """1-12 for a Russian or English month name in any case form ('августа', 'Aug'), else None."""
    w = word.lower()
    if w.startswith("ма") and not w.startswith("мар"):
        return 5  # мая / май
    for stem, num in MONTHS.items():
        if stem != "ма" and w.startswith(stem):
            return num
    return None


_DATE_WORDS = {"г", "гг", "года", "год", "в", "am", "pm", "utc", "gmt", "мск", "msk"}


def is_bare_date(line: str) -> bool:
    """A line that is only a date (and maybe a time): '18 августа 2025 г.', '2025-05-12 10:00'."""
    s = line.strip()
    if not s or len(s) > 40 or parse_date(s) is None:
        return False
    words = re.findall(r"[A-Za-zА-Яа-яЁё]+", s)
    return all(w.lower() in _DATE_WORDS or month_number(w) for w in words)


def parse_date(text: str) -> datetime | None:
    """The first date in `text`, as UTC midnight; None when there is none or it is impossible."""
    best: tuple[int, datetime] | None = None
    for pattern, form in _DATE_FORMS:
        m = pattern.search(text)
        if not m:
            continue
        a, b, c = m.groups()
        try:
            if form == "dmy":
                value = datetime(int(c), int(b), int(a), tzinfo=timezone.utc)
            elif form == "ymd":
                value = datetime(int(a), int(b), int(c), tzinfo=timezone.utc)
            elif form == "d_month_y":
                month = month_number(b)
                if month is None:
                    continue
                value = datetime(int(c), month, int(a), tzinfo=timezone.utc)
            else:
                month = month_number(a)
                if month is None:
                    continue
                value = datetime(int(c), month, int(b), tzinfo=timezone.utc)
        except ValueError:
            continue
        if best is None or m.start() < best[0]:
            best = (m.start(), value)
    return best[1] if best else None


# -- fields -----------------------------------------------------------------------------------

_LABELS = {
    "publication": r"Издание|Источник|СМИ|Publication|Source|Outlet",
    "author": r"Автор(?:ы)?|Author(?:s)?|By",
    "date": r"Дата(?: публикации)?|Опубликовано|Date|Published",
    "url": r"Ссылка(?: на (?:статью|материал|источник|оригинал))?|Оригинал|URL|Link",
}
_FIELD = {name: re.compile(rf"^(?:{labels})\s*:\s*(.*)$", re.IGNORECASE) for name, labels in _LABELS.items()}
_PUB_LABEL = re.compile(r"^(?:Издание|Publication|Outlet)\s*:\s*\S", re.IGNORECASE)
_PAREN_TAIL = re.compile(r"^(.*?)\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)\s*$")
_QUOTES = "«»\"“”„'‘’"


@dataclass
class DigestHeader:
    publication: str = ""
    publication_country: str = ""
    section: str = ""
    author: str = ""
    date: datetime | None = None
    source_url: str = ""
    title: str = ""
    lead: list[str] = field(default_factory=list)  # lines between the headline and the fields
    body_start: int = 0  # index into the given lines where the body begins


def field_of(line: str) -> tuple[str, str] | None:
    """('author', 'Ариель Коен') for 'Автор: Ариель Коен'; ('url', u) for a bare URL line."""
    s = line.strip()
    for name, pattern in _FIELD.items():
        m = pattern.match(s)
        if m:
            return name, m.group(1).strip()
    if URL_RE.fullmatch(s):
        return "url", s
    return None


def split_publication(value: str) -> tuple[str, str, str]:
    """'The Diplomat (США)' -> (name, country, section); '«X» (раздел «Y»)' -> ('X', '', 'Y')."""
    value = value.strip()
    country = section = ""
    m = _PAREN_TAIL.match(value)
    if m:
        value, inner = m.group(1), m.group(2).strip()
        sec = re.match(r"^(?:раздел|рубрика|section)\s*:?\s*(.*)$", inner, re.IGNORECASE)
        if sec:
            section = sec.group(1).strip(_QUOTES + " ")
        else:
            country = inner.strip(_QUOTES + " ")
    return value.strip().strip(_QUOTES).strip(), country, section


def clean_author(value: str) -> str:
    """Drop a trailing '(Страна)' after the name; the country belongs to the publication."""
    m = _PAREN_TAIL.match(value.strip())
    name = m.group(1) if m and m.group(1) else value
    return name.strip().strip(_QUOTES).strip()


def is_digest_start(line: str) -> bool:
    return bool(_PUB_LABEL.match(line.strip()))


_TITLE_END = ".?!»\"”…"
_TITLE_JOIN = ",;:–—-"


def _join_headline(lines: list[str]) -> tuple[str, list[str]]:
    """The headline (which may wrap over lines) and the lead lines after it."""
    if not lines:
        return "", []
    title = lines[0].strip()
    rest = lines[1:]
    while rest:
        nxt = rest[0].strip()
        prev_caps = title.upper() == title and any(ch.isalpha() for ch in title)
        next_caps = nxt.upper() == nxt and any(ch.isalpha() for ch in nxt)
        if title[-1] in _TITLE_END and not (prev_caps and next_caps and title[-1] not in ".?!…"):
            break
        if (prev_caps and next_caps) or title[-1] in _TITLE_JOIN:
            title = f"{title} {nxt}"
            rest = rest[1:]
            continue
        break
    return title, [r.strip() for r in rest]


MAX_HEADLINE_LINES = 4
MAX_HEADER_LINES = 20


def parse_header(lines: list[str]) -> DigestHeader | None:
    """Parse a digest header at the top of `lines`; None if they do not start with one."""
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or not is_digest_start(lines[i]):
        return None
    header = DigestHeader()
    pub = field_of(lines[i])
    header.publication, header.publication_country, header.section = split_publication(pub[1] if pub else "")
    before: list[str] = []  # headline and lead, before the first field
    fields_seen = 0
    body_start = i + 1
    j = i + 1
    limit = min(len(lines), i + 1 + MAX_HEADER_LINES)
    while j < limit:
        s = lines[j].strip()
        if not s:
            j += 1
            continue
        f = field_of(s)
        if f is None:
            if fields_seen:
                break
            before.append(s)
            if len(before) > MAX_HEADLINE_LINES:
                break
            j += 1
            continue
        name, value = f
        fields_seen += 1
        if name == "author" and not header.author:
            header.author = clean_author(value)
        elif name == "date" and header.date is None:
            header.date = parse_date(value)
        elif name == "url" and not header.source_url:
            urls = URL_RE.findall(value)
            header.source_url = urls[0].rstrip(".,;)»") if urls else ""
        elif name == "publication" and not header.publication:
            header.publication, header.publication_country, header.section = split_publication(value)
        j += 1
        body_start = j
    if not fields_seen:
        # Only "Издание:" and text: the first paragraph line is the headline.
        body_start = i + 1
        while body_start < len(lines) and not lines[body_start].strip():
            body_start += 1
        header.title, header.lead = _join_headline(lines[body_start:body_start + 1])
        header.body_start = body_start + 1
        return header
    if len(before) > MAX_HEADLINE_LINES:
        before = before[:1]
    header.title, header.lead = _join_headline(before)
    header.body_start = body_start
    return header


def parse_digest(text: str) -> tuple[DigestHeader | None, str]:
    """For any post text: (header, body text) when it starts with a digest header, else (None, text)."""
    lines = text.split("\n")
    header = parse_header(lines)
    if header is None:
        return None, text
    body = tidy("\n".join(header.lead + [""] + lines[header.body_start:]))
    return header, body
