"""Shared pieces of every trace reader: safe byte streams, JSON(L) records, messages, labels, time.

Owns: opening files (`.gz` transparently), the first bytes used for sniffing, streaming JSONL line by
line and big JSON arrays element by element, the per-source `SourceReport` where bad records are
counted, and the liberal converters that turn a message or outcome field of any common shape into the
`traces.model` records.

Must never: raise anything but `SelfImproveError` for a problem in the data (a bad record is skipped
and counted, with its line), hold a whole JSONL file in memory, or judge outcomes (a reward is copied
as a reward; deciding that 0 means failure is `analysis`' job).

Why one module: the readers see the same shapes again and again (OpenAI messages inside LangSmith
runs, Anthropic blocks inside Claude Code logs, tau-bench labels inside generic JSONL), so the
converters live once, here, and each reader only knows where its format keeps them.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeGuard

import orjson

from selfimprove.errors import SelfImproveError
from selfimprove.traces.model import Feedback, Message, ToolCall, Trace

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


# The driver sets this while a file is being read so that streams opened by readers report progress.
_progress_hook: list[Callable[[int], None] | None] = [None]


def set_progress_hook(hook: Callable[[int], None] | None) -> None:
    _progress_hook[0] = hook


# The driver sets this to (start, end) when only a byte range of a JSONL file is to be read (a shard).
_byte_range: list[tuple[int, int] | None] = [None]


def set_byte_range(span: tuple[int, int] | None) -> None:
    _byte_range[0] = span


def count_lines_before(path: Path, offset: int) -> int:
    """Newlines in the first `offset` bytes of a (plain) file."""
    n = 0
    with open(path, "rb") as fh:
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


def _is_map(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """isinstance(value, Mapping), fast for the dicts JSON parsing produces."""
    return value.__class__ is dict or isinstance(value, Mapping)


def is_gzip(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def inner_name(path: Path) -> str:
    """The file name with a trailing `.gz` removed, lower-cased: what the content is."""
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


def inner_suffix(path: Path) -> str:
    return Path(inner_name(path)).suffix


def open_bytes(path: Path) -> IO[bytes]:
    """Open a file for reading, decompressing `.gz` transparently; reports progress when hooked."""
    raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    hook = _progress_hook[0]
    if hook is not None:
        raw = io.BufferedReader(ProgressFile(raw, hook), buffer_size=1 << 20)
    if is_gzip(path):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def read_head(path: Path, size: int = HEAD_BYTES) -> bytes:
    """The first `size` bytes of the (decompressed) content; b"" for an empty file.

    Raises OSError / EOFError / zlib.error for unreadable or corrupt files; the driver reports them.
    """
    with open(path, "rb") as raw:
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


_DECOMPRESS_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


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


def iter_jsonl(path: Path, report: SourceReport) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line; bad lines are skipped and counted.

    Memory stays bounded: a line longer than MAX_LINE_BYTES is skipped without being held.
    """
    try:
        stream = open_bytes(path)
    except OSError as exc:
        report.skip(None, f"cannot open: {describe_read_error(exc)}")
        return
    span = None if is_gzip(path) else _byte_range[0]
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
            except _DECOMPRESS_ERRORS as exc:
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
                except (*_DECOMPRESS_ERRORS, OSError) as exc:
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


def load_json(path: Path, report: SourceReport) -> Any:
    """The whole (decompressed) file parsed as one JSON document, or None after reporting why not."""
    try:
        with open_bytes(path) as stream:
            data = stream.read(MAX_JSON_FILE_BYTES + 1)
    except _DECOMPRESS_ERRORS as exc:
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


def iter_json_records(path: Path, report: SourceReport) -> Iterator[tuple[int, Any]]:
    """Records of a JSON file that is either one document or a top-level array of records.

    Yields (line, record): for a top-level array each element (streamed when the file is big, so
    memory stays flat), otherwise the document itself once. Line is 1 for whole-file JSON (the
    document is the record); for streamed arrays it is the line the element starts on.
    """
    threshold = STREAM_ARRAY_MIN_BYTES // 10 if is_gzip(path) else STREAM_ARRAY_MIN_BYTES  # ~10x ratio
    if file_size(path) >= threshold:
        try:
            head = read_head(path, 4096)
        except (OSError, *_DECOMPRESS_ERRORS) as exc:
            report.skip(None, describe_read_error(exc))
            return
        if first_char(head) == "[":
            yield from iter_json_array(path, report)
            return
    doc = load_json(path, report)
    if doc is None:
        return
    if isinstance(doc, list):
        for item in doc:
            yield 1, item
    else:
        yield 1, doc


_WS = re.compile(r"[ \t\r\n]*")


def iter_json_array(path: Path, report: SourceReport, chunk_size: int = 1 << 22) -> Iterator[tuple[int, Any]]:
    """Stream the elements of a top-level JSON array without loading the file.

    Each element is decoded with the C decoder (`raw_decode`) from a sliding text buffer; an element
    that does not fit yet makes the buffer grow geometrically, so total work stays linear.
    """
    decoder = json.JSONDecoder()
    try:
        raw = open_bytes(path)
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
            except (*_DECOMPRESS_ERRORS, OSError) as exc:
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
# Text, time, arguments


def text_of(content: Any, _depth: int = 0) -> str:
    """Plain text of a message content: a string, None, a list of parts of any common shape
    (OpenAI/Anthropic/Gemini/Inspect/OTel), or a nested object. Images and other media become a
    short placeholder so that turn structure survives."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, bool | int | float):
        return str(content)
    if _depth > 20:
        return ""
    if isinstance(content, Mapping):
        for key in ("text", "content", "value", "result", "output", "message", "parts", "data"):
            if key in content and content[key] is not None and not isinstance(content[key], bool):
                inner = content[key]
                if isinstance(inner, str | list | Mapping):
                    return text_of(inner, _depth + 1)
        kind = str(content.get("type", ""))
        if kind in ("image", "image_url", "input_image", "blob", "uri", "file", "audio", "input_audio"):
            return f"[{kind}]"
        if kind in ("thinking", "reasoning", "redacted_thinking"):
            return ""
        try:
            return orjson.dumps(content, option=orjson.OPT_SORT_KEYS).decode()
        except (TypeError, orjson.JSONEncodeError):
            return str(content)
    if isinstance(content, Sequence):
        pieces = []
        for part in content:
            if isinstance(part, Mapping) and (str(part.get("type", "")) in (
                "tool_use", "tool_call", "function_call", "tool_result", "tool_call_response",
                "thinking", "reasoning", "redacted_thinking", "function_call_output",
            ) or "functionCall" in part or "functionResponse" in part):
                continue  # represented as tool calls / tool messages, not as text
            text = text_of(part, _depth + 1)
            if text:
                pieces.append(text)
        return "\n".join(pieces)
    return str(content)


def parse_arguments(value: Any) -> Any:
    """Tool-call arguments as a dict when they are JSON, else the raw value."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith(("{", "[")):
            try:
                return orjson.loads(stripped)
            except orjson.JSONDecodeError:
                return value
    return value


_NUMERIC_TS = re.compile(r"^-?\d+(\.\d+)?$")


def parse_time(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from ISO 8601 text or epoch seconds/ms/µs/ns; None if unknown."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float) or (isinstance(value, str) and _NUMERIC_TS.match(value.strip())):
            num = float(value)
            if num <= 0:
                return None
            for scale in (1.0, 1e3, 1e6, 1e9):  # s, ms, µs, ns: pick the one that lands after 1990
                seconds = num / scale
                if seconds < 4.2e9:
                    return datetime.fromtimestamp(seconds, tz=timezone.utc)
            return None
        if isinstance(value, str):
            try:  # the common case: ISO 8601 that fromisoformat takes as is
                dt = datetime.fromisoformat(value)
                return (dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt).astimezone(timezone.utc)
            except ValueError:
                pass
            text = value.strip()
            if not text:
                return None
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # nanosecond fractions
            dt = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            return dt.astimezone(timezone.utc)
        if isinstance(value, Mapping):
            for key in ("$date", "seconds", "value"):
                if key in value:
                    return parse_time(value[key])
    except (ValueError, OverflowError, OSError):
        return None
    return None


TIME_KEYS = ("timestamp", "started_at", "start_time", "startTime", "created_at", "createdAt", "created",
             "time", "date", "ts")


def first_time(record: Mapping[str, Any], keys: Iterable[str] = TIME_KEYS) -> datetime | None:
    for key in keys:
        if key in record:
            dt = parse_time(record[key])
            if dt is not None:
                return dt
    return None


# --------------------------------------------------------------------------------------------------
# Messages

STANDARD_ROLES = frozenset({"system", "user", "assistant", "tool"})
_ROLE_ALIASES = {
    "human": "user", "customer": "user", "client": "user", "input": "user", "prompt": "user",
    "ai": "assistant", "bot": "assistant", "model": "assistant", "gpt": "assistant", "agent": "assistant",
    "chatbot": "assistant", "output": "assistant", "completion": "assistant", "response": "assistant",
    "function": "tool", "tool_result": "tool", "ipython": "tool", "observation": "tool",
    "tool_response": "tool", "environment": "tool",
    "developer": "system", "instruction": "system", "instructions": "system",
}


def normalise_role(role: Any) -> str:
    """Lower-case standard roles and their common aliases; any other role (an agent's name) is kept."""
    text = str(role).strip() if role is not None else ""
    if not text:
        return "unknown"
    low = text.lower()
    if low in STANDARD_ROLES:
        return low
    return _ROLE_ALIASES.get(low, text)


MESSAGE_LIST_KEYS = ("messages", "traj", "trajectory", "history", "conversation", "conversations", "chat",
                     "chat_history", "dialog", "dialogue", "turns", "transcript", "chat_messages")
_CONTENT_KEYS = ("content", "text", "value", "parts", "message", "tool_calls", "function_call")
_ROLE_KEYS = ("role", "from", "speaker", "author", "sender", "type")


_ITEM_TYPES = frozenset({"function_call", "function_call_output", "reasoning", "custom_tool_call",
                         "custom_tool_call_output"})


def is_message_like(value: Any) -> bool:
    """A dict that names a speaker and carries content: role/content (OpenAI, Anthropic, Inspect),
    from/value (ShareGPT), speaker/text, or a LangChain-style {type: human|ai, content/data}."""
    if type(value) is dict:  # fast path: OpenAI-style {"role": str, "content"/"tool_calls": ...}
        role_value = value.get("role")
        if role_value.__class__ is str and role_value and ("content" in value or "tool_calls" in value):
            return True
    if not _is_map(value):
        return False
    if value.get("type") in _ITEM_TYPES:  # OpenAI Responses API input/output items
        return True
    role = None
    for key in _ROLE_KEYS:
        candidate = value.get(key)
        if isinstance(candidate, str) and candidate:
            role = candidate
            break
        if key == "author" and _is_map(candidate) and isinstance(candidate.get("role"), str):
            role = candidate["role"]
            break
    if role is None:
        return False
    if "role" not in value and "from" not in value and "speaker" not in value and "author" not in value:
        # only `type`: require a chat-ish value so that arbitrary typed objects do not qualify
        if normalise_role(role) not in STANDARD_ROLES:
            return False
    return any(key in value for key in _CONTENT_KEYS) or "data" in value


def is_message_list(value: Any, min_share: float = 0.6) -> bool:
    if not isinstance(value, list) or not value:
        return False
    sample = value[:8]
    hits = sum(1 for item in sample if is_message_like(item))
    return hits >= max(1, int(len(sample) * min_share + 0.999))


_WRAPPER_KEYS = ("input", "inputs", "request", "request_body", "body", "data", "payload", "example", "sample",
                 "state", "record", "item", "event", "log", "entry", "params", "llm_input", "prompt")


def find_message_list(record: Mapping[str, Any], depth: int = 0) -> tuple[str, list[Any]] | None:
    """Where a record keeps its conversation: a known key first, then request/input wrappers, then any
    list of message-like objects (breadth-first, shallow)."""
    for key in MESSAGE_LIST_KEYS:
        value = record.get(key)
        if isinstance(value, list) and is_message_list(value):
            return key, value
        if _is_map(value):  # {"messages": {"messages": [...]}} or {"history": {"messages": …}}
            inner = find_message_list(value, depth + 1) if depth < 3 else None
            if inner:
                return f"{key}.{inner[0]}", inner[1]
    if depth >= 3:
        return None
    for key in _WRAPPER_KEYS:
        value = record.get(key)
        if _is_map(value):
            inner = find_message_list(value, depth + 1)
            if inner:
                return f"{key}.{inner[0]}", inner[1]
    for key, value in record.items():
        if isinstance(value, list) and is_message_list(value):
            return str(key), value
    return None


def _tool_call(value: Any) -> ToolCall | None:
    """A tool call of any common shape: OpenAI {id, function:{name, arguments}}, flat {name, arguments},
    Inspect {id, function: "name", arguments: {...}}, Anthropic/OTel {type: tool_use|tool_call, name,
    input|arguments}, Gemini {functionCall: {name, args}}."""
    if not isinstance(value, Mapping):
        return None
    if isinstance(value.get("functionCall"), Mapping):
        fc = value["functionCall"]
        return ToolCall(str(fc.get("name", "")), parse_arguments(fc.get("args")), _opt_str(fc.get("id")))
    fn = value.get("function")
    if isinstance(fn, Mapping):
        return ToolCall(str(fn.get("name") or value.get("name") or ""),
                        parse_arguments(fn.get("arguments", fn.get("args"))), _opt_str(value.get("id")))
    name = fn if isinstance(fn, str) else value.get("name") or value.get("tool_name") or value.get("tool")
    if not name:
        return None
    args: Any = None
    for key in ("arguments", "input", "args", "parameters", "kwargs", "tool_input"):
        if key in value:
            args = value[key]
            break
    return ToolCall(str(name), parse_arguments(args),
                    _opt_str(value.get("id") or value.get("tool_call_id") or value.get("call_id")))


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _is_error_flag(value: Mapping[str, Any]) -> bool:
    if value.get("is_error") is True or value.get("isError") is True:
        return True
    err = value.get("error")
    if err and not isinstance(err, bool):
        return True
    if err is True:
        return True
    status = value.get("status")
    return isinstance(status, str) and status.lower() in ("error", "failed", "failure")


def _error_text(value: Mapping[str, Any]) -> str:
    err = value.get("error")
    if isinstance(err, Mapping):
        return str(err.get("message") or err.get("type") or "")
    return err if isinstance(err, str) else ""


_CALL_PARTS = ("tool_use", "tool_call", "function_call", "server_tool_use")
_RESULT_PARTS = ("tool_result", "tool_call_response", "function_call_output")


# Keys that need the general converter; plain OpenAI messages without them take the fast path.
_SLOW_KEYS = frozenset({"is_error", "isError", "error", "status", "function_call", "function_calls", "kwargs",
                        "toolCalls", "tool_call_ids", "toolCallId", "tool_use_id", "function", "tool_name",
                        "lc", "data", "parts", "text", "value", "message", "type"})
_FAST_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "tool": "tool",
               "developer": "system", "function": "tool"}


def _fast_message_init(role: str, content: str, tool_calls: tuple[ToolCall, ...], tool_call_id: str | None,
                       is_error: bool, name: str | None) -> Message:
    obj: Any = _new(Message)
    d = obj.__dict__
    d["role"] = role
    d["content"] = content
    d["tool_calls"] = tool_calls
    d["tool_call_id"] = tool_call_id
    d["is_error"] = is_error
    d["name"] = name
    return obj  # type: ignore[no-any-return]


def _fast_call_init(name: str, arguments: Any, id: str | None) -> ToolCall:
    obj: Any = _new(ToolCall)
    d = obj.__dict__
    d["name"] = name
    d["arguments"] = arguments
    d["id"] = id
    return obj  # type: ignore[no-any-return]


def _fast_trace_init(id: str, source: str, messages: tuple[Message, ...], feedback: tuple[Feedback, ...],
                     started_at: datetime | None, prompt_version: str | None, metadata: Mapping[str, Any],
                     format: str) -> Trace:
    obj: Any = _new(Trace)
    d = obj.__dict__
    d["id"] = id
    d["source"] = source
    d["messages"] = messages
    d["feedback"] = feedback
    d["started_at"] = started_at
    d["prompt_version"] = prompt_version
    d["metadata"] = metadata
    d["format"] = format
    return obj  # type: ignore[no-any-return]


_new = object.__new__


def _fast_or_safe(cls: type, fast: Callable[..., Any], fields: tuple[str, ...]) -> Callable[..., Any]:
    """Readers create millions of messages; filling a frozen dataclass's `__dict__` directly skips its
    per-field frozen `__setattr__` guard (3-4x faster). The fast path is used only while the model's
    fields are exactly `fields` (in order) and live in a plain `__dict__`, and only if it builds a
    record equal to the normal constructor's; otherwise the normal constructor is used."""
    import dataclasses

    try:
        if hasattr(cls, "__slots__") or tuple(f.name for f in dataclasses.fields(cls)) != fields:
            return cls
        args = [f"probe-{i}" for i in range(len(fields))]
        if fast(*args) != cls(*args):
            return cls
    except Exception:  # noqa: BLE001 - any surprise: use the safe constructor
        return cls
    return fast


_make_message = _fast_or_safe(Message, _fast_message_init,
                              ("role", "content", "tool_calls", "tool_call_id", "is_error", "name"))
_make_call = _fast_or_safe(ToolCall, _fast_call_init, ("name", "arguments", "id"))
_make_trace = _fast_or_safe(Trace, _fast_trace_init, ("id", "source", "messages", "feedback", "started_at",
                                                      "prompt_version", "metadata", "format"))


def _fast_message(raw: dict[str, Any], names: dict[str, str] | None = None) -> Message | None:
    """Plain OpenAI chat messages (the bulk of big logs), or None when the general path is needed.

    `names` maps tool-call ids seen so far to tool names: recorded for calls, used to name results."""
    std = _FAST_ROLES.get(raw.get("role"))  # type: ignore[arg-type]
    content = raw.get("content")
    if std is None or not (content is None or content.__class__ is str):
        return None
    if not raw.keys().isdisjoint(_SLOW_KEYS):
        return None
    calls: tuple[ToolCall, ...] = ()
    raw_calls = raw.get("tool_calls")
    if raw_calls:
        if raw_calls.__class__ is not list:
            return None
        out = []
        for call in raw_calls:
            fn = call.get("function") if call.__class__ is dict else None
            if fn.__class__ is not dict:
                return None
            name = fn.get("name")
            if name.__class__ is not str:
                return None
            args = fn.get("arguments")
            if args.__class__ is str and args[:1] in ("{", "["):
                try:
                    args = orjson.loads(args)
                except orjson.JSONDecodeError:
                    pass
            call_id = call.get("id") or None
            if call_id is not None:
                if call_id.__class__ is not str:
                    call_id = str(call_id)
                if names is not None:
                    names[call_id] = name
            out.append(_make_call(name, args, call_id))
        calls = tuple(out)
    if content is None:
        refusal = raw.get("refusal")
        content = refusal if refusal.__class__ is str else ""
    call_id = raw.get("tool_call_id") or None
    if call_id is not None and call_id.__class__ is not str:
        call_id = str(call_id)
    name = raw.get("name") or None
    if name is None:
        if call_id is not None and std == "tool" and names:
            name = names.get(call_id)
    elif name.__class__ is not str:
        name = str(name)
    return _make_message(std, content, calls, call_id, False, name)  # type: ignore[no-any-return]


def convert_message(raw: Any) -> list[Message]:
    """One source message → one or more model messages.

    Anthropic-style content blocks are split: `tool_use` blocks become tool calls of the assistant
    message, each `tool_result` block its own `tool` message (with `is_error`). Unknown keys are ignored.
    Returns [] for values that are not messages.
    """
    if raw.__class__ is dict:
        fast = _fast_message(raw)
        if fast is not None:
            return [fast]
        kind = raw.get("type")
        if kind in _ITEM_TYPES:
            return _response_item(raw)
    if isinstance(raw, str):
        return [Message(role="user", content=raw)]
    if not isinstance(raw, Mapping):
        return []
    data = raw
    # LangChain serialisations: {type: "human", data: {content: ...}} or {lc: 1, kwargs: {...}}
    if isinstance(raw.get("kwargs"), Mapping) and "lc" in raw:
        data = dict(raw["kwargs"])
        ids = raw.get("id")
        if "role" not in data and isinstance(ids, list) and ids:
            data["role"] = str(ids[-1]).replace("MessageChunk", "").replace("Message", "").lower()
    elif isinstance(raw.get("data"), Mapping) and "content" not in raw and "type" in raw:
        data = dict(raw["data"])
        data.setdefault("role", raw["type"])
    role_value: Any = None
    for key in ("role", "from", "speaker", "sender", "type"):
        if isinstance(data.get(key), str) and data.get(key):
            role_value = data[key]
            break
    if role_value is None and isinstance(data.get("author"), Mapping):
        role_value = data["author"].get("role")
    if role_value is None and isinstance(data.get("message"), Mapping):
        return convert_message(data["message"])
    role = normalise_role(role_value)
    name = _opt_str(data.get("name"))
    content: Any = None
    for key in ("content", "text", "value", "parts", "message"):
        if key in data and not (key == "message" and isinstance(data[key], Mapping) and "role" in data[key]):
            content = data[key]
            break
    tool_calls: list[ToolCall] = []
    for key in ("tool_calls", "toolCalls", "function_calls"):
        calls = data.get(key)
        if isinstance(calls, list):
            for call in calls:
                tc = _tool_call(call)
                if tc is not None:
                    tool_calls.append(tc)
    if isinstance(data.get("function_call"), Mapping):  # legacy OpenAI
        tc = _tool_call(data["function_call"])
        if tc is not None:
            tool_calls.append(tc)
    extra: list[Message] = []
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, Mapping):
                continue
            kind = str(part.get("type", ""))
            if kind in _CALL_PARTS or "functionCall" in part:
                tc = _tool_call(part)
                if tc is not None:
                    tool_calls.append(tc)
            elif kind in _RESULT_PARTS or "functionResponse" in part:
                extra.append(_tool_result_message(part))
    text = text_of(content)
    if not text and isinstance(data.get("refusal"), str):
        text = data["refusal"]
    tool_call_id = _opt_str(data.get("tool_call_id") or data.get("toolCallId") or data.get("tool_use_id"))
    if tool_call_id is None and isinstance(data.get("tool_call_ids"), list) and data["tool_call_ids"]:
        tool_call_id = _opt_str(data["tool_call_ids"][0])
    is_error = role == "tool" and _is_error_flag(data)
    if is_error and not text:
        text = _error_text(data)
    if role == "tool" and name is None:
        fn = data.get("function")
        name = fn if isinstance(fn, str) else _opt_str(data.get("tool_name"))
    out: list[Message] = []
    if extra and not text and not tool_calls:
        return extra  # a user turn that only carries tool results
    out.append(Message(role=role, content=text, tool_calls=tuple(tool_calls), tool_call_id=tool_call_id,
                       is_error=is_error, name=name))
    return out + extra


def _response_item(item: Mapping[str, Any]) -> list[Message]:
    """OpenAI Responses API items that are not messages: calls, their outputs, reasoning (dropped)."""
    kind = item.get("type")
    call_id = _opt_str(item.get("call_id") or item.get("id"))
    if kind in ("function_call", "custom_tool_call"):
        args = item.get("arguments", item.get("input"))
        call = ToolCall(str(item.get("name") or ""), parse_arguments(args), call_id)
        return [Message("assistant", "", (call,))]
    if kind in ("function_call_output", "custom_tool_call_output"):
        return [Message("tool", text_of(item.get("output")), tool_call_id=call_id)]
    return []


def _tool_result_message(part: Mapping[str, Any]) -> Message:
    if "functionResponse" in part and isinstance(part["functionResponse"], Mapping):
        fr = part["functionResponse"]
        return Message(role="tool", content=text_of(fr.get("response")), name=_opt_str(fr.get("name")),
                       tool_call_id=_opt_str(fr.get("id")))
    content = part.get("content", part.get("result", part.get("output")))
    return Message(role="tool", content=text_of(content),
                   tool_call_id=_opt_str(part.get("tool_use_id") or part.get("id") or part.get("call_id")),
                   is_error=_is_error_flag(part), name=_opt_str(part.get("name")))


def convert_messages(raw: Iterable[Any]) -> tuple[Message, ...]:
    out: list[Message] = []
    append = out.append
    names: dict[str, str] = {}
    slow = False
    for item in raw:
        fast = _fast_message(item, names) if item.__class__ is dict else None
        if fast is not None:
            append(fast)
        else:
            slow = True
            out.extend(convert_message(item))
    return tuple(_fill_tool_names(out) if slow else out)


def _fill_tool_names(messages: list[Message]) -> list[Message]:
    """Give tool results the name of the call they answer when the source left it out."""
    if not any(msg.role == "tool" and msg.name is None and msg.tool_call_id for msg in messages):
        return messages
    names: dict[str, str] = {}
    out = []
    for msg in messages:
        for call in msg.tool_calls:
            if call.id:
                names[call.id] = call.name
        if msg.role == "tool" and msg.name is None and msg.tool_call_id in names:
            msg = Message(role=msg.role, content=msg.content, tool_calls=msg.tool_calls,
                          tool_call_id=msg.tool_call_id, is_error=msg.is_error, name=names[msg.tool_call_id])
        out.append(msg)
    return out


def has_input_turn(messages: Sequence[Message]) -> bool:
    """A conversation has some input (user, system, or another agent); a bare run of assistant/tool
    messages is a fragment (an example of tool calls, not a trace)."""
    return any(m.role not in ("assistant", "tool") for m in messages)


# --------------------------------------------------------------------------------------------------
# Outcome fields → Feedback

_PASS_WORDS = {"pass", "passed", "success", "successful", "succeeded", "correct", "c", "yes", "true", "good",
               "resolved", "ok", "positive", "up", "thumbs_up", "thumbsup", "accept", "accepted", "solved",
               "completed", "complete", "win", "helpful", "1"}
_FAIL_WORDS = {"fail", "failed", "failure", "incorrect", "i", "no", "false", "bad", "unresolved", "error",
               "negative", "down", "thumbs_down", "thumbsdown", "reject", "rejected", "wrong", "unsolved",
               "incomplete", "loss", "unhelpful", "0", "errored", "crash", "crashed", "timeout"}


def verdict_of(value: Any) -> bool | None:
    """True/False when a label states pass/fail in a known word; None otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower().replace(" ", "_").replace("-", "_")
        if low in _PASS_WORDS:
            return True
        if low in _FAIL_WORDS:
            return False
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


FEEDBACK_KINDS = ("reward", "score", "success", "thumbs", "status", "label", "error")


def feedback_from_value(kind_hint: str, value: Any, name: str | None = None) -> list[Feedback]:
    """Map one outcome field into the Feedback vocabulary of `traces.model`."""
    if value is None:
        return []
    hint = kind_hint.lower()
    if hint in ("error", "exception") and isinstance(value, Mapping):
        message = value.get("message") or value.get("msg") or value.get("type") or value.get("name")
        return [Feedback("error", str(message), name=name)] if message else []
    if isinstance(value, Mapping):
        comment = value.get("comment") or value.get("explanation") or value.get("reason") or value.get("text")
        comment = comment if isinstance(comment, str) else None
        kind = value.get("kind")
        if isinstance(kind, str) and kind in FEEDBACK_KINDS:  # already in our vocabulary
            label = _opt_str(value.get("name") or value.get("key")) or name
            items = feedback_from_value(kind, value.get("value"), label)
            passed = value.get("passed")
            return [Feedback(f.kind, f.value, comment or f.comment,
                             passed if isinstance(passed, bool) else f.passed, f.name) for f in items]
        for key in ("reward", "score", "value", "rating", "thumbs", "label", "success", "passed", "correct"):
            if key in value and value[key] is not None and not isinstance(value[key], Mapping | list):
                sub_kind = key if key in ("reward", "score", "thumbs", "label", "success") else hint
                items = feedback_from_value(sub_kind, value[key], _opt_str(value.get("key") or
                                                                            value.get("name")) or name)
                return [Feedback(f.kind, f.value, comment or f.comment, f.passed, f.name) for f in items]
        return []
    if isinstance(value, list):
        out: list[Feedback] = []
        for item in value[:50]:
            out.extend(feedback_from_value(hint, item, name))
        return out
    if hint in ("reward",):
        num = _number(value)
        return [Feedback("reward", num, name=name)] if num is not None else []
    if hint in ("thumbs", "thumb", "thumbs_up", "vote", "rating_thumbs"):
        if isinstance(value, bool):
            return [Feedback("thumbs", 1 if value else -1, passed=value, name=name)]
        num = _number(value)
        if num is None:
            verdict = verdict_of(value)
            if verdict is None:
                return [Feedback("label", str(value), name=name)]
            return [Feedback("thumbs", 1 if verdict else -1, passed=verdict, name=name)]
        return [Feedback("thumbs", 1 if num > 0 else -1, passed=num > 0, name=name)]
    if hint in ("success", "passed", "correct", "resolved", "solved", "is_correct", "is_success"):
        verdict = verdict_of(value)
        if verdict is None:
            num = _number(value)
            if num is None:
                return [Feedback("label", str(value), name=name or hint)]
            verdict = num > 0
        return [Feedback("success", verdict, passed=verdict, name=name if name else
                         (None if hint == "success" else hint))]
    if hint in ("status",):
        low = str(value).strip().lower()
        if low in ("ok", "success", "succeeded", "completed", "complete", "done", "finished", "unset",
                   "pass"):
            return [Feedback("status", "ok", passed=None, name=name)]
        if low in ("error", "failed", "failure", "errored", "crashed", "cancelled", "canceled", "timeout",
                   "timed_out", "aborted"):
            return [Feedback("status", "error", comment=None if low == "error" else low, name=name)]
        return []
    if hint in ("error", "exception"):
        if isinstance(value, str) and value.strip():
            return [Feedback("error", value.strip(), name=name)]
        return []
    num = _number(value)
    if hint in ("rating", "grade") and num is not None and not 0.0 <= num <= 1.0:
        # a rating on an unknown scale (1-5 stars, 0-10): kept, but not passed off as a [0, 1] score
        return [Feedback("label", str(value), name=name or hint)]
    if hint in ("score", "rating", "grade", "accuracy", "eval_score", "feedback", "outcome", "result",
                "label") and num is not None and not isinstance(value, str):
        return [Feedback("score", num, name=name)]
    verdict = verdict_of(value)
    if isinstance(value, str):
        if num is not None and hint in ("score", "rating", "grade"):
            return [Feedback("score", num, name=name)]
        return [Feedback("label", value, passed=verdict, name=name or (hint if hint != "label" else None))]
    if isinstance(value, bool):
        return [Feedback("success", value, passed=value, name=name or hint)]
    return []


OUTCOME_KEYS = ("reward", "score", "success", "feedback", "label", "thumbs", "thumbs_up", "rating",
                "passed", "correct", "resolved", "outcome", "result", "evaluation", "eval", "grade",
                "status", "error", "human_label", "is_correct", "is_success")

_OUTCOME_KEY_SET = frozenset(OUTCOME_KEYS)


def feedback_from_record(record: Mapping[str, Any],
                         keys: Sequence[str] = OUTCOME_KEYS) -> tuple[Feedback, ...]:
    """Every outcome field a record carries at its top level (and under `metadata`/`info`), in the
    Feedback vocabulary. `result`/`outcome` strings such as "failure" become labels with a verdict."""
    out: list[Feedback] = []
    seen: set[str] = set()
    containers: list[Mapping[str, Any]] = [record]
    for sub in ("metadata", "meta", "info", "labels", "annotations", "outcome"):
        if _is_map(record.get(sub)):
            containers.append(record[sub])
    wanted = _OUTCOME_KEY_SET if keys is OUTCOME_KEYS else frozenset(keys)
    for container in containers:
        if container.keys().isdisjoint(wanted):  # most containers carry no outcome field
            continue
        for key in keys:
            if key in container and key not in seen:
                value = container[key]
                if key == "status" and not isinstance(value, str):
                    continue
                if key in ("result", "outcome", "evaluation", "eval") and _is_map(value):
                    if container is record and key == "outcome":
                        continue  # handled as a container above
                items = feedback_from_value(key, value)
                if items:
                    seen.add(key)
                    out.extend(items)
    return tuple(out)


# --------------------------------------------------------------------------------------------------
# Ids and misc

ID_KEYS = ("id", "trace_id", "traceId", "session_id", "sessionId", "conversation_id", "conversationId",
           "thread_id", "run_id", "uuid", "sample_id", "instance_id", "task_id", "example_id", "episode_id")


def record_id(record: Mapping[str, Any], stem: str, index: int, keys: Sequence[str] = ID_KEYS) -> str:
    """A stable id: the record's own id field when it has one (prefixed with the file stem when it is
    a short number-like id that other files reuse, e.g. tau-bench task ids), else stem + index."""
    for key in keys:
        value = record.get(key)
        if value is None or isinstance(value, bool | Mapping | list) or value == "":
            continue
        text = str(value)
        if isinstance(value, int | float) or len(text) < 6:
            text = f"{stem}:{text}"
        for sub in ("trial", "epoch", "attempt", "run", "repeat"):
            extra = record.get(sub)
            if isinstance(extra, int | str) and not isinstance(extra, bool) and extra != "":
                text = f"{text}/{extra}"
                break
        return text
    return f"{stem}:{index}"


def file_stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".jsonl", ".json", ".ndjson", ".traj", ".eval", ".jsonlines"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or path.name


def prompt_version_of(record: Mapping[str, Any]) -> str | None:
    for container in (record, record.get("metadata"), record.get("meta")):
        if _is_map(container):
            for key in ("prompt_version", "promptVersion", "prompt_sha", "prompt_commit", "prompt_ref"):
                value = container.get(key)
                if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
                    return str(value)
    return None


def scalar_metadata(record: Mapping[str, Any], skip: Iterable[str] = (), limit: int = 30) -> dict[str, Any]:
    """Small scalar fields of a record worth keeping as trace metadata (ids, model, task names)."""
    skipped = skip if isinstance(skip, frozenset) else set(skip)
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key in skipped or len(out) >= limit:
            continue
        if isinstance(value, str) and len(value) <= 200 or isinstance(value, int | float | bool):
            out[str(key)] = value
    meta = record.get("metadata")
    if _is_map(meta):
        for key, value in meta.items():
            if len(out) >= limit:
                break
            if isinstance(value, str) and len(value) <= 200 or isinstance(value, int | float | bool):
                out.setdefault(str(key), value)
    return out


def head_has(head: bytes, *needles: bytes) -> int:
    """How many of the quoted JSON keys occur in the head (`b'"traj"'` style needles)."""
    return sum(1 for needle in needles if needle in head)


_ROLE_RE = re.compile(rb'"(?:role|from|speaker)"\s*:\s*"([^"\\]{1,80})"')


def head_roles(head: bytes) -> list[str]:
    return [m.decode("utf-8", "replace") for m in _ROLE_RE.findall(head[:HEAD_BYTES])]


def text_head(head: bytes) -> bytes:
    return strip_bom(head).lstrip()


# --------------------------------------------------------------------------------------------------
# Records → traces (shared by the record-shaped readers: openai, anthropic, generic)


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


def iter_records(path: Path, report: SourceReport) -> Iterator[tuple[int, Any]]:
    """(line, record) of a JSONL file, a JSON array of records, or a single JSON document."""
    try:
        head = read_head(path, 65536)
    except (OSError, *_DECOMPRESS_ERRORS) as exc:
        report.skip(None, describe_read_error(exc))
        return
    if looks_jsonl(path, head):
        yield from iter_jsonl(path, report)
    else:
        yield from iter_json_records(path, report)


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
    except (OSError, ValueError, *_DECOMPRESS_ERRORS):
        return False


def open_plain_or_gz(path: Path) -> IO[bytes]:
    """Open (decompressing `.gz`) without progress reporting: for looking, not reading."""
    raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    return gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip(path) else raw  # type: ignore[return-value]


def response_messages(body: Any) -> list[Any]:
    """The reply messages inside a provider response body: OpenAI `choices[].message` (first choice),
    Anthropic messages (`{role, content}`), OpenAI Responses `output[]`, Gemini `candidates[].content`,
    or a plain string."""
    if body is None:
        return []
    if isinstance(body, str):
        return [{"role": "assistant", "content": body}] if body.strip() else []
    if isinstance(body, list):
        if is_message_list(body):
            return list(body)
        return []
    if not isinstance(body, Mapping):
        return []
    choices = body.get("choices")
    if isinstance(choices, list) and choices:
        first = choices[0]
        if isinstance(first, Mapping):
            msg = first.get("message") or first.get("delta")
            if isinstance(msg, Mapping):
                msg = dict(msg)
                msg.setdefault("role", "assistant")
                return [msg]
            if isinstance(first.get("text"), str):
                return [{"role": "assistant", "content": first["text"]}]
        return []
    candidates = body.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], Mapping):
        content = candidates[0].get("content")
        if isinstance(content, Mapping):
            return [content]
    output = body.get("output")
    if isinstance(output, list) and output:
        msgs: list[Any] = []
        for item in output:
            if isinstance(item, Mapping) and item.get("type") == "function_call":
                msgs.append({"role": "assistant", "tool_calls": [item]})
            elif isinstance(item, Mapping) and ("role" in item or "content" in item):
                msgs.append({"role": item.get("role", "assistant"), "content": item.get("content")})
        return msgs
    if "role" in body and ("content" in body or "tool_calls" in body):
        return [body]
    for key in ("message", "completion", "output", "response", "text", "answer"):
        if key in body and body[key] is not None:
            return response_messages(body[key])
    return []


def finish_reason(body: Any) -> str | None:
    """Why a provider stopped generating (OpenAI `finish_reason`, Anthropic `stop_reason`)."""
    if not isinstance(body, Mapping):
        return None
    if isinstance(body.get("stop_reason"), str):
        return str(body["stop_reason"])
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        reason = choices[0].get("finish_reason")
        return reason if isinstance(reason, str) else None
    return None


def system_messages(record: Mapping[str, Any]) -> list[Any]:
    """A top-level system prompt kept beside the messages (Anthropic `system`, `instructions`)."""
    for key in ("system", "system_prompt", "instructions"):
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return [{"role": "system", "content": value}]
        if isinstance(value, list) and value and all(_is_map(v) for v in value):
            text = text_of(value)
            if text:
                return [{"role": "system", "content": text}]
    return []


_RESPONSE_KEYS = ("response", "response_body", "completion", "output", "outputs", "answer", "reply",
                  "prediction", "generation")


def conversation_of(record: Mapping[str, Any]) -> tuple[str, list[Any]] | None:
    """The raw message list of a record, with a top-level system prompt and a separate response
    (request/response logs) folded in."""
    found = find_message_list(record)
    if found is None:
        # request/response pairs with the messages under a body key
        for key in ("request", "request_body", "input", "inputs"):
            inner = record.get(key)
            if _is_map(inner):
                found = find_message_list(inner)
                if found:
                    found = (f"{key}.{found[0]}", found[1])
                    break
        if found is None:
            return _prompt_completion(record)
    key, raw = found
    msgs: list[Any] = list(raw)
    container: Mapping[str, Any] = record
    if "." in key:
        outer = key.split(".")[0]
        if _is_map(record.get(outer)):
            container = record[outer]
    if not any(_is_map(m) and normalise_role(m.get("role")) == "system" for m in msgs[:3]):
        system = system_messages(container)
        if not system and container is not record:
            system = system_messages(record)
        msgs = system + msgs
    for rkey in _RESPONSE_KEYS:
        if rkey in record and rkey != key.split(".")[0]:
            reply = response_messages(record[rkey])
            if reply:
                msgs.extend(reply)
                break
    if "choices" in record:
        msgs.extend(response_messages(record))
    return key, msgs


_PROMPT_KEYS = ("prompt", "input", "question", "query", "instruction", "user_input")
_ANSWER_KEYS = ("completion", "response", "output", "answer", "generation", "prediction", "model_output")


def _prompt_completion(record: Mapping[str, Any]) -> tuple[str, list[Any]] | None:
    """Single-turn records: a prompt string and the model's answer string."""
    prompt = next((k for k in _PROMPT_KEYS if isinstance(record.get(k), str) and record[k].strip()), None)
    answer = next((k for k in _ANSWER_KEYS if isinstance(record.get(k), str)), None)
    if prompt is None or answer is None:
        return None
    msgs: list[Any] = system_messages(record)
    msgs += [{"role": "user", "content": record[prompt]}, {"role": "assistant", "content": record[answer]}]
    return f"{prompt}+{answer}", msgs


# record fields that are not metadata (ids, outcomes, prompts and answers, system prompts)
_NOT_METADATA = frozenset(ID_KEYS[:1] + OUTCOME_KEYS + _PROMPT_KEYS + _ANSWER_KEYS +
                          ("system", "system_prompt", "instructions"))


def trace_from_record(record: Any, *, source: str, stem: str, index: int, fmt: str,
                      report: SourceReport, line: int | None) -> Any:
    """One record → one Trace, or None after deferring it (no messages in it)."""

    if not _is_map(record):
        report.defer(line, f"a JSON {type(record).__name__}, not an object")
        return None
    conv = conversation_of(record)
    if conv is None:
        report.defer(line, "no messages")
        return None
    key, raw = conv
    messages = convert_messages(raw)
    if not messages:
        report.defer(line, f"no readable messages under '{key}'")
        return None
    feedback = feedback_from_record(record)
    meta = scalar_metadata(record, skip=_NOT_METADATA)
    meta["messages_key"] = key
    return _make_trace(record_id(record, stem, index), source, messages, feedback,
                       first_time(record) or _first_message_time(raw), prompt_version_of(record), meta, fmt)


def _first_message_time(raw: Sequence[Any]) -> datetime | None:
    for item in raw[:3]:
        if isinstance(item, Mapping):
            dt = first_time(item)
            if dt is not None:
                return dt
    return None


def guarded(report: SourceReport, line: int | None, fn: Callable[[], Any]) -> Any:
    """Run one record's conversion; a failure skips that record (with its line), never the file."""
    try:
        return fn()
    except SelfImproveError:
        raise
    except RecursionError:
        report.skip(line, "nesting too deep")
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError) as exc:
        report.skip(line, f"unreadable record ({type(exc).__name__}: {exc})")
    return None


GROUP_KEYS = ("trace_id", "traceId", "session_id", "sessionId", "conversation_id", "conversationId",
              "thread_id", "threadId", "chat_id", "dialog_id")
MAX_OPEN_GROUPS = 1000  # message-per-line files: conversations kept open at once (memory bound)


def group_key_of(record: Mapping[str, Any], keys: Sequence[str] = GROUP_KEYS) -> str | None:
    for key in keys:
        value = record.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
            return str(value)
    return None


@dataclass
class _Group:
    key: str
    line: int
    records: list[Any]


def group_lines(lines: Iterable[tuple[int, Mapping[str, Any]]], keys: Sequence[str] = GROUP_KEYS,
                max_open: int = MAX_OPEN_GROUPS) -> Iterator[tuple[str, int, list[Any]]]:
    """Group one-message-per-line records into conversations by a group id field.

    Interleaved conversations are fine; at most `max_open` are held at once (the least recently
    extended is emitted first when the limit is reached), so memory stays bounded.
    Yields (group id, line of its first record, records) in order of first appearance when possible.
    """
    open_groups: dict[str, _Group] = {}
    for line, record in lines:
        key = group_key_of(record, keys) or ""
        group = open_groups.pop(key, None)
        if group is None:
            group = _Group(key, line, [])
        group.records.append(record)
        open_groups[key] = group  # re-insert: dict order = least recently extended first
        if len(open_groups) > max_open:
            oldest = next(iter(open_groups))
            done = open_groups.pop(oldest)
            yield done.key, done.line, done.records
    for group in sorted(open_groups.values(), key=lambda g: g.line):
        yield group.key, group.line, group.records


def _interactions(record: Mapping[str, Any]) -> list[tuple[Any, Any]] | None:
    """HTTP recordings (VCR cassettes converted to JSON): [(request body, response body)]."""
    items = record.get("interactions")
    if not isinstance(items, list) or not items:
        return None
    pairs: list[tuple[Any, Any]] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        req = item.get("request_body")
        resp = item.get("response_body")
        if req is None and isinstance(item.get("request"), Mapping):
            req = item["request"].get("body")
            resp = item.get("response", {}).get("body") if isinstance(item.get("response"), Mapping) else None
        if isinstance(req, str):
            req = parse_arguments(req)
        if isinstance(resp, str):
            resp = parse_arguments(resp)
        if isinstance(req, Mapping):
            pairs.append((req, resp))
    return pairs or None


def traces_from_interactions(record: Mapping[str, Any], *, source: str, stem: str, fmt: str,
                             start_index: int) -> list[Any] | None:
    """One trace per conversation in a recording: successive calls that repeat the same opening
    message are one conversation; its last request plus that request's response are the trace."""

    pairs = _interactions(record)
    if pairs is None:
        return None
    convs: list[tuple[Mapping[str, Any], Any]] = []
    first_msgs: list[Any] = []
    for req, resp in pairs:
        found = find_message_list(req)
        if found is None:
            continue
        opening = found[1][0] if found[1] else None
        if convs and first_msgs[-1] == opening:
            convs[-1] = (req, resp)
        else:
            convs.append((req, resp))
            first_msgs.append(opening)
    out = []
    for n, (req, resp) in enumerate(convs):
        conv = conversation_of(req)
        if conv is None:
            continue
        raw = conv[1] + response_messages(resp)
        messages = convert_messages(raw)
        if not messages:
            continue
        meta: dict[str, Any] = {"messages_key": "interactions"}
        if isinstance(req.get("model"), str):
            meta["model"] = req["model"]
        finish = finish_reason(resp)
        if finish:
            meta["finish_reason"] = finish
        out.append(Trace(id=f"{stem}:{start_index + n}", source=source, messages=messages,
                         feedback=(), metadata=meta, format=fmt))
    return out


def read_record_file(path: Path, report: SourceReport, fmt: str) -> Iterator[Any]:
    """Traces of a record-shaped file (JSONL, JSON array or one JSON document), whatever the record
    shape: records holding a message list (OpenAI/Anthropic/ShareGPT/tau-bench/request-response
    logs), HTTP recordings with request/response bodies, a bare JSON list of messages (one trace), or
    one message per line grouped by a trace/session/conversation id."""
    stem = file_stem(path)
    index = 0
    bare: list[Any] | None = None
    bare_line = 1
    per_line: list[tuple[int, Mapping[str, Any]]] | None = None
    jsonl = False
    try:
        jsonl = looks_jsonl(path, read_head(path, 65536))
    except (OSError, *_DECOMPRESS_ERRORS):
        pass

    records = iter_records(path, report)
    for line, record in records:
        label = f"{report.path}:{line}"
        if isinstance(record, Mapping) and "interactions" in record:
            cassette = guarded(report, line, partial(traces_from_interactions, record, source=label,
                                                     stem=stem, fmt=fmt, start_index=index))
            if cassette is not None:
                for trace in cassette:
                    index += 1
                    yield trace
                continue
        if bare is None and per_line is None and is_message_like(record) and \
                find_message_list(record) is None:
            if jsonl:
                per_line = [(line, record)]
                yield from _per_line_traces(path, report, fmt, per_line, records, stem)
                return
            bare = [record]
            bare_line = line
            continue
        if bare is not None:
            bare.append(record)
            continue
        # records without an id field: JSONL ids use the line (stable when a file is read in shards)
        build = partial(trace_from_record, record, source=label, stem=stem, index=line if jsonl else index,
                        fmt=fmt, report=report, line=line)
        trace = guarded(report, line, build)
        index += 1
        if trace is not None:
            yield trace
    if bare is not None:
        trace = guarded(report, bare_line, lambda: _bare_trace(bare, report, fmt, stem, bare_line))
        if trace is not None:
            yield trace


def _bare_trace(raw: list[Any], report: SourceReport, fmt: str, stem: str, line: int) -> Any:

    messages = convert_messages(raw)
    if not messages:
        report.defer(line, "no readable messages")
        return None
    if not has_input_turn(messages):
        report.ignore("a list of assistant/tool messages with no user, system or agent input: "
                      "a fragment (e.g. example tool calls), not a conversation")
        return None
    return Trace(id=stem, source=f"{report.path}:{line}", messages=messages,
                 started_at=_first_message_time(raw), metadata={"messages_key": "$"}, format=fmt)


def _per_line_traces(path: Path, report: SourceReport, fmt: str,
                     first: list[tuple[int, Mapping[str, Any]]],
                     rest: Iterator[tuple[int, Any]], stem: str) -> Iterator[Any]:

    def lines() -> Iterator[tuple[int, Mapping[str, Any]]]:
        yield from first
        for line, record in rest:
            if isinstance(record, Mapping) and (is_message_like(record) or group_key_of(record)):
                yield line, record
            else:
                report.skip(line, "not a message (expected one message per line with a trace id)")

    n = 0
    for key, line, records in group_lines(lines()):
        def build(key: str = key, line: int = line, records: list[Any] = records, n: int = n) -> Any:
            messages = convert_messages(r for r in records if is_message_like(r))
            if not messages:
                report.defer(line, "no readable messages")
                return None
            feedback: list[Feedback] = []
            for r in records:
                feedback.extend(feedback_from_record(r, [k for k in OUTCOME_KEYS if k != "status"]))
            meta: dict[str, Any] = {"messages_key": "lines"}
            return Trace(id=key if key and len(key) >= 6 else f"{stem}:{key or n}",
                         source=f"{report.path}:{line}", messages=messages, feedback=tuple(feedback),
                         started_at=_first_message_time(records), prompt_version=next(
                             (v for v in map(prompt_version_of, records) if v), None),
                         metadata=meta, format=fmt)
        trace = guarded(report, line, build)
        n += 1
        if trace is not None:
            yield trace


def convert_messages_post(messages: Sequence[Message]) -> tuple[Message, ...]:
    """Final touches on already converted messages (tool names filled in from their calls)."""
    return tuple(_fill_tool_names(list(messages)))
