"""Generic record fields every reader looks up: ids, file stems, times, prompt versions, metadata.

Owns: the liberal readers of a record's id (`record_id`), timestamps of any common shape
(`parse_time`, `first_time`), its prompt version, and the scalar fields copied as metadata.

Must never: read files or judge outcomes; these are pure functions of one record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from selfimprove.traces.messages.values import TIME_KEYS, is_map

# --------------------------------------------------------------------------------------------------
# Times

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


def first_time(record: Mapping[str, Any], keys: Iterable[str] = TIME_KEYS) -> datetime | None:
    for key in keys:
        if key in record:
            dt = parse_time(record[key])
            if dt is not None:
                return dt
    return None


# --------------------------------------------------------------------------------------------------
# Ids and metadata

ID_KEYS = ("id", "trace_id", "traceId", "session_id", "sessionId", "conversation_id", "conversationId",
           "thread_id", "run_id", "uuid", "sample_id", "instance_id", "task_id", "example_id", "episode_id",
           "doc_id")


def record_id(record: Mapping[str, Any], stem: str, index: int | str, keys: Sequence[str] = ID_KEYS) -> str:
    """A stable id: the record's own id field as given when it has one (with its trial or epoch, so
    the repeats of one task differ), else stem + index. Ids that collide in the input (task ids other
    files reuse) are told apart by the stream that reads them all (`read.TraceStream`), so an id that
    is unique stays exactly what the user wrote."""
    for key in keys:
        value = record.get(key)
        if value is None or isinstance(value, bool | Mapping | list) or value == "":
            continue
        text = str(value)
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
        if is_map(container):
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
    if is_map(meta):
        for key, value in meta.items():
            if len(out) >= limit:
                break
            if isinstance(value, str) and len(value) <= 200 or isinstance(value, int | float | bool):
                out.setdefault(str(key), value)
    return out
