"""Bytes and JSON for every trace reader: safe streams, sniffing heads, JSON(L) records, the report.

Owns: the per-source `SourceReport` where bad records are counted, the `ReadContext` the driver
hands a reader (progress hook, byte range, views; passed along, never kept in module state), opening
files (`.gz` transparently), the first
bytes used for sniffing, streaming JSONL line by line and big JSON arrays element by element, and
telling JSON Lines from one JSON document.

Must never: raise anything but `SelfImproveError` for a problem in the data (a bad record is skipped
and counted, with its line), hold a whole JSONL file in memory, or know what a trace looks like
(that is `traces.messages`, `_feedback` and `_records`).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from selfimprove.errors import SelfImproveError
from selfimprove.traces.storage import UrlPath

HEAD_BYTES = 64 * 1024  # what sniffers see
MAX_LINE_BYTES = 64 * 1024 * 1024  # a longer JSONL line is skipped (memory stays bounded)
MAX_JSON_FILE_BYTES = 256 * 1024 * 1024  # a bigger whole-file JSON document is refused, not loaded
STREAM_ARRAY_MIN_BYTES = 16 * 1024 * 1024  # top-level JSON arrays above this are streamed element-wise
MAX_ERRORS_KEPT = 100

JSON_SUFFIXES = (".json", ".jsonl", ".ndjson", ".traj", ".eval", ".jsonlines")


# --------------------------------------------------------------------------------------------------
# The per-source report


@dataclass
class SourceReport:
    """What reading one file gave: trace and skip counts, and why records were skipped.

    `status` is "read" (a reader read it), "ignored" (not a trace file: docs, schemas, label files,
    empty files; `reason` says why; not an error) or "skipped" (the file could not be read at all,
    or no reader recognised data that looked like it could hold traces; counted in `skipped`).
    """

    path: str
    format: str = ""
    traces: int = 0
    skipped: int = 0
    errors: list[tuple[int | None, str]] = field(default_factory=list)
    status: str = "read"
    reason: str | None = None
    strict: bool = False
    _deferred: list[tuple[int | None, str]] = field(default_factory=list, repr=False)
    _deferred_count: int = field(default=0, repr=False)

    def skip(self, line: int | None, reason: str) -> None:
        """Count one bad record (or one unreadable stretch of the file); raise under --strict."""
        reason = " ".join(str(reason).split())
        if self.strict:
            where = f"{self.path}:{line}" if line is not None else self.path
            raise SelfImproveError(
                f"bad trace record: {reason}", where=where,
                hint="fix or remove the record, or run without --strict to skip bad records",
            )
        self.skipped += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append((line, reason))

    def defer(self, line: int | None, reason: str) -> None:
        """A record with nothing trace-like in it. Whether that is a bad record depends on the rest
        of the file: in a file of traces it is skipped; in a file with no traces at all (labels,
        predictions, schemas) the whole file is ignored. `settle` decides at the end."""
        self._deferred_count += 1
        if len(self._deferred) < MAX_ERRORS_KEPT:
            self._deferred.append((line, " ".join(str(reason).split())))

    def ignore(self, reason: str) -> None:
        self.status = "ignored"
        self.reason = reason

    def settle(self) -> None:
        """Resolve deferred records once the reader is done (see `defer`)."""
        if not self._deferred_count:
            return
        if self.traces == 0 and self.skipped == 0:
            if self.status != "skipped":
                first = self._deferred[0][1] if self._deferred else "no messages"
                n = self._deferred_count
                self.ignore(f"no traces in {n} record{'s' if n != 1 else ''} ({first})")
        else:
            extra = self._deferred_count - len(self._deferred)
            for line, reason in self._deferred:
                self.skip(line, reason)
            self.skipped += extra
        self._deferred = []
        self._deferred_count = 0

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "path": self.path, "format": self.format, "traces": self.traces, "skipped": self.skipped,
            "errors": [{"line": line, "reason": reason} for line, reason in self.errors],
        }
        if self.status != "read":
            doc["status"] = self.status
            doc["reason"] = self.reason
        return doc


class ProgressFile(io.RawIOBase):
    """A raw byte stream that reports how many on-disk bytes were consumed (for a progress bar)."""

    def __init__(self, raw: IO[bytes], progress: Callable[[int], None] | None) -> None:
        self._raw = raw
        self._progress = progress

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n and self._progress is not None:
            self._progress(n)
        return int(n or 0)

    def close(self) -> None:
        self._raw.close()
        super().close()


@dataclass(frozen=True)
class ReadContext:
    """How the driver wants one file read, handed to its reader (and by the reader to the functions
    here that open and stream it), never kept in module state.

    `progress(n)` is called with the on-disk bytes newly consumed (for a progress bar); `span` is the
    (start, end) byte range of a plain JSONL file to read (a shard: a line belongs to the range its
    first byte falls in); `views=True` lets record readers return traces that carry their
    `TraceView` and build their messages only when asked (`_records.raw_trace`)."""

    progress: Callable[[int], None] | None = None
    span: tuple[int, int] | None = None
    views: bool = False


PLAIN = ReadContext()  # the whole file, no progress, full traces


def count_lines_before(path: Path, offset: int) -> int:
    """Newlines in the first `offset` bytes of a (plain) file."""
    n = 0
    with open_raw(path) as fh:
        left = offset
        while left > 0:
            chunk = fh.read(min(left, 1 << 22))
            if not chunk:
                break
            n += chunk.count(b"\n")
            left -= len(chunk)
    return n


# --------------------------------------------------------------------------------------------------
# Bytes


def human_size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


def is_gzip(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def inner_name(path: Path) -> str:
    """The file name with a trailing `.gz` removed, lower-cased: what the content is."""
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


def inner_suffix(path: Path) -> str:
    return Path(inner_name(path)).suffix


def open_raw(path: Path) -> IO[bytes]:
    """The file's bytes as stored: a local file, or an object in a store (`traces.storage.UrlPath`
    opens itself through fsspec)."""
    if isinstance(path, UrlPath):
        return path.open("rb")
    return open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it


def open_bytes(path: Path, context: ReadContext = PLAIN) -> IO[bytes]:
    """Open a file for reading, decompressing `.gz` transparently; reports progress to the context's
    hook."""
    raw: IO[bytes] = open_raw(path)
    hook = context.progress
    if hook is not None:
        raw = io.BufferedReader(ProgressFile(raw, hook), buffer_size=1 << 20)
    if is_gzip(path):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def read_head(path: Path, size: int = HEAD_BYTES) -> bytes:
    """The first `size` bytes of the (decompressed) content; b"" for an empty file.

    Raises OSError / EOFError / zlib.error for unreadable or corrupt files; the driver reports them.
    """
    with open_raw(path) as raw:
        if is_gzip(path):
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                out = bytearray()
                try:
                    while len(out) < size:
                        chunk = gz.read(size - len(out))
                        if not chunk:
                            break
                        out += chunk
                except (EOFError, zlib.error, gzip.BadGzipFile):
                    if not out:
                        raise
                return bytes(out)
        return raw.read(size)


DECOMPRESS_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def describe_read_error(exc: BaseException) -> str:
    if isinstance(exc, gzip.BadGzipFile):
        return f"not a valid gzip file ({exc})"
    if isinstance(exc, EOFError | zlib.error):
        return "truncated or corrupt gzip data"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__


def looks_binary(head: bytes) -> bool:
    """NUL bytes or mostly non-text bytes in the head: not a text trace file."""
    if not head:
        return False
    sample = head[:8192]
    if b"\x00" in sample:
        return True
    text = bytes(range(32, 127)) + b"\n\r\t\f\b"
    nontext = sum(1 for b in sample if b not in text and b < 128)
    return nontext / len(sample) > 0.3


def strip_bom(data: bytes) -> bytes:
    return data[3:] if data.startswith(b"\xef\xbb\xbf") else data


def first_char(head: bytes) -> str:
    """The first non-space character of the content ('' when empty)."""
    stripped = strip_bom(head).lstrip()
    return chr(stripped[0]) if stripped else ""


# --------------------------------------------------------------------------------------------------
# Heads (what sniffers look at)


def head_has(head: bytes, *needles: bytes) -> int:
    """How many of the quoted JSON keys occur in the head (`b'"traj"'` style needles)."""
    return sum(1 for needle in needles if needle in head)


_ROLE_RE = re.compile(rb'"(?:role|from|speaker)"\s*:\s*"([^"\\]{1,80})"')


def head_roles(head: bytes) -> list[str]:
    return [m.decode("utf-8", "replace") for m in _ROLE_RE.findall(head[:HEAD_BYTES])]


def text_head(head: bytes) -> bytes:
    return strip_bom(head).lstrip()


# --------------------------------------------------------------------------------------------------
# JSON


def loads(data: bytes | str) -> Any:
    """orjson.loads with the stdlib as a fallback for what orjson refuses but JSON allows in the wild
    (NaN/Infinity literals). Raises ValueError with a short reason."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        msg = str(exc)
        if "NaN" in msg or "Infinity" in msg or "unexpected character" in msg:
            try:
                text = data.decode("utf-8") if isinstance(data, bytes) else data
                return json.loads(text)
            except (ValueError, RecursionError):
                pass
        raise ValueError(json_reason(exc)) from None


def json_reason(exc: BaseException) -> str:
    msg = str(exc)
    if "UTF-8" in msg or "utf-8" in msg or isinstance(exc, UnicodeDecodeError):
        return "invalid UTF-8"
    if "Recursion" in msg or "depth limit" in msg or isinstance(exc, RecursionError):
        return "nesting too deep"
    msg = msg.split(": line ")[0]
    return f"invalid JSON ({msg})" if msg else "invalid JSON"


def iter_jsonl(path: Path, report: SourceReport, context: ReadContext = PLAIN) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line; bad lines are skipped and counted.

    Memory stays bounded: a line longer than MAX_LINE_BYTES is skipped without being held.
    """
    try:
        stream = open_bytes(path, context)
    except OSError as exc:
        report.skip(None, f"cannot open: {describe_read_error(exc)}")
        return
    span = None if is_gzip(path) else context.span
    with stream:
        lineno = 0
        pos = 0
        end = -1
        if span is not None:
            start, end = span
            if start > 0:  # a line belongs to the shard its first byte falls in
                stream.seek(start - 1)
                if stream.read(1) != b"\n":
                    stream.readline()
                pos = stream.tell()
                lineno = count_lines_before(path, pos)
        while True:
            if end >= 0:
                if pos >= end:
                    return
            lineno += 1
            try:
                line = stream.readline(MAX_LINE_BYTES + 1)
            except DECOMPRESS_ERRORS as exc:
                report.skip(lineno, describe_read_error(exc))
                return
            except OSError as exc:
                report.skip(lineno, f"read error: {describe_read_error(exc)}")
                return
            if not line:
                return
            pos += len(line)
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                try:
                    while True:  # drain the rest of the huge line without keeping it
                        more = stream.readline(1 << 20)
                        pos += len(more)
                        if not more or more.endswith(b"\n"):
                            break
                except (*DECOMPRESS_ERRORS, OSError) as exc:
                    report.skip(lineno, describe_read_error(exc))
                    return
                report.skip(lineno, f"line longer than {human_size(MAX_LINE_BYTES)} (not read)")
                continue
            if lineno == 1:
                line = strip_bom(line)
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                try:
                    value = loads(line)
                except ValueError:
                    report.skip(lineno, json_reason(exc))
                    continue
            yield lineno, value


def load_json(path: Path, report: SourceReport, context: ReadContext = PLAIN) -> Any:
    """The whole (decompressed) file parsed as one JSON document, or None after reporting why not."""
    try:
        with open_bytes(path, context) as stream:
            data = stream.read(MAX_JSON_FILE_BYTES + 1)
    except DECOMPRESS_ERRORS as exc:
        report.skip(None, describe_read_error(exc))
        return None
    except OSError as exc:
        report.skip(None, f"cannot read: {describe_read_error(exc)}")
        return None
    if len(data) > MAX_JSON_FILE_BYTES:
        report.skip(None, f"JSON document larger than {human_size(MAX_JSON_FILE_BYTES)}; "
                          "write it as JSONL (one record per line) to stream it")
        return None
    data = strip_bom(data)
    try:
        return loads(data)
    except ValueError as exc:
        report.skip(1, str(exc))
        return None


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def iter_json_records(path: Path, report: SourceReport,
                      context: ReadContext = PLAIN) -> Iterator[tuple[int, Any]]:
    """Records of a JSON file that is either one document or a top-level array of records.

    Yields (line, record): for a top-level array each element (streamed when the file is big, so
    memory stays flat), otherwise the document itself once. Line is 1 for whole-file JSON (the
    document is the record); for streamed arrays it is the line the element starts on.
    """
    threshold = STREAM_ARRAY_MIN_BYTES // 10 if is_gzip(path) else STREAM_ARRAY_MIN_BYTES  # ~10x ratio
    if file_size(path) >= threshold:
        try:
            head = read_head(path, 4096)
        except (OSError, *DECOMPRESS_ERRORS) as exc:
            report.skip(None, describe_read_error(exc))
            return
        if first_char(head) == "[":
            yield from iter_json_array(path, report, context)
            return
    doc = load_json(path, report, context)
    if doc is None:
        return
    if isinstance(doc, list):
        for item in doc:
            yield 1, item
    else:
        yield 1, doc


_WS = re.compile(r"[ \t\r\n]*")


def iter_json_array(path: Path, report: SourceReport, context: ReadContext = PLAIN,
                    chunk_size: int = 1 << 22) -> Iterator[tuple[int, Any]]:
    """Stream the elements of a top-level JSON array without loading the file.

    Each element is decoded with the C decoder (`raw_decode`) from a sliding text buffer; an element
    that does not fit yet makes the buffer grow geometrically, so total work stays linear.
    """
    decoder = json.JSONDecoder()
    try:
        raw = open_bytes(path, context)
    except OSError as exc:
        report.skip(None, f"cannot open: {describe_read_error(exc)}")
        return
    with raw:
        reader = io.TextIOWrapper(raw, encoding="utf-8", errors="strict")
        buf = ""
        pos = 0
        line = 1
        eof = False

        def fill(need_more: bool) -> bool:
            nonlocal buf, pos, eof
            if eof:
                return False
            try:
                chunk = reader.read(max(chunk_size, len(buf) - pos) if need_more else chunk_size)
            except UnicodeDecodeError:
                report.skip(line, "invalid UTF-8; the rest of the file was not read")
                eof = True
                return False
            except (*DECOMPRESS_ERRORS, OSError) as exc:
                report.skip(line, describe_read_error(exc))
                eof = True
                return False
            if not chunk:
                eof = True
                return False
            buf = buf[pos:] + chunk
            pos = 0
            return True

        fill(False)
        buf = buf.lstrip("\ufeff")
        m = _WS.match(buf, pos)
        pos = m.end() if m else pos
        if not buf[pos:pos + 1] == "[":
            report.skip(line, "expected a JSON array")
            return
        line += buf.count("\n", 0, pos)
        pos += 1
        while True:
            # skip whitespace and the separating comma
            while True:
                m = _WS.match(buf, pos)
                end = m.end() if m else pos
                line += buf.count("\n", pos, end)
                pos = end
                if pos < len(buf):
                    break
                if not fill(False):
                    report.skip(line, "unexpected end of file inside the JSON array (truncated?)")
                    return
            ch = buf[pos]
            if ch == "]":
                return
            if ch == ",":
                pos += 1
                continue
            while True:
                try:
                    value, end = decoder.raw_decode(buf, pos)
                except RecursionError:
                    value, end = _NESTING, -1
                except ValueError as exc:
                    if fill(True):
                        continue
                    report.skip(line, f"invalid JSON ({str(exc).split(': line')[0]})")
                    return
                break
            if end == -1:
                # skip a too-deep element: find its end by bracket counting (rare path)
                end = _skip_value(buf, pos, fill)
                if end < 0:
                    report.skip(line, "nesting too deep; the rest of the file was not read")
                    return
                report.skip(line, "nesting too deep")
                line += buf.count("\n", pos, end)
                pos = end
                continue
            start_line = line
            line += buf.count("\n", pos, end)
            pos = end
            yield start_line, value


_NESTING = object()


def _skip_value(buf: str, pos: int, fill: Callable[[bool], bool]) -> int:
    # Not string-aware beyond simple escapes; only used for pathological nesting.
    depth = 0
    in_str = False
    esc = False
    i = pos
    while True:
        if i >= len(buf):
            return -1
        c = buf[i]
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1


# --------------------------------------------------------------------------------------------------
# JSONL or JSON records


def is_jsonl(path: Path, head: bytes) -> bool:
    """JSON Lines rather than one JSON document: by extension, or because the first non-blank line
    is a complete JSON value and another line follows."""
    suffix = inner_suffix(path)
    if suffix in (".jsonl", ".ndjson", ".jsonlines"):
        return True
    body = text_head(head)
    if not body.startswith(b"{"):
        return False
    lines = [line for line in body.split(b"\n") if line.strip()]
    if len(lines) < 2:
        return False
    try:
        orjson.loads(lines[0])
    except orjson.JSONDecodeError:
        return False
    return lines[1].lstrip().startswith(b"{")


def iter_records(path: Path, report: SourceReport, context: ReadContext = PLAIN) -> Iterator[tuple[int, Any]]:
    """(line, record) of a JSONL file, a JSON array of records, or a single JSON document."""
    try:
        head = read_head(path, 65536)
    except (OSError, *DECOMPRESS_ERRORS) as exc:
        report.skip(None, describe_read_error(exc))
        return
    if looks_jsonl(path, head):
        yield from iter_jsonl(path, report, context)
    else:
        yield from iter_json_records(path, report, context)


def looks_jsonl(path: Path, head: bytes) -> bool:
    """JSON Lines (by extension, or by content even when the first record is longer than `head`)."""
    return is_jsonl(path, head) or _long_first_line_jsonl(path, head)


def _long_first_line_jsonl(path: Path, head: bytes) -> bool:
    """JSON Lines whose first line is longer than the head (big records in a `.json` file): the
    first line parses on its own and another record follows it."""
    body = text_head(head)
    if not body.startswith(b"{") or b"\n" in body.rstrip():
        return False
    try:
        with open_plain_or_gz(path) as stream:
            first = stream.readline(MAX_LINE_BYTES + 1)
            if not first.endswith(b"\n"):
                return False
            orjson.loads(strip_bom(first))
            while True:
                nxt = stream.readline(1 << 16)
                if not nxt:
                    return False
                if nxt.strip():
                    return nxt.lstrip().startswith(b"{")
    except (OSError, ValueError, *DECOMPRESS_ERRORS):
        return False


def open_plain_or_gz(path: Path) -> IO[bytes]:
    """Open (decompressing `.gz`) without progress reporting: for looking, not reading."""
    raw: IO[bytes] = open_raw(path)
    return gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip(path) else raw  # type: ignore[return-value]
