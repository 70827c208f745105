"""Records → traces, shared by the record-shaped readers (openai, anthropic, generic, ...).

Owns: one record → one `Trace` (`trace_from_record`), the per-record guard that turns a failure
into a counted skip (`guarded`), one-message-per-line files grouped into conversations
(`group_lines`), HTTP recordings (`traces_from_interactions`), results documents (one object with a
run's metadata and its episodes under a key of its own, `results_of`: each episode is read as a
record), and reading a whole record file of any of these shapes (`read_record_file`). Traces are
built with the fast constructor `messages.fast.make_trace`, imported here by name (a test that
swaps it patches `_records.make_trace`).

Must never: let one bad record fail the file (it is skipped and counted, with its line), or hold
more than `MAX_OPEN_GROUPS` conversations open at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from selfimprove.errors import SelfImproveError
from selfimprove.traces.formats import _io
from selfimprove.traces.formats._feedback import OUTCOME_KEYS, feedback_from_record
from selfimprove.traces.formats._fields import (
    ID_KEYS,
    file_stem,
    first_time,
    prompt_version_of,
    record_id,
    scalar_metadata,
)
from selfimprove.traces.formats._io import (
    DECOMPRESS_ERRORS,
    PLAIN,
    ReadContext,
    SourceReport,
    iter_records,
    looks_jsonl,
    read_head,
)
from selfimprove.traces.messages.conversations import (
    ANSWER_KEYS,
    FOLDED_KEYS,
    PROMPT_KEYS,
    SYSTEM_KEYS,
    conversation_of,
    find_message_list,
    finish_reason,
    is_message_like,
    response_messages,
)
from selfimprove.traces.messages.convert import convert_messages, has_input_turn
from selfimprove.traces.messages.fast import fast_view, make_trace
from selfimprove.traces.messages.values import is_map, parse_arguments
from selfimprove.traces.model import Feedback, RawTrace, Trace

# record fields that are not metadata (ids, outcomes, prompts and answers, system prompts)
_NOT_METADATA = frozenset(ID_KEYS[:1] + OUTCOME_KEYS + PROMPT_KEYS + ANSWER_KEYS +
                          SYSTEM_KEYS)


def trace_from_record(record: Any, *, source: str, stem: str, index: int | str, fmt: str,
                      report: SourceReport, line: int | None, views: bool = False) -> Any:
    """One record → one Trace, or None after deferring it (no messages in it). With `views`, a plain
    chat record takes the fast lane (`raw_trace`): a trace that carries its view."""

    if views:
        lean = raw_trace(record, source=source, stem=stem, index=index, fmt=fmt)
        if lean is not None:
            return lean
    if not is_map(record):
        report.defer(line, f"a JSON {type(record).__name__}, not an object")
        return None
    conv = conversation_of(record)
    if conv is None:
        episodes = results_of(record)
        if episodes is not None:
            return Episodes(episodes[0], episodes[1], scalar_metadata(record, skip=_NOT_METADATA))
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
    return make_trace(record_id(record, stem, index), source, messages, feedback,
                       first_time(record) or _first_message_time(raw), prompt_version_of(record), meta, fmt)


@dataclass(frozen=True)
class Episodes:
    """What `trace_from_record` returns for a results document: its episodes, for the file reader to
    read one by one as records, and the document's own scalar fields (model, run id, timestamp), kept
    in each episode's metadata where the episode has no field of that name."""

    key: str
    items: list[Any]
    run: dict[str, Any]


EPISODE_SHARE = 0.6  # of a list's first items that must hold a conversation for it to be the episodes


def results_of(record: Mapping[str, Any], depth: int = 0) -> tuple[str, list[Any]] | None:
    """The episodes of a results document (`{"model": …, "config": {…}, "simulations": [{…,
    "messages": [...]}]}`, any key name): of the record's lists of objects that are not messages
    themselves, the one whose first items most often hold a conversation; also one object deeper
    (`{"data": {"runs": [...]}}`). None for anything else."""
    best: tuple[str, list[Any]] | None = None
    best_share = 0.0
    for key, value in record.items():
        if isinstance(value, list) and value and is_map(value[0]) and not is_message_like(value[0]):
            sample = value[:8]
            hits = sum(1 for item in sample if is_map(item) and not is_message_like(item)
                       and conversation_of(item) is not None)
            share = hits / len(sample)
            if share >= EPISODE_SHARE and share > best_share:
                best, best_share = (str(key), value), share
    if best is None and depth == 0:
        for key, value in record.items():
            if is_map(value):
                inner = results_of(value, 1)
                if inner is not None:
                    return f"{key}.{inner[0]}", inner[1]
    return best


# Record fields that would make `conversation_of` add to the `messages` list (a system prompt kept
# beside it, a response) or the file reader read the record otherwise (an HTTP recording): a record
# with one of them takes the general path.
_NOT_PLAIN = FOLDED_KEYS | {"interactions"}


def raw_trace(record: Any, *, source: str, stem: str, index: int | str, fmt: str) -> RawTrace | None:
    """The fast lane of `trace_from_record` for plain chat records ({"messages": [...]} of OpenAI
    messages, the bulk of big logs): a trace that carries its `TraceView` and builds its messages
    only when asked, equal in every field to the one `trace_from_record` builds. None when the record
    needs the general path."""
    if record.__class__ is not dict:
        return None
    raw = record.get("messages")
    if raw.__class__ is not list or not raw or not record.keys().isdisjoint(_NOT_PLAIN):
        return None
    view = fast_view(raw)
    if view is None:
        return None
    feedback = feedback_from_record(record)  # in the order trace_from_record calls them
    meta = scalar_metadata(record, skip=_NOT_METADATA)
    meta["messages_key"] = "messages"
    trace: Any = _new(RawTrace)
    d = trace.__dict__
    d["id"] = record_id(record, stem, index)
    d["source"] = source
    d["feedback"] = feedback
    d["started_at"] = first_time(record) or _first_message_time(raw)
    d["prompt_version"] = prompt_version_of(record)
    d["metadata"] = meta
    d["format"] = fmt
    d["view"] = view
    d["materialise"] = partial(convert_messages, raw)
    return trace  # type: ignore[no-any-return]


_new = object.__new__


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


# --------------------------------------------------------------------------------------------------
# One message per line

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


# --------------------------------------------------------------------------------------------------
# HTTP recordings


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


# --------------------------------------------------------------------------------------------------
# Files of records


def read_record_file(path: Path, report: SourceReport, fmt: str,
                     context: ReadContext = PLAIN) -> Iterator[Any]:
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
    except (OSError, *DECOMPRESS_ERRORS):
        pass

    records = iter_records(path, report, context)
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
                        fmt=fmt, report=report, line=line, views=context.views)
        trace = guarded(report, line, build)
        if isinstance(trace, Episodes):  # the document is not a record of its own: its episodes are
            yield from _episode_traces(trace, source=label, stem=stem, first=None if jsonl else index,
                                       fmt=fmt, report=report, line=line, views=context.views)
            index += len(trace.items)
            continue
        index += 1
        if trace is not None:
            yield trace
    if bare is not None:
        trace = guarded(report, bare_line, lambda: _bare_trace(bare, report, fmt, stem, bare_line))
        if trace is not None:
            yield trace


def _episode_traces(doc: Episodes, *, source: str, stem: str, first: int | None, fmt: str,
                    report: SourceReport, line: int, views: bool) -> Iterator[Any]:
    """The traces of a results document's episodes, each read as a record; the document's own fields
    fill in what an episode's metadata lacks. Episodes without an id field are named by their index
    among the file's records (`first` + n), or in JSON Lines by `line.n` (stable when a file is read
    in shards)."""
    for n, episode in enumerate(doc.items):
        index: int | str = f"{line}.{n}" if first is None else first + n
        found = guarded(report, line, partial(trace_from_record, episode, source=source, stem=stem,
                                              index=index, fmt=fmt, report=report, line=line,
                                              views=views))
        if isinstance(found, Episodes):  # a document inside an episode is not an episode
            report.defer(line, f"no messages in an item of '{doc.key}'")
        elif found is not None:
            meta = found.metadata
            if isinstance(meta, dict):  # built for this trace alone
                for key, value in doc.run.items():
                    meta.setdefault(key, value)
                meta["episodes_key"] = doc.key
            yield found


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
            return Trace(id=key or f"{stem}:{n}",
                         source=f"{report.path}:{line}", messages=messages, feedback=tuple(feedback),
                         started_at=_first_message_time(records), prompt_version=next(
                             (v for v in map(prompt_version_of, records) if v), None),
                         metadata=meta, format=fmt)
        trace = guarded(report, line, build)
        n += 1
        if trace is not None:
            yield trace


# --------------------------------------------------------------------------------------------------
# Readers of record-shaped files


class RecordReader:
    """The readers of record-shaped files differ only in how they recognise their files (`sniff`):
    all read them with `read_record_file`, which labels the traces with the reader's name."""

    name = ""

    def sniff(self, path: Path, head: bytes) -> int:
        return 0

    def read(self, path: Path, report: _io.SourceReport,
             context: _io.ReadContext = _io.PLAIN) -> Iterator[Trace]:
        yield from read_record_file(path, report, self.name, context)


class KeyedRecordReader(RecordReader):
    """A record format told apart by keys or values only it writes: `score` when the first bytes of
    a JSON file hold one of `needles` and all of `needs`."""

    def __init__(self, name: str, needles: Sequence[bytes], needs: Sequence[bytes] = (), score: int = 75):
        self.name, self.needles, self.needs, self.score = name, tuple(needles), tuple(needs), score

    def sniff(self, path: Path, head: bytes) -> int:
        body = _io.text_head(head)
        if not body.startswith((b"{", b"[")) or not _io.head_has(body, *self.needles):
            return 0
        return self.score if all(needle in body for needle in self.needs) else 0
