"""OpenHands event streams: a JSON list of events `{id, timestamp, source: user|agent|environment,
action | observation, message, args | content + extras, cause, tool_call_metadata}` (trajectory
files), or records holding such a list under `history` (evaluation output JSONL, one per line).

User `message` actions → user turns; agent actions (run, edit, read, browse, …) → assistant turns
with a tool call (named after `tool_call_metadata.function_name`, else the action); observations →
tool messages answering that call. Error observations (`observation: "error"`), commands that exit
with a non-zero code and an agent state of "error" are marked as errors; state changes and empty
("null") observations are bookkeeping and left out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from selfimprove.traces.formats import _feedback, _fields, _io, _records
from selfimprove.traces.messages.convert import convert_messages_post
from selfimprove.traces.messages.values import opt_str, text_of
from selfimprove.traces.model import Feedback, Message, ToolCall, Trace

_SKIP_OBSERVATIONS = {"null", "agent_state_changed", "recall", "condensation"}
_SKIP_ACTIONS = {"change_agent_state", "recall", "system", "condensation", "null"}


_SOURCES = frozenset({"user", "agent", "environment"})


def _is_event(value: Any) -> bool:
    return (isinstance(value, Mapping) and value.get("source") in _SOURCES
            and ("action" in value or "observation" in value))


def events_to_messages(events: list[Any]) -> tuple[list[Message], list[Feedback]]:
    messages: list[Message] = []
    feedback: list[Feedback] = []
    for event in events:
        if not isinstance(event, Mapping):
            continue
        source = str(event.get("source", ""))
        args = event.get("args") if isinstance(event.get("args"), Mapping) else {}
        assert isinstance(args, Mapping)
        meta = event.get("tool_call_metadata") if isinstance(event.get("tool_call_metadata"), Mapping) else {}
        assert isinstance(meta, Mapping)
        call_id = opt_str(meta.get("tool_call_id"))
        if "action" in event:
            action = str(event.get("action"))
            if action in _SKIP_ACTIONS:
                continue
            if action == "message":
                text = args.get("content") if isinstance(args.get("content"), str) else event.get("message")
                role = "user" if source == "user" else "assistant"
                messages.append(Message(role, text_of(text)))
            elif action == "finish":
                text = args.get("final_thought") or args.get("thought") or event.get("message") or ""
                messages.append(Message("assistant", text_of(text)))
            elif source == "user":  # other user actions carry their text in `message`
                messages.append(Message("user", text_of(event.get("message"))))
            else:
                thought = str(args["thought"]) if isinstance(args.get("thought"), str) else ""
                arguments = {k: v for k, v in args.items() if k not in ("thought", "impl_source",
                                                                         "translated_ipython_code")}
                name = str(meta.get("function_name") or action)
                messages.append(Message("assistant", thought, (ToolCall(name, arguments, call_id),)))
            continue
        observation = str(event.get("observation"))
        extras = event.get("extras") if isinstance(event.get("extras"), Mapping) else {}
        assert isinstance(extras, Mapping)
        if observation == "agent_state_changed" and extras.get("agent_state") == "error":
            reason = extras.get("reason") or event.get("message") or "agent entered the error state"
            feedback.append(Feedback("error", str(reason), name="agent_state"))
            continue
        if observation in _SKIP_OBSERVATIONS:
            continue
        content = event.get("content")
        text = (text_of(content) if content not in (None, "")
                else text_of(event.get("message")))
        is_error = observation == "error"
        md = extras.get("metadata") if isinstance(extras.get("metadata"), Mapping) else {}
        assert isinstance(md, Mapping)
        exit_code = md.get("exit_code", extras.get("exit_code"))
        if observation == "run" and isinstance(exit_code, int) and exit_code > 0:
            is_error = True
        if event.get("success") is False:
            is_error = True
        name = str(meta.get("function_name") or observation)
        if observation == "user_rejected":
            messages.append(Message("user", text))
            continue
        messages.append(Message("tool", text, tool_call_id=call_id, is_error=is_error, name=name))
    return messages, feedback


class OpenHandsReader:
    name = "openhands"

    def sniff(self, path: Path, head: bytes) -> int:
        body = _io.text_head(head)
        if not body.startswith((b"[", b"{")):
            return 0
        hits = _io.head_has(body, b'"source"', b'"observation"', b'"action"', b'"tool_call_metadata"',
                          b'"cause"', b'"extras"')
        if hits >= 3 and b'"source"' in body:
            return 85 if body.startswith(b"[") else 70
        return 0

    def read(self, path: Path, report: _io.SourceReport,
             context: _io.ReadContext = _io.PLAIN) -> Iterator[Trace]:
        stem = _fields.file_stem(path)
        events: list[Any] = []
        first_line = 1
        n = 0
        for line, record in _io.iter_records(path, report, context):
            if _is_event(record):  # a trajectory file: the whole list is one session
                if not events:
                    first_line = line
                events.append(record)
                continue
            if isinstance(record, Mapping) and isinstance(record.get("history"), list):
                trace = _records.guarded(report, line, partial(self._trace, record["history"], record,
                                                        f"{report.path}:{line}",
                                                        _fields.record_id(record, stem, n), report, line))
                n += 1
                if trace is not None:
                    yield trace
                continue
            report.defer(line, "not an OpenHands event")
        if events:
            build = partial(self._trace, events, {}, f"{report.path}:{first_line}", stem, report, first_line)
            trace = _records.guarded(report, first_line, build)
            if trace is not None:
                yield trace

    def _trace(self, events: list[Any], record: Mapping[str, Any], source: str, trace_id: str,
               report: _io.SourceReport, line: int) -> Trace | None:
        messages, feedback = events_to_messages(events)
        if not messages:
            report.defer(line, "no user or agent events")
            return None
        feedback.extend(_feedback.feedback_from_record(record, ("error", "success", "resolved", "score",
                                                                "reward")))
        first = next((e for e in events if isinstance(e, Mapping) and e.get("timestamp")), {})
        meta: dict[str, Any] = {"events": len(events)}
        for event in events:
            if isinstance(event, Mapping) and isinstance(event.get("tool_call_metadata"), Mapping):
                resp = event["tool_call_metadata"].get("model_response")
                if isinstance(resp, Mapping) and isinstance(resp.get("model"), str):
                    meta["model"] = resp["model"]
                    break
        return Trace(id=trace_id, source=source, messages=convert_messages_post(messages),
                     feedback=tuple(feedback), started_at=_fields.parse_time(first.get("timestamp")),
                     metadata=meta, format=self.name)


READER = OpenHandsReader()
