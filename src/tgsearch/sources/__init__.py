"""Readers that turn every supported input form into `Post` records.

Each reader module exposes:
    NAME: str                                  short format name shown to users
    sniff(path: Path, head: str) -> bool       is this file mine? (head: first 64 KiB, decoded)
    read(path: Path, ctx: ReadContext) -> Iterator[Post]

`detect` picks the reader for a file; `walk` lists the files under the given paths.
Readers raise `InputError` (with a position where known) for input they cannot read;
posts yielded before the error are kept.
"""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator

from ..errors import InputError, UnknownFormatError

HEAD_BYTES = 64 * 1024
SKIP_NAMES = {".DS_Store", "Thumbs.db", "SOURCE.txt", "LICENSE", "NOTICE"}
SKIP_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".mp4", ".ogg", ".oga", ".mp3", ".webm",
                 ".tgs", ".css", ".js", ".pdf", ".zip", ".svg", ".ico", ".woff", ".woff2", ".ttf"}


@dataclass
class ReadContext:
    origin_file: str
    encoding: str | None = None
    channel: str | None = None   # the user's name for inputs that carry none (--channel)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        """Something odd but harmless (printed, does not fail the ingest)."""
        self.warnings.append(f"{self.origin_file}: {message}")

    def error(self, problem: str, position: str | None = None, hint: str = "") -> None:
        """One record of the file could not be read; the reader goes on with the next."""
        self.errors.append(InputError(self.origin_file, problem, hint, position).message)


# What a reader's per-record work can raise on input it did not expect (a value out of range, a
# field of the wrong type, nesting too deep): that record is reported and the reader goes on.
RECORD_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, ArithmeticError, RecursionError)


def guarded(ctx: ReadContext, where: str, build: Callable, *args):
    """`build(*args)`, or None after reporting one line naming the record when it fails."""
    try:
        return build(*args)
    except RECORD_ERRORS as e:
        problem = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
        if isinstance(e, RecursionError):
            problem = "nested too deeply"
        ctx.error(f"bad record ({_short(problem)})", where, "fix or remove that record; the others were read")
        return None


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


_TME_NAME = re.compile(r"^(?:https?://)?(?:www\.)?(?:t\.me|telegram\.me)/(?:s/)?([A-Za-z][A-Za-z0-9_]{3,31})/?$", re.IGNORECASE)


def channel_name(value, default: str = "") -> str:
    """The one rule for a channel name that enters from a source or from `--channel`.

    Telegram usernames are case-insensitive (t.me/RiverDaily and t.me/riverdaily are one
    channel), so names are lower-cased: "RiverDaily", "@RiverDaily" and "https://t.me/s/RiverDaily"
    all become "riverdaily". Other titles become a slug: runs of anything but letters, digits,
    "_", "." and "-" turn into "_" ("Степной вестник" -> "степной_вестник").
    """
    text = str(value or "").strip()
    m = _TME_NAME.match(text)
    if m:
        text = m.group(1)
    text = re.sub(r"[^\w.-]+", "_", text.lstrip("@")).strip("_").lower()
    return text or default


def _readers() -> list[ModuleType]:
    # Order matters: the most specific sniffers first, the catch-all text readers last.
    from . import article, jsonl, telethon_json, text_dump, tg_html, tg_json, tme_preview

    return [tg_json, telethon_json, jsonl, tg_html, tme_preview, text_dump, article]


def reader_by_name(name: str) -> ModuleType:
    for module in _readers():
        if module.NAME == name:
            return module
    names = ", ".join(m.NAME for m in _readers())
    raise UnknownFormatError("--format", f"unknown format {name!r}", f"choose one of: {names}")


def walk(paths: list[str | os.PathLike]) -> Iterator[Path]:
    """Every candidate file under the given files/folders, in a stable order."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    candidate = Path(root) / name
                    if _skip(candidate):
                        continue
                    yield candidate
        else:
            yield path


def _skip(path: Path) -> bool:
    name = path.name
    if name.startswith(".") or name in SKIP_NAMES or name.upper().startswith(("LICENSE", "LICENCE", "NOTICE", "README", "DATASET_README")):
        return True
    return path.suffix.lower() in SKIP_SUFFIXES


def read_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(HEAD_BYTES)
    except FileNotFoundError as e:
        raise InputError(str(path), "no such file", "check the path") from e
    except IsADirectoryError as e:
        raise InputError(str(path), "is a folder", "") from e
    except OSError as e:
        raise InputError(str(path), f"cannot read ({e.strerror})", "check permissions") from e


# Byte order marks, longest first (the UTF-32 LE mark starts with the UTF-16 LE one).
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def bom_encoding(data: bytes) -> tuple[str, int] | None:
    """(codec, BOM length) when the bytes start with a byte order mark (UTF-8/16/32)."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec, len(bom)
    return None


def file_encoding(path: Path, encoding: str | None = None) -> tuple[str, int]:
    """(codec, bytes to skip) for reading a file: --encoding if given, else its BOM, else UTF-8."""
    if encoding:
        return encoding, 0
    return bom_encoding(read_head(path)[:4]) or ("utf-8", 0)


def decode(path: Path, data: bytes, encoding: str | None = None) -> str:
    """Bytes to text, or an InputError that says what the bytes look like and what to do.

    A byte order mark (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE) decides the encoding when no
    --encoding is given. `data` may be the head sample of a file: a character cut at its end is
    dropped."""
    if not data.strip():
        raise InputError(str(path), "file is empty", "nothing to ingest; remove it or re-export")
    bom = None if encoding else bom_encoding(data)
    if bom and bom[0] != "utf-8":
        codec, skip = bom
        try:
            decoder = codecs.getincrementaldecoder(codec)()
            text = decoder.decode(data[skip:], final=len(data) < HEAD_BYTES)
        except UnicodeDecodeError as e:
            raise InputError(str(path), f"not valid {codec.upper()} (the file starts with a {codec.upper()} byte order mark; "
                             f"bad bytes at offset {e.start + skip})", "re-save it as UTF-8",
                             position=f"byte {e.start + skip}") from e
        if not text.strip():
            raise InputError(str(path), "file is empty", "nothing to ingest; remove it or re-export")
        return text
    if encoding:
        try:
            return data.decode(encoding).lstrip("\ufeff")
        except (UnicodeDecodeError, LookupError) as e:
            raise InputError(str(path), f"cannot decode as {encoding} ({e})", "check --encoding") from e
    if b"\x00" in data[:8192]:
        raise InputError(str(path), "binary file, not a Telegram export, page or text", "skip it or convert it to text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start >= len(data) - 3 and len(data) >= HEAD_BYTES:
            # A multi-byte character cut at the edge of the head sample.
            return data[: e.start].decode("utf-8")
        hint = "convert it to UTF-8 (iconv -f cp1251 -t utf-8) or pass --encoding cp1251"
        problem = f"not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}"
        if _looks_cp1251(data):
            problem += "; looks like Windows-1251 Cyrillic"
        raise InputError(str(path), problem + ")", hint, position=f"byte {e.start}") from e
    return text.lstrip("\ufeff")


def _looks_cp1251(data: bytes) -> bool:
    high = sum(1 for b in data[:4096] if b >= 0xC0)
    return high > 10


class Utf8Stream:
    """A binary file read as UTF-8 bytes whatever its byte order mark (for parsers that only take
    UTF-8, such as ijson): a UTF-8 BOM is skipped, UTF-16/32 is re-encoded chunk by chunk."""

    def __init__(self, raw, path: Path, encoding: str | None = None):
        self.raw = raw
        self.path = path
        codec, skip = file_encoding(path, encoding)
        self.codec = codec
        self.raw.read(skip)
        passthrough = codecs.lookup(codec).name == "utf-8"
        self._decoder = None if passthrough else codecs.getincrementaldecoder(codec)()
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        if self._decoder is None:
            return self.raw.read(size)
        while True:
            if size is not None and 0 <= size <= len(self._pending):
                out, self._pending = self._pending[:size], self._pending[size:]
                return out
            chunk = self.raw.read(size if size and size > 0 else -1)
            text = self._decoder.decode(chunk, final=not chunk)
            self._pending += text.encode("utf-8")
            if not chunk or size is None or size < 0:
                out, self._pending = self._pending, b""
                return out


def read_text(path: Path, encoding: str | None = None) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(str(path), f"cannot read ({e.strerror})", "check the path and permissions") from e
    return decode(path, data, encoding)


def detect(path: Path, encoding: str | None = None) -> ModuleType:
    head = decode(path, read_head(path), encoding)
    for module in _readers():
        if module.sniff(path, head):
            return module
    raise UnknownFormatError(
        str(path),
        "unknown format",
        "supported: Telegram Desktop export (result.json, messages*.html), t.me/s pages, "
        "Telethon JSON, JSON Lines, channel text dumps, web articles; see README 'Sources'",
    )


ReaderFn = Callable[[Path, ReadContext], Iterator["object"]]
