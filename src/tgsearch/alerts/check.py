"""Check saved searches against the posts written since their mark; fire once per story.

`run_alerts(backend)`: for each saved search, the posts written since its mark (the backend's
`changed_since`, alerts/backend_api.py) that match its query (`matching_ids`: the lexical search,
with its channel filter, restricted to those posts) are grouped by story (`story_placements`). A story fires once, the first time any of its posts matches; later posts of an
alerted story do not fire again (the feed and the Alerts page list the story's current posts).

Only posts the indexes have caught up with are checked: the mark never passes a post the lexical
index or the stories index has not reached yet (`waiting` in the report), so the next run checks
it -- once it has its story, which may already have alerted. The alerts of a search and its moved
mark are written in one transaction (AlertStore.record_check). Webhook deliveries run after every
search was checked; each failure is recorded and retried with a backoff on later runs.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from .store import AlertStore, now_iso

WEBHOOK_TIMEOUT = 10.0


def _iso(d) -> str | None:
    return d.astimezone(timezone.utc).isoformat() if d else None


def post_summary(post, copy_of: str | None = None) -> dict:
    return {"id": post.id, "channel": post.channel, "channel_title": post.channel_title or post.channel,
            "date": _iso(post.date), "url": post.url, "link": f"/posts/{post.id}", "copy_of": copy_of,
            "title": post.title or post.text[:140]}


def story_summary(backend, story_id: int | None, post_id: str) -> dict:
    """The story as it is now: title, first post, its posts so far (channels, links), last post time.
    Without a story (stories off): the post alone."""
    if story_id is not None:
        try:
            s = backend.story(story_id)
        except Exception:   # noqa: BLE001 - a story gone since (rebuilt): fall back to the post
            s = None
        if s is not None:
            posts = [post_summary(p["post"], p["copy_of"]) for p in s["posts"]]
            dates = [p["date"] for p in posts if p["date"]]
            return {"id": story_id, "title": s["title"], "first_post": s["first_post"], "size": len(posts),
                    "channels": len({p["channel"] for p in posts}), "posts": posts,
                    "link": f"/stories/{story_id}", "last_date": max(dates) if dates else None}
    posts = [post_summary(p) for p in backend.get_many([post_id])]
    return {"id": story_id, "title": posts[0]["title"] if posts else post_id, "first_post": post_id,
            "size": len(posts), "channels": len(posts), "posts": posts,
            "link": f"/stories/{story_id}" if story_id is not None else f"/posts/{post_id}",
            "last_date": posts[0]["date"] if posts else None}


def check_search(backend, alerts: AlertStore, search: dict, *, before_commit=None) -> dict:
    """Check one saved search; returns its part of the report."""
    mark = int(search["mark"])
    new_mark, changed = backend.changed_since(mark)
    fresh, waiting = [], 0
    for post, ready in changed:
        if not ready:
            waiting += 1
        elif not post.deleted:
            fresh.append(post)
    report = {"name": search["name"], "query": search["query"], "new_posts": len(fresh), "matched": 0,
              "alerts": [], "already_alerted": 0, "waiting": waiting, "mark": max(mark, int(new_mark))}
    matched: list = []
    if fresh:
        hit = backend.matching_ids(search["query"], tuple(search["channels"]), [p.id for p in fresh])
        matched = [p for p in fresh if p.id in hit]
    report["matched"] = len(matched)
    placed = backend.story_placements([p.id for p in matched]) if matched else {}
    done_stories, done_posts = alerts.alerted(search["id"])
    by_story: dict = {}
    for post in matched:
        place = placed.get(post.id)
        story = place["story"] if place else None
        key = story if story is not None else ("post", post.id)
        first = by_story.get(key)
        if first is None or (post.date and first[1].date and post.date < first[1].date):
            by_story[key] = (story, post)
    fired_at = now_iso()
    new_alerts = []
    for story, post in by_story.values():
        if story is not None and story in done_stories:
            report["already_alerted"] += 1
            continue
        summary = story_summary(backend, story, post.id)
        if story is not None and done_posts.intersection(p["id"] for p in summary["posts"]):
            report["already_alerted"] += 1      # the story was renumbered (a rebuild): alerted already
            continue
        payload = {"search": search["name"], "query": search["query"], "channels": search["channels"],
                   "fired": fired_at, "matched_post": post.id, "story": summary}
        new_alerts.append({"story": story, "first_post": post.id, "fired": fired_at, "payload": payload})
    new_alerts.sort(key=lambda a: (a["payload"]["story"]["posts"] or [{"date": ""}])[0]["date"] or "")
    alerts.record_check(search["id"], report["mark"], new_alerts, search.get("webhook"), before_commit=before_commit)
    report["alerts"] = [a["payload"] for a in new_alerts]
    return report


def deliver(alerts: AlertStore, search_ids: list[int] | None, now: float) -> list[dict]:
    """POST every due webhook delivery (JSON); a URL that fails is not tried again this run."""
    import httpx

    results, broken = [], set()
    due = alerts.due_deliveries(now, search_ids)
    if not due:
        return results
    with httpx.Client(timeout=WEBHOOK_TIMEOUT, follow_redirects=False) as client:
        for d in due:
            if d["url"] in broken:
                continue
            status, error = None, None
            try:
                r = client.post(d["url"], json=d["payload"], headers={"user-agent": "tgsearch-alerts"})
                status = r.status_code
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
            except httpx.HTTPError as e:
                error = f"{type(e).__name__}: {e}"
            ok = error is None
            if not ok:
                broken.add(d["url"])
            results.append({"search": d["search"], "url": d["url"],
                            **alerts.delivery_result(d["alert"], ok=ok, status=status, error=error, now=now)})
    return results


def run_alerts(backend, *, names=None, now: float | None = None, before_commit=None) -> dict:
    """Check the saved searches (all, or those named) and deliver webhooks. Returns
    {"searches": [per search: name, query, new_posts, matched, alerts (payloads), already_alerted,
    waiting, mark, error], "deliveries": [...], "notices": [...]}."""
    now = time.time() if now is None else now
    alerts = backend.alert_store(create=bool(names))      # nothing saved: no file or table made
    if alerts is None:
        return {"searches": [], "deliveries": [], "notices": [], "checked_at": now_iso()}
    try:
        searches = alerts.searches()
        if names:
            known = {s["name"] for s in searches}
            missing = [n for n in names if n not in known]
            if missing:
                from ..errors import NotFoundError

                raise NotFoundError(f"no saved search named {', '.join(map(repr, missing))} (see `tgsearch alerts list`)")
            searches = [s for s in searches if s["name"] in set(names)]
        report = {"searches": [], "deliveries": [], "notices": [],
                  "checked_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat()}
        from ..errors import TgsearchError

        for s in searches:
            try:
                report["searches"].append(check_search(backend, alerts, s, before_commit=before_commit))
            except TgsearchError as e:      # a bad query: this search only
                report["searches"].append({"name": s["name"], "query": s["query"], "error": e.message, "alerts": []})
        waiting = max((r.get("waiting", 0) for r in report["searches"]), default=0)
        if waiting:
            report["notices"].append(f"{waiting} new post(s) are not indexed or placed in a story yet; "
                                     "they are checked on the next run")
        report["deliveries"] = deliver(alerts, [s["id"] for s in searches], now)
        return report
    finally:
        alerts.close()
