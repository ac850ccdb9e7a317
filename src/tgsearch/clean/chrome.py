"""Recognise site chrome in saved pages and text dumps, line by line.

Chrome is anything the saving site or the mirror added around the content: page
headers and footers, "view in Telegram" placeholders, share buttons, "also available
in" language pickers, related-article lists, photo credits and reaction counters.
Rules are patterns over whole lines, so they work on any dump, not one file.
"""

from __future__ import annotations

import re

# Lines a Telegram mirror page adds around the posts; never part of a post.
_PAGE_CHROME = [
    r"Telegram Group Search",
    r"Back to Top",
    r"Наверх",
    r"Live stream (?:finished|started|scheduled)(?: \(.*\))?",
    r"Трансляция (?:завершена|началась)(?: \(.*\))?",
    r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}(?::\d{2})?",  # the page's own "saved at" stamp
    r"Load more|Показать ещё|Show more",
]
PAGE_CHROME = re.compile(r"^(?:%s)$" % "|".join(_PAGE_CHROME), re.IGNORECASE)

# Footer lines after which nothing belongs to the content (embed snippets and such).
PAGE_FOOTER = re.compile(r"^(?:HTML Embed Code:?|Embed code:?|Код для вставки:?)\s*$", re.IGNORECASE)

# A post whose media the mirror cannot show; the line itself is chrome, but it tells
# us the post carried media.
MEDIA_PLACEHOLDER = re.compile(
    r"^(?:Please open Telegram to view this post|VIEW IN TELEGRAM|Open in Telegram|"
    r"Открыть в Telegram|Смотреть в Telegram|This media is not supported in your browser|"
    r"Media is too big|Видео недоступно|Video unavailable)$",
    re.IGNORECASE,
)

# Share/social buttons saved as text (whole line only).
_SHARE = {
    "paylaş", "paylas", "поделиться", "share", "share this", "share this article", "tweet",
    "facebook", "twitter", "x", "vk", "вконтакте", "одноклассники", "ok", "telegram", "whatsapp",
    "viber", "linkedin", "reddit", "email", "e-mail", "print", "печать", "распечатать",
    "копировать ссылку", "copy link", "скопировать ссылку", "подписаться", "subscribe",
}

ALSO_AVAILABLE = re.compile(
    r"^(?:Эта статья (?:также )?доступна (?:на|в) (?:этих|следующих|других) языках|"
    r"Статья доступна на языках|This (?:article|post|page) is (?:also )?available in|"
    r"Also available in|Bu (?:makale|yazı) ayrıca|Read (?:this|it) in)\b.*$",
    re.IGNORECASE,
)

RELATED_HEADING = re.compile(
    r"^(?:Похожие (?:материалы|статьи|новости|публикации)|Читайте также|Читать также|Смотрите также|"
    r"Материалы по теме|Ещё по теме|Еще по теме|Другие (?:материалы|новости|статьи)|"
    r"Рекомендуем(?: прочитать)?|Популярное|Related(?: articles| posts| stories| news)?|"
    r"You may also like|Read (?:more|also|next)|More from .{1,40}|Recommended(?: for you)?|"
    r"İlgili (?:haberler|yazılar)|Benzer (?:haberler|yazılar))[:.]?$",
    re.IGNORECASE,
)

PHOTO_CREDIT = re.compile(
    r"^(?:(?:Фото|Фотография|Фотографии|Иллюстрация|Изображение|Photo|Photos|Image|Foto|Fotoğraf)"
    r"(?:\s*(?::|—|-|–|©)\s*\S.*|\s+(?:из открытых источников|из соцсетей|из архива|предоставлено\b.*|"
    r"пресс-службы\b.*|с сайта\b.*|by\b.*|courtesy\b.*|credit\b.*))|"
    r"(?:Фото|Photo)\s+\S+(?:\s+\S+)?\s*/\s*\S.*|©.{0,80})$",
    re.IGNORECASE,
)

COOKIE = re.compile(
    r"(?:cookie|куки|файлы cookie|файлов cookie).{0,200}(?:accept|принять|соглас|используем|use)|"
    r"(?:we use|мы используем).{0,40}(?:cookie|куки)",
    re.IGNORECASE,
)

# A reaction counter saved as its own line: "👍1", "🔥 12", "1", "❤ 3 👍 2".
REACTION = re.compile(r"^(?:(?:[^\w\s\d]{1,4}\s?)?\d{1,6}(?:[.,]\d+)?[KkКк]?\s*)+$")
_EMOJI_COUNT = re.compile(r"([^\w\s\d]{1,4})\s?(\d{1,6})")


def is_page_chrome(line: str) -> bool:
    return bool(PAGE_CHROME.match(line.strip()))


def is_page_footer(line: str) -> bool:
    return bool(PAGE_FOOTER.match(line.strip()))


def is_media_placeholder(line: str) -> bool:
    return bool(MEDIA_PLACEHOLDER.match(line.strip()))


def is_share_button(line: str) -> bool:
    return line.strip().strip("•|·").strip().lower() in _SHARE


def is_article_chrome(line: str) -> bool:
    """A line of a web page that is never article content (whole-line test)."""
    s = line.strip()
    if not s:
        return False
    if is_share_button(s) or ALSO_AVAILABLE.match(s):
        return True
    if len(s) <= 160 and PHOTO_CREDIT.match(s):
        return True
    return len(s) <= 400 and bool(COOKIE.search(s))


def is_related_heading(line: str) -> bool:
    return bool(RELATED_HEADING.match(line.strip()))


def is_reaction_line(line: str) -> bool:
    s = line.strip()
    return bool(s) and len(s) <= 40 and bool(REACTION.match(s))


def parse_reactions(line: str) -> dict[str, int]:
    """Emoji counts from a reaction line; bare numbers (emoji lost in the save) are dropped."""
    out: dict[str, int] = {}
    for emoji, count in _EMOJI_COUNT.findall(line):
        out[emoji] = out.get(emoji, 0) + int(count)
    return out


def cut_related(lines: list[str], tail_share: float = 0.5) -> list[str]:
    """Drop a related-articles list: from its heading (in the last part of the text) to the end."""
    start = int(len(lines) * (1 - tail_share))
    for i in range(max(start, 0), len(lines)):
        if is_related_heading(lines[i]):
            return lines[:i]
    return lines
