"""Rows of the PostgreSQL store: Post <-> column values, the month a post lives in, and psycopg errors
translated into tgsearch's (one readable line, never the password)."""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from datetime import datetime, timezone

from ..errors import PostgresError, StoreError
from ..post import Post
from ..store import _COLUMNS

# Column -> the SQL type its values are sent as (an array per column in `unnest`); the JSON arrays
# are sent as text and cast to jsonb; reactions stay text (their order is the source's).
_TYPES = {
    "date": "timestamptz", "edit_date": "timestamptz", "forward_date": "timestamptz",
    "reply_to": "bigint", "views": "bigint", "topic_id": "bigint",
    "message_ids": "jsonb", "links": "jsonb", "media": "jsonb",
    "edited": "boolean", "deleted": "boolean",
}
COLUMNS = _COLUMNS
SELECT = ", ".join(COLUMNS)
_JSON_ARRAYS = ("message_ids", "links", "media")
_DATES = ("date", "edit_date", "forward_date")


def sql_type(col: str) -> str:
    return _TYPES.get(col, "text")


def month_of(date: datetime | None) -> int:
    """yyyymm of a UTC date; 0 for undated posts."""
    if date is None:
        return 0
    d = date.astimezone(timezone.utc)
    return d.year * 100 + d.month


def _clean(value):
    # PostgreSQL text cannot hold NUL characters (SQLite can): they are dropped.
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "")
    return value


def post_values(post: Post) -> list:
    """The values of COLUMNS for a post, as sent to PostgreSQL."""
    out = []
    for col in COLUMNS:
        value = getattr(post, col)
        if col in _JSON_ARRAYS:
            value = json.dumps([_clean(v) for v in value], ensure_ascii=False)
        elif col == "reactions":
            value = reactions_text(value)
        elif col in _DATES:
            pass
        else:
            value = _clean(value)
        out.append(value)
    return out


def reactions_text(reactions: dict) -> str:
    return json.dumps({_clean(k): v for k, v in reactions.items()}, ensure_ascii=False) if reactions else "{}"


def row_to_post(row) -> Post:
    """A Post from a row of SELECT (COLUMNS in order)."""
    data = dict(zip(COLUMNS, row))
    data["message_ids"] = tuple(data["message_ids"])
    data["links"] = tuple(data["links"])
    data["media"] = tuple(data["media"])
    data["reactions"] = json.loads(data["reactions"])
    for col in _DATES:
        if data[col] is not None:
            data[col] = data[col].astimezone(timezone.utc)
    return Post.stored(data)


_PASSWORD_URL = re.compile(r"(://[^:/@?#]*:)[^@/?#]*@")
_PASSWORD_KV = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


def redact(url: str) -> str:
    """The URL with its password replaced by ***, for messages."""
    return _PASSWORD_KV.sub(r"\1***", _PASSWORD_URL.sub(r"\1***@", url))


def _first_line(e: Exception, password: str | None) -> str:
    text = (str(e).strip().splitlines() or [type(e).__name__])[0].strip()
    if password:
        text = text.replace(password, "***")
    return text


def password_of(url: str) -> str | None:
    try:
        from psycopg.conninfo import conninfo_to_dict

        return conninfo_to_dict(url).get("password") or None
    except Exception:  # noqa: BLE001 - only used to keep it out of messages
        return None


@contextmanager
def translated(where: str, what: str, password: str | None = None):
    """psycopg errors raised inside become StoreError (or PostgresError when the server cannot be
    reached): '<url without password>: <what> failed (<first line of the server's message>)'."""
    import psycopg

    try:
        yield
    except psycopg.OperationalError as e:
        if isinstance(e, psycopg.errors.QueryCanceled) or getattr(e, "sqlstate", None):
            raise StoreError(f"{where}: {what} failed ({_first_line(e, password)})") from e
        raise PostgresError(f"{where}: cannot reach PostgreSQL ({_first_line(e, password)}); "
                            "is the server running (`tgsearch postgres start`) and the URL right?") from e
    except psycopg.Error as e:
        raise StoreError(f"{where}: {what} failed ({_first_line(e, password)})") from e
