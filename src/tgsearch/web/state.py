"""The search page's state (everything it shows lives in the URL), its pages and its timeline
chart: what `routes.WebUI.search` renders from."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from urllib.parse import urlencode

from ..errors import QueryError
from ..search.engine import MAX_OFFSET
from ..search.query import parse_day
from ..search.types import MODES, SORTS, SearchRequest
from .filters import to_day


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
