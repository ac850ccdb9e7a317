"""The one exception tree of tgsearch.

Every error a user can cause or meet derives from TgsearchError and carries a
message meant to be printed as-is (one line: what, where, what to do) and an
HTTP status for the API layer.
"""

from __future__ import annotations


class TgsearchError(Exception):
    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class InputError(TgsearchError):
    """A file could not be read as any supported source."""

    status = 422

    def __init__(self, path: str, problem: str, hint: str = "", position: str | None = None):
        where = f"{path}:{position}" if position else str(path)
        msg = f"{where}: {problem}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)
        self.path = str(path)
        self.problem = problem
        self.hint = hint
        self.position = position


class UnknownFormatError(InputError):
    pass


class StoreError(TgsearchError):
    status = 500


class NotFoundError(TgsearchError):
    status = 404


class QueryError(TgsearchError):
    """A search query that cannot be parsed; position is a 0-based character offset."""

    status = 400

    def __init__(self, message: str, query: str = "", position: int | None = None):
        if position is not None:
            full = f"{message} at position {position + 1}"
        else:
            full = message
        super().__init__(full)
        self.query = query
        self.position = position
        self.reason = message

    def to_dict(self) -> dict:
        return {"error": "query", "message": self.message, "reason": self.reason,
                "position": self.position, "query": self.query}


class IndexMismatchError(TgsearchError):
    """An index was built by a different analyzer or embedding model."""

    status = 409


class AuthError(TgsearchError):
    status = 401


class FetchError(TgsearchError):
    """A link the fetcher did not bring back: the URL and why, in one line."""

    verb = "could not fetch"

    def __init__(self, url: str, reason: str):
        super().__init__(f"{url}: {self.verb}: {reason}")
        self.url = url
        self.reason = reason


class FetchRefused(FetchError):
    """A URL the link fetcher will not fetch (policy: scheme, address, redirects, type)."""

    status = 403
    verb = "refused to fetch"


class FetchFailed(FetchError):
    """A fetch that was allowed but failed (network, HTTP status, size, deadline)."""

    status = 502
    verb = "fetch failed"


class CrawlError(TgsearchError):
    """A channel (or the whole crawl) could not be fetched; the message is one readable line."""

    status = 502


class CrawlStopped(CrawlError):
    """A crawl stopped on request (watch shutting down) before its next request."""


class WatchError(TgsearchError):
    """`tgsearch watch` cannot run (another watch holds the data folder)."""

    status = 409


class SyncError(CrawlError):
    """A channel (or the whole run) could not be read through the Telegram API (`tgsearch sync`):
    one readable line naming the channel and what to do."""


class SourcesFileError(TgsearchError):
    """The sources file (<db>/sources.toml) or one of its entries cannot be used."""

    status = 422


class AlertError(TgsearchError):
    """A saved search that cannot be saved (bad name, empty query, non-http(s) webhook, taken name)."""

    status = 400


class PostgresError(TgsearchError):
    """The local PostgreSQL server (`tgsearch postgres`) could not be started, stopped or read: one line."""

    status = 500
