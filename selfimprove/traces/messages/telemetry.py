"""Messages inside telemetry fields: what an instrumentation put into a span's or run's input or
output (OpenAI chat or Responses items, OTel GenAI `parts`, Anthropic blocks, Gemini `contents`,
LangChain messages serialized or not, Vercel AI SDK parts, request/response envelopes, transcripts,
plain text) → `Message`s, for the span readers (otlp, openinference, langsmith, langfuse).

Owns: `to_messages` (a field value → messages; unknown shapes give none, never an error) and
`field_text` (a field → text: JSON inside strings decoded, placeholder strings such as "None" empty,
then the one `text_of`). What is particular to telemetry stays here: envelopes (`messages`,
`contents`, `choices`, `candidates`, `generations`, …), role-less items (a field's role is implied:
input → user, output → assistant), transcripts and Python reprs, tool definitions logged as
messages, calls serialized into text, and tool results, whose structured output is kept as compact
JSON. A message with a role goes to the one converter (`convert.convert_message`), tagged framework
shapes to the `shapes.SHAPES` registry, roles to `roles.normalise_role`, calls to `shapes.tool_call`:
the record readers use the same functions.

Must never: judge outcomes, read files, or keep a role table, text function or call parser of its
own.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import orjson

from selfimprove.traces.messages.convert import convert_message
from selfimprove.traces.messages.roles import LANGCHAIN_CLASSES, STANDARD_ROLES, normalise_role
from selfimprove.traces.messages.shapes import shape_of, tool_call
from selfimprove.traces.messages.values import (
    dumps,
    gemini_part,
    loads_maybe,
    parse_arguments,
    text_of,
)
from selfimprove.traces.model import Message, ToolCall

_TRANSCRIPT_LINE = re.compile(r"^(system|developer|user|assistant|tool|human|ai):[ \t]?(.*)$")
# What instrumentations write for "no value" when they stringify one.
NONE_STRINGS = frozenset({"", "None", "null", "undefined"})
# Typed content parts that are text.
TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text", "refusal"})


def field_text(value: Any) -> str:
    """The text of a telemetry field: a JSON array inside a string decoded first, a placeholder
    string ("None", "null", "undefined", "") empty, anything else through the one `text_of`."""
    value = loads_maybe(value) if isinstance(value, str) and value[:1] == "[" else value
    if isinstance(value, str):
        return "" if value in NONE_STRINGS else value
    return text_of(value)


def call_of(name: Any, arguments: Any, call_id: Any) -> ToolCall:
    return ToolCall(
        name=str(name or ""),
        arguments=parse_arguments(arguments),
        id=str(call_id) if call_id not in (None, "") else None,
    )


def _tool_calls(raw: Any) -> list[ToolCall]:
    """The calls of a `tool_calls` list, each read by the one call parser (`shapes.tool_call`)."""
    if not isinstance(raw, list):
        return []
    return [call for call in map(tool_call, raw) if call is not None]


def tool_message(content: Any, call_id: Any, name: Any = None, is_error: Any = False) -> Message:
    if isinstance(content, list) and all(isinstance(p, dict) and "type" in p for p in content):
        text = field_text(content) or dumps(content)
    elif isinstance(content, str):
        text = content
    else:
        text = "" if content is None else dumps(content)
    return Message(
        role="tool",
        content=text,
        tool_call_id=str(call_id) if call_id not in (None, "") else None,
        is_error=bool(is_error),
        name=str(name) if name else None,
    )


def from_parts(role: str, parts: Sequence[Any], name: str | None = None) -> list[Message]:
    """Content parts of any family (OTel, Anthropic, Gemini, Vercel, OpenAI) in one message."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            continue
        kind = str(part.get("type", ""))
        if kind in TEXT_PART_TYPES or (not kind and isinstance(part.get("text"), str)):
            text = part.get("content") if isinstance(part.get("content"), str) else part.get("text")
            if isinstance(text, str) and text:
                texts.append(text)
        elif kind in ("tool_call", "tool-call", "function_call", "tool_use"):
            call = tool_call(part)  # the one call parser
            if call is not None:
                calls.append(call)
        elif kind in ("tool_call_response", "tool-result", "tool_result", "function_call_output"):
            result = part.get("response", part.get("result", part.get("output", part.get("content"))))
            if isinstance(result, dict) and result.get("type") in ("text", "json") and "value" in result:
                result = result["value"]  # Vercel AI SDK v5 output envelope
            envelope = loads_maybe(result) if isinstance(result, str) and result[:1] == "{" else result
            if (
                isinstance(envelope, dict)
                and envelope.get("type") == "function_result"
                and "result" in envelope
            ):
                result = envelope["result"]  # Microsoft Agent Framework result envelope
            results.append(
                tool_message(
                    result,
                    part.get("id", part.get("toolCallId", part.get("tool_use_id", part.get("call_id")))),
                    part.get("name", part.get("toolName")),
                    part.get("is_error", part.get("isError", False)),
                )
            )
        elif gemini_part(part, "functionCall", "function_call") is not None:
            call = tool_call(part)
            if call is not None:
                calls.append(call)
        elif isinstance(fr := part.get("functionResponse", part.get("function_response")), dict):
            results.append(tool_message(fr.get("response"), fr.get("id"), fr.get("name")))
        elif kind == "message_content" or isinstance(part.get("message_content"), dict):
            text = field_text(part)
            if text:
                texts.append(text)
    messages: list[Message] = []
    text = "\n".join(t for t in texts if t)
    if role == "tool" and not results and not calls:
        return [Message(role="tool", content=text, name=name)]
    if text or calls or not results:
        messages.append(Message(role=role, content=text, tool_calls=tuple(calls), name=name))
    return messages + results


def _langchain_role(item: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    ident = item.get("id")
    if (
        item.get("lc") is not None
        and isinstance(ident, list)
        and ident
        and isinstance(item.get("kwargs"), dict)
    ):
        cls = str(ident[-1])
        if cls in LANGCHAIN_CLASSES:
            kwargs = item["kwargs"]
            role = LANGCHAIN_CLASSES[cls] or normalise_role(kwargs.get("role"), missing="")
            return role, kwargs
    kind = item.get("type")
    if (
        "role" not in item
        and isinstance(kind, str)
        and kind.lower() in ("human", "ai", "system", "tool", "function", "chat")
    ):
        role = normalise_role(kind if kind.lower() != "chat" else item.get("role"), missing="")
        return role, item
    return None


def _message_from_item(item: Any, default_role: str) -> list[Message]:
    if isinstance(item, str):
        parsed = _repr_message(item)
        if parsed is not None:
            return parsed
        return [Message(role=default_role, content=item)] if item not in NONE_STRINGS else []
    if not isinstance(item, dict):
        return []
    lc = _langchain_role(item)
    if lc is not None:
        role, body = lc
        msg = dict(body)
        msg["role"] = role
        return _message_from_item(msg, default_role)
    shape = shape_of(item)  # a tagged framework shape (Responses items, AutoGen, pydantic-ai)
    if shape is not None:
        return shape.convert(item)
    if item.get("type") in ("web_search_call", "file_search_call"):  # Responses items of hosted tools
        return []
    # Vercel AI SDK tool call / result objects outside a message
    if "toolCallId" in item and "role" not in item:
        if "result" in item or "output" in item:
            return [
                tool_message(
                    item.get("result", item.get("output")), item.get("toolCallId"), item.get("toolName")
                )
            ]
        return [
            Message(
                role="assistant",
                tool_calls=(
                    call_of(
                        item.get("toolName"), item.get("input", item.get("args")), item.get("toolCallId")
                    ),
                ),
            )
        ]
    if "role" not in item:
        if isinstance(item.get("message"), dict):  # a chat choice
            return _message_from_item(item["message"], "assistant")
        if isinstance(item.get("content"), dict):  # Gemini candidate / ADK event
            return _message_from_item(item["content"], default_role)
        if isinstance(item.get("parts"), list):
            return from_parts(default_role, item["parts"])
        if isinstance(item.get("content"), (str, list)) and set(item) <= {"content", "type", "name", "id"}:
            content = item["content"]
            return (
                from_parts(default_role, content)
                if isinstance(content, list)
                else ([Message(role=default_role, content=content)] if content not in NONE_STRINGS else [])
            )
        return []
    role = normalise_role(item.get("role"), missing="")
    name = item.get("name") if isinstance(item.get("name"), str) else None
    content = item.get("content")
    if content is None and "parts" in item:
        content = item.get("parts")
    if content is None and isinstance(item.get("text"), str):
        content = item["text"]
    call_id = item.get("tool_call_id", item.get("toolCallId"))
    if (
        role == "tool"
        and isinstance(content, dict)
        and isinstance(content.get("function"), dict)
        and ("parameters" in content["function"])
    ):
        return []  # a tool definition logged as if it were a message (LangGraph via OpenInference)
    if isinstance(content, str) and content.startswith('[{"function"') and not call_id and \
            not item.get("tool_calls"):  # tool calls serialized into the text (Koog)
        serialized = _tool_calls(loads_maybe(content))
        if serialized:
            return [Message("assistant", tool_calls=tuple(serialized), name=None if role == "tool" else name)]
    if role == "tool" or call_id:
        # a tool result as telemetry logs it: structured output kept as compact JSON, OTel
        # `tool_call_response` parts (their `response`), Agent Framework result envelopes unwrapped
        is_error = bool(
            item.get("is_error") or item.get("isError") or item.get("status") == "error" or item.get("error")
        )
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") in ("tool_call_response", "tool-result", "tool_result")
            for p in content
        ):
            return from_parts("tool", content)
        return [tool_message(content, call_id, name, is_error)]
    # any other message: the one converter, as the record readers read it
    return [m if m.role != "unknown" else replace(m, role=default_role) for m in convert_message(item)]


_REPR = re.compile(r"""^role='(\w+)' content=(None|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""", re.S)


def _repr_message(text: str) -> list[Message] | None:
    """A Python repr of a message object (`role='user' content='…' name=None …`), as some SDKs log.
    None when the text is not one; no message when the repr has no content (its tool calls are
    Python reprs too, and the SDK's own LLM span logs them properly)."""
    match = _REPR.match(text)
    if match is None:
        return None
    try:
        content = ast.literal_eval(match.group(2))
    except (ValueError, SyntaxError):
        content = ""
    if not content:
        return []
    return [Message(role=normalise_role(match.group(1), missing=""), content=str(content))]


def _transcript(text: str) -> list[Message] | None:
    """`system: …\\nuser: …` transcripts (some SDKs log the prompt that way)."""
    lines = text.split("\n")
    if not _TRANSCRIPT_LINE.match(lines[0]):
        return None
    messages: list[tuple[str, list[str]]] = []
    for line in lines:
        match = _TRANSCRIPT_LINE.match(line)
        if match:
            messages.append((normalise_role(match.group(1), missing=""), [match.group(2)]))
        else:
            messages[-1][1].append(line)
    if len(messages) < 2:
        return None
    out = []
    for role, body in messages:
        content = "\n".join(body).strip()
        if content not in NONE_STRINGS:
            out.append(Message(role=role, content=content))
    return out


def _tool_roles(messages: list[Message]) -> list[Message]:
    """A message whose role is the name of a tool just called is that tool's result (LangChain JS)."""
    pending: dict[str, str | None] = {}
    for i, message in enumerate(messages):
        for call in message.tool_calls:
            pending[call.name] = call.id
        if message.role not in STANDARD_ROLES and message.role in pending:
            messages[i] = replace(
                message,
                role="tool",
                name=message.role,
                tool_call_id=message.tool_call_id or pending.pop(message.role),
            )
    return messages


_ITEM_CACHE: dict[bytes, tuple[Message, ...]] = {}

_ITEM_CACHE_SIZE = 8192


def _cached_item(item: dict[str, Any], default_role: str) -> tuple[Message, ...]:
    """LLM spans repeat the whole history: each repeated message is normalised once."""
    try:
        key = default_role.encode() + b"\0" + orjson.dumps(item, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, RecursionError):
        return tuple(_message_from_item(item, default_role))
    found = _ITEM_CACHE.get(key)
    if found is None:
        if len(_ITEM_CACHE) >= _ITEM_CACHE_SIZE:
            _ITEM_CACHE.clear()
        found = _ITEM_CACHE[key] = tuple(_message_from_item(item, default_role))
    return found


def to_messages(value: Any, default_role: str = "user", *, depth: int = 0) -> list[Message]:
    """Any input/output field of a span or run → messages (empty when the shape is unknown)."""
    if depth > 6:
        return []
    value = loads_maybe(value)
    if value is None:
        return []
    if isinstance(value, str):
        if value.strip() in NONE_STRINGS:
            return []
        return _transcript(value) or [Message(role=default_role, content=value)]
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, list) for v in value):  # LangChain generations [[...]]
            return [m for v in value for m in to_messages(v, default_role, depth=depth + 1)]
        out: list[Message] = []
        for item in value:
            if isinstance(item, dict) and isinstance(item.get("message"), dict) and "role" not in item:
                out.extend(_message_from_item(item["message"], "assistant"))
            elif (
                isinstance(item, dict)
                and "role" not in item
                and _langchain_role(item) is None
                and ("text" in item and isinstance(item.get("text"), str) and "type" not in item)
            ):
                out.append(Message(role=default_role, content=item["text"]))
            elif isinstance(item, dict):
                out.extend(_cached_item(item, default_role))
            else:
                out.extend(_message_from_item(item, default_role))
        return _tool_roles(out)
    if not isinstance(value, dict):
        return [Message(role=default_role, content=str(value))] if not isinstance(value, bool) else []
    return _from_envelope(value, default_role, depth)


def _from_envelope(value: Mapping[str, Any], default_role: str, depth: int) -> list[Message]:
    out: list[Message] = []
    system = None
    for key in ("system", "instructions", "system_instruction", "systemInstruction"):
        if (
            isinstance(value.get(key), (str, list))
            and key != "instructions"
            or (key == "instructions" and default_role == "user" and isinstance(value.get(key), str))
        ):
            system = field_text(value[key])
            break
    config = value.get("config")
    if system is None and isinstance(config, dict):
        for key in ("system_instruction", "systemInstruction"):
            if config.get(key):
                system = field_text(loads_maybe(config[key]))
    if system:
        out.append(Message(role="system", content=system))
    for key in ("messages", "contents", "input_messages", "history", "chat_history", "prompt_messages"):
        inner = loads_maybe(value.get(key))
        if isinstance(inner, list) and inner:
            return out + to_messages(inner, default_role, depth=depth + 1)
        if isinstance(inner, str) and key == "contents" and inner:
            return out + [Message(role=default_role, content=inner)]
    if "choices" in value and isinstance(value["choices"], list):
        for choice in value["choices"]:
            if not isinstance(choice, dict):
                continue
            msg = choice.get("message", choice.get("delta"))
            if isinstance(msg, dict):
                out.extend(_message_from_item({"role": "assistant", **msg}, "assistant"))
            elif isinstance(choice.get("text"), str):
                out.append(Message(role="assistant", content=choice["text"]))
        return out
    if isinstance(value.get("candidates"), list):
        for cand in value["candidates"]:
            if isinstance(cand, dict) and isinstance(cand.get("content"), dict):
                content = cand["content"]
                out.extend(
                    from_parts(normalise_role(content.get("role", "model"), missing=""),
                               content.get("parts") or [])
                )
        return out
    if isinstance(value.get("output"), list) and value.get("object") == "response":
        for item in value["output"]:
            out.extend(_message_from_item(item, "assistant"))
        return out
    if isinstance(value.get("generations"), list):
        for gen in value["generations"]:
            for g in gen if isinstance(gen, list) else [gen]:
                if isinstance(g, dict) and isinstance(g.get("message"), dict):
                    out.extend(to_messages(g["message"], "assistant", depth=depth + 1))
                elif isinstance(g, dict) and isinstance(g.get("text"), str):
                    out.append(Message(role="assistant", content=g["text"]))
        return out
    if "role" in value or _langchain_role(value) is not None:
        return out + _message_from_item(value, default_role)
    if isinstance(value.get("content"), dict) and isinstance(value["content"].get("parts"), list):
        content = value["content"]
        role = normalise_role(content.get("role", default_role), missing="")
        return out + from_parts(role, content["parts"])
    if isinstance(value.get("message"), dict):
        return out + _message_from_item(value["message"], "assistant")
    if isinstance(value.get("new_message"), dict):  # Google ADK run input
        return out + _message_from_item(value["new_message"], default_role)
    for key in ("prompt", "input", "query", "question", "text", "output", "answer", "response", "result"):
        inner = value.get(key)
        if isinstance(inner, str) and inner.strip() not in NONE_STRINGS:
            return out + [Message(role=default_role, content=inner)]
        if key in ("input", "output") and isinstance(inner, (list, dict)):
            return out + to_messages(inner, default_role, depth=depth + 1)
    if (
        isinstance(value.get("args"), list)
        and value["args"]
        and all(isinstance(a, str) for a in value["args"])
    ):
        return out + [Message(role=default_role, content=a) for a in value["args"]]
    return out


def instructions_of(output: Any) -> str | None:
    """The system prompt an OpenAI Responses object echoes (`instructions`), which its input lacks."""
    value = loads_maybe(output)
    if (
        isinstance(value, dict)
        and value.get("object") == "response"
        and isinstance(value.get("instructions"), str)
    ):
        return value["instructions"] or None
    return None


def with_instructions(inputs: list[Message], output: Any) -> list[Message]:
    system = instructions_of(output)
    if system and not any(m.role == "system" for m in inputs):
        return [Message(role="system", content=system), *inputs]
    return inputs

