"""Small builders for traces used across the analysis tests."""

from __future__ import annotations

from typing import Any

from selfimprove.traces.model import Feedback, Message, ToolCall, Trace


def user(text: str) -> Message:
    return Message("user", text)


def assistant(text: str = "", *calls: ToolCall) -> Message:
    return Message("assistant", text, tuple(calls))


def call(name: str, args: Any = None, cid: str | None = None) -> ToolCall:
    return ToolCall(name, args if args is not None else {}, cid)


def tool(content: str, *, name: str | None = None, cid: str | None = None, is_error: bool = False) -> Message:
    return Message("tool", content, tool_call_id=cid, is_error=is_error, name=name)


def trace(id: str, *messages: Message, feedback: tuple[Feedback, ...] = (), **kw: Any) -> Trace:
    return Trace(id=id, source=f"t.jsonl:{id}", messages=tuple(messages), feedback=feedback, **kw)
