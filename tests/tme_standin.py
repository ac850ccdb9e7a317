"""A stand-in for t.me's channel previews on loopback, for crawl tests (no test touches the internet).

Serves `/s/<channel>` (the newest `PAGE` messages) and `/s/<channel>?before=<id>` (the `PAGE`
messages before that id) with markup shaped like t.me's own (message wraps with `data-post`, text,
views, an "edited" mark, `<time datetime>`, the `tme_messages_more` link with `data-before`), from
templates written here. Knobs: channels without a preview (302 to /<name>), unknown channels (404),
robots.txt, one-off 429s and empty pages, failing every page after N, and stalling one request. Every request is logged.
"""

from __future__ import annotations

import html
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PAGE = 20
START = datetime(2025, 3, 1, 6, 0, tzinfo=timezone.utc)

SHELL = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title} – Telegram</title></head>
<body class="widget_frame_base tgme_webpreview_body">
<header class="tgme_header search_collapsed"><div class="tgme_header_info">
  <div class="tgme_channel_info_header_title_wrap">
    <div class="tgme_channel_info_header_title"><span dir="auto">{title}</span></div>
  </div></div></header>
<main class="tgme_main" data-url="/{channel}"><div class="tgme_container">
  <section class="tgme_channel_history js-message_history">
{more}{messages}
  </section></div></main></body></html>"""

MORE = """<div class="tgme_widget_message_centered js-messages_more_wrap"><a href="/s/{channel}?before={before}"
   class="tme_messages_more js-messages_more" data-before="{before}"></a></div>
"""

MESSAGE = """<div class="tgme_widget_message_wrap js-widget_message_wrap">
  <div class="tgme_widget_message text_not_supported_wrap js-widget_message" data-post="{channel}/{id}">
    <div class="tgme_widget_message_bubble">
      <div class="tgme_widget_message_author accent_color"><a class="tgme_widget_message_owner_name"
         href="https://t.me/{channel}"><span dir="auto">{title}</span></a></div>
      <div class="tgme_widget_message_text js-message_text" dir="auto">{text}</div>
      <div class="tgme_widget_message_footer compact js-message_footer">
        <div class="tgme_widget_message_info short js-message_info">
          <span class="tgme_widget_message_views">{views}</span><span class="copyonly"> views</span><span
            class="tgme_widget_message_meta">{edited}<a class="tgme_widget_message_date"
            href="https://t.me/{channel}/{id}"><time datetime="{date}" class="time">{hhmm}</time></a></span>
        </div>
      </div>
    </div>
  </div>
</div>
"""


@dataclass
class Message:
    id: int
    text: str
    date: datetime
    views: int
    edited: bool = False


def views_label(n: int) -> str:
    return str(n) if n < 1000 else f"{n / 1000:.1f}K"


def make_messages(channel: str, count: int, first_id: int = 1) -> list[Message]:
    """`count` messages with gaps in the ids (deleted or service messages leave holes)."""
    out, mid = [], first_id
    while len(out) < count:
        if mid % 13 != 0:
            n = len(out)
            out.append(Message(mid, f"Сводка {n} канала {channel}: заседание комиссии по бюджету, пункт {mid} <ok>",
                               START + timedelta(hours=n), 100 + n))
        mid += 1
    return out


@dataclass
class Standin:
    channels: dict[str, list[Message]] = field(default_factory=dict)   # oldest first
    titles: dict[str, str] = field(default_factory=dict)
    no_preview: set[str] = field(default_factory=set)
    robots: str | None = None                # None: 404
    throttle: list[str] = field(default_factory=list)   # request targets answered 429 once
    retry_after: str = "0"
    empty: list[str] = field(default_factory=list)      # request targets answered with no messages once
    fail_after: int | None = None            # page requests served before every page answers 500
    slow: list[str] = field(default_factory=list)       # request targets left unanswered (`stall` s), once
    stall: float = 2.0
    log: list[str] = field(default_factory=list)
    base_url: str = ""

    def add_channel(self, name: str, count: int) -> list[Message]:
        self.channels[name] = make_messages(name, count)
        self.titles[name] = f"Вестник {name}"
        return self.channels[name]

    def post(self, name: str, count: int) -> list[Message]:
        """`count` new messages at the head of a channel."""
        last = self.channels[name][-1]
        new = make_messages(name, count, last.id + 1)
        for i, m in enumerate(new):
            m.date = last.date + timedelta(minutes=i + 1)
        self.channels[name] += new
        return new

    def page_requests(self) -> list[str]:
        return [t for t in self.log if t.startswith("/s/")]

    # -- serving -------------------------------------------------------------------------------
    def answer(self, target: str) -> tuple[int, dict, str]:
        self.log.append(target)
        parts = urlsplit(target)
        if parts.path == "/robots.txt":
            return (404, {}, "not found") if self.robots is None else (200, {}, self.robots)
        if target in self.throttle:
            self.throttle.remove(target)
            return 429, {"Retry-After": self.retry_after}, "Too Many Requests"
        if not parts.path.startswith("/s/"):
            return 404, {}, "not found"
        name = parts.path[3:].strip("/").lower()
        if name in self.no_preview:
            return 302, {"Location": f"/{name}"}, ""
        if name not in self.channels:
            return 404, {}, "not found"
        if self.fail_after is not None and len(self.page_requests()) > self.fail_after:
            return 500, {}, "Internal Server Error"
        before = parse_qs(parts.query).get("before")
        messages = self.channels[name]
        if before:
            messages = [m for m in messages if m.id < int(before[0])]
        page = messages[-PAGE:]
        if target in self.empty:
            self.empty.remove(target)
            page = []
        more = MORE.format(channel=name, before=page[0].id) if page and page[0].id > messages[0].id else ""
        body = SHELL.format(title=html.escape(self.titles[name]), channel=name, more=more,
                            messages="".join(self.render(name, m) for m in page))
        return 200, {"Content-Type": "text/html; charset=utf-8"}, body

    def render(self, channel: str, m: Message) -> str:
        return MESSAGE.format(channel=channel, id=m.id, title=html.escape(self.titles[channel]),
                              text=html.escape(m.text).replace("\n", "<br/>"), views=views_label(m.views),
                              edited="edited&nbsp;" if m.edited else "", date=m.date.isoformat(),
                              hhmm=m.date.strftime("%H:%M"))


def serve(standin: Standin) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start the stand-in on 127.0.0.1 (a free port); its base URL goes to `standin.base_url`."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            with lock:
                stall = self.path in standin.slow
                if stall:
                    standin.slow.remove(self.path)
                    standin.log.append(self.path)
            if stall:                           # no answer until past the client's timeout
                time.sleep(standin.stall)
                return
            with lock:
                status, headers, body = standin.answer(self.path)
            data = body.encode("utf-8")
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    standin.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
