"""Messages of any common shape → `traces.model.Message`: roles, content text, tool calls.

Owns: the liberal converters that turn a message list (OpenAI, Anthropic, Gemini, ShareGPT,
Responses items, tool results) into `Message`/`ToolCall` records, finding a record's message list
(with its system prompt, provider response or prompt/answer pair folded in), and the fast-path
constructors (`_make_message`, `_make_call`, `_make_trace`) that fill a frozen model's `__dict__`
directly, but only while the model's fields are exactly the ones they fill.

Why one module: the readers see the same shapes again and again (OpenAI messages inside LangSmith
runs, Anthropic blocks inside Claude Code logs), so the converters live once, here, and each reader
only knows where its format keeps them.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson

from selfimprove.traces.formats._fields import TIME_KEYS, _is_map
from selfimprove.traces.model import Call, Feedback, Message, Result, ToolCall, Trace, TraceView

# --------------------------------------------------------------------------------------------------
# Text and arguments


# Content blocks that are not text: Gemini calls and responses (camelCase in the REST API, snake_case in
# the Python SDK's dumps), Bedrock Converse tool use, tool results and reasoning (blocks keyed by kind
# rather than typed).
_TEXT_FREE_BLOCKS = frozenset({"functionCall", "functionResponse", "function_call", "function_response",
                               "toolUse", "toolResult", "reasoningContent"})


# Typed parts that are not text (calls and results become tool calls and tool messages; reasoning and
# the Vercel AI SDK's step markers, sources and `tool-*` / `data-*` UI parts are dropped).
_TEXT_FREE_TYPES = frozenset({
    "tool_use", "tool_call", "function_call", "tool_result", "tool_call_response", "thinking", "reasoning",
    "redacted_thinking", "function_call_output", "step-start", "dynamic-tool", "source-url",
    "source-document"})


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
        for key in ("text", "content", "value", "result", "output", "message", "parts", "data", "json"):
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
            if isinstance(part, Mapping):
                kind = str(part.get("type", ""))
                if kind in _TEXT_FREE_TYPES or kind.startswith(("tool-", "data-")) or \
                        not _TEXT_FREE_BLOCKS.isdisjoint(part):
                    continue  # represented as tool calls / tool messages (or dropped, reasoning), not text
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
    "tool-call": "assistant", "tool-response": "tool",  # smolagents, Meta ARE
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
# AutoGen: AgentChat messages and events ({source, type, content}, as a TaskResult or a team's state
# keeps them) and autogen_core's model context messages. The events listed as silent say nothing of
# the conversation (a speaker chosen, a streamed chunk of a message that follows in full, a thought).
_AUTOGEN_SILENT = frozenset({"ThoughtEvent", "ModelClientStreamingChunkEvent", "UserInputRequestedEvent",
                             "SelectSpeakerEvent", "SelectorEvent", "MemoryQueryEvent"})
_AUTOGEN_CALLS = frozenset({"ToolCallRequestEvent", "AssistantMessage"})
_AUTOGEN_RESULTS = frozenset({"ToolCallExecutionEvent", "FunctionExecutionResultMessage"})
# pydantic-ai: ModelRequest / ModelResponse as ModelMessagesTypeAdapter dumps them,
# {kind, parts: [{part_kind, ...}]}.
_PAI_KINDS = frozenset({"request", "response"})
_PAI_CALLS = frozenset({"tool-call", "builtin-tool-call"})
_PAI_RETURNS = frozenset({"tool-return", "builtin-tool-return"})
_PAI_RETRIES = frozenset({"retry-prompt", "retry-feedback"})
_PAI_FAILED = frozenset({"failed", "retried"})  # a return's `outcome` that reaches the model as an error
AUTOGEN_TYPES = _AUTOGEN_SILENT | _AUTOGEN_CALLS | _AUTOGEN_RESULTS | frozenset({
    "TextMessage", "MultiModalMessage", "StopMessage", "HandoffMessage", "ToolCallSummaryMessage",
    "StructuredMessage", "CodeGenerationEvent", "CodeExecutionEvent", "UserMessage", "SystemMessage"})


def is_message_like(value: Any) -> bool:
    """A dict that names a speaker and carries content: role/content (OpenAI, Anthropic, Inspect),
    from/value (ShareGPT), speaker/text, or a LangChain-style {type: human|ai, content/data}."""
    if type(value) is dict:  # fast path: OpenAI-style {"role": str, "content"/"tool_calls": ...}
        role_value = value.get("role")
        if role_value.__class__ is str and role_value and ("content" in value or "tool_calls" in value):
            return True
    if not _is_map(value):
        return False
    kind = _tag(value, "type")
    if kind in _ITEM_TYPES:  # OpenAI Responses API input/output items
        return True
    if kind in AUTOGEN_TYPES:  # AutoGen messages: {source, type, content}
        return True
    if _tag(value, "kind") in _PAI_KINDS and isinstance(value.get("parts"), list):  # pydantic-ai
        return True
    if "lc" in value and _is_map(value.get("kwargs")):  # LangChain's {lc, id: [..., "AIMessage"], kwargs}
        ids = value.get("id")
        return isinstance(ids, list) and bool(ids) and str(ids[-1]).endswith(("Message", "MessageChunk"))
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


# (LangGraph keeps a thread's messages in its state's `values`, a checkpoint's in `channel_values`.)
_WRAPPER_KEYS = ("input", "inputs", "request", "request_body", "body", "data", "payload", "example", "sample",
                 "state", "record", "item", "event", "log", "entry", "params", "llm_input", "prompt",
                 "values", "channel_values")


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
    fc = _gemini(value, "functionCall", "function_call")
    if fc is not None:
        return ToolCall(str(fc.get("name", "")), parse_arguments(fc.get("args", fc.get("arguments"))),
                        _opt_str(fc.get("id")))
    fn = value.get("function")
    if isinstance(fn, Mapping):
        return ToolCall(str(fn.get("name") or value.get("name") or ""),
                        parse_arguments(fn.get("arguments", fn.get("args"))), _opt_str(value.get("id")))
    name = fn if isinstance(fn, str) else (value.get("name") or value.get("tool_name") or value.get("tool")
                                            or value.get("toolName"))
    if not name:
        return None
    args: Any = None
    for key in ("arguments", "input", "args", "parameters", "kwargs", "tool_input"):
        if key in value:
            args = value[key]
            break
    call_id = value.get("id") or value.get("tool_call_id") or value.get("call_id") or value.get("toolCallId")
    return ToolCall(str(name), parse_arguments(args), _opt_str(call_id))


def _gemini(part: Mapping[str, Any], camel: str, snake: str) -> Mapping[str, Any] | None:
    """A Gemini part's function call or response, under its REST (camelCase) or Python SDK key."""
    value = part.get(camel)
    if value is None:
        value = part.get(snake)
    return value if isinstance(value, Mapping) else None


def _tag(value: Mapping[str, Any], key: str) -> str | None:
    """A discriminating field (`type`, `kind`, ...) when it is a string: any other value (a list or an
    object where a writer put one) names no known kind, and must not fail a set lookup."""
    tag = value.get(key)
    return tag if isinstance(tag, str) else None


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
    if isinstance(status, str) and status.lower() in ("error", "failed", "failure"):
        return True
    # Vercel AI SDK: a tool result whose output is typed error-text / error-json, a UI tool part whose
    # state is output-error
    output = value.get("output")
    if _is_map(output) and str(output.get("type", "")).startswith("error-"):
        return True
    return value.get("state") == "output-error"


def _error_text(value: Mapping[str, Any]) -> str:
    err = value.get("error")
    if isinstance(err, Mapping):
        return str(err.get("message") or err.get("type") or "")
    return err if isinstance(err, str) else ""


_CALL_PARTS = ("tool_use", "tool_call", "function_call", "server_tool_use", "tool-call")
_RESULT_PARTS = ("tool_result", "tool_call_response", "function_call_output", "tool-result")


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


_make_message = _fast_or_safe(Message, _fast_message_init,
                              ("role", "content", "tool_calls", "tool_call_id", "is_error", "name"))
_make_call = _fast_or_safe(ToolCall, _fast_call_init, ("name", "arguments", "id"))
_make_trace = _fast_or_safe(Trace, _fast_trace_init, ("id", "source", "messages", "feedback", "started_at",
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


def _fast_message(raw: dict[str, Any], names: dict[str, str] | None = None) -> Message | None:
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
            out.append(_make_call(*plain))
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
    return _make_message(std, content, calls, call_id, False, name)  # type: ignore[no-any-return]


def fast_view(raw: list[Any]) -> TraceView | None:
    """The `TraceView` of a list of plain OpenAI chat messages, without building a Message each: the
    columns `convert_messages(raw)` would give, or None when one message needs more than
    `_fast_message` handles (or could be read as something other than a message)."""
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
        kind = _tag(raw, "type")
        if kind in _ITEM_TYPES:
            return _response_item(raw)
        if kind in AUTOGEN_TYPES:
            return _autogen_message(raw)
        if _tag(raw, "kind") in _PAI_KINDS and isinstance(raw.get("parts"), list):
            return _pydantic_ai_message(raw)
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
    content_value = data.get("content")
    if role_value is None and _is_map(content_value) and "parts" in content_value:
        return _authored(convert_message(content_value), data.get("author"))
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
            if kind in _CALL_PARTS or _gemini(part, "functionCall", "function_call") is not None:
                tc = _tool_call(part)
                if tc is not None:
                    tool_calls.append(tc)
            elif kind in _RESULT_PARTS or _gemini(part, "functionResponse", "function_response") is not None:
                extra.append(_tool_result_message(part))
            elif _ui_tool_part(kind, part):  # Vercel AI SDK UI message: the call and its outcome in one part
                tool = str(part.get("toolName") or kind.removeprefix("tool-"))
                tool_calls.append(ToolCall(tool, parse_arguments(part.get("input")),
                                           _opt_str(part.get("toolCallId"))))
                if part.get("state") in ("output-available", "output-error"):
                    extra.append(Message("tool", text_of(part.get("output", part.get("errorText"))),
                                         tool_call_id=_opt_str(part.get("toolCallId")),
                                         is_error=part.get("state") == "output-error", name=tool))
            elif isinstance(part.get("toolUse"), Mapping):  # Bedrock Converse
                use = part["toolUse"]
                tool_calls.append(ToolCall(str(use.get("name") or ""), parse_arguments(use.get("input")),
                                           _opt_str(use.get("toolUseId"))))
            elif isinstance(part.get("toolResult"), Mapping):
                result = part["toolResult"]
                extra.append(Message(role="tool", content=text_of(result.get("content")),
                                     tool_call_id=_opt_str(result.get("toolUseId")),
                                     is_error=_is_error_flag(result)))
    text = text_of(content)
    if not text and isinstance(data.get("refusal"), str):
        text = data["refusal"]
    tool_call_id = _opt_str(data.get("tool_call_id") or data.get("toolCallId") or data.get("tool_use_id")
                            or (data.get("id") if role == "tool" else None))  # tau2-bench names the call `id`
    if tool_call_id is None and isinstance(data.get("tool_call_ids"), list) and data["tool_call_ids"]:
        tool_call_id = _opt_str(data["tool_call_ids"][0])
    is_error = role == "tool" and _is_error_flag(data)
    if is_error and not text:
        text = _error_text(data)
    if role_value == "tool-call" and not tool_calls and text.startswith("Calling tools:\n"):
        tool_calls = _smolagents_calls(text)
        text = "" if tool_calls else text
    elif role_value == "tool-response" and text.startswith(("Error:\n", "Call id: ", "Observation:\n")):
        failed = _SMOLAGENTS_ERROR.match(text)
        if failed:
            tool_call_id, is_error, text = tool_call_id or failed.group(1), True, text[failed.end():]
            named = _SMOLAGENTS_TOOL.search(text[:300])  # "Error executing tool 'cancel_order' with ..."
            name = name or (named.group(1) if named else None)
        else:
            text = text.removeprefix("Observation:\n")
    if role == "tool" and name is None:
        fn = data.get("function")
        name = fn if isinstance(fn, str) else _opt_str(data.get("tool_name"))
    out: list[Message] = []
    if extra and not text and not tool_calls:
        return extra  # a user turn that only carries tool results
    out.append(Message(role=role, content=text, tool_calls=tuple(tool_calls), tool_call_id=tool_call_id,
                       is_error=is_error, name=name))
    return out + extra


# smolagents writes a step's result as "Observation:\n<output>", a failed step as "[Call id: <id>\n]Error:\n
# <error>\nNow let's retry: ...", and its calls as "Calling tools:\n" + the Python repr of
# [{id, type, function: {name, arguments}}].
_SMOLAGENTS_ERROR = re.compile(r"(?:Call id: (\S+)\n)?Error:\n")
_SMOLAGENTS_TOOL = re.compile(r"\btool '([^'\n]{1,100})'")


def _smolagents_calls(text: str) -> list[ToolCall]:
    if len(text) > 100_000:
        return []
    try:
        value = ast.literal_eval(text.removeprefix("Calling tools:\n").strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return []
    calls = [_tool_call(item) for item in value] if isinstance(value, list) else []
    return [c for c in calls if c is not None]


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


def _authored(messages: list[Message], author: Any) -> list[Message]:
    """Google ADK events: `{author, content: {role, parts}}`; the agent that wrote a model turn names it."""
    if not isinstance(author, str) or not author:
        return messages
    user = author.lower() == "user"
    out = []
    for m in messages:
        if m.role == "unknown":  # content without a role: the author says who spoke
            m = replace(m, role="user" if user else "assistant")
        if m.role == "assistant" and not user and m.name is None:
            m = replace(m, name=author)
        out.append(m)
    return out


def _autogen_message(raw: Mapping[str, Any]) -> list[Message]:
    """An AutoGen message: its `source` (an agent's name, or "user") speaks; tool call requests and
    execution results become calls and tool messages. Agents speak as assistants, named."""
    kind = _tag(raw, "type")
    if kind in _AUTOGEN_SILENT:
        return []
    content = raw.get("content")
    source = _opt_str(raw.get("source"))
    if kind in _AUTOGEN_RESULTS and isinstance(content, list):
        return [Message(role="tool", content=text_of(r.get("content")),
                        tool_call_id=_opt_str(r.get("call_id")), is_error=r.get("is_error") is True,
                        name=_opt_str(r.get("name")))
                for r in content if isinstance(r, Mapping)]
    if kind == "SystemMessage":
        return [Message(role="system", content=text_of(content))]
    user = kind == "UserMessage" or (source or "").lower() == "user"
    role = "user" if user else "assistant"
    name = None if source is None or source.lower() == "user" else source
    if kind in _AUTOGEN_CALLS and isinstance(content, list):
        calls = tuple(tc for tc in (_tool_call(c) for c in content) if tc is not None)
        thought = raw.get("thought")
        return [Message(role=role, content=thought if isinstance(thought, str) else "", tool_calls=calls,
                        name=name)]
    return [Message(role=role, content=text_of(content), name=name)]


def _ui_tool_part(kind: str, part: Mapping[str, Any]) -> bool:
    """A Vercel AI SDK UI message part of a tool: `tool-<name>` (or `dynamic-tool`) with a call id."""
    return (kind.startswith("tool-") or kind == "dynamic-tool") and "toolCallId" in part


def _pydantic_ai_message(raw: Mapping[str, Any]) -> list[Message]:
    """A pydantic-ai ModelResponse (text and tool calls: one assistant message) or ModelRequest (system
    and user prompts, tool returns, retry prompts: one message each). A return whose `outcome` is
    failed or retried, and a retry prompt naming a tool, are failed tool results; a retry prompt of the
    output (no tool) is the framework telling the model its answer was rejected: a failed result too."""
    parts = [p for p in raw["parts"] if isinstance(p, Mapping)]
    out: list[Message] = []
    if raw["kind"] == "response":
        texts: list[str] = []
        calls: list[ToolCall] = []
        for part in parts:
            kind = _tag(part, "part_kind")
            if kind == "text":
                texts.append(text_of(part.get("content")))
            elif kind in _PAI_CALLS:
                calls.append(ToolCall(str(part.get("tool_name") or ""), parse_arguments(part.get("args")),
                                      _opt_str(part.get("tool_call_id"))))
            elif kind in _PAI_RETURNS:  # a provider's built-in tool answers inside the response
                out.append(_pydantic_ai_return(part))
        return [Message("assistant", "\n".join(t for t in texts if t), tuple(calls))] + out
    for part in parts:
        kind = _tag(part, "part_kind")
        if kind == "system-prompt":
            out.append(Message("system", text_of(part.get("content"))))
        elif kind == "user-prompt":
            out.append(Message("user", _prompt_text(part.get("content"))))
        elif kind in _PAI_RETURNS or kind in _PAI_RETRIES:
            out.append(_pydantic_ai_return(part))
    return out


def _pydantic_ai_return(part: Mapping[str, Any]) -> Message:
    failed = _tag(part, "part_kind") in _PAI_RETRIES or _tag(part, "outcome") in _PAI_FAILED
    return Message("tool", text_of(part.get("content")), tool_call_id=_opt_str(part.get("tool_call_id")),
                   is_error=failed, name=_opt_str(part.get("tool_name")))


_MEDIA_KINDS = frozenset({"binary", "image-url", "audio-url", "video-url", "document-url", "file"})


def _prompt_text(content: Any) -> str:
    """A pydantic-ai user prompt: a string, or a list of strings and media (`{kind: image-url | binary,
    ...}`, whose data is not text)."""
    if not isinstance(content, list):
        return text_of(content)
    pieces = []
    for item in content:
        if isinstance(item, Mapping) and _tag(item, "kind") in _MEDIA_KINDS:
            pieces.append(f"[{item['kind']}]")
        else:
            pieces.append(text_of(item))
    return "\n".join(p for p in pieces if p)


def _tool_result_message(part: Mapping[str, Any]) -> Message:
    fr = _gemini(part, "functionResponse", "function_response")
    if fr is not None:
        return Message(role="tool", content=text_of(fr.get("response")), name=_opt_str(fr.get("name")),
                       tool_call_id=_opt_str(fr.get("id")))
    content = part.get("content", part.get("result", part.get("output", part.get("errorText"))))
    call_id = part.get("tool_use_id") or part.get("id") or part.get("call_id") or part.get("toolCallId")
    return Message(role="tool", content=text_of(content), tool_call_id=_opt_str(call_id),
                   is_error=_is_error_flag(part), name=_opt_str(part.get("name") or part.get("toolName")))


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
# Conversations of records (system prompts, provider responses, prompt/answer pairs)


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
    for key in ("stop_reason", "stopReason"):  # Anthropic, Bedrock Converse
        if isinstance(body.get(key), str):
            return str(body[key])
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


def convert_messages_post(messages: Sequence[Message]) -> tuple[Message, ...]:
    """Final touches on already converted messages (tool names filled in from their calls)."""
    return tuple(_fill_tool_names(list(messages)))
