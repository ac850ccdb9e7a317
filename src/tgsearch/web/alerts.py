"""The Alerts page, the "Save search" form's target and the Atom feed per saved search.

- ``GET /alerts``: the saved searches, each with its alerted stories (their current posts);
- ``POST /alerts``: save a search (name, q, channel..., webhook) -- from the search page's form;
- ``POST /alerts/{name}/remove``: forget one;
- ``GET /feeds/alerts/{name}.xml``: Atom 1.0, one entry per alerted story.

All are behind the token like every other page (auth.TokenMiddleware exempts only /login,
/logout, /favicon.ico and /static/). The POSTs also need the form's anti-forgery field (an HMAC
of this server's random secret) and, when the browser sends Origin or Referer, the same origin:
without a token the server answers any page's form posts to 127.0.0.1 otherwise.
"""

from __future__ import annotations

import hmac
import re
import secrets
import xml.etree.ElementTree as ET
from html import escape
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..errors import NotFoundError, TgsearchError

ATOM = "http://www.w3.org/2005/Atom"
PAGE_ALERTS = 50          # alerts shown per saved search on the page (newest first)
FEED_ENTRIES = 100


def _alert_store(backend):
    return backend.alert_store()


def current_story(backend, alert: dict) -> dict:
    """The alerted story as it is now (later copies included), falling back to the stored payload."""
    from ..alerts.check import story_summary

    try:
        return story_summary(backend, alert["story"], alert["first_post"])
    except TgsearchError:
        return alert["payload"]["story"]


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site."""
    site = request.headers.get("sec-fetch-site")
    if site and site not in ("same-origin", "none"):
        return False
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return source is None
    parts = urlsplit(source)
    return (parts.scheme, parts.netloc) == (request.url.scheme, request.headers.get("host", request.url.netloc))


def atom_feed(search: dict, entries: list[tuple[dict, dict]], base: str) -> bytes:
    """Atom 1.0 for one saved search; `entries` = [(alert row, current story)]."""
    ET.register_namespace("", ATOM)
    created = search["created"][:10].replace("-", "")
    feed_id = f"urn:tgsearch:alerts:{quote(search['name'], safe='')}:{created}"
    feed = ET.Element(f"{{{ATOM}}}feed")

    def sub(parent, tag, text=None, **attrs):
        el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", {k: v for k, v in attrs.items() if v is not None})
        if text is not None:
            el.text = text
        return el

    updates = []
    for alert, story in entries:
        updates.append(story.get("last_date") or alert["fired"])
    sub(feed, "id", feed_id)
    sub(feed, "title", f"tgsearch alerts: {search['name']}")
    sub(feed, "subtitle", f"New stories matching {search['query']}")
    sub(feed, "updated", max(updates) if updates else search["created"])
    sub(sub(feed, "author"), "name", "tgsearch")
    sub(feed, "link", rel="self", href=f"{base}/feeds/alerts/{quote(search['name'], safe='')}.xml")
    sub(feed, "link", rel="alternate", href=f"{base}/alerts", type="text/html")
    sub(feed, "generator", "tgsearch")
    for (alert, story), updated in zip(entries, updates):
        key = f"story:{alert['story']}" if alert["story"] is not None else f"post:{quote(alert['first_post'], safe='')}"
        entry = sub(feed, "entry")
        sub(entry, "id", f"{feed_id}:{key}")
        sub(entry, "title", (story.get("title") or alert["first_post"])[:200])
        sub(entry, "updated", updated)
        sub(entry, "published", alert["fired"])
        sub(entry, "link", rel="alternate", href=base + story.get("link", f"/posts/{alert['first_post']}"), type="text/html")
        for p in story.get("posts", []):
            if p.get("url"):
                sub(entry, "link", rel="related", href=p["url"], title=p["channel"])
        items = "".join(
            f"<li>{escape(p['date'] or '')} · {escape(p['channel_title'] or p['channel'])}: "
            f"<a href=\"{escape(base + p['link'])}\">{escape(p['title'][:140])}</a>"
            + (f" (<a href=\"{escape(p['url'])}\">original</a>)" if p.get("url") else "") + "</li>"
            for p in story.get("posts", []))
        html = (f"<p>Query: {escape(alert['payload']['query'])} · first post {escape(alert['first_post'])} · "
                f"{story.get('size', 0)} posts in {story.get('channels', 0)} channels</p><ul>{items}</ul>")
        sub(entry, "summary", f"{story.get('size', 0)} posts in {story.get('channels', 0)} channels; "
                              f"first post {alert['first_post']}")
        sub(entry, "content", html, type="html")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="utf-8", xml_declaration=False)


def mount(app: FastAPI, ui, backend) -> None:
    secret = secrets.token_bytes(32)
    form_key = hmac.new(secret, b"tgsearch-alerts-form", "sha256").hexdigest()
    ui.env.globals["alerts_form_key"] = form_key     # search.html's "Save search" form carries it

    def available() -> bool:
        return callable(getattr(backend, "alert_store", None))     # the backend has the AlertsAPI

    def page(request: Request, status: int = 200, error: str = "", form: dict | None = None) -> HTMLResponse:
        searches = []
        if available():
            store = _alert_store(backend)
            try:
                for s in store.searches():
                    alerts = store.alerts(s["id"], PAGE_ALERTS)
                    searches.append({**s, "feed": f"/feeds/alerts/{quote(s['name'], safe='')}.xml",
                                     "remove": f"/alerts/{quote(s['name'], safe='')}/remove",
                                     "items": [{**a, "current": current_story(backend, a)} for a in alerts]})
            finally:
                store.close()
        return ui.render(request, "alerts.html", status=status, searches=searches, error=error,
                         form=form or {}, form_key=form_key, available=available())

    def refused(request: Request, form) -> HTMLResponse | None:
        given = str(form.get("form_key") or "")
        if not same_origin(request) or not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), form_key.encode()):
            return ui.error_page(request, 403, "Form refused",
                                 "This form did not come from this server's own page; reload the page and try again.")
        return None

    @app.get("/alerts", response_class=HTMLResponse, include_in_schema=False)
    def alerts_page(request: Request):
        return page(request)

    @app.post("/alerts", include_in_schema=False)
    async def alerts_add(request: Request):
        form = await request.form()
        bad = refused(request, form)
        if bad is not None:
            return bad
        from ..alerts.store import NAME_RE

        q = str(form.get("q") or "").strip()
        name = str(form.get("name") or "").strip() or re.sub(r"[^\w.-]+", "-", q).strip("-")[:64]
        channels = [str(c) for c in form.getlist("channel") if str(c).strip()]
        webhook = str(form.get("webhook") or "").strip() or None
        values = {"name": name, "q": q, "channels": channels, "webhook": webhook or ""}
        if not available():
            return page(request, 400, "this backend has no saved searches", values)
        try:
            if not NAME_RE.match(name):
                from ..errors import AlertError

                raise AlertError(f"alert name {name!r}: use 1-64 letters, digits, '_', '-' or '.'")
            from ..search.query import parse

            parse(q)
            store = _alert_store(backend)
            try:
                store.add(name, q, channels=channels, webhook=webhook, mark=backend.alert_mark())
            finally:
                store.close()
        except TgsearchError as e:
            return page(request, 400, e.message, values)
        return RedirectResponse("/alerts", status_code=303)

    @app.post("/alerts/{name}/remove", include_in_schema=False)
    async def alerts_remove(request: Request, name: str):
        form = await request.form()
        bad = refused(request, form)
        if bad is not None:
            return bad
        try:
            store = _alert_store(backend)
            try:
                store.remove(name)
            finally:
                store.close()
        except NotFoundError as e:
            return page(request, 404, e.message)
        return RedirectResponse("/alerts", status_code=303)

    @app.get("/feeds/alerts/{name}.xml", include_in_schema=False)
    def alerts_feed(request: Request, name: str):
        if not available():
            return ui.error_page(request, 404, "No alerts", "This backend has no saved searches.")
        store = _alert_store(backend)
        try:
            try:
                search = store.get(name)
            except NotFoundError as e:
                return ui.error_page(request, 404, "No such saved search", e.message)
            alerts = store.alerts(search["id"], FEED_ENTRIES)
        finally:
            store.close()
        base = str(request.base_url).rstrip("/")
        body = atom_feed(search, [(a, current_story(backend, a)) for a in alerts], base)
        return Response(body, media_type="application/atom+xml; charset=utf-8", headers={"cache-control": "no-store"})
