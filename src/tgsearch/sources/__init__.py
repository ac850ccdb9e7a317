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

import os
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


def decode(path: Path, data: bytes, encoding: str | None = None) -> str:
    """Bytes to text, or an InputError that says what the bytes look like and what to do."""
    if not data.strip():
        raise InputError(str(path), "file is empty", "nothing to ingest; remove it or re-export")
    if encoding:
        try:
            return data.decode(encoding)
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
