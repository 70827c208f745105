"""The one message converter: a source message of any common shape → `Message`s.

Owns: `convert_message` (one message → one or more: content blocks split into tool calls and tool
results), `convert_messages` (a list, with the fast lane for plain chat messages and tool results
named after the call they answer), and `has_input_turn`. Tagged framework shapes are dispatched
through the `shapes.SHAPES` registry, the parts of ordinary messages that are not text through
`shapes.PART_SHAPES`, LangChain messages unwrapped by `shapes.langchain_unwrapped`. Record readers
call this for their message lists; the span readers' field reader (`telemetry`) for every message
with a role it meets inside span fields.

Must never: raise on odd data (a value that is not a message gives no message), or know where a
format keeps its messages (that is the readers, and `conversations` for plain records).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from selfimprove.traces.messages.fast import fast_message
from selfimprove.traces.messages.roles import normalise_role
from selfimprove.traces.messages.shapes import (
    SMOLAGENTS_ERROR,
    SMOLAGENTS_TOOL,
    authored,
    error_text,
    is_error_flag,
    langchain_unwrapped,
    read_part,
    shape_of,
    smolagents_calls,
    tool_call,
)
from selfimprove.traces.messages.values import is_map, opt_str, text_of
from selfimprove.traces.model import Message, ToolCall


def convert_message(raw: Any) -> list[Message]:
    """One source message → one or more model messages.

    Anthropic-style content blocks are split: `tool_use` blocks become tool calls of the assistant
    message, each `tool_result` block its own `tool` message (with `is_error`). Unknown keys are ignored.
    Returns [] for values that are not messages.
    """
    if raw.__class__ is dict:
        fast = fast_message(raw)
        if fast is not None:
            return [fast]
        shape = shape_of(raw)
        if shape is not None:
            return shape.convert(raw)
    if isinstance(raw, str):
        return [Message(role="user", content=raw)]
    if not isinstance(raw, Mapping):
        return []
    data = langchain_unwrapped(raw)
    role_value: Any = None
    for key in ("role", "from", "speaker", "sender", "type"):
        if isinstance(data.get(key), str) and data.get(key):
            role_value = data[key]
            break
    if role_value is None and isinstance(data.get("author"), Mapping):
        role_value = data["author"].get("role")
    content_value = data.get("content")
    if role_value is None and is_map(content_value) and "parts" in content_value:
        return authored(convert_message(content_value), data.get("author"))
    if role_value is None and isinstance(data.get("message"), Mapping):
        return convert_message(data["message"])
    role = normalise_role(role_value)
    name = opt_str(data.get("name"))
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
                tc = tool_call(call)
                if tc is not None:
                    tool_calls.append(tc)
    extra_kwargs = data.get("additional_kwargs")  # LangChain message dumps keep OpenAI calls there
    if not tool_calls and is_map(extra_kwargs) and isinstance(extra_kwargs.get("tool_calls"), list):
        for call in extra_kwargs["tool_calls"]:
            tc = tool_call(call)
            if tc is not None:
                tool_calls.append(tc)
    if isinstance(data.get("function_call"), Mapping):  # legacy OpenAI
        tc = tool_call(data["function_call"])
        if tc is not None:
            tool_calls.append(tc)
    extra: list[Message] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping):
                found = read_part(part)
                if found is not None:
                    tool_calls += found[0]
                    extra += found[1]
    text = text_of(content)
    if not text and isinstance(data.get("refusal"), str):
        text = data["refusal"]
    tool_call_id = opt_str(data.get("tool_call_id") or data.get("toolCallId") or data.get("tool_use_id")
                            or (data.get("id") if role == "tool" else None))  # tau2-bench names the call `id`
    if tool_call_id is None and isinstance(data.get("tool_call_ids"), list) and data["tool_call_ids"]:
        tool_call_id = opt_str(data["tool_call_ids"][0])
    is_error = role == "tool" and is_error_flag(data)
    if is_error and not text:
        text = error_text(data)
    if role_value == "tool-call" and not tool_calls and text.startswith("Calling tools:\n"):
        tool_calls = smolagents_calls(text)
        text = "" if tool_calls else text
    elif role_value == "tool-response" and text.startswith(("Error:\n", "Call id: ", "Observation:\n")):
        failed = SMOLAGENTS_ERROR.match(text)
        if failed:
            tool_call_id, is_error, text = tool_call_id or failed.group(1), True, text[failed.end():]
            named = SMOLAGENTS_TOOL.search(text[:300])  # "Error executing tool 'cancel_order' with ..."
            name = name or (named.group(1) if named else None)
        else:
            text = text.removeprefix("Observation:\n")
    if role == "tool" and name is None:
        fn = data.get("function")
        name = fn if isinstance(fn, str) else opt_str(data.get("tool_name"))
    out: list[Message] = []
    if extra and not text and not tool_calls:
        return extra  # a user turn that only carries tool results
    out.append(Message(role=role, content=text, tool_calls=tuple(tool_calls), tool_call_id=tool_call_id,
                       is_error=is_error, name=name))
    return out + extra


def convert_messages(raw: Iterable[Any]) -> tuple[Message, ...]:
    out: list[Message] = []
    append = out.append
    names: dict[str, str] = {}
    slow = False
    for item in raw:
        fast = fast_message(item, names) if item.__class__ is dict else None
        if fast is not None:
            append(fast)
        else:
            slow = True
            out.extend(convert_message(item))
    return tuple(fill_tool_names(out) if slow else out)


def fill_tool_names(messages: list[Message]) -> list[Message]:
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


def convert_messages_post(messages: Sequence[Message]) -> tuple[Message, ...]:
    """Final touches on already converted messages (tool names filled in from their calls)."""
    return tuple(fill_tool_names(list(messages)))

