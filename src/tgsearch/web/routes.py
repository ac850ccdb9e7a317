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

import hmac
import inspect
import re
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader

from .. import __version__
from ..errors import NotFoundError, QueryError, TgsearchError
from ..export import FORMATS, iter_chunks
from ..post import Post
from ..search.types import MODES, SORTS
from . import auth, trends
from .state import (  # noqa: F401 - the search page's state (tests import it from here too)
    INTERVALS, KIND_LABELS, KINDS, MODE_LABELS, PAGE_SIZE, SIMILAR_LIMIT,
    SORT_LABELS, SearchState, pagination, timeline_chart,
)
from .filters import (  # noqa: F401 - the templates' helpers (tests import them from here too)
    body_without_title, drop_lead, excerpt, fmt_count, fmt_date, fmt_delay, linkify, mark_title, month_range,
    post_path, safe_snippet, safe_url,
)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

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
