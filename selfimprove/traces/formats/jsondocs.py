"""JSON documents out of a trace file, for the span-based readers (otlp, openinference, langsmith, langfuse).

Owns: opening a file (gzip transparently, bad bytes replaced), telling a single JSON document from
JSON Lines, yielding `(line, value)` pairs, and recording a skipped record on the `SourceReport`.
A file that is one JSON document is parsed whole (it is one record by nature; pretty-printed values
one after another, as Python's console span exporter writes them, are split); JSON Lines are parsed
one line at a time so memory follows the longest line, not the file. Files open through the
driver's `_io.open_bytes`, so reading reports progress.

Never raises on bad input: undecodable, truncated or over-deep data becomes a skip with a reason.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import orjson

from selfimprove.traces.formats import _io

MAX_ERRORS = 100


class Report(Protocol):  # the parts of traces.read.SourceReport these readers touch
    skipped: int
    errors: list[tuple[int | None, str]]


def where(path: Path, report: Report) -> str:
    """The file as the run reports it (the driver's display path), for a trace's `source`."""
    shown = getattr(report, "path", None)
    return shown if isinstance(shown, str) and shown else str(path)


def skip(report: Report, line: int | None, reason: str) -> None:
    """Count a bad record (the driver's `SourceReport.skip` also honours --strict)."""
    method = getattr(report, "skip", None)
    if callable(method):
        method(line, reason)
        return
    report.skipped += 1
    if len(report.errors) < MAX_ERRORS:
        report.errors.append((line, reason))


def defer(report: Report, line: int | None, reason: str) -> None:
    """A record with nothing of this format in it: a skip in a file of traces, else the file is ignored."""
    method = getattr(report, "defer", None)
    if callable(method):
        method(line, reason)
    else:
        skip(report, line, reason)


def plain_head(head: bytes) -> bytes:
    """The first bytes as text bytes: gunzipped when the head is gzip, BOM stripped."""
    if head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 65536)
        except zlib.error:
            return b""
    if head[:3] == b"\xef\xbb\xbf":
        head = head[3:]
    return head


def open_text(path: Path, context: _io.ReadContext = _io.PLAIN) -> io.TextIOBase:
    """Text of a file: `.gz` (by name or by magic bytes) decompressed, progress reported to the
    context's hook."""
    raw = _io.open_bytes(path, context)
    stream: Any = raw
    if not _io.is_gzip(path) and hasattr(raw, "peek") and raw.peek(2)[:2] == b"\x1f\x8b":
        stream = gzip.GzipFile(fileobj=raw, mode="rb")
    return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline=None)


def line_of(text: str, needle: str, default: int = 1) -> int:
    """1-based line of the first occurrence of `needle` in `text` (where a record starts)."""
    at = text.find(needle)
    return text.count("\n", 0, at) + 1 if at >= 0 else default


class Document:
    """One parsed JSON value and where it came from; `text` is kept for single-document files."""

    __slots__ = ("line", "value", "text")

    def __init__(self, line: int, value: Any, text: str | None) -> None:
        self.line = line
        self.value = value
        self.text = text

    def line_for(self, needle: str) -> int:
        if self.text is None:
            return self.line
        return line_of(self.text, needle, self.line)


def documents(path: Path, report: Report, context: _io.ReadContext = _io.PLAIN) -> Iterator[Document]:
    """A single JSON document, or JSON Lines one value per line; bad lines skipped and reported."""
    try:
        handle = open_text(path, context)
    except OSError as exc:
        skip(report, None, f"cannot open: {exc.strerror or exc}")
        return
    with handle:
        lineno = 0
        try:
            first = handle.readline()
            lineno = 1
            while first and not first.strip():
                first = handle.readline()
                lineno += 1
            if not first:
                return
            if not _complete(first):  # a pretty-printed (or broken) single document
                if _io.file_size(path) > _io.MAX_JSON_FILE_BYTES:
                    skip(report, lineno, "a single JSON document this large is not loaded; write JSON Lines")
                    return
                text = "\n" * (lineno - 1) + first + handle.read()
                yield from _whole(text, lineno, report)
                return
            yield from _one(first, lineno, report, keep_text=False)
            for line in handle:  # JSON Lines: one value per line
                lineno += 1
                if line.strip():
                    yield from _one(line, lineno, report, keep_text=False)
        except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            skip(report, lineno or None, f"file ends early or cannot be read: {exc}")


def _whole(text: str, line: int, report: Report) -> Iterator[Document]:
    """One document; or pretty-printed values one after another (Python's console span exporter)."""
    try:
        yield Document(line, orjson.loads(text), text)
        return
    except orjson.JSONDecodeError as exc:
        reason = f"not valid JSON ({str(exc).split(':')[0]})"
    except RecursionError:
        reason = "JSON nested too deeply"
    decoder = json.JSONDecoder()
    values: list[Document] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            break
        try:
            value, next_pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            if values:  # what parsed is kept; the broken tail is one skipped record
                reason = "not valid JSON (the file ends inside a value)"
                line = text.count("\n", 0, pos) + 1
            values.append(Document(-1, None, None))
            break
        values.append(Document(text.count("\n", 0, pos) + 1, value, None))
        pos = next_pos
    good = [d for d in values if d.line >= 0]
    if len(good) < 2 and not (good and values[-1].line < 0):
        skip(report, line, reason)
        return
    yield from good
    if values[-1].line < 0:
        skip(report, line, reason)


def _complete(line: str) -> bool:
    try:
        orjson.loads(line)
    except (orjson.JSONDecodeError, RecursionError):
        return False
    return True


def _one(text: str, line: int, report: Report, *, keep_text: bool) -> Iterator[Document]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        skip(report, line, f"not valid JSON ({str(exc).split(':')[0]})")
        return
    except RecursionError:
        skip(report, line, "JSON nested too deeply")
        return
    yield Document(line, value, text if keep_text else None)
