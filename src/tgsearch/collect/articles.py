"""Fetch the articles stored posts link to (`tgsearch fetch-articles`).

The links of live posts (`Post.links`, http and https only) that have no recorded outcome are
taken, the link of the most recent post first; Telegram links (t.me and its aliases) are posts,
not articles, and are skipped (and left unrecorded). Each link is fetched with
:func:`tgsearch.collect.safe_fetch.fetch` (never a non-global address unless the operator's
``allow_hosts`` names it), extracted like a saved article (``sources.article.fetched_post``) and
stored as a kind="article" post whose id comes from the final URL, so two links redirecting to
one page give one article.

Each link's outcome is recorded once in the store's ``links`` table: ``fetched`` (with the
article's id), ``refused`` (policy: address, scheme, content type, too many redirects) or
``failed`` (network, HTTP status, size, no article text). A refused or failed link is not tried
again on the next run; ``retry_failed`` tries failures again, never refusals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

from ..errors import FetchFailed, FetchRefused, TgsearchError
from ..sources.article import fetched_post
from .safe_fetch import FetchConfig, fetch

TELEGRAM_HOSTS = frozenset({"t.me", "telegram.me", "telegram.dog"})


@dataclass
class LinkOutcome:
    url: str
    status: str            # fetched | refused | failed
    reason: str = ""
    article_id: str | None = None

    def to_dict(self) -> dict:
        return {"url": self.url, "status": self.status, "reason": self.reason, "article_id": self.article_id}


@dataclass
class ArticlesReport:
    outcomes: list[LinkOutcome] = field(default_factory=list)
    new: int = 0           # articles new to the store (others were already there or unchanged)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def to_dict(self) -> dict:
        return {"fetched": self.count("fetched"), "refused": self.count("refused"), "failed": self.count("failed"),
                "new_articles": self.new, "links": [o.to_dict() for o in self.outcomes]}


def is_telegram(url: str) -> bool:
    try:
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    if host.startswith("www."):
        host = host[4:]
    return host in TELEGRAM_HOSTS


def pending(backend, limit: int | None = None, *, retry_failed: bool = False) -> list[str]:
    """The links the next run fetches, in order (at most `limit`); `backend`: a backend or a
    store (both have `pending_links`)."""
    out: list[str] = []
    for url in backend.pending_links(retry_failed=retry_failed):
        if is_telegram(url):
            continue
        out.append(url)
        if limit is not None and len(out) >= limit:
            break
    return out


def fetch_one(url: str, config: FetchConfig):
    """(the article Post, None) or (None, LinkOutcome saying why not)."""
    try:
        result = fetch(url, config)
        post = fetched_post(result.text, result.url, html=result.content_type == "text/html")
    except FetchRefused as e:
        return None, LinkOutcome(url, "refused", e.reason)
    except FetchFailed as e:
        return None, LinkOutcome(url, "failed", e.reason)
    except TgsearchError as e:   # extraction: no article text in the page
        return None, LinkOutcome(url, "failed", getattr(e, "problem", "") or e.message)
    return post, None


def fetch_articles(backend, config: FetchConfig | None = None, *, limit: int | None = None,
                   retry_failed: bool = False,
                   on_link: Callable[[LinkOutcome], None] | None = None) -> ArticlesReport:
    """Fetch pending links into the store (see the module docstring); the search index catches
    up before returning. Each article is stored before its link's outcome is recorded, so a run
    stopped at any point fetches at most that one link again."""
    config = config or FetchConfig()
    report = ArticlesReport()
    wrote = False
    for url in pending(backend, limit, retry_failed=retry_failed):
        post, outcome = fetch_one(url, config)
        if post is not None:
            result = backend.write_posts([post])
            report.new += result.new
            wrote = wrote or bool(result.new or result.updated)
            outcome = LinkOutcome(url, "fetched", article_id=post.id)
        backend.record_link(url, outcome.status, reason=outcome.reason, article_id=outcome.article_id)
        report.outcomes.append(outcome)
        if on_link is not None:
            on_link(outcome)
    if wrote:
        backend.after_write()
    return report
