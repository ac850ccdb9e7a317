"""The HTTP API (FastAPI): search, posts, stats, health; OpenAPI docs at /api/docs.

`create_app(backend, token)` also mounts the web UI (tgsearch.web.routes). With a token, every
/api request needs `Authorization: Bearer <token>` (or the UI's session cookie); see web/auth.py
for the token, host and header checks, api/limits.py for the bounds and the overload limiter.
Every answer, errors and unexpected 500s included, carries the security headers.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Iterable

from fastapi import FastAPI, Query as Param, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from .. import __version__
from ..errors import QueryError, TgsearchError
from ..search.query import day_param
from ..search.trends import MAX_TREND_QUERIES, to_csv
from ..search.types import SearchRequest
from ..web import auth
from ..web.auth import CSP  # noqa: F401  (the one policy; re-exported for callers of this module)
from ..web.routes import mount
from .limits import MAX_LIMIT, MAX_OFFSET, LimitConfig, Limiter, LimitMiddleware

QUERY_DOC = Path(__file__).resolve().parent.parent / "search" / "query_language.md"


def _description() -> str:
    head = ("Search Telegram channels, groups and the articles they carry. Errors are JSON "
            '`{"error", "message", ...}`; a query that cannot be parsed is a 400 with the 0-based `position`.\n\n')
    try:
        return head + QUERY_DOC.read_text(encoding="utf-8")
    except OSError:
        return head


_day = day_param


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err.get("loc", ())[1:]) or "request"
        got = err.get("input")
        parts.append(f"{name}: {err.get('msg', 'invalid')}" + (f" (got {str(got)[:40]!r})" if got is not None else ""))
    return "; ".join(parts) or "invalid request"


def create_app(backend, token: str | None = None, *, allowed_hosts: Iterable[str] | None = None,
               limits: LimitConfig | None = None) -> FastAPI:
    """The API and the UI over `backend`.

    `allowed_hosts`: None = no Host check (for an app embedded by other code); otherwise a
    token-less server answers only loopback names plus these (`serve` always passes a list).
    `limits`: how many heavy requests run and wait at once (default: one per core, 4 per core waiting).
    """
    app = FastAPI(title="tgsearch", version=__version__, description=_description(),
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.backend = backend
    app.state.token = token or None
    app.state.limiter = Limiter(limits or LimitConfig.default())
    app.add_middleware(LimitMiddleware, limiter=app.state.limiter)   # innermost: after the token check
    auth.install(app, token, allowed_hosts=allowed_hosts)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError):
        return JSONResponse({"error": "input", "message": _validation_message(exc)}, status_code=422)

    @app.exception_handler(RecursionError)
    async def too_deep(request: Request, exc: RecursionError):
        return JSONResponse({"error": "query", "message": "the query is nested too deeply to evaluate; "
                             "use fewer brackets or NOTs", "reason": "nested too deeply", "position": None,
                             "query": request.query_params.get("q", "")}, status_code=400)

    @app.exception_handler(TgsearchError)
    async def tgsearch_error(request: Request, exc: TgsearchError):
        if isinstance(exc, QueryError):
            body = exc.to_dict()
        else:
            body = {"error": type(exc).__name__.removesuffix("Error").lower() or "error", "message": exc.message}
        return JSONResponse(body, status_code=exc.status)

    @app.get("/api/search", summary="Search posts (query language in the description above)")
    def search(
        q: str = Param("", description="Query, see the query language above"),
        limit: int = Param(20, ge=0, le=MAX_LIMIT),
        offset: int = Param(0, ge=0, le=MAX_OFFSET, description=f"At most {MAX_OFFSET:,}; /api/export for everything"),
        sort: str = Param("relevance", description="relevance | date (newest first) | date_asc"),
        mode: str = Param("hybrid", description="hybrid | lexical | semantic (hybrid = every retriever available)"),
        channel: list[str] = Param([], description="Channel slug or title (repeatable, OR-ed)"),
        since: str | None = Param(None, description="From this day (YYYY-MM-DD), inclusive"),
        until: str | None = Param(None, description="Up to this day (YYYY-MM-DD), inclusive"),
        kind: str | None = Param(None, description="post | article"),
        publication: str | None = Param(None),
        facets: bool = Param(False, description="Add channel/publication/month facets and a timeline"),
        interval: str = Param("auto", description="Timeline bucket: auto | day | week | month"),
        group: str = Param("story", description="story: one hit per story (its best-ranked post; `total` counts "
                                                "stories, `total_posts` posts) | none: every post"),
    ):
        if kind and kind not in ("post", "article"):
            raise QueryError(f"kind must be post or article, not {kind!r}", q)
        if interval not in ("auto", "day", "week", "month"):
            raise QueryError(f"interval must be auto, day, week or month, not {interval!r}", q)
        if group not in ("story", "none"):
            raise QueryError(f"group must be story or none, not {group!r}", q)
        req = SearchRequest(q=q, limit=limit, offset=offset, sort=sort, mode=mode, channels=tuple(channel),
                            since=_day(since, "since"), until=_day(until, "until", end=True), kind=kind,
                            publication=publication, facets=facets, interval=interval, group=group)
        return backend.search(req).to_dict()

    @app.get("/api/posts/{post_id:path}/similar", summary="Posts closest in meaning to a post (vector index)")
    def similar(post_id: str, limit: int = Param(10, ge=1, le=MAX_LIMIT)):
        return backend.similar(post_id, limit).to_dict()

    @app.get("/api/posts/{post_id:path}", summary="One post with every field")
    def post(post_id: str):
        return backend.get(post_id).to_dict()

    @app.get("/api/stories", summary="Stories with a post matching a search, newest activity first")
    def stories(
        q: str = Param("", description="Query (the search's language); empty: every story"),
        since: str | None = Param(None, description="From this day (YYYY-MM-DD), inclusive"),
        until: str | None = Param(None, description="Up to this day (YYYY-MM-DD), inclusive"),
        channel: list[str] = Param([], description="Channel slug or title (repeatable, OR-ed)"),
        mode: str = Param("hybrid", description="hybrid | lexical | semantic"),
        limit: int = Param(20, ge=0, le=MAX_LIMIT),
        offset: int = Param(0, ge=0, le=MAX_OFFSET),
    ):
        req = SearchRequest(q=q, mode=mode, channels=tuple(channel), since=_day(since, "since"),
                            until=_day(until, "until", end=True), sort="relevance" if q else "date")
        return backend.stories_search(req, limit=limit, offset=offset)

    @app.get("/api/stories/{story_id}", summary="A story: its posts in time order, first poster, copies, channels")
    def story(story_id: int):
        s = backend.story(story_id)
        return json.loads(json.dumps({**s, "posts": [{**p, "post": p["post"].to_dict()} for p in s["posts"]],
                                      "channels_list": s["channels_list"]}, ensure_ascii=False, default=str))

    def trends_result(q, interval, unit, mode, channel, since, until, kind, publication) -> dict:
        if len(q) > MAX_TREND_QUERIES:
            raise QueryError(f"at most {MAX_TREND_QUERIES} queries (q=...), not {len(q)}", q[0])
        if kind and kind not in ("post", "article"):
            raise QueryError(f"kind must be post or article, not {kind!r}")
        return backend.trends(q, interval, unit=unit, mode=mode, channels=tuple(channel),
                              since=_day(since, "since"), until=_day(until, "until", end=True),
                              kind=kind, publication=publication)

    trend_params = dict(
        q=Param([], description=f"Query (repeatable, at most {MAX_TREND_QUERIES}): one series each"),
        interval=Param("month", description="day | week (starting Monday) | month"),
        unit=Param("posts", description="posts | stories (distinct stories with a matching post, per period)"),
        mode=Param("hybrid", description="hybrid | lexical | semantic"),
        channel=Param([], description="Channel slug or title (repeatable, OR-ed)"),
        since=Param(None, description="From this day (YYYY-MM-DD), inclusive"),
        until=Param(None, description="Up to this day (YYYY-MM-DD), inclusive"),
        kind=Param(None, description="post | article"),
        publication=Param(None),
    )

    @app.get("/api/trends", summary="Counts per day/week/month for several queries (same matching as /api/search)")
    def trends(q: list[str] = trend_params["q"], interval: str = trend_params["interval"],
               unit: str = trend_params["unit"], mode: str = trend_params["mode"],
               channel: list[str] = trend_params["channel"], since: str | None = trend_params["since"],
               until: str | None = trend_params["until"], kind: str | None = trend_params["kind"],
               publication: str | None = trend_params["publication"],
               format: str = Param("json", description="json | csv")):
        if format not in ("json", "csv"):
            raise QueryError(f"format must be json or csv, not {format!r}")
        result = trends_result(q, interval, unit, mode, channel, since, until, kind, publication)
        return trends_csv_response(result) if format == "csv" else result

    @app.get("/api/trends.csv", summary="The trends as CSV: a period column, then one column per query")
    def trends_csv(q: list[str] = trend_params["q"], interval: str = trend_params["interval"],
                   unit: str = trend_params["unit"], mode: str = trend_params["mode"],
                   channel: list[str] = trend_params["channel"], since: str | None = trend_params["since"],
                   until: str | None = trend_params["until"], kind: str | None = trend_params["kind"],
                   publication: str | None = trend_params["publication"]):
        return trends_csv_response(trends_result(q, interval, unit, mode, channel, since, until, kind, publication))

    @app.get("/api/stats", summary="Counts: posts, channels, dates, files, index state")
    def stats():
        return json.loads(json.dumps(backend.stats(), ensure_ascii=False, default=str))

    @app.get("/api/health", summary="200 when the store and index are ready")
    def health():
        return backend.health()

    @app.get("/api/docs", include_in_schema=False, response_class=HTMLResponse)
    def docs():
        return _docs_page(app)

    mount(app, backend, token)
    return app


def trends_csv_response(result: dict) -> Response:
    name = f"trends-{result['interval']}-{result['unit']}.csv"
    return Response(to_csv(result), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _docs_page(app: FastAPI) -> str:
    """API reference rendered on the server (works offline, no scripts): endpoints, parameters,
    and the query language; the machine-readable spec is /api/openapi.json."""
    spec = app.openapi()
    rows = []
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            params = "".join(
                f"<li><code>{html.escape(p['name'])}</code> ({html.escape(p['in'])}): "
                f"{html.escape(p.get('description', '') or p.get('schema', {}).get('type', ''))}</li>"
                for p in op.get("parameters", []))
            rows.append(f"<h3><code>{method.upper()} {html.escape(path)}</code></h3><p>{html.escape(op.get('summary', ''))}</p>"
                        f"<ul>{params}</ul>")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>tgsearch API</title></head><body>"
            f"<h1>tgsearch API {html.escape(spec['info']['version'])}</h1>"
            f"<p>OpenAPI: <a href=\"/api/openapi.json\">/api/openapi.json</a></p>{''.join(rows)}"
            f"<h2>Query language</h2><pre>{html.escape(spec['info'].get('description', ''))}</pre></body></html>")
