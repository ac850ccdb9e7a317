"""The Trends page: several searches compared over time (`GET /trends`).

The whole state is in the URL (a GET form): `q` (repeatable, up to ten), `interval` (day | week |
month), `unit` (posts | stories), `mode`, `channel` (repeatable), `since`, `until`. The counts come
from `backend.trends` (search/trends.py: the same matching and filters as the search page), drawn as
one line per query on an inline SVG rendered here (no scripts; the CSP allows none inline), with a
table of the counts under it and a link to the same numbers as CSV (`/api/trends.csv`).
Every query is user input: the template escapes it (Jinja2 autoescape), and URLs are built with
`urlencode`.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from ..errors import QueryError, TgsearchError
from ..search.query import day_param
from ..search.trends import MAX_TREND_QUERIES, TREND_INTERVALS, TREND_UNITS
from ..search.types import MODES

# "Partners of Kazakhstan": ordinary queries the user can edit (any word form, OR between names).
PARTNERS_PRESET = (
    "Россия OR РФ OR Москва OR российский",
    "Китай OR КНР OR Пекин OR китайский",
    "США OR Вашингтон OR американский",
    "ЕС OR Евросоюз OR Брюссель OR европейский",
    "Турция OR Анкара OR турецкий",
)

CHART_W, CHART_H, PAD_L, PAD_R, PAD_T, PAD_B = 1000, 260, 44, 12, 12, 28


def preset_url(queries=PARTNERS_PRESET, interval: str = "month") -> str:
    return "/trends?" + urlencode([("q", q) for q in queries] + [("interval", interval)])


def line_chart(result: dict) -> dict | None:
    """Geometry for the SVG: a polyline per series, a dot per period (with a tooltip), a few
    x labels (period starts) and y ticks (0, half, peak)."""
    periods, series = result.get("periods") or [], result.get("series") or []
    if not periods or not series:
        return None
    peak = max((c for s in series for c in s["counts"]), default=0) or 1
    inner_w, inner_h = CHART_W - PAD_L - PAD_R, CHART_H - PAD_T - PAD_B
    n = len(periods)

    def x(i: int) -> float:
        return round(PAD_L + (inner_w * (i + 0.5) / n), 2)

    def y(count: int) -> float:
        return round(PAD_T + inner_h - inner_h * count / peak, 2)

    lines = []
    for k, s in enumerate(series):
        points = [(x(i), y(c), c, periods[i]) for i, c in enumerate(s["counts"])]
        lines.append({"cls": f"s{k % MAX_TREND_QUERIES}", "q": s["q"],
                      "points": " ".join(f"{px},{py}" for px, py, _, _ in points),
                      "dots": [{"x": px, "y": py, "label": f"{s['q']} · {p}: {c}"} for px, py, c, p in points]})
    step = max(1, n // 8)
    xlabels = [{"x": x(i), "text": periods[i]} for i in range(0, n, step)]
    yticks = [{"y": y(v), "text": str(v)} for v in sorted({0, peak // 2, peak})]
    return {"width": CHART_W, "height": CHART_H, "lines": lines, "xlabels": xlabels, "yticks": yticks,
            "left": PAD_L, "right": CHART_W - PAD_R, "base": PAD_T + inner_h, "label_y": CHART_H - 8, "peak": peak}


def _state(request: Request) -> dict:
    params = request.query_params
    return {
        "queries": [q for q in params.getlist("q") if q.strip()],
        "interval": params.get("interval") or "month",
        "unit": params.get("unit") or "posts",
        "mode": params.get("mode") or "hybrid",
        "channels": [c for c in params.getlist("channel") if c.strip()],
        "since": params.get("since") or "",
        "until": params.get("until") or "",
    }


def _query_string(state: dict) -> str:
    pairs = [("q", q) for q in state["queries"]] + [("interval", state["interval"])]
    if state["unit"] != "posts":
        pairs.append(("unit", state["unit"]))
    if state["mode"] != "hybrid":
        pairs.append(("mode", state["mode"]))
    pairs += [("channel", c) for c in state["channels"]]
    pairs += [(k, state[k]) for k in ("since", "until") if state[k]]
    return urlencode(pairs)


_day = day_param


def mount(app: FastAPI, ui, backend) -> None:
    """Add `GET /trends` to `app` (rendered with the WebUI `ui`)."""

    @app.get("/trends", response_class=HTMLResponse, include_in_schema=False)
    def trends_page(request: Request):
        started = time.perf_counter()
        state = _state(request)
        context = {"state": state, "result": None, "chart": None, "error": "", "preset_url": preset_url(),
                   "INTERVALS": TREND_INTERVALS, "UNITS": TREND_UNITS, "MODES": MODES,
                   "max_queries": MAX_TREND_QUERIES, "csv_url": "",
                   "inputs": (state["queries"] + [""] * MAX_TREND_QUERIES)[:max(5, min(MAX_TREND_QUERIES,
                                                                                      len(state["queries"]) + 2))]}
        if not state["queries"]:
            return ui.render(request, "trends.html", started=started, **context)
        try:
            if len(state["queries"]) > MAX_TREND_QUERIES:
                raise QueryError(f"at most {MAX_TREND_QUERIES} queries, not {len(state['queries'])}")
            result = backend.trends(state["queries"], state["interval"], unit=state["unit"], mode=state["mode"],
                                    channels=tuple(state["channels"]), since=_day(state["since"], "since"),
                                    until=_day(state["until"], "until", end=True))
        except TgsearchError as e:
            context["error"] = e.message
            return ui.render(request, "trends.html", status=getattr(e, "status", 500), started=started, **context)
        qs = _query_string(state)
        rows = [{"period": p, "counts": [s["counts"][i] for s in result["series"]]}
                for i, p in enumerate(result["periods"])]
        context.update(result=result, chart=line_chart(result), rows=rows, csv_url="/api/trends.csv?" + qs,
                       json_url="/api/trends?" + qs,
                       search_urls=["/?" + urlencode([("q", s["q"])] + ([("mode", state["mode"])]
                                                                       if state["mode"] != "hybrid" else []))
                                    for s in result["series"]])
        return ui.render(request, "trends.html", started=started, **context)
