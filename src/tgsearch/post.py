"""The one record every source is converted into at the edge.

Later stages (store, analyzers, indexes, search, API) only ever see `Post`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone

KINDS = ("post", "article")

# Field order is the export order (JSON keys and CSV columns).
@dataclass(frozen=True, slots=True)
class Post:
    id: str
    channel: str
    text: str
    date: datetime | None = None
    channel_title: str = ""
    message_ids: tuple[int, ...] = ()
    edit_date: datetime | None = None
    title: str = ""
    links: tuple[str, ...] = ()
    source_url: str = ""
    publication: str = ""
    publication_country: str = ""
    author: str = ""
    forwarded_from: str = ""
    reply_to: int | None = None
    views: int | None = None
    reactions: dict[str, int] = field(default_factory=dict)
    media: tuple[str, ...] = ()
    language: str = ""
    kind: str = "post"
    origin_file: str = ""
    edited: bool = False             # the source marks the message edited (t.me/s pages give no time)
    preview_site: str = ""           # link preview (web page card) under the message
    preview_title: str = ""
    preview_description: str = ""
    preview_url: str = ""
    deleted: bool = False            # deleted at the source: kept, hidden from search and export

    def __post_init__(self) -> None:
        for name in ("date", "edit_date"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, to_utc(value))
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        object.__setattr__(self, "message_ids", tuple(int(m) for m in self.message_ids))
        object.__setattr__(self, "links", tuple(self.links))
        object.__setattr__(self, "media", tuple(self.media))
        object.__setattr__(self, "edited", bool(self.edited) or self.edit_date is not None)
        object.__setattr__(self, "deleted", bool(self.deleted))
        if not self.language:
            object.__setattr__(self, "language", guess_language(self.title + " " + self.text))

    @property
    def url(self) -> str:
        """Link to the original message on Telegram, where one is known."""
        if self.kind == "post" and self.message_ids:
            if re.fullmatch(r"c\d+", self.channel):
                return f"https://t.me/c/{self.channel[1:]}/{self.message_ids[0]}"
            if is_username(self.channel):
                return f"https://t.me/{self.channel}/{self.message_ids[0]}"
        return self.source_url

    def content_hash(self, data: dict | None = None) -> str:
        """Hash of what derived data depends on: everything except where it was read from and the
        counters (views, reactions) -- equal hash = no re-analysis, re-indexing or re-embedding."""
        data = dict(data) if data is not None else self.to_dict()
        for name in NOT_HASHED:
            data.pop(name, None)
        raw = json.dumps(data, ensure_ascii=False, sort_keys=True)
        return hashlib.blake2b(raw.encode("utf-8"), digest_size=16).hexdigest()

    @property
    def preview_text(self) -> str:
        """The link preview's title and description, as searchable text."""
        return "\n".join(t for t in (self.preview_title, self.preview_description) if t)

    def to_dict(self) -> dict:
        out = {name: getattr(self, name) for name in _FIELDS}
        out["reactions"] = dict(self.reactions)
        out["date"] = iso(self.date)
        out["edit_date"] = iso(self.edit_date)
        out["message_ids"] = list(self.message_ids)
        out["links"] = list(self.links)
        out["media"] = list(self.media)
        out["url"] = self.url
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Post":
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        for key in ("date", "edit_date"):
            if kwargs.get(key):
                kwargs[key] = parse_datetime(kwargs[key])
            else:
                kwargs[key] = None
        for key in ("message_ids", "links", "media"):
            if key in kwargs and kwargs[key] is not None:
                kwargs[key] = tuple(kwargs[key])
        if kwargs.get("reactions") is None:
            kwargs["reactions"] = {}
        return cls(**kwargs)

    def evolve(self, **changes) -> "Post":
        return replace(self, **changes)


_FIELDS = tuple(f.name for f in fields(Post))
COUNTERS = ("views", "reactions")                 # refreshed in place, never re-indexed
NOT_HASHED = COUNTERS + ("origin_file", "deleted")  # deletion has its own path (Store.mark_deleted)
FIELD_NAMES = _FIELDS + ("url",)


def to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        # Sources without an offset (old Desktop exports) are taken as UTC.
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_datetime(value) -> datetime:
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return to_utc(datetime.fromisoformat(text))


_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")


def is_username(value: str) -> bool:
    return bool(_USERNAME.fullmatch(value or ""))


def content_id(channel: str, *parts: str) -> str:
    """A stable id for posts whose source gives no message id."""
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).hexdigest()
    return f"{channel}/h{digest}"


_CYR = re.compile(r"[\u0400-\u04FF]")
_LAT = re.compile(r"[A-Za-z]")
_KAZ = re.compile(r"[әғқңөұүһіӘҒҚҢӨҰҮҺІ]")


def guess_language(text: str) -> str:
    """Cheap script-based guess: 'ru', 'kk', 'en' or '' (enough for filters and facets)."""
    sample = text[:600]
    cyr = len(_CYR.findall(sample))
    lat = len(_LAT.findall(sample))
    if cyr == 0 and lat == 0:
        return ""
    if cyr >= lat:
        return "kk" if len(_KAZ.findall(sample)) > max(3, cyr // 50) else "ru"
    return "en"
