"""The fast lane for plain OpenAI chat messages (the bulk of big logs) and fast model constructors.

Owns: `fast_message` and `fast_view` (a message list → messages or a `TraceView` without the
general converter), the allowlists of keys they understand (`FAST_MESSAGE_KEYS`, …), and
`make_message` / `make_call` / `make_trace`, which fill a frozen model's `__dict__` directly, but only
while the model's fields are exactly the ones they fill.

Must never: take a message with a key it does not list (the general converter may read it: such a
message goes down the general path, so nothing is silently lost), or give a result that differs from
`convert.convert_messages` on what it takes (`tests/traces/test_raw_lane.py` checks both).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson

from selfimprove.traces.messages.values import TIME_KEYS
from selfimprove.traces.model import Call, Feedback, Message, Result, ToolCall, Trace, TraceView

# What the fast lane understands: a message (and each of its tool calls, and a call's function) whose
# keys are all listed here is a plain OpenAI chat message it converts exactly as the general converter
# would. Any other key, even one the general converter ignores today, sends the message down the
# general path, so that a field the fast lane does not know is never silently dropped. (Time keys are
# read from the first messages by the record reader, the same way on both paths.)
FAST_MESSAGE_KEYS = frozenset({"role", "content", "tool_calls", "tool_call_id", "name", "refusal", "id",
                               *TIME_KEYS})
FAST_CALL_KEYS = frozenset({"id", "type", "function"})
FAST_FUNCTION_KEYS = frozenset({"name", "arguments"})

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


make_message = _fast_or_safe(Message, _fast_message_init,
                              ("role", "content", "tool_calls", "tool_call_id", "is_error", "name"))

make_call = _fast_or_safe(ToolCall, _fast_call_init, ("name", "arguments", "id"))

make_trace = _fast_or_safe(Trace, _fast_trace_init, ("id", "source", "messages", "feedback", "started_at",
                                                      "prompt_version", "metadata", "format"))


def _plain_call(call: Any, names: dict[str, str] | None) -> tuple[str, Any, str | None] | None:
    """(name, arguments, id) of an OpenAI tool call {id, function: {name, arguments}}, arguments
    parsed when they are JSON; None for any other shape. Records the id's name in `names`."""
    fn = call.get("function") if call.__class__ is dict else None
    if fn.__class__ is not dict or not call.keys() <= FAST_CALL_KEYS or not fn.keys() <= FAST_FUNCTION_KEYS:
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
    return name, args, call_id


def fast_message(raw: dict[str, Any], names: dict[str, str] | None = None) -> Message | None:
    """Plain OpenAI chat messages (the bulk of big logs), or None when the general path is needed.

    `names` maps tool-call ids seen so far to tool names: recorded for calls, used to name results."""
    role = raw.get("role")
    std = _FAST_ROLES.get(role) if role.__class__ is str else None  # (a list or an object fails a lookup)
    content = raw.get("content")
    if std is None or not (content is None or content.__class__ is str):
        return None
    if not raw.keys() <= FAST_MESSAGE_KEYS:
        return None
    calls: tuple[ToolCall, ...] = ()
    raw_calls = raw.get("tool_calls")
    if raw_calls:
        if raw_calls.__class__ is not list:
            return None
        out = []
        for call in raw_calls:
            plain = _plain_call(call, names)
            if plain is None:
                return None
            out.append(make_call(*plain))
        calls = tuple(out)
    if content is None:
        refusal = raw.get("refusal")
        content = refusal if refusal.__class__ is str else ""
    call_id = raw.get("tool_call_id") or (raw.get("id") or None if std == "tool" else None)
    if call_id is not None and call_id.__class__ is not str:
        call_id = str(call_id)
    name = raw.get("name") or None
    if name is None:
        if call_id is not None and std == "tool" and names:
            name = names.get(call_id)
    elif name.__class__ is not str:
        name = str(name)
    return make_message(std, content, calls, call_id, False, name)  # type: ignore[no-any-return]


def fast_view(raw: list[Any]) -> TraceView | None:
    """The `TraceView` of a list of plain OpenAI chat messages, without building a Message each: the
    columns `convert_messages(raw)` would give, or None when one message needs more than
    `fast_message` handles (or could be read as something other than a message)."""
    roles: list[str] = []
    texts: list[str] = []
    calls: list[Call] = []
    results: list[Result] = []
    names: dict[str, str] = {}
    for i, item in enumerate(raw):
        if item.__class__ is not dict or not ("content" in item or "tool_calls" in item):
            return None
        role = item.get("role")
        std = _FAST_ROLES.get(role) if role.__class__ is str else None
        content = item.get("content")
        if std is None or not (content is None or content.__class__ is str):
            return None
        if not item.keys() <= FAST_MESSAGE_KEYS:
            return None
        raw_calls = item.get("tool_calls")
        if raw_calls:
            if raw_calls.__class__ is not list:
                return None
            for call in raw_calls:
                plain = _plain_call(call, names)
                if plain is None:
                    return None
                calls.append((i, *plain))
        if content is None:
            refusal = item.get("refusal")
            content = refusal if refusal.__class__ is str else ""
        roles.append(std)
        texts.append(content)
        if std == "tool":
            result_id = item.get("tool_call_id") or item.get("id") or None
            if result_id is not None and result_id.__class__ is not str:
                result_id = str(result_id)
            tool = item.get("name") or None
            if tool is None:
                if result_id is not None and names:
                    tool = names.get(result_id)
            elif tool.__class__ is not str:
                tool = str(tool)
            results.append((i, content, False, tool, result_id))
    return TraceView(roles, texts, calls, results)

