"""The web UI for analysts: server-rendered pages (FastAPI + Jinja2) and the export endpoint.

`mount(app, backend)` adds to an existing FastAPI app:

- ``GET /``             search page (the whole state lives in the URL; works with JavaScript off)
- ``GET /posts/{id}``   one post with every field (and similar posts when the backend offers them)
- ``GET /channels``     every channel with counts and first/last dates
- ``GET /sources``      the sources file's entries and their last runs (``GET /api/sources``: JSON)
- ``GET /trends``       several searches compared over time (web/trends.py)
- ``GET /help``         the query-language help
- ``GET /login``, ``POST /login``, ``POST /logout``  the token flow (see `auth`)
- ``GET /api/export``   the whole result set of a search as CSV or JSONL, streamed
- ``/static/*``         our CSS and JavaScript (no CDN, nothing external)

All post content is escaped by Jinja2's autoescape. The only markup taken from the engine is the
snippet's ``<mark>`` tags, and `safe_snippet` re-escapes everything else in it; `mark_title` and
`linkify` build their markup from escaped text. Only http(s) URLs become links (`safe_url`).
"""

from __future__ import annotations

import calendar
import hmac
import html
import inspect
import re
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup, escape

from .. import __version__
from ..errors import NotFoundError, QueryError, TgsearchError
from ..export import FORMATS, iter_chunks
from ..search.engine import MAX_OFFSET
from ..post import Post
from ..search.query import parse_day
from ..search.types import MODES, SORTS, SearchRequest
from . import auth, trends

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

PAGE_SIZE = 20
MAX_PAGE = MAX_OFFSET // PAGE_SIZE   # deepest result page offered: the engine's deepest offset
KINDS = ("post", "article")
INTERVALS = ("auto", "day", "week", "month")
SIMILAR_LIMIT = 8

MODE_LABELS = {"hybrid": "Hybrid", "lexical": "Exact words", "semantic": "Meaning"}
SORT_LABELS = {"relevance": "Relevance", "date": "Newest first", "date_asc": "Oldest first"}
KIND_LABELS = {"": "Posts & articles", "post": "Posts", "article": "Articles"}


# -- URL state ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchState:
    """Everything a search page shows, read from and written back to the URL."""

    q: str = ""
    mode: str = "hybrid"
    sort: str = "relevance"
    channels: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None
    kind: str = ""
    publication: str = ""
    interval: str = "auto"
    group: str = "story"
    page: int = 1
    errors: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_query(cls, params) -> "SearchState":
        errors: list[str] = []

        def one(name: str) -> str:
            return (params.get(name) or "").strip()

        def pick(name: str, allowed, default: str) -> str:
            value = one(name)
            if not value:
                return default
            if value not in allowed:
                errors.append(f"{name}: {value!r} is not one of {', '.join(allowed)}; using {default!r}")
                return default
            return value

        def day(name: str) -> date | None:
            value = one(name)
            if not value:
                return None
            try:   # as in the query language and the API: YYYY-MM-DD, YYYY-MM or YYYY
                return parse_day(value, value, 0, end=name == "until")
            except QueryError:
                errors.append(f"{name}: {value!r} is not a date (use YYYY-MM-DD); ignored")
                return None

        page_raw = one("page") or "1"
        try:
            page = min(max(int(page_raw), 1), MAX_PAGE)
        except ValueError:
            errors.append(f"page: {page_raw!r} is not a number; showing page 1")
            page = 1
        channels: list[str] = []
        for value in params.getlist("channel"):
            value = value.strip()
            if value and value not in channels:
                channels.append(value)
        since, until = day("since"), day("until")
        if since and until and since > until:
            errors.append("since is after until; swapped them")
            since, until = until, since
        return cls(
            q=one("q")[:2000],
            mode=pick("mode", MODES, "hybrid"),
            sort=pick("sort", SORTS, "relevance"),
            channels=tuple(channels),
            since=since,
            until=until,
            kind=pick("kind", KINDS, ""),
            publication=one("publication"),
            interval=pick("interval", INTERVALS, "auto"),
            group=pick("group", ("story", "none"), "story"),
            page=page,
            errors=tuple(errors),
        )

    def params(self) -> list[tuple[str, str]]:
        """Query parameters with defaults left out, so URLs stay short and shareable."""
        out: list[tuple[str, str]] = []
        if self.q:
            out.append(("q", self.q))
        if self.mode != "hybrid":
            out.append(("mode", self.mode))
        if self.sort != "relevance":
            out.append(("sort", self.sort))
        out.extend(("channel", c) for c in self.channels)
        if self.since:
            out.append(("since", self.since.isoformat()))
        if self.until:
            out.append(("until", self.until.isoformat()))
        if self.kind:
            out.append(("kind", self.kind))
        if self.publication:
            out.append(("publication", self.publication))
        if self.interval != "auto":
            out.append(("interval", self.interval))
        if self.group != "story":
            out.append(("group", self.group))
        if self.page != 1:
            out.append(("page", str(self.page)))
        return out

    def url(self, **changes) -> str:
        """Link to this search with some parts changed; any change but `page` goes back to page 1."""
        if changes and "page" not in changes:
            changes["page"] = 1
        state = replace(self, **changes) if changes else self
        query = urlencode(state.params())
        return "/?" + query if query else "/"

    def toggle_channel(self, channel: str) -> str:
        if channel in self.channels:
            return self.url(channels=tuple(c for c in self.channels if c != channel))
        return self.url(channels=self.channels + (channel,))

    def export_url(self, fmt: str) -> str:
        params = [(k, v) for k, v in replace(self, page=1).params() if k not in ("interval", "group")]
        params.append(("format", fmt))
        return "/api/export?" + urlencode(params)

    @property
    def has_filters(self) -> bool:
        return bool(self.channels or self.since or self.until or self.kind or self.publication)

    def request(self, *, limit: int = PAGE_SIZE, offset: int | None = None, facets: bool = True) -> SearchRequest:
        sort = self.sort
        if not self.q and sort == "relevance":
            sort = "date"      # nothing to rank by: browsing shows the newest first
        return SearchRequest(
            q=self.q,
            limit=limit,
            offset=(self.page - 1) * PAGE_SIZE if offset is None else offset,
            sort=sort,
            mode=self.mode,
            channels=self.channels,
            since=self.since,
            until=self.until,
            kind=self.kind or None,
            publication=self.publication or None,
            facets=facets,
            interval=self.interval,
            group=self.group,
        )


# -- helpers used by the templates -----------------------------------------------------------

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


# -- timeline chart ------------------------------------------------------------------------------

CHART_W, CHART_H, CHART_PAD = 1000, 120, 4


def timeline_chart(state: SearchState, buckets: list[dict]) -> dict | None:
    """Geometry for the server-side SVG: one bar per bucket, each a link to that period."""
    bars = []
    for b in buckets or []:
        start, end = to_day(b.get("start")), to_day(b.get("end"))
        if start is None:
            continue
        end = end or start
        bars.append((start, end, int(b.get("count") or 0)))
    if not bars:
        return None
    peak = max(c for _, _, c in bars) or 1
    slot = CHART_W / len(bars)
    gap = min(slot * 0.15, 6) if len(bars) > 1 else 0
    out = []
    for i, (start, end, count) in enumerate(bars):
        height = 0 if count == 0 else max(2.0, (CHART_H - CHART_PAD) * count / peak)
        label = f"{start.isoformat()}" if start == end else f"{start.isoformat()} – {end.isoformat()}"
        active = state.since == start and state.until == end
        out.append({
            "x": round(i * slot + gap / 2, 2),
            "w": round(max(slot - gap, 0.5), 2),
            "y": round(CHART_H - height, 2),
            "h": round(height, 2),
            "count": count,
            "label": f"{label}: {count}",
            "href": state.url(since=start, until=end),
            "active": active,
            "start": start.isoformat(),
            "end": end.isoformat(),
        })
    return {
        "bars": out,
        "width": CHART_W,
        "height": CHART_H,
        "peak": peak,
        "first": bars[0][0].isoformat(),
        "last": bars[-1][1].isoformat(),
    }


# -- the UI --------------------------------------------------------------------------------------

def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(safe_snippet=safe_snippet, drop_lead=drop_lead, mark_title=mark_title, safe_url=safe_url, post_path=post_path,
                       fmt_date=fmt_date, fmt_count=fmt_count, linkify=linkify, excerpt=excerpt, fmt_delay=fmt_delay)
    env.globals.update(version=__version__, MODES=MODES, SORTS=SORTS, KINDS=KINDS, INTERVALS=INTERVALS,
                       MODE_LABELS=MODE_LABELS, SORT_LABELS=SORT_LABELS, KIND_LABELS=KIND_LABELS,
                       PAGE_SIZE=PAGE_SIZE)
    return env


class WebUI:
    def __init__(self, backend, token_getter):
        self.backend = backend
        self.token_getter = token_getter
        self.env = _environment()
        self._channels_cache: tuple[Any, list[dict]] | None = None
        self._lock = threading.Lock()

    # -- rendering ---------------------------------------------------------------------------
    def render(self, request: Request, name: str, status: int = 200, *, started: float | None = None,
               **context) -> HTMLResponse:
        """Render a template; Server-Timing tells the template time and, given `started`, the
        whole handler time (engine + render)."""
        t0 = time.perf_counter()
        context.setdefault("auth_on", bool(self.token_getter()))
        context.setdefault("path", request.url.path)
        body = self.env.get_template(name).render(**context)
        response = HTMLResponse(body, status_code=status)
        response.headers["cache-control"] = "no-store"
        now = time.perf_counter()
        timing = f"render;dur={(now - t0) * 1000:.1f}"
        if started is not None:
            timing = f"total;dur={(now - started) * 1000:.1f}, " + timing
        response.headers["server-timing"] = timing
        return response

    def error_page(self, request: Request, status: int, title: str, message: str) -> HTMLResponse:
        return self.render(request, "error.html", status=status, title=title, message=message)

    # -- data --------------------------------------------------------------------------------
    def channels(self) -> list[dict]:
        """Every channel with counts (Store.stats), cached until the store changes."""
        store = getattr(self.backend, "store", None)
        key = store.max_version() if store is not None and hasattr(store, "max_version") else None
        with self._lock:
            cached = self._channels_cache
            if key is not None and cached is not None and cached[0] == key:
                return cached[1]
        channels = list(self.backend.stats().get("channels", []))
        with self._lock:
            self._channels_cache = (key, channels)
        return channels

    def unavailable_modes(self) -> set[str]:
        """Modes the engine cannot run here (semantic without a vector index), shown disabled."""
        engine = getattr(self.backend, "engine", None)
        retrievers = getattr(engine, "retrievers", None)
        if not isinstance(retrievers, dict):
            return set()
        return {"semantic"} - set(retrievers)

    def similar(self, post_id: str) -> tuple[list[dict], str]:
        fn = getattr(self.backend, "similar", None)
        if fn is None:
            return [], ""
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}
        try:
            found = fn(post_id, limit=SIMILAR_LIMIT) if "limit" in params else fn(post_id)
        except TgsearchError as e:
            return [], e.message
        items = list(getattr(found, "hits", found) or [])[: SIMILAR_LIMIT + 1]
        # Items may be records (Hit, Post, dict) or bare ids / (id, score) pairs: fetch those.
        bare = [i if isinstance(i, str) else i[0] for i in items if isinstance(i, (str, tuple, list)) and i]
        fetched = {p.id: p for p in self.backend.get_many([str(b) for b in bare])} if bare else {}
        out = []
        for item in items:
            score = None
            if isinstance(item, (str, tuple, list)):
                if isinstance(item, (tuple, list)) and len(item) > 1:
                    score = item[1]
                item = fetched.get(str(item if isinstance(item, str) else item[0]))
                if item is None:
                    continue
            get = item.get if isinstance(item, dict) else (lambda k, d=None, _i=item: getattr(_i, k, d))
            item_id = get("id")
            if not item_id or item_id == post_id:
                continue
            out.append({
                "id": item_id,
                "title": get("title", "") or "",
                "text": excerpt(body_without_title(get("text", "") or "", get("title", "") or ""), 200),
                "channel": get("channel", "") or "",
                "channel_title": get("channel_title", "") or get("channel", "") or "",
                "date": get("date"),
                "score": get("score", score) if score is None else score,
            })
        out = out[:SIMILAR_LIMIT]
        return out, ""

    def search(self, request: Request) -> HTMLResponse:
        started = time.perf_counter()
        state = SearchState.from_query(request.query_params)
        context: dict[str, Any] = {"state": state, "result": None, "error": None, "chart": None,
                                   "channels": [], "facets": {}, "pages": []}
        try:
            context["unavailable_modes"] = self.unavailable_modes()
        except TgsearchError:
            context["unavailable_modes"] = set()
        try:
            context["channels"] = self.channels()
        except TgsearchError as e:
            context["error"] = e.message
        context["channel_names"] = {c["channel"]: (c.get("title") or c["channel"]) for c in context["channels"]}
        search_fn = getattr(self.backend, "search", None)
        if search_fn is None:
            context["error"] = "this backend has no search engine yet; only browsing posts by id and channels works"
            return self.render(request, "search.html", status=503, started=started, **context)
        try:
            result = search_fn(state.request())
        except QueryError as e:
            context["error"] = e.message
            context["query_error"] = e
            return self.render(request, "search.html", status=400, started=started, **context)
        except TgsearchError as e:
            context["error"] = e.message
            return self.render(request, "search.html", status=getattr(e, "status", 500), started=started, **context)
        context["result"] = result
        context["chart"] = timeline_chart(state, result.timeline)
        context["facets"] = self.facet_links(state, result.facets or {})
        context["pages"] = pagination(state, result.total)
        return self.render(request, "search.html", started=started, **context)

    def facet_links(self, state: SearchState, facets: dict[str, list[dict]]) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for item in facets.get("channel", []) or []:
            value = str(item.get("value", ""))
            active = value in state.channels
            out.setdefault("channel", []).append({
                "label": item.get("label") or value, "value": value, "count": item.get("count", 0),
                "active": active, "href": state.toggle_channel(value),
            })
        for item in facets.get("publication", []) or []:
            value = str(item.get("value", ""))
            if not value:
                continue
            active = value == state.publication
            out.setdefault("publication", []).append({
                "label": item.get("label") or value, "value": value, "count": item.get("count", 0),
                "active": active, "href": state.url(publication="" if active else value),
            })
        for kind in ("person", "org", "place"):
            for item in (facets.get(kind) or [])[:15]:
                value = str(item.get("value", ""))
                if not value or '"' in value:
                    continue
                clause = f'{kind}:"{value}"' if any(not ch.isalnum() and ch != "-" for ch in value) else f"{kind}:{value}"
                active = clause in state.q
                q = state.q.replace(clause, "").strip() if active else f"{state.q} {clause}".strip()
                out.setdefault(kind, []).append({
                    "label": value, "value": value, "count": item.get("count", 0), "active": active,
                    "href": state.url(q=" ".join(q.split())),
                })
        for item in facets.get("month", []) or []:
            value = str(item.get("value", ""))
            span = month_range(value)
            if span is None:
                continue
            active = state.since == span[0] and state.until == span[1]
            href = state.url(since=None, until=None) if active else state.url(since=span[0], until=span[1])
            out.setdefault("month", []).append({
                "label": item.get("label") or value, "value": value, "count": item.get("count", 0),
                "active": active, "href": href,
            })
        return out

    def post(self, request: Request, post_id: str) -> HTMLResponse:
        try:
            post: Post = self.backend.get(post_id)
        except NotFoundError:
            return self.error_page(request, 404, "Post not found", f"There is no post with id {post_id!r}.")
        back = auth.safe_next(request.query_params.get("back")) if request.query_params.get("back") else ""
        similar, similar_error = self.similar(post_id)
        stitched = []
        for mid in post.message_ids:
            url = ""
            if post.kind == "post" and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{3,31}", post.channel or ""):
                url = f"https://t.me/{post.channel}/{mid}"
            elif post.kind == "post" and re.fullmatch(r"c\d+", post.channel or ""):
                url = f"https://t.me/c/{post.channel[1:]}/{mid}"
            stitched.append({"id": mid, "url": url})
        # Citations (tgsearch fetch-articles), only through the Backend's methods: a backend
        # without them shows neither list.
        articles, cited_by = [], []
        try:
            if hasattr(self.backend, "articles_for"):
                articles = self.backend.articles_for(post.id)
            if post.kind == "article" and hasattr(self.backend, "citing_posts"):
                cited_by = [{"post": p, "snippet": excerpt(p.text, 199)} for p in self.backend.citing_posts(post.id)]
        except TgsearchError:
            pass
        placed, entities = {}, []
        fields = getattr(self.backend, "export_fields", None)
        if fields is not None:
            try:
                extra = fields([post.id]).get(post.id) or {}
                if extra.get("story") is not None:
                    placed = {"story": extra["story"], "copy_of": extra.get("copy_of")}
                entities = extra.get("entities") or []
            except TgsearchError:
                pass
        return self.render(request, "post.html", post=post, back=back, stitched=stitched,
                           articles=articles, cited_by=cited_by, placed=placed, entities=entities,
                           body=body_without_title(post.text, post.title),
                           has_similar=hasattr(self.backend, "similar"), similar=similar,
                           similar_error=similar_error,
                           channel_url=SearchState(channels=(post.channel,), sort="date").url())

    def story_page(self, request: Request, story_id: int) -> HTMLResponse:
        try:
            story = self.backend.story(story_id)
        except (NotFoundError, AttributeError):
            return self.error_page(request, 404, "Story not found", f"There is no story {story_id}.")
        return self.render(request, "story.html", story=story)

    def channels_page(self, request: Request) -> HTMLResponse:
        stats = self.backend.stats()
        rows = []
        for ch in stats.get("channels", []):
            rows.append({**ch, "href": SearchState(channels=(ch["channel"],), sort="date").url()})
        return self.render(request, "channels.html", stats=stats, rows=rows)

    # -- export ------------------------------------------------------------------------------
    def export(self, request: Request) -> Response:
        fmt = (request.query_params.get("format") or "csv").lower()
        if fmt not in FORMATS:
            return JSONResponse({"error": "input", "message": f"format must be one of {', '.join(FORMATS)}, not {fmt!r}"},
                                status_code=400)
        state = SearchState.from_query(request.query_params)
        try:
            total, posts = self.backend.search_all(state.request(limit=0, offset=0, facets=False))
        except QueryError as e:
            return JSONResponse(e.to_dict(), status_code=400)
        except TgsearchError as e:
            return JSONResponse({"error": "search", "message": e.message}, status_code=getattr(e, "status", 500))
        media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson; charset=utf-8"
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        headers = {
            "content-disposition": f'attachment; filename="tgsearch-{stamp}.{fmt}"',
            "x-total-count": str(total),
            "x-export-count": str(total),
            "cache-control": "no-store",
        }
        return StreamingResponse(iter_chunks(posts, fmt, getattr(self.backend, "export_fields", None)), media_type=media, headers=headers)


def pagination(state: SearchState, total: int) -> list[dict]:
    last = min(max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1), MAX_PAGE)
    if last <= 1:
        return []
    wanted = {1, last, state.page - 2, state.page - 1, state.page, state.page + 1, state.page + 2}
    pages, previous = [], 0
    for number in sorted(n for n in wanted if 1 <= n <= last):
        if previous and number > previous + 1:
            pages.append({"gap": True})
        pages.append({"number": number, "href": state.url(page=number), "current": number == state.page})
        previous = number
    return pages


# -- mounting ------------------------------------------------------------------------------------

def mount(app: FastAPI, backend, token: str | None = None) -> WebUI:
    """Add the UI pages, /api/export, the login flow and the static files to `app`.

    The token comes from the argument or, when the API layer set it, ``app.state.token``.
    """
    auth.install(app, token)
    ui = WebUI(backend, lambda: getattr(app.state, "token", None))
    app.state.web_ui = ui
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    trends.mount(app, ui, backend)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def search_page(request: Request):
        return ui.search(request)

    @app.get("/posts/{post_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def post_page(request: Request, post_id: str):
        return ui.post(request, post_id)

    @app.get("/stories/{story_id}", response_class=HTMLResponse, include_in_schema=False)
    def story_page(request: Request, story_id: int):
        return ui.story_page(request, story_id)

    @app.get("/channels", response_class=HTMLResponse, include_in_schema=False)
    def channels_page(request: Request):
        return ui.channels_page(request)

    def source_rows() -> list[dict]:
        get = getattr(backend, "sources", None)
        return list(get()) if get is not None else []

    @app.get("/api/sources")
    def api_sources():
        """The sources file's entries, each with its last run, posts added, crawl cursor, next run
        and last error (an empty list for a backend without sources)."""
        try:
            return JSONResponse(source_rows())
        except TgsearchError as e:
            return JSONResponse({"error": "sources", "message": e.message}, status_code=getattr(e, "status", 500))

    @app.get("/sources", response_class=HTMLResponse, include_in_schema=False)
    def sources_page(request: Request):
        try:
            rows = source_rows()
        except TgsearchError as e:
            return ui.render(request, "sources.html", status=getattr(e, "status", 500), rows=[], error=e.message)
        return ui.render(request, "sources.html", rows=rows, error="")

    @app.get("/help", response_class=HTMLResponse, include_in_schema=False)
    def help_page(request: Request):
        return ui.render(request, "help.html")

    @app.get("/api/export")
    def export(request: Request):
        """All posts matching a search (same parameters as the search page) as CSV or JSONL,
        streamed, every one of them (`X-Total-Count` = rows); `format=csv|jsonl`."""
        return ui.export(request)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request):
        nxt = auth.safe_next(request.query_params.get("next"))
        if not ui.token_getter():
            return RedirectResponse(nxt, status_code=303)
        return ui.render(request, "login.html", next=nxt, failed=False)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request):
        form = await request.form()
        token = ui.token_getter()
        nxt = auth.safe_next(str(form.get("next") or "/"))
        if not token:
            return RedirectResponse(nxt, status_code=303)
        client = auth.client_address(request)
        given = str(form.get("token") or "")
        if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode()):
            retry = app.state.throttle.failed(client)    # a right token is never refused (auth.LoginThrottle)
            if retry:
                response = ui.render(request, "login.html", status=429, next=nxt, failed=False, throttled=True)
                response.headers["retry-after"] = str(retry)
                return response
            return ui.render(request, "login.html", status=401, next=nxt, failed=True)
        app.state.throttle.succeeded(client)
        response = RedirectResponse(nxt, status_code=303)
        response.set_cookie(auth.COOKIE_NAME, app.state.sessions.create(token), max_age=auth.COOKIE_MAX_AGE,
                            httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request):
        app.state.sessions.revoke(request.cookies.get(auth.COOKIE_NAME, ""))   # a copied cookie dies too
        response = RedirectResponse("/login" if ui.token_getter() else "/", status_code=303)
        response.delete_cookie(auth.COOKIE_NAME, path="/")
        return response

    from . import alerts as alerts_web; alerts_web.mount(app, ui, backend)   # /alerts, /feeds/alerts/NAME.xml
    return ui
