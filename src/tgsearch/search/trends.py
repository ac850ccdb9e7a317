"""Trends: how often each of several searches matches, per day, week or month.

One series per query, counted over exactly the result set `/api/search` defines for that query
(`Engine.plan` + `Engine.ranked`: same parsing, mode, filters), so a series' counts add up to the
search's number of dated posts. `unit="posts"` counts matching posts per period; `unit="stories"`
counts distinct stories per period (a story is counted in every period where it has a matching
post; a post not placed in a story yet counts as a story of its own, as the grouped search does).

Periods are UTC days, weeks starting on Monday (as the search timeline's), or calendar months,
each named by its first day ("2025-05-01"); every period from the first to the last non-empty one
over all series is listed, empty ones as zeros.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

from ..errors import QueryError
from .types import SearchRequest

TREND_INTERVALS = ("day", "week", "month")
TREND_UNITS = ("posts", "stories")
MAX_TREND_QUERIES = 10


def period_start(day: date, interval: str) -> date:
    """The first day of the period `day` falls in."""
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def next_period(start: date, interval: str) -> date:
    if interval == "day":
        return start + timedelta(days=1)
    if interval == "week":
        return start + timedelta(days=7)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def periods_between(first: date, last: date, interval: str) -> list[date]:
    out, cur = [], first
    while cur <= last:
        out.append(cur)
        cur = next_period(cur, interval)
    return out


def _utc_day(iso_date: str) -> date:
    dt = datetime.fromisoformat(iso_date.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).date()


def _counts_by_aggregation(lexical, plan, interval: str) -> dict[date, int]:
    """Posts per period counted by the lexical index over `plan.counted` (lexical and hybrid modes:
    the compiled query plus the semantic-only extras), without fetching any document."""
    searcher = plan.searcher
    out: dict[date, int] = {}
    if interval == "month":
        res = lexical.facet_counts(searcher, plan.counted, {"month": 100_000})
        for key, n in res["month"]:
            if key and n:
                y, m = map(int, key.split("-"))
                out[date(y, m, 1)] = out.get(date(y, m, 1), 0) + n
        return out
    step = 86400 if interval == "day" else 7 * 86400
    offset = 0 if interval == "day" else 4 * 86400   # the epoch was a Thursday: weeks start on Monday
    for key, n in lexical.histogram(searcher, plan.counted, step, offset, 1):
        if n:
            start = datetime.fromtimestamp(key, tz=timezone.utc).date()
            out[start] = out.get(start, 0) + n
    return out


def _counts_by_ids(engine, plan, interval: str, unit: str) -> dict[date, int]:
    """Posts (or distinct stories) per period over the whole ordered result set's ids."""
    full, _ = engine.ranked(plan, 0, None)
    ids = [pid for pid, _, _ in full]
    dates = engine.store.dates(ids)
    if unit == "posts":
        out: dict[date, int] = {}
        for pid in ids:
            d = dates.get(pid)
            if d:
                p = period_start(_utc_day(d), interval)
                out[p] = out.get(p, 0) + 1
        return out
    placed = engine.stories.placements(ids) if engine.stories is not None else {}
    seen: dict[date, set] = {}
    for pid in ids:
        d = dates.get(pid)
        if not d:
            continue
        story = (placed.get(pid) or {}).get("story")
        seen.setdefault(period_start(_utc_day(d), interval), set()).add(
            ("story", story) if story is not None else ("post", pid))
    return {p: len(s) for p, s in seen.items()}


def trends(engine, queries: list[str], interval: str = "month", *, since: date | None = None,
           until: date | None = None, channels: tuple[str, ...] = (), mode: str = "hybrid",
           kind: str | None = None, publication: str | None = None, unit: str = "posts") -> dict:
    """{"interval", "unit", "periods": ["YYYY-MM-DD", ...], "series": [{"q", "counts", "total"}, ...]}.

    QueryError for a bad interval, unit, mode, too many (or no) queries, or a query that cannot
    be parsed (naming which one)."""
    if interval not in TREND_INTERVALS:
        raise QueryError(f"interval must be one of {', '.join(TREND_INTERVALS)}, not {interval!r}")
    if unit not in TREND_UNITS:
        raise QueryError(f"unit must be one of {', '.join(TREND_UNITS)}, not {unit!r}")
    queries = [q for q in queries if q and q.strip()]
    if not queries:
        raise QueryError("give at least one query (q=...)")
    if len(queries) > MAX_TREND_QUERIES:
        raise QueryError(f"at most {MAX_TREND_QUERIES} queries, not {len(queries)}")
    base = SearchRequest(mode=mode, channels=tuple(channels), since=since, until=until, kind=kind or None,
                         publication=publication or None, group="none", sort="relevance")
    per_query: list[dict[date, int]] = []
    for q in queries:
        plan = engine.plan(replace(base, q=q))
        if unit == "posts" and plan.names != ["semantic"]:
            if plan.names != ["lexical"]:
                engine.ranked(plan, 0, 0)     # hybrid: fills plan.counted with the semantic-only extras
            per_query.append(_counts_by_aggregation(engine.lexical, plan, interval))
        else:
            per_query.append(_counts_by_ids(engine, plan, interval, unit))
    starts = [p for counts in per_query for p in counts]
    periods = periods_between(min(starts), max(starts), interval) if starts else []
    series = [{"q": q, "counts": [counts.get(p, 0) for p in periods], "total": sum(counts.values())}
              for q, counts in zip(queries, per_query)]
    return {"interval": interval, "unit": unit, "periods": [p.isoformat() for p in periods], "series": series}


def to_csv(result: dict) -> str:
    """The trends as CSV: a `period` column, then one column per query (the query as header)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["period"] + [_cell(s["q"]) for s in result["series"]])
    for i, p in enumerate(result["periods"]):
        w.writerow([p] + [s["counts"][i] for s in result["series"]])
    return buf.getvalue()


def _cell(text: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas: quote those with a leading '."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
