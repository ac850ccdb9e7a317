"""`tgsearch alerts ...`: saved searches and alerts that fire once per story (registered on `cli.main`)."""

from __future__ import annotations

import json

import click
from rich.markup import escape

from .backend import open_backend
from .cli import db_option, err, main, out


@main.group()
def alerts() -> None:
    """Saved searches that alert once per story (webhook, Atom feed, this output)."""


@alerts.command("add")
@click.argument("name")
@click.argument("query")
@click.option("--webhook", default=None, help="POST each alert as JSON to this http(s) URL.")
@click.option("--channel", "channels", multiple=True, help="Only posts of this channel (repeatable).")
@click.option("--include-existing", is_flag=True, help="Also alert on the posts already stored (default: new posts only).")
@db_option
def alerts_add(name, query, webhook, channels, include_existing, db):
    """Save QUERY as NAME; `alerts run` then alerts on new posts matching it, once per story."""
    from .search.query import parse

    parse(query)    # a query that does not parse is refused now, not at every run
    backend = open_backend(db, create=False, read_only=False)
    try:
        store = backend.alert_store()
        try:
            s = store.add(name, query, channels=channels, webhook=webhook,
                          mark=0 if include_existing else backend.alert_mark())
        finally:
            store.close()
    finally:
        backend.close()
    out.print(f"saved {s['name']}: {s['query']}" + (f"  (webhook {s['webhook']})" if s["webhook"] else ""),
              highlight=False, markup=False)


@alerts.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the saved searches as JSON.")
@db_option
def alerts_list(as_json, db):
    """The saved searches, with their alert counts and last check."""
    backend = open_backend(db, create=False)
    try:
        alerts_db = backend.alert_store(create=False)      # nothing saved yet: nothing made
        rows = []
        if alerts_db is not None:
            try:
                rows = alerts_db.searches()
            finally:
                alerts_db.close()
    finally:
        backend.close()
    if as_json:
        out.print_json(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        out.print("no saved searches (add one with `tgsearch alerts add NAME QUERY`)", highlight=False, markup=False)
    for r in rows:
        chans = f"  channels {', '.join(r['channels'])}" if r["channels"] else ""
        hook = f"  webhook {r['webhook']}" if r["webhook"] else ""
        out.print(f"{r['name']}: {r['query']}{chans}{hook}  alerts {r['alerts']}  last check {r['checked'] or 'never'}",
                  highlight=False, markup=False)


@alerts.command("remove")
@click.argument("name")
@db_option
def alerts_remove(name, db):
    """Forget a saved search and its alerts."""
    from .errors import NotFoundError

    backend = open_backend(db, create=False, read_only=False)
    try:
        alerts_db = backend.alert_store(create=False)
        if alerts_db is None:
            raise NotFoundError(f"no saved search named {name!r} (see `tgsearch alerts list`)")
        try:
            alerts_db.remove(name)
        finally:
            alerts_db.close()
    finally:
        backend.close()
    out.print(f"removed {name}", highlight=False, markup=False)


@alerts.command("run")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the report (every alert in full) as JSON.")
@db_option
def alerts_run(names, as_json, db):
    """Check the saved searches (all, or NAMES) against the posts written since their last check."""
    from .alerts.check import run_alerts

    backend = open_backend(db, create=False, read_only=False)   # opening the index catches it up
    try:
        backend.wait_alerts_ready()   # stories first (here, or after the process placing them)
        report = run_alerts(backend, names=list(names) or None)
    finally:
        backend.close()
    if as_json:
        out.print_json(json.dumps(report, ensure_ascii=False))
        return
    for s in report["searches"]:
        if s.get("error"):
            err.print(f"[red]error:[/red] {escape(s['name'])}: {escape(s['error'])}", highlight=False, soft_wrap=True)
            continue
        out.print(f"{s['name']}: {s['new_posts']} new posts, {s['matched']} matching, {len(s['alerts'])} new "
                  f"{'story' if len(s['alerts']) == 1 else 'stories'}, {s['already_alerted']} already alerted",
                  highlight=False, markup=False)
        for a in s["alerts"]:
            st = a["story"]
            out.print(f"  ALERT story {st['id'] if st['id'] is not None else '-'}: {st['title'][:100]}  "
                      f"({st['size']} posts in {st['channels']} channels; first {st['first_post']})",
                      highlight=False, markup=False, soft_wrap=True)
            for p in st["posts"]:
                out.print(f"    {p['date'] or '?'}  {p['channel']}  {p['url'] or p['id']}", highlight=False, markup=False)
    for d in report["deliveries"]:
        line = f"webhook {d['url']}: {d['state']} (attempt {d['attempts']})" + (f": {d['error']}" if d["error"] else "")
        (out if d["state"] == "delivered" else err).print(line, highlight=False, markup=False)
    for n in report["notices"]:
        err.print(f"note: {n}", highlight=False, markup=False)
