"""Claude Code session logs (`~/.claude/projects/**/<session>.jsonl`): one JSON object per line,
`{type: user|assistant|summary|system|…, sessionId, uuid, parentUuid, timestamp, message: {role,
content: string | [blocks]}}`. One trace per `sessionId` (a file may hold several; interleaving is
fine). `tool_use` blocks are tool calls, `tool_result` blocks tool messages with `is_error`.

Lines that are not conversation turns (summaries, snapshots, hook/system notices) belong to the
format and are not errors: summaries go into the trace's metadata, the rest is passed over. Sub-agent
turns (`isSidechain`) and text Claude Code injects as a user turn (`isMeta`) are left out of the
conversation (counted in `metadata["left_out_turns"]`): they are not what the user said.
Assistant replies that Claude Code wrote as several lines (one per content block, same message id)
are merged back into one message.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from selfimprove.traces.formats import _fields, _io, _records
from selfimprove.traces.messages.convert import convert_message, convert_messages_post
from selfimprove.traces.model import Message, Trace

_TURN_TYPES = ("user", "assistant")


class ClaudeCodeReader:
    name = "claude-code"

    def sniff(self, path: Path, head: bytes) -> int:
        body = _io.text_head(head)
        if not body.startswith(b"{"):
            return 0
        hits = _io.head_has(body, b'"sessionId"', b'"parentUuid"', b'"isSidechain"', b'"userType"', b'"uuid"')
        if hits >= 3:
            return 90
        if hits >= 2 and b'"message"' in body:
            return 60
        return 0

    def read(self, path: Path, report: _io.SourceReport,
             context: _io.ReadContext = _io.PLAIN) -> Iterator[Trace]:
        summaries: dict[str, str] = {}
        side: dict[str, int] = {}
        stem = _fields.file_stem(path)

        def turns() -> Iterator[tuple[int, Mapping[str, Any]]]:
            for line, record in _io.iter_jsonl(path, report, context):
                if not isinstance(record, Mapping):
                    report.skip(line, f"a JSON {type(record).__name__}, not an object")
                    continue
                kind = record.get("type")
                if kind == "summary" and isinstance(record.get("summary"), str):
                    summaries[str(record.get("leafUuid", ""))] = record["summary"]
                    continue
                if kind not in _TURN_TYPES or not isinstance(record.get("message"), Mapping | str):
                    continue  # snapshots, system/hook notices, progress lines: part of the format
                if record.get("isSidechain") is True or record.get("isMeta") is True:
                    # a sub-agent's own conversation, or text Claude Code injected as a "user" turn:
                    # not what the user said to the main agent
                    session = str(record.get("sessionId", ""))
                    side[session] = side.get(session, 0) + 1
                    continue
                yield line, record

        pending: list[tuple[str, int, list[Any]]] = []
        for key, line, records in _records.group_lines(turns(), keys=("sessionId", "session_id")):
            pending.append((key, line, records))
            # summaries may come after the turns they describe: hold only one finished group
            while len(pending) > 1:
                trace = _with_side(self._trace(*pending.pop(0), report=report, stem=stem,
                                               summaries=summaries), side)
                if trace is not None:
                    yield trace
        for item in pending:
            trace = _with_side(self._trace(*item, report=report, stem=stem, summaries=summaries), side)
            if trace is not None:
                yield trace

    def _trace(self, key: str, line: int, records: list[Any], *, report: _io.SourceReport, stem: str,
               summaries: dict[str, str]) -> Trace | None:
        def build() -> Trace | None:
            messages: list[Message] = []
            last_id: str | None = None
            model = None
            uuids = set()
            for record in records:
                uuids.add(record.get("uuid"))
                msg = record["message"]
                if isinstance(msg, str):
                    msg = {"role": record.get("type"), "content": msg}
                converted = convert_message(msg)
                msg_id = msg.get("id") if isinstance(msg, Mapping) else None
                if isinstance(msg, Mapping) and isinstance(msg.get("model"), str):
                    model = msg["model"]
                if (converted and messages and msg_id and msg_id == last_id
                        and converted[0].role == "assistant" and messages[-1].role == "assistant"):
                    prev = messages[-1]
                    first = converted[0]
                    text = "\n".join(t for t in (prev.content, first.content) if t)
                    messages[-1] = replace(prev, content=text, tool_calls=prev.tool_calls + first.tool_calls)
                    converted = converted[1:]
                messages.extend(converted)
                last_id = msg_id if isinstance(msg_id, str) else None
            if not messages:
                report.defer(line, "no conversation turns")
                return None
            first_rec = records[0]
            meta: dict[str, Any] = {"session_id": key}
            for field in ("cwd", "version", "gitBranch"):
                if isinstance(first_rec.get(field), str):
                    meta[field] = first_rec[field]
            if model:
                meta["model"] = model
            summary = [text for leaf, text in summaries.items() if leaf in uuids]
            if summary:
                meta["summary"] = summary[0]
            return Trace(id=key or f"{stem}:{line}", source=f"{report.path}:{line}",
                         messages=convert_messages_post(messages),
                         started_at=_fields.first_time(first_rec), metadata=meta, format=self.name)

        result: Trace | None = _records.guarded(report, line, build)
        return result


def _with_side(trace: Trace | None, side: dict[str, int]) -> Trace | None:
    if trace is None or not side.get(trace.id):
        return trace
    return replace(trace, metadata={**trace.metadata, "left_out_turns": side[trace.id]})


READER = ClaudeCodeReader()
