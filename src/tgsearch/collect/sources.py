"""The sources file, `<db>/sources.toml`: what `tgsearch watch` (coming next) collects and how often.

    [[source]]
    kind = "crawl"        # a public channel read through https://t.me/s/<channel>
    channel = "riverdaily"
    interval = 900        # seconds between runs
    base_url = "https://t.me"   # optional

    [[source]]
    kind = "sync"         # a channel read through the Telegram API
    channel = "riverdaily"
    interval = 300

    [[source]]
    kind = "articles"     # fetch-articles
    interval = 1800
    allow_hosts = ["intranet.example:8080"]

Read with `tomllib`; written by the small writer below (this fixed shape only; comments are not
kept). A source is identified by kind + channel (`key`); adding one with the same key updates it.
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SourcesFileError
from ..sources import channel_name

FILENAME = "sources.toml"
KINDS = ("crawl", "sync", "articles")
DEFAULT_INTERVAL = {"crawl": 900, "sync": 300, "articles": 1800}
_FIELDS = {"crawl": {"kind", "channel", "interval", "base_url"},
           "sync": {"kind", "channel", "interval"},
           "articles": {"kind", "interval", "allow_hosts"}}


@dataclass(frozen=True)
class Source:
    kind: str
    channel: str = ""
    interval: int = 0
    base_url: str = ""
    allow_hosts: tuple[str, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """"crawl:riverdaily", "sync:riverdaily", "articles": one per source (run state is kept under it)."""
        return f"{self.kind}:{self.channel}" if self.channel else self.kind

    def to_dict(self) -> dict:
        d: dict = {"kind": self.kind}
        if self.kind != "articles":
            d["channel"] = self.channel
        d["interval"] = self.interval
        if self.kind == "crawl" and self.base_url:
            d["base_url"] = self.base_url
        if self.kind == "articles":
            d["allow_hosts"] = list(self.allow_hosts)
        return d


def path_of(root) -> Path:
    return Path(root) / FILENAME


def make(kind: str, channel: str = "", *, interval: int | None = None, base_url: str = "",
         allow_hosts=(), where: str = "") -> Source:
    """A checked Source; a bad value is a SourcesFileError naming `where` (the file and entry, or
    the command) and what to do."""
    where = where or "source"
    if kind not in KINDS:
        raise SourcesFileError(f"{where}: unknown kind {kind!r} (use one of {', '.join(KINDS)})")
    if kind == "articles":
        if channel:
            raise SourcesFileError(f"{where}: an articles source has no channel (remove it)")
        name = ""
    else:
        if not isinstance(channel, str):
            raise SourcesFileError(f"{where}: channel must be a name in quotes (e.g. channel = \"riverdaily\"), not {channel!r}")
        name = channel_name(channel)
        if not name:
            raise SourcesFileError(f"{where}: a {kind} source needs a channel (e.g. channel = \"riverdaily\")")
    if interval is None:
        interval = DEFAULT_INTERVAL[kind]
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise SourcesFileError(f"{where}: interval must be a whole number of seconds >= 1, not {interval!r}")
    if not isinstance(base_url, str) or (base_url and not base_url.startswith(("http://", "https://"))):
        raise SourcesFileError(f"{where}: base_url must be an http(s) URL, not {base_url!r}")
    if kind != "crawl" and base_url:
        raise SourcesFileError(f"{where}: only a crawl source has a base_url (remove it)")
    if isinstance(allow_hosts, str) or not all(isinstance(h, str) and h.strip() for h in allow_hosts):
        raise SourcesFileError(f"{where}: allow_hosts must be a list of host names, e.g. [\"intranet.example:8080\"]")
    if kind != "articles" and allow_hosts:
        raise SourcesFileError(f"{where}: only an articles source has allow_hosts (remove it)")
    return Source(kind, name, interval, base_url.rstrip("/"), tuple(h.strip() for h in allow_hosts))


def load(root) -> list[Source]:
    """The sources in `<root>/sources.toml` (none when the file does not exist)."""
    path = path_of(root)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return []
    except tomllib.TOMLDecodeError as e:
        raise SourcesFileError(f"{path}: not valid TOML ({e}); fix it or remove it and add the sources again "
                               "with `tgsearch sources add`") from e
    except (OSError, UnicodeDecodeError) as e:
        raise SourcesFileError(f"{path}: cannot read ({e})") from e
    extra = set(data) - {"source"}
    if extra:
        raise SourcesFileError(f"{path}: unknown key {sorted(extra)[0]!r}; the file holds only [[source]] tables")
    entries = data.get("source", [])
    if not isinstance(entries, list):
        raise SourcesFileError(f"{path}: 'source' must be [[source]] tables")
    out: dict[str, Source] = {}
    for number, entry in enumerate(entries, 1):
        where = f"{path}: [[source]] #{number}"
        if not isinstance(entry, dict):
            raise SourcesFileError(f"{where}: not a table; write it as [[source]] with kind = ...")
        kind = entry.get("kind")
        if kind not in KINDS:
            raise SourcesFileError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
        unknown = set(entry) - _FIELDS[kind]
        if unknown:
            raise SourcesFileError(f"{where}: unknown field {sorted(unknown)[0]!r} for a {kind} source "
                                   f"(allowed: {', '.join(sorted(_FIELDS[kind]))})")
        src = make(kind, entry.get("channel", ""), interval=entry.get("interval"),
                   base_url=entry.get("base_url", ""), allow_hosts=entry.get("allow_hosts", ()), where=where)
        out[src.key] = src  # a repeated source: the last one wins
    return list(out.values())


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        # A JSON string is a valid TOML basic string, except that TOML wants control characters
        # and DEL escaped as \uXXXX too; ensure_ascii=False keeps other letters readable.
        text = json.dumps(v, ensure_ascii=False)
        return "".join(f"\\u{ord(c):04x}" if (ord(c) < 0x20 or ord(c) == 0x7f) else c for c in text)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to the sources file")


def dumps(sources: list[Source]) -> str:
    parts = ["# tgsearch sources: `tgsearch sources add|remove|list` edit this file (comments are not kept).\n"]
    for src in sources:
        parts.append("\n[[source]]\n" + "".join(f"{k} = {_value(v)}\n" for k, v in src.to_dict().items()))
    return "".join(parts)


def save(root, sources: list[Source]) -> Path:
    """Write the sources file atomically (a temporary file beside it, then os.replace)."""
    path = path_of(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".sources-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(dumps(sources))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def add(root, source: Source) -> tuple[Source, bool]:
    """Add `source`, or update the one with the same kind + channel in place. Returns (source, added)."""
    sources = load(root)
    for i, old in enumerate(sources):
        if old.key == source.key:
            sources[i] = source
            save(root, sources)
            return source, False
    sources.append(source)
    save(root, sources)
    return source, True


def remove(root, kind: str, channel: str = "") -> Source:
    """Remove the source of this kind (and channel); a SourcesFileError when there is none."""
    key = make(kind, channel, where=f"sources remove {kind} {channel}".strip()).key
    sources = load(root)
    keep = [s for s in sources if s.key != key]
    if len(keep) == len(sources):
        raise SourcesFileError(f"{path_of(root)}: no {key} source (see `tgsearch sources list`)")
    save(root, keep)
    return next(s for s in sources if s.key == key)
