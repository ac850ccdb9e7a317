"""Web articles saved as text (.txt/.md) or as HTML pages: one file, one post of kind "article".

This is the catch-all reader for text and HTML files that no Telegram reader claimed.

* HTML: trafilatura finds the main text and the metadata (title, author, date, URL);
  when it finds nothing, a selectolax pass over the page minus its chrome does.
* Text: the first short line is the headline (a one-word rubric above it, such as
  "Анализ", is dropped); share buttons, "also available in" pickers, photo credits,
  related-article lists, translator lines and author boxes are removed; footnotes
  ("[1] … URL") leave the text and their URLs go to `links`; "Автор:"/"Авторы:" and an
  author box (the name printed twice above a bio) give `author`; "Источник:" gives the
  source URL or, when the text has no headline of its own, the title.

Channel: the site's host name when the article names its URL (HTML metadata, or a
"Ссылка:"/"Источник:" URL), else "web" -- a saved article belongs to no Telegram
channel and its file name says nothing. The id is a hash of channel, title and the
first paragraph, so re-ingesting (or saving the same article twice) gives the same id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator
from urllib.parse import urljoin, urlparse

from ..clean.chrome import cut_related, is_article_chrome, is_page_chrome, is_page_footer
from ..clean.digest import clean_author, field_of, is_bare_date, parse_date
from ..clean.markup import URL_RE, derive_title, find_links, strip_markdown, tidy, unique
from ..errors import InputError, TgsearchError
from ..post import Post, content_id, parse_datetime
from . import ReadContext, bom_encoding, channel_name, decode, read_text

NAME = "article"
TEXT_SUFFIXES = (".txt", ".text", ".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm", ".xhtml", ".shtml")
TITLE_MAX = 250
TAIL_LINES = 12
MIN_UNTITLED_WORDS = 20  # trailer fields (source, translator, authors) are looked for this near the end


def sniff(path: Path, head: str) -> bool:
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES or suffix in HTML_SUFFIXES:
        return True
    return suffix == "" and _looks_html(head)


def _looks_html(head: str) -> bool:
    return bool(re.match(r"\s*(?:<!doctype html|<html|<head|<body)", head[:1000], re.IGNORECASE))


@dataclass
class Article:
    title: str = ""
    text: str = ""
    author: str = ""
    date: datetime | None = None
    source_url: str = ""
    publication: str = ""
    source_title: str = ""  # "Источник: <original headline>" of a translated article
    links: list[str] = field(default_factory=list)


# -- text articles ----------------------------------------------------------------------------

_FOOTNOTE = re.compile(r"^(?:\[\d{1,3}\]|\d{1,3}[.)]|\^\d{1,3})\s+\S")
_SOURCE = re.compile(r"^(?:Источник|Source|Первоисточник|Оригинал|Original)\s*:\s*(.+)$", re.IGNORECASE)
_TRANSLATION = re.compile(r"^(?:Перевод(?:ил[аи]?)?|Переводчик|Translated by|Translation)\b.{0,120}$", re.IGNORECASE)
_AUTHORS_HEAD = re.compile(r"^(?:Авторы?|Об авторах?|Authors?|About the authors?)\s*:?\s*(.*)$", re.IGNORECASE)
_NAME_IN_BIO = re.compile(r"^(.{3,60}?)\s+(?:является|—|–|-|is|was|работает|занимает|окончил|,)\s", re.IGNORECASE)


def _name_like(line: str, max_len: int = 60) -> bool:
    s = line.strip()
    return (0 < len(s) <= max_len and len(s.split()) <= 5 and s[-1] not in ".!?…:;,"
            and not URL_RE.search(s) and not any(ch.isdigit() for ch in s))


def _nonblank(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if line.strip()]


def _tail(lines: list[str]) -> list[int]:
    """Indexes of the trailer zone: the last lines, never the first half (where bylines live)."""
    idx = _nonblank(lines)
    return idx[max(len(idx) - TAIL_LINES, len(idx) // 2):]


_MD_HEADING = re.compile(r"^#{1,6}\s+")
_MD_RULE = re.compile(r"^(?:-{3,}|\*{3,}|_{3,})$")
_MD_IMAGE = re.compile(r"!\[[^\]\n]*\]\([^)\s]+\)")


def parse_text_article(text: str, *, markdown: bool = False) -> Article:
    art = Article()
    if markdown:
        text, art.links = _unmark(text)
    cut = []
    for line in tidy(text).split("\n"):
        if is_page_footer(line):
            break
        cut.append(line)
    lines = cut_related(cut)
    lines = [line for line in lines if not is_article_chrome(line) and not is_page_chrome(line)]
    lines = _strip_trailer(lines, art)
    lines = _strip_head(lines, art)
    body = tidy("\n".join(lines))
    own_title = art.title and art.title != art.source_title  # an original's headline is not this text's
    if own_title and not body.startswith(art.title):
        body = tidy(f"{art.title}\n{body}")
    art.text = body
    return art


def _unmark(text: str) -> tuple[str, list[str]]:
    """Markdown to plain lines: headings lose their '#', images go, [label](url) keeps the label."""
    text = _MD_IMAGE.sub("", text)
    text, links = strip_markdown(text)
    lines = [_MD_HEADING.sub("", line) for line in text.split("\n") if not _MD_RULE.match(line.strip())]
    return "\n".join(lines), links


def _strip_trailer(lines: list[str], art: Article) -> list[str]:
    source_title = ""
    # Source / translator lines, anywhere in the last lines.
    tail = _tail(lines)
    drop = set()
    for i in tail:
        s = lines[i].strip()
        m = _SOURCE.match(s)
        if m:
            value = m.group(1).strip()
            urls = find_links(value)
            if urls:
                art.source_url = art.source_url or urls[0]
                rest = URL_RE.sub("", value).strip(" ,.;:—–-")
                source_title = source_title or rest
            else:
                source_title = source_title or value
            drop.add(i)
        elif _TRANSLATION.match(s):
            drop.add(i)
    lines = [line for i, line in enumerate(lines) if i not in drop]
    # An "Авторы:" block: names (with or without bios) to the end.
    for i in _tail(lines):
        m = _AUTHORS_HEAD.match(lines[i].strip())
        if not m:
            continue
        names = [clean_author(m.group(1))] if m.group(1).strip() else []
        for line in lines[i + 1:]:
            s = line.strip()
            if not s:
                continue
            bio = _NAME_IN_BIO.match(s)
            if bio and _name_like(bio.group(1)):
                names.append(bio.group(1).strip())
            elif _name_like(s):
                names.append(s)
        names = unique(n for n in names if n)
        if names:
            art.author = art.author or ", ".join(names)
            lines = lines[:i]
        break
    # An author box: the name twice (e.g. caption + heading), then a bio.
    idx = _tail(lines)[-6:]
    for a, b in zip(idx, idx[1:]):
        if lines[a].strip() == lines[b].strip() and _name_like(lines[a]):
            art.author = art.author or lines[a].strip()
            lines = lines[:a]
            break
    # Footnotes: a trailing run of "[n] … URL" lines.
    idx = _nonblank(lines)
    k = len(idx)
    while k > 0 and _FOOTNOTE.match(lines[idx[k - 1]].strip()):
        k -= 1
    if len(idx) - k >= 1 and any(URL_RE.search(lines[i]) for i in idx[k:]):
        for i in idx[k:]:
            art.links.extend(find_links(lines[i]))
        lines = lines[:idx[k]] if k < len(idx) else []
    art.source_title = source_title
    return lines


def _strip_head(lines: list[str], art: Article) -> list[str]:
    lines = _take_fields(lines, art)  # a saved URL or date above the headline
    idx = _nonblank(lines)
    if not idx:
        return lines
    first = lines[idx[0]].strip()
    # A rubric ("Анализ", "Мнение") above a headline.
    if len(idx) >= 3 and _name_like(first, 30) and len(first.split()) <= 2 and _title_like(lines[idx[1]]) \
            and len(lines[idx[1]].strip()) > len(first):
        lines = lines[idx[0] + 1:]
        idx = _nonblank(lines)
        first = lines[idx[0]].strip()
    if len(idx) >= 2 and _title_like(first):
        art.title = first
        return _take_fields(lines[idx[0] + 1:], art)
    art.title = art.source_title
    return lines


def _take_fields(lines: list[str], art: Article, limit: int = 5) -> list[str]:
    """Consume byline lines at the top: "Автор: …", "Дата: …", "Ссылка: …", a bare URL or date."""
    start = 0
    for i in _nonblank(lines)[:limit]:
        s = lines[i].strip()
        f = field_of(s)
        if f is None and is_bare_date(s):
            f = ("date", s)
        if f is None:
            break
        _apply_field(art, *f)
        start = i + 1
    return lines[start:]


def _title_like(line: str) -> bool:
    s = line.strip()
    return 0 < len(s) <= TITLE_MAX and s[-1] not in ".:;," and not URL_RE.fullmatch(s) and not _FOOTNOTE.match(s)


def _apply_field(art: Article, name: str, value: str) -> None:
    if name == "author" and not art.author:
        art.author = clean_author(value)
    elif name == "date" and art.date is None:
        art.date = parse_date(value)
    elif name == "url" and not art.source_url:
        urls = find_links(value)
        art.source_url = urls[0] if urls else ""
    elif name == "publication" and not art.publication:
        art.publication = value.strip("«»\" ")


# -- HTML articles ----------------------------------------------------------------------------

_CHROME_SELECTORS = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe",
                     "svg", "button", "template")
_CHROME_CLASS = re.compile(r"share|social|cookie|consent|related|recommend|banner|advert|promo|subscribe|"
                           r"newsletter|comment|breadcrumb|menu|sidebar|popup|modal|tags|author-box|footer|header",
                           re.IGNORECASE)


def parse_html_article(html: str) -> Article:
    art = _from_trafilatura(html)
    fallback = extract_with_selectolax(html)
    if art is None or len(art.text) < 0.3 * len(fallback.text):
        art = fallback
    else:
        for name in ("title", "author", "source_url", "publication"):
            if not getattr(art, name):
                setattr(art, name, getattr(fallback, name))
        art.date = art.date or fallback.date
    art = _clean_extracted(art)
    if not art.title and len(art.text.split()) < MIN_UNTITLED_WORDS:
        art.text = ""  # a menu or a stray caption is not an article
    return art


def _from_trafilatura(html: str) -> Article | None:
    try:
        import trafilatura
    except ImportError:  # pragma: no cover - it is a declared dependency
        return None
    try:
        doc = trafilatura.bare_extraction(
            html, with_metadata=True, include_links=True, include_comments=False, include_tables=True,
            date_extraction_params={"outputformat": "%Y-%m-%dT%H:%M:%S%z", "original_date": True},
        )
    except TgsearchError:
        raise  # the ingest's per-file time limit, not a parser error
    except Exception:  # noqa: BLE001 - trafilatura raises assorted parser errors on broken pages
        return None
    if doc is None:
        return None
    text, links = strip_markdown(getattr(doc, "text", "") or "")
    art = Article(title=(doc.title or "").strip(), text=text, author=(doc.author or "").strip(),
                  source_url=(doc.url or "").strip(), publication=(doc.sitename or "").strip(), links=links)
    art.date = _to_date(doc.date)
    return art


def _to_date(value) -> datetime | None:
    if not value:
        return None
    text = str(value)
    m = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})([+-]\d{2})(\d{2})$", text)
    if m:
        text = f"{m.group(1)}{m.group(2)}:{m.group(3)}"
    try:
        return parse_datetime(text)
    except ValueError:
        return parse_date(text)


_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?»)])")


def _meta(tree, *names: str) -> str:
    for name in names:
        for attr in ("property", "name", "itemprop"):
            node = tree.css_first(f'meta[{attr}="{name}"]')
            if node is not None and (node.attributes.get("content") or "").strip():
                return node.attributes["content"].strip()
    return ""


def extract_with_selectolax(html: str) -> Article:
    """The fallback extractor: the page minus scripts, navigation and chrome blocks."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    art = Article()
    art.title = _meta(tree, "og:title", "twitter:title")
    if not art.title:
        h1 = tree.css_first("h1")
        title = tree.css_first("title")
        art.title = (h1.text(strip=True) if h1 else "") or (title.text(strip=True) if title else "")
    art.author = _meta(tree, "author", "article:author", "parsely-author")
    art.date = _to_date(_meta(tree, "article:published_time", "datePublished", "pubdate", "date"))
    if art.date is None:
        node = tree.css_first("time[datetime]")
        art.date = _to_date(node.attributes.get("datetime")) if node is not None else None
    canonical = tree.css_first('link[rel="canonical"]')
    art.source_url = (canonical.attributes.get("href") or "") if canonical is not None else ""
    art.source_url = art.source_url or _meta(tree, "og:url")
    art.publication = _meta(tree, "og:site_name")
    for node in tree.css(",".join(_CHROME_SELECTORS)):
        node.decompose()
    for node in tree.css("[class],[id]"):
        label = f"{node.attributes.get('class') or ''} {node.attributes.get('id') or ''}"
        if _CHROME_CLASS.search(label) and node.tag not in ("html", "body", "article", "main"):
            node.decompose()
    root = tree.css_first("article") or tree.css_first("main") or tree.body
    paragraphs = []
    links = []
    if root is not None:
        for node in root.css("h1,h2,h3,h4,p,li,blockquote,pre"):
            if node.css_first("p,li") is not None and node.tag in ("li", "blockquote"):
                continue  # its inner paragraphs are listed on their own
            text = _SPACE_BEFORE_PUNCT.sub(r"\1", node.text(separator=" ", strip=True))
            if text:
                paragraphs.append(f"- {text}" if node.tag == "li" else text)
        for a in root.css("a[href]"):
            links.append(a.attributes.get("href") or "")
    art.text = "\n".join(paragraphs)
    art.links = [urljoin(art.source_url, h) if art.source_url else h for h in links]
    return art


def _clean_extracted(art: Article) -> Article:
    lines = cut_related(tidy(art.text).split("\n"))
    lines = [line for line in lines if not is_article_chrome(line)]
    text = tidy("\n".join(lines))
    if art.title and not text.startswith(art.title):
        text = tidy(f"{art.title}\n{text}")
    art.text = text
    art.links = [u for u in unique(art.links) if u.startswith(("http://", "https://"))]
    return art


# -- reader -----------------------------------------------------------------------------------

def channel_for(url: str) -> str:
    host = (urlparse(url).hostname or "").lower() if url else ""
    if host.startswith("www."):
        host = host[4:]
    return host or "web"


_CHARSET = re.compile(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9_-]+)", re.IGNORECASE)


def _read_html(path: Path, encoding: str | None) -> str:
    """A saved page in the charset its <meta> declares (old Russian sites use windows-1251)."""
    if encoding:
        return read_text(path, encoding)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(str(path), f"cannot read ({e.strerror})", "check the path and permissions") from e
    if bom_encoding(data):
        return decode(path, data)  # a byte order mark outranks a <meta> charset
    m = _CHARSET.search(data[:4096])
    declared = m.group(1).decode("ascii").lower() if m else "utf-8"
    if declared not in ("utf-8", "utf8"):
        try:
            return data.decode(declared)
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong declaration: fall back to the usual UTF-8 check and its hint
    return decode(path, data)


def read(path: Path, ctx: ReadContext) -> Iterator[Post]:
    if path.suffix.lower() in HTML_SUFFIXES:
        art = parse_html_article(_read_html(path, ctx.encoding))
    else:
        text = read_text(path, ctx.encoding)
        if _looks_html(text):
            art = parse_html_article(text)
        else:
            art = parse_text_article(text, markdown=path.suffix.lower() in (".md", ".markdown"))
    if not art.text.strip():
        raise InputError(str(path), "no article text found", "is it an empty or script-only page?")
    channel = channel_name(ctx.channel, "web") if ctx.channel else channel_for(art.source_url)
    body_start = art.text[len(art.title):].strip() if art.title and art.text.startswith(art.title) else art.text
    first_para = body_start.split("\n", 1)[0][:300]
    links = list(art.links) + find_links(art.text)
    if art.source_url:
        links.insert(0, art.source_url)
    yield Post(
        id=content_id(channel, art.title, first_para),
        channel=channel,
        channel_title=ctx.channel or art.publication or channel,
        text=art.text,
        title=art.title or derive_title(art.text),
        date=art.date,
        links=tuple(unique(links)),
        source_url=art.source_url,
        publication=art.publication,
        author=art.author,
        kind="article",
        origin_file=ctx.origin_file,
    )


def fetched_post(page: str, url: str, *, html: bool = True) -> Post:
    """A page fetched from `url` (HTML, or plain text with ``html=False``) as a kind="article"
    Post, extracted as a saved article is: the id comes from the URL (the same page fetched again
    is the same post), the channel is the URL's host name, source_url is `url`.
    InputError when the page holds no article text."""
    art = parse_html_article(page) if html else parse_text_article(page)
    if not art.text.strip():
        raise InputError(url, "no article text found", "an empty, script-only or menu-only page")
    channel = channel_for(url)
    links = [url, *art.links, *find_links(art.text)]
    return Post(
        id=content_id(channel, url),
        channel=channel,
        channel_title=art.publication or channel,
        text=art.text,
        title=art.title or derive_title(art.text),
        date=art.date,
        links=tuple(unique(links)),
        source_url=url,
        publication=art.publication,
        author=art.author,
        kind="article",
    )
