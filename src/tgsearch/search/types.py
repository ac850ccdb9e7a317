"""The search contract: what callers (CLI, API, web UI) ask and what they get back.

Retrievers (lexical now, vector later) and the fusion step live behind it; callers
never see tantivy or usearch objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date

MODES = ("hybrid", "lexical", "semantic")
SORTS = ("relevance", "date", "date_asc")


@dataclass(frozen=True)
class SearchRequest:
    q: str = ""
    limit: int = 20
    offset: int = 0
    sort: str = "relevance"          # relevance | date (newest first) | date_asc
    mode: str = "hybrid"             # hybrid | lexical | semantic
    channels: tuple[str, ...] = ()   # channel slugs or titles, OR-ed
    since: date | None = None        # inclusive, UTC day
    until: date | None = None        # inclusive, UTC day
    kind: str | None = None          # post | article
    publication: str | None = None
    facets: bool = False             # fill SearchResult.facets and .timeline
    interval: str = "auto"           # timeline bucket: auto | day | week | month
    group: str = "story"             # story: one hit per story (its best-ranked post) | none: every post


@dataclass
class Hit:
    id: str
    channel: str
    channel_title: str
    date: str | None                 # ISO 8601 UTC
    title: str
    text: str
    snippet: str                     # HTML: escaped text with <mark>…</mark> around matches
    url: str                         # original post on t.me where known, else source URL
    source_url: str
    score: float
    kind: str = "post"
    publication: str = ""
    author: str = ""
    forwarded_from: str = ""
    views: int | None = None
    retrievers: list[str] = field(default_factory=list)   # which retrievers found it: lexical, semantic
    story: int | None = None         # its story (None: not placed yet)
    story_size: int = 1              # posts in the story
    story_channels: int = 1          # channels that carried it
    story_matching: int = 1          # grouped results: the story's posts in this result set
    copy_of: str | None = None       # the post it repeats (its first poster), if a copy

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SearchResult:
    query: str
    total: int
    took_ms: float
    hits: list[Hit]
    mode: str = "hybrid"
    limit: int = 20
    offset: int = 0
    facets: dict[str, list[dict]] = field(default_factory=dict)   # {"channel": [{"value","label","count"}], "publication": [...], "month": [...]}
    timeline: list[dict] = field(default_factory=list)            # [{"start": "2025-05-01", "end": "2025-05-07", "count": 3}]
    interval: str = ""
    notice: str = ""          # how a malformed query was read ("the quote at 5 is never closed: …")
    group: str = "none"       # what `total` and the hits count: story (one per story) | none (posts)
    total_posts: int = 0      # posts matching (facets and the timeline count these)

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "total": self.total,
            "took_ms": round(self.took_ms, 2),
            "mode": self.mode,
            "limit": self.limit,
            "offset": self.offset,
            "hits": [h.to_dict() for h in self.hits],
            "facets": self.facets,
            "timeline": self.timeline,
            "interval": self.interval,
            "notice": self.notice,
            "group": self.group,
            "total_posts": self.total_posts,
        }
