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
    forward_date: datetime | None = None  # a forward: when the original message was posted
    topic_id: int | None = None      # a forum topic (its first message's id), from the Telegram API
    deleted: bool = False            # deleted at the source: kept, hidden from search and export

    def __post_init__(self) -> None:
        # Validation at the edge: anything the store cannot hold (an int beyond SQLite's signed
        # 64 bits, an infinite number, a date outside years 1-9999, a list of the wrong type) is a
        # ValueError naming the field, which a reader reports as one bad record.
        set_ = object.__setattr__
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"id must be a non-empty string, not {self.id!r}"[:120])
        for name in _STRING_FIELDS:
            value = getattr(self, name)
            if type(value) is not str and not isinstance(value, str):
                if value is not None or name in ("channel", "text"):
                    raise ValueError(f"{name} must be a string, not {type(value).__name__}")
                set_(self, name, "")
        for name in DATE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                try:
                    set_(self, name, parse_datetime(value))
                except ValueError as e:
                    raise ValueError(f"{name}: {e}") from None
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        ids = self.message_ids
        if ids is None:
            ids = ()
        elif not isinstance(ids, (list, tuple)):
            raise ValueError(f"message_ids must be a list of numbers, not {type(ids).__name__}")
        set_(self, "message_ids", tuple(_whole(m, "message_ids item") for m in ids))
        set_(self, "links", _strings(self.links, "links"))
        set_(self, "media", _strings(self.media, "media"))
        for name in ("reply_to", "views", "topic_id"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, _whole(value, name))
        reactions = self.reactions if self.reactions is not None else {}
        if not isinstance(reactions, dict):
            raise ValueError(f"reactions must be an object of counts, not {type(reactions).__name__}")
        for key, count in reactions.items():
            if not isinstance(key, str):
                raise ValueError(f"reactions keys must be strings, not {type(key).__name__}")
        set_(self, "reactions", {key: _whole(count, "reactions", key) for key, count in reactions.items()})
        set_(self, "edited", bool(self.edited) or self.edit_date is not None)
        set_(self, "deleted", bool(self.deleted))
        if not self.language:
            set_(self, "language", guess_language(self.title + " " + self.text))

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
        for name in LATE_FIELDS:
            if data.get(name) is None:
                data.pop(name, None)  # unset: the hash of posts stored before these fields existed
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
        out["forward_date"] = iso(self.forward_date)
        out["message_ids"] = list(self.message_ids)
        out["links"] = list(self.links)
        out["media"] = list(self.media)
        out["url"] = self.url
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Post":
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        for key in DATE_FIELDS:
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

    @classmethod
    def stored(cls, values: dict) -> "Post":
        """A Post from what the store holds (every field, already validated and converted when
        it was written): no validation again, no language guess."""
        post = object.__new__(cls)
        set_ = object.__setattr__
        for name in _FIELDS:
            set_(post, name, values[name])
        return post

    def evolve(self, **changes) -> "Post":
        return replace(self, **changes)


_INT64 = 1 << 63
_STRING_FIELDS = ("channel", "text", "channel_title", "title", "source_url", "publication", "publication_country",
                  "author", "forwarded_from", "language", "origin_file", "preview_site", "preview_title",
                  "preview_description", "preview_url")


def _whole(value, name: str, key: str | None = None) -> int:
    """A whole number SQLite can hold (signed 64 bits), from an int, a whole float or digits."""
    if type(value) is int and -_INT64 <= value < _INT64:
        return value
    if key is not None:
        name = f"{name}[{key[:20]!r}]"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name} must be a whole number, not {type(value).__name__}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{name} {value!r} is not a finite whole number")
        value = int(value)
    elif isinstance(value, str):
        digits = value.strip()
        if not (digits.lstrip("-").isascii() and digits.lstrip("-").isdigit()) or len(digits) > 40:
            raise ValueError(f"{name} {value[:40]!r} is not a whole number")
        value = int(digits)
    if not -_INT64 <= value < _INT64:
        shown = str(value) if len(str(value)) <= 40 else f"of {len(str(value))} digits"
        raise ValueError(f"{name} {shown} is out of range (a 64-bit integer, at most 9223372036854775807)")
    return value


def _strings(value, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of strings, not {type(value).__name__}")
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"{name} must be a list of strings, not contain {type(item).__name__}")
    return tuple(value)


_FIELDS = tuple(f.name for f in fields(Post))
COUNTERS = ("views", "reactions")                 # refreshed in place, never re-indexed
NOT_HASHED = COUNTERS + ("origin_file", "deleted")  # deletion has its own path (Store.mark_deleted)
FIELD_NAMES = _FIELDS + ("url",)
DATE_FIELDS = ("date", "edit_date", "forward_date")
LATE_FIELDS = ("forward_date", "topic_id")         # added by store migration 7; hashed only when set


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
    """A datetime, unix time (seconds) or ISO 8601 string as an aware UTC datetime; ValueError
    with the reason for anything else (out of range, not finite, not a date)."""
    try:
        if isinstance(value, datetime):
            return to_utc(value)
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"expected an ISO 8601 date or a unix time, not {type(value).__name__}")
        if isinstance(value, (int, float)):
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(f"unix time {value!r} is not a finite number")
            if not -62135596800 <= value < 253402300800:
                hint = " (milliseconds? a unix time counts seconds)" if abs(value) < 253402300800000 else ""
                raise ValueError(f"unix time {value:.6g} is out of range (years 1-9999){hint}")
            return datetime.fromtimestamp(value, tz=timezone.utc)
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        return to_utc(datetime.fromisoformat(text))
    except (OverflowError, OSError) as e:
        raise ValueError(f"date {str(value)[:40]!r} is out of range (years 1-9999)") from e


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
