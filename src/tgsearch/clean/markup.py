"""Text-level cleaning shared by all readers."""

from __future__ import annotations

import re
import unicodedata

URL_RE = re.compile(r"""(?:https?://|www\.)[^\s<>"'«»\]\)]+""", re.IGNORECASE)
_MD_LINK = re.compile(r"\[([^\]\n]*)\]\((https?://[^)\s]+|tg://[^)\s]+|mailto:[^)\s]+)\)")
_MD_EMPH = re.compile(r"(\*\*|__|~~|\|\|)")
_TRAILING_PUNCT = ".,;:!?)»"
_SPACES = re.compile(r"[ \t\u00a0\u2009\u202f]+")
_BLANKS = re.compile(r"\n{3,}")


def strip_markdown(text: str) -> tuple[str, list[str]]:
    """Telethon markdown (**bold**, __italic__, [label](url)) to plain text plus the link targets."""
    links: list[str] = []

    def _link(m: re.Match) -> str:
        links.append(m.group(2))
        return m.group(1)

    text = _MD_LINK.sub(_link, text)
    text = _MD_EMPH.sub("", text)
    return text, links


def find_links(text: str) -> list[str]:
    out = []
    for m in URL_RE.finditer(text):
        url = m.group(0).rstrip(_TRAILING_PUNCT)
        if url.lower().startswith("www."):
            url = "https://" + url
        out.append(url)
    return out


def unique(items) -> list:
    seen = set()
    out = []
    for item in items:
        if item and item not in seen:
            seen.add(item)
            out.append(item)
    return out


def tidy(text: str) -> str:
    """Normalize line ends and spaces, drop zero-width noise, collapse blank runs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u200b", "").replace("\u200c", "").replace("\u200d", "\u200d").replace("\ufeff", "")
    text = unicodedata.normalize("NFC", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    text = "\n".join(lines)
    return _BLANKS.sub("\n\n", text).strip()


def derive_title(text: str, max_len: int = 160) -> str:
    """A post's headline: its first line when it reads like one (short, followed by more text)."""
    first, _, rest = text.strip().partition("\n")
    first = first.strip()
    if not rest.strip() or not first or len(first) > max_len:
        return ""
    if URL_RE.fullmatch(first):
        return ""
    return first.strip("*_ ")
