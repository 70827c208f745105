"""SWE-agent trajectories (`.traj`): `{environment, trajectory: [{thought, action, observation,
response, state}], history: [chat messages], info: {exit_status, submission, model_stats}}`. One
trace per file, id = the file stem (SWE-agent names files after the instance).

The chat `history` is the conversation (demonstration turns marked `is_demo` are left out); without
one, `trajectory` steps are turned into assistant actions and tool observations. `info.exit_status`
becomes `status` feedback: "submitted" → ok; anything else ("exit_cost", "exit_format",
"submitted (exit_cost)", errors) → error with the exit status as comment.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from selfimprove.traces.formats import _feedback, _fields, _io, _records
from selfimprove.traces.messages.convert import convert_messages, convert_messages_post
from selfimprove.traces.messages.values import text_of
from selfimprove.traces.model import Feedback, Message, ToolCall, Trace


def exit_feedback(info: Mapping[str, Any]) -> list[Feedback]:
    status = info.get("exit_status")
    out: list[Feedback] = []
    if isinstance(status, str) and status:
        ok = status.strip() == "submitted"
        out.append(Feedback("status", "ok" if ok else "error", comment=status, name="exit_status"))
    for key in ("resolved", "score", "reward", "success"):
        if key in info:
            out.extend(_feedback.feedback_from_value(key, info[key]))
    return out


def steps_messages(steps: list[Any]) -> list[Message]:
    out: list[Message] = []
    for i, step in enumerate(steps):
        if not isinstance(step, Mapping):
            continue
        text = step.get("response") or step.get("thought") or ""
        action = step.get("action")
        calls: tuple[ToolCall, ...] = ()
        if isinstance(action, str) and action.strip():
            command = action.strip()
            calls = (ToolCall(command.split()[0], command, f"step-{i}"),)
        out.append(Message("assistant", text_of(text), calls))
        if "observation" in step:
            out.append(Message("tool", text_of(step.get("observation")),
                               tool_call_id=f"step-{i}" if calls else None,
                               name=calls[0].name if calls else None))
    return out


def _observations_as_tool_results(history: Iterable[Any]) -> Iterator[Any]:
    """Older trajectories keep the command only as `action` text and send its output back as a
    *user* message. Make the command a tool call and its output the tool result, so that command
    output is not mistaken for what a user said, and repeated commands look like repeated calls."""
    pending: str | None = None
    for n, message in enumerate(history):
        if not isinstance(message, Mapping):
            yield message
            continue
        role = message.get("role")
        if role == "user" and pending is not None:
            yield {"role": "tool", "content": message.get("content"), "tool_call_id": pending}
            pending = None
            continue
        pending = None
        action = message.get("action")
        if role == "assistant" and isinstance(action, str) and action.strip():
            if message.get("tool_calls"):
                yield message  # function-calling trajectories answer with role "tool" already
                continue
            command = action.strip()
            pending = f"action-{n}"
            yield {**message, "tool_calls": [{"id": pending, "function": {"name": command.split()[0],
                                                                          "arguments": command}}]}
            continue
        yield message


class SweAgentReader:
    name = "swe-agent"

    def sniff(self, path: Path, head: bytes) -> int:
        body = _io.text_head(head)
        if not body.startswith(b"{"):
            return 0
        if _io.inner_suffix(path) == ".traj":
            return 90
        hits = _io.head_has(body, b'"trajectory"', b'"exit_status"', b'"model_stats"', b'"observation"',
                          b'"environment"')
        return 80 if hits >= 3 else 0

    def read(self, path: Path, report: _io.SourceReport,
             context: _io.ReadContext = _io.PLAIN) -> Iterator[Trace]:
        stem = _fields.file_stem(path)
        for line, record in _io.iter_records(path, report, context):
            trace = _records.guarded(report, line, partial(self._trace, record, stem, report, line))
            if trace is not None:
                yield trace

    def _trace(self, record: Any, stem: str, report: _io.SourceReport, line: int) -> Trace | None:
        if not isinstance(record, Mapping):
            report.defer(line, f"a JSON {type(record).__name__}, not a trajectory")
            return None
        history = record.get("history")
        messages: tuple[Message, ...] = ()
        if isinstance(history, list) and history:
            messages = convert_messages(_observations_as_tool_results(
                m for m in history if not (isinstance(m, Mapping) and m.get("is_demo"))))
        if not messages and isinstance(record.get("trajectory"), list):
            messages = convert_messages_post(steps_messages(record["trajectory"]))
        if not messages:
            report.defer(line, "no history or trajectory steps")
            return None
        info = record.get("info") if isinstance(record.get("info"), Mapping) else {}
        assert isinstance(info, Mapping)
        meta: dict[str, Any] = {}
        if isinstance(info.get("exit_status"), str):
            meta["exit_status"] = info["exit_status"]
        meta["submitted_patch"] = bool(info.get("submission"))
        stats = info.get("model_stats")
        if isinstance(stats, Mapping):
            for key in ("instance_cost", "api_calls", "tokens_sent", "tokens_received"):
                if isinstance(stats.get(key), int | float):
                    meta[key] = stats[key]
        trace_id = str(record.get("instance_id") or info.get("instance_id") or stem)
        return Trace(id=trace_id, source=f"{report.path}:{line}", messages=messages,
                     feedback=tuple(exit_feedback(info)), metadata=meta, format=self.name)


READER = SweAgentReader()
