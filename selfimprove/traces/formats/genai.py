"""Chat content in the shapes LLM telemetry carries it, normalised into `Message`s; spans into one trace.

Owns the translation shared by the span-based readers (otlp, openinference, langsmith, langfuse):
- `to_messages`: one function that turns whatever an instrumentation put into an input or output
  field (OpenAI chat or Responses items, OTel GenAI `parts`, Anthropic blocks, Gemini `contents`,
  LangChain messages serialized or not, Vercel AI SDK parts, request/response envelopes, plain text)
  into messages. Unknown shapes give no messages; they never raise.
- `span_content`: the GenAI / OpenInference / Vercel attribute conventions of one span (flat
  attribute map, current and deprecated styles) → its input and output messages and tool result.
- `assemble`: many spans of one trace → one conversation. LLM spans repeat the whole history in
  their input, so the conversation is the longest input seen plus the outputs, extended only by
  messages not already present (aligned in order when views diverge); wrapper LLM spans come after
  their children; tool spans add results the LLM spans did not show and mark errors `is_error`.
- `TraceGroups`: a file's spans grouped by trace id in bounded memory.

Never judges outcomes (that is `analysis`), never reads files (the readers do), never raises on
odd data: the readers are tried on telemetry from projects nobody has seen.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import orjson

from selfimprove.traces.model import Feedback, Message, ToolCall

ROLE_ALIASES = {
    "human": "user",
    "user": "user",
    "ai": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "chatbot": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
    "ipython": "tool",
    "tool_result": "tool",
}

LANGCHAIN_CLASSES = {
    "HumanMessage": "user",
    "HumanMessageChunk": "user",
    "AIMessage": "assistant",
    "AIMessageChunk": "assistant",
    "SystemMessage": "system",
    "SystemMessageChunk": "system",
    "ToolMessage": "tool",
    "ToolMessageChunk": "tool",
    "FunctionMessage": "tool",
    "ChatMessage": "",
}

TEXT_PART_TYPES = {"text", "input_text", "output_text", "refusal"}
_NONE_STRINGS = {"", "None", "null", "undefined"}
_TRANSCRIPT_LINE = re.compile(r"^(system|developer|user|assistant|tool|human|ai):[ \t]?(.*)$")


# ---------------------------------------------------------------- small value helpers


def loads_maybe(value: Any) -> Any:
    """A JSON document inside a string (as telemetry attributes carry it) → the value; else unchanged."""
    if isinstance(value, (str, bytes)):
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        stripped = text.strip()
        if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
            try:
                return orjson.loads(stripped)
            except (orjson.JSONDecodeError, RecursionError):
                return text
        return text
    return value


def dumps(value: Any) -> str:
    """Compact, readable JSON for non-text content (tool results that are objects)."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError, RecursionError):
        return str(value)


def parse_arguments(value: Any) -> Any:
    """Tool-call arguments: a dict when they are (or encode) a JSON object, else the raw value."""
    if isinstance(value, str):
        parsed = loads_maybe(value)
        return parsed if isinstance(parsed, dict) else value
    return value


def canonical_role(role: Any) -> str:
    text = str(role).strip() if role is not None else ""
    return ROLE_ALIASES.get(text.lower(), text)


def from_nanos(value: Any) -> datetime | None:
    """OTLP `*TimeUnixNano` (an integer or a digit string) → aware UTC; other shapes as `to_datetime`."""
    if (
        isinstance(value, str)
        and value.strip().isdigit()
        or isinstance(value, int)
        and not isinstance(value, bool)
    ):
        try:
            nanos = int(value)
            if nanos <= 0:
                return None
            return datetime.fromtimestamp(nanos // 1_000_000_000, tz=timezone.utc).replace(
                microsecond=(nanos % 1_000_000_000) // 1000
            )
        except (ValueError, OverflowError, OSError):
            return None
    return to_datetime(value)


def to_datetime(value: Any) -> datetime | None:
    """ISO strings, epoch seconds/ms/µs/ns (numbers or digit strings), [s, ns] pairs → aware UTC."""
    try:
        if value is None or isinstance(value, bool):
            return None
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return datetime.fromtimestamp(float(value[0]) + float(value[1]) / 1e9, tz=timezone.utc)
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            if text.lstrip("-").replace(".", "", 1).isdigit():
                return to_datetime(float(text))
            if text.endswith("Z"):
                text = text[:-1] + "+00:00"
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            return parsed.astimezone(timezone.utc)
        if isinstance(value, (int, float)):
            number = float(value)
            if number <= 0:
                return None
            for scale in (1.0, 1e3, 1e6, 1e9):
                if number / scale < 1e11:
                    return datetime.fromtimestamp(number / scale, tz=timezone.utc)
    except (ValueError, OverflowError, OSError, TypeError):
        return None
    return None


def text_of(content: Any) -> str:
    """The text of a content value: a string, a list of parts (text parts joined), or a part."""
    content = loads_maybe(content) if isinstance(content, str) and content[:1] == "[" else content
    if content is None:
        return ""
    if isinstance(content, str):
        return "" if content in _NONE_STRINGS else content
    if isinstance(content, dict):
        for key in ("text", "content", "value"):
            if isinstance(content.get(key), str):
                return str(content[key])
        if isinstance(content.get("message_content"), dict):
            return text_of(content["message_content"])
        return dumps(content)
    if isinstance(content, (list, tuple)):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                kind = str(part.get("type", "text"))
                if kind in TEXT_PART_TYPES and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif kind in TEXT_PART_TYPES and isinstance(part.get("content"), str):
                    texts.append(part["content"])
                elif "type" not in part and isinstance(part.get("text"), str):
                    texts.append(part["text"])
        return "\n".join(t for t in texts if t)
    return str(content)


# ---------------------------------------------------------------- content → messages


def _tool_call(name: Any, arguments: Any, call_id: Any) -> ToolCall:
    return ToolCall(
        name=str(name or ""),
        arguments=parse_arguments(arguments),
        id=str(call_id) if call_id not in (None, "") else None,
    )


def _openai_tool_calls(raw: Any) -> list[ToolCall]:
    calls: list[ToolCall] = []
    if not isinstance(raw, list):
        return calls
    for item in raw:
        if not isinstance(item, dict):
            continue
        fn = item.get("function")
        if isinstance(fn, dict):
            calls.append(_tool_call(fn.get("name"), fn.get("arguments"), item.get("id")))
        elif "name" in item or "toolName" in item:
            args = item.get("arguments", item.get("args", item.get("input")))
            calls.append(
                _tool_call(
                    item.get("name", item.get("toolName")), args, item.get("id", item.get("toolCallId"))
                )
            )
    return calls


def _tool_message(content: Any, call_id: Any, name: Any = None, is_error: Any = False) -> Message:
    if isinstance(content, list) and all(isinstance(p, dict) and "type" in p for p in content):
        text = text_of(content) or dumps(content)
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


def _from_parts(role: str, parts: Sequence[Any], name: str | None = None) -> list[Message]:
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
        elif kind in ("tool_call", "tool-call", "function_call"):
            args = part.get("arguments", part.get("args", part.get("input")))
            calls.append(
                _tool_call(
                    part.get("name", part.get("toolName")),
                    args,
                    part.get("id", part.get("toolCallId", part.get("call_id"))),
                )
            )
        elif kind == "tool_use":
            calls.append(_tool_call(part.get("name"), part.get("input"), part.get("id")))
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
                _tool_message(
                    result,
                    part.get("id", part.get("toolCallId", part.get("tool_use_id", part.get("call_id")))),
                    part.get("name", part.get("toolName")),
                    part.get("is_error", part.get("isError", False)),
                )
            )
        elif isinstance(fc := part.get("functionCall", part.get("function_call")), dict):
            calls.append(_tool_call(fc.get("name"), fc.get("args", fc.get("arguments")), fc.get("id")))
        elif isinstance(fr := part.get("functionResponse", part.get("function_response")), dict):
            results.append(_tool_message(fr.get("response"), fr.get("id"), fr.get("name")))
        elif kind == "message_content" or isinstance(part.get("message_content"), dict):
            text = text_of(part)
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
            role = LANGCHAIN_CLASSES[cls] or canonical_role(kwargs.get("role"))
            return role, kwargs
    kind = item.get("type")
    if (
        "role" not in item
        and isinstance(kind, str)
        and kind.lower() in ("human", "ai", "system", "tool", "function", "chat")
    ):
        role = canonical_role(kind) if kind.lower() != "chat" else canonical_role(item.get("role"))
        return role, item
    return None


def _message_from_item(item: Any, default_role: str) -> list[Message]:
    if isinstance(item, str):
        parsed = _repr_message(item)
        if parsed is not None:
            return parsed
        return [Message(role=default_role, content=item)] if item not in _NONE_STRINGS else []
    if not isinstance(item, dict):
        return []
    lc = _langchain_role(item)
    if lc is not None:
        role, body = lc
        msg = dict(body)
        msg["role"] = role
        return _message_from_item(msg, default_role)
    kind = item.get("type")
    # OpenAI Responses API items
    if kind == "function_call":
        call = _tool_call(item.get("name"), item.get("arguments"), item.get("call_id", item.get("id")))
        return [Message(role="assistant", tool_calls=(call,))]
    if kind == "function_call_output":
        return [_tool_message(item.get("output"), item.get("call_id"))]
    if kind in ("reasoning", "web_search_call", "file_search_call"):
        return []
    # Vercel AI SDK tool call / result objects outside a message
    if "toolCallId" in item and "role" not in item:
        if "result" in item or "output" in item:
            return [
                _tool_message(
                    item.get("result", item.get("output")), item.get("toolCallId"), item.get("toolName")
                )
            ]
        return [
            Message(
                role="assistant",
                tool_calls=(
                    _tool_call(
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
            return _from_parts(default_role, item["parts"])
        if isinstance(item.get("content"), (str, list)) and set(item) <= {"content", "type", "name", "id"}:
            content = item["content"]
            return (
                _from_parts(default_role, content)
                if isinstance(content, list)
                else ([Message(role=default_role, content=content)] if content not in _NONE_STRINGS else [])
            )
        return []
    role = canonical_role(item.get("role"))
    name = item.get("name") if isinstance(item.get("name"), str) else None
    content = item.get("content")
    if content is None and "parts" in item:
        content = item.get("parts")
    if content is None and isinstance(item.get("text"), str):
        content = item["text"]
    calls = _openai_tool_calls(item.get("tool_calls"))
    extra = item.get("additional_kwargs")
    if not calls and isinstance(extra, dict):
        calls = _openai_tool_calls(extra.get("tool_calls"))
    fc = item.get("function_call")
    if not calls and isinstance(fc, dict) and fc.get("name"):
        calls = [_tool_call(fc.get("name"), fc.get("arguments"), None)]
    call_id = item.get("tool_call_id", item.get("toolCallId"))
    if (
        role == "tool"
        and isinstance(content, dict)
        and isinstance(content.get("function"), dict)
        and ("parameters" in content["function"])
    ):
        return []  # a tool definition logged as if it were a message (LangGraph via OpenInference)
    if role == "tool" and not call_id and isinstance(content, str) and content.startswith('[{"function"'):
        serialized = _openai_tool_calls(loads_maybe(content))
        if serialized:
            return [Message(role="assistant", tool_calls=tuple(serialized))]
    if role == "tool" or call_id:
        is_error = bool(
            item.get("is_error") or item.get("isError") or item.get("status") == "error" or item.get("error")
        )
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") in ("tool_call_response", "tool-result", "tool_result")
            for p in content
        ):
            return _from_parts("tool", content)
        return [_tool_message(content, call_id, name, is_error)]
    if isinstance(content, list):
        messages = _from_parts(role, content, name)
        if calls:
            if messages and messages[0].role == role:
                messages[0] = replace(messages[0], tool_calls=messages[0].tool_calls + tuple(calls))
            else:
                messages.insert(0, Message(role=role, tool_calls=tuple(calls), name=name))
        return messages
    if isinstance(content, dict):
        text = text_of(content)
    else:
        text = "" if content is None or content in _NONE_STRINGS else str(content)
    if not calls and text.startswith('[{"function"'):  # tool calls serialized into the text (Koog)
        serialized = _openai_tool_calls(loads_maybe(text))
        if serialized:
            return [Message(role="assistant", tool_calls=tuple(serialized), name=name)]
    if not text and not calls and item.get("refusal"):
        text = str(item["refusal"])
    return [Message(role=role or default_role, content=text, tool_calls=tuple(calls), name=name)]


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
    return [Message(role=canonical_role(match.group(1)), content=str(content))]


def _transcript(text: str) -> list[Message] | None:
    """`system: …\\nuser: …` transcripts (some SDKs log the prompt that way)."""
    lines = text.split("\n")
    if not _TRANSCRIPT_LINE.match(lines[0]):
        return None
    messages: list[tuple[str, list[str]]] = []
    for line in lines:
        match = _TRANSCRIPT_LINE.match(line)
        if match:
            messages.append((canonical_role(match.group(1)), [match.group(2)]))
        else:
            messages[-1][1].append(line)
    if len(messages) < 2:
        return None
    out = []
    for role, body in messages:
        content = "\n".join(body).strip()
        if content not in _NONE_STRINGS:
            out.append(Message(role=role, content=content))
    return out


_STANDARD_ROLES = {"system", "user", "assistant", "tool"}


def _tool_roles(messages: list[Message]) -> list[Message]:
    """A message whose role is the name of a tool just called is that tool's result (LangChain JS)."""
    pending: dict[str, str | None] = {}
    for i, message in enumerate(messages):
        for call in message.tool_calls:
            pending[call.name] = call.id
        if message.role not in _STANDARD_ROLES and message.role in pending:
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
        if value.strip() in _NONE_STRINGS:
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
            system = text_of(value[key])
            break
    config = value.get("config")
    if system is None and isinstance(config, dict):
        for key in ("system_instruction", "systemInstruction"):
            if config.get(key):
                system = text_of(loads_maybe(config[key]))
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
                    _from_parts(canonical_role(content.get("role", "model")), content.get("parts") or [])
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
        return out + _from_parts(canonical_role(content.get("role", default_role)), content["parts"])
    if isinstance(value.get("message"), dict):
        return out + _message_from_item(value["message"], "assistant")
    if isinstance(value.get("new_message"), dict):  # Google ADK run input
        return out + _message_from_item(value["new_message"], default_role)
    for key in ("prompt", "input", "query", "question", "text", "output", "answer", "response", "result"):
        inner = value.get(key)
        if isinstance(inner, str) and inner.strip() not in _NONE_STRINGS:
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


# ---------------------------------------------------------------- flat span attributes


@dataclass
class ToolResult:
    name: str | None
    call_id: str | None
    result: str
    arguments: Any = None


@dataclass
class SpanView:
    """What one span (or run, or observation) contributes to its trace, source-independent."""

    span_id: str
    parent_id: str | None = None
    name: str = ""
    start: datetime | None = None
    order: int = 0
    kind: str = "other"  # llm | tool | other
    inputs: list[Message] = field(default_factory=list)
    outputs: list[Message] = field(default_factory=list)
    tool: ToolResult | None = None
    error: bool = False
    error_message: str | None = None
    feedback: list[Feedback] = field(default_factory=list)
    prompt_version: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _indexed(attrs: Mapping[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    """`prefix.N.rest` keys → {N: {rest: value}}."""
    groups: dict[int, dict[str, Any]] = {}
    plen = len(prefix)
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        head, _, rest = key[plen:].partition(".")
        if head.isdigit() and rest:
            groups.setdefault(int(head), {})[rest] = value
    return groups


def _openinference_messages(attrs: Mapping[str, Any], prefix: str) -> list[Message]:
    out: list[Message] = []
    for _, fields in sorted(_indexed(attrs, prefix).items()):
        role = canonical_role(fields.get("message.role", "user"))
        contents = _indexed(fields, "message.contents.")
        parts = [
            {"type": f.get("message_content.type", "text"), "text": f.get("message_content.text")}
            for _, f in sorted(contents.items())
            if f.get("message_content.text") is not None
        ]
        text = text_of(parts) if parts else text_of(fields.get("message.content"))
        calls = [
            _tool_call(
                f.get("tool_call.function.name"), f.get("tool_call.function.arguments"), f.get("tool_call.id")
            )
            for _, f in sorted(_indexed(fields, "message.tool_calls.").items())
        ]
        name = fields.get("message.name")
        call_id = fields.get("message.tool_call_id")
        if role == "tool" or call_id:
            out.append(_tool_message(text, call_id, name))
        else:
            out.append(
                Message(role=role, content=text, tool_calls=tuple(calls), name=str(name) if name else None)
            )
    if len(out) > 2 and all(m.role == "assistant" and not m.tool_calls for m in out):
        # a streamed reply recorded token by token, one "message" per chunk
        return [Message(role="assistant", content="".join(m.content for m in out))]
    return out


def _openllmetry_messages(attrs: Mapping[str, Any], prefix: str, default_role: str) -> list[Message]:
    """Indexed `gen_ai.prompt.N.role/content` (+ tool_calls.K.name/arguments/id, tool_call_id)."""
    out: list[Message] = []
    for _, fields in sorted(_indexed(attrs, prefix).items()):
        role = canonical_role(fields.get("role", default_role))
        content = loads_maybe(fields.get("content"))
        calls = [
            _tool_call(f.get("name"), f.get("arguments"), f.get("id"))
            for _, f in sorted(_indexed(fields, "tool_calls.").items())
        ]
        call_id = fields.get("tool_call_id")
        if role == "tool" or call_id:
            out.append(_tool_message(content, call_id, fields.get("name")))
        elif isinstance(content, list):
            out.extend(_from_parts(role, content))
        else:
            out.append(Message(role=role, content=text_of(content), tool_calls=tuple(calls)))
    return out


def _attr(attrs: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return value
    return None


def span_kind(attrs: Mapping[str, Any], name: str = "") -> str:
    op = str(attrs.get("gen_ai.operation.name") or "").lower()
    oi = str(attrs.get("openinference.span.kind") or "").upper()
    if op == "execute_tool" or oi == "TOOL" or "ai.toolCall.name" in attrs or name.startswith("execute_tool"):
        return "tool"
    if op in ("chat", "text_completion", "generate_content", "completion") or oi == "LLM":
        return "llm"
    if any(
        k.startswith(
            (
                "gen_ai.input.messages",
                "gen_ai.output.messages",
                "gen_ai.prompt",
                "gen_ai.completion",
                "llm.input_messages",
                "llm.output_messages",
                "ai.prompt.messages",
            )
        )
        for k in attrs
    ):
        return "llm"
    if "ai.response.text" in attrs or "ai.response.toolCalls" in attrs:
        return "llm"
    return "other"


def span_content(
    attrs: Mapping[str, Any], name: str = ""
) -> tuple[str, list[Message], list[Message], ToolResult | None]:
    """(kind, input messages, output messages, tool result) of one span's flat attribute map."""
    kind = span_kind(attrs, name)
    if kind == "tool":
        return kind, [], [], _tool_result(attrs, name)
    inputs: list[Message] = []
    system = _attr(attrs, "gen_ai.system_instructions")
    if system is not None:
        sys_text = text_of(loads_maybe(system))
        if sys_text:
            inputs.append(Message(role="system", content=sys_text))
    if _attr(attrs, "gen_ai.input.messages") is not None:
        inputs += to_messages(attrs["gen_ai.input.messages"])
    elif any(k.startswith("llm.input_messages.") for k in attrs):
        inputs += _openinference_messages(attrs, "llm.input_messages.")
    elif any(k.startswith("gen_ai.prompt.") for k in attrs):
        inputs += _openllmetry_messages(attrs, "gen_ai.prompt.", "user")
    elif _attr(attrs, "gen_ai.prompt") is not None:
        inputs += to_messages(attrs["gen_ai.prompt"])
    elif _attr(attrs, "ai.prompt.messages") is not None:
        inputs += to_messages(attrs["ai.prompt.messages"])
    elif _attr(attrs, "ai.prompt") is not None:
        inputs += to_messages(attrs["ai.prompt"])
    elif kind == "llm" or attrs.get("openinference.span.kind"):
        value = _attr(attrs, "input.value", "input")
        if value is not None:
            inputs += to_messages(value)
    outputs: list[Message] = []
    if _attr(attrs, "gen_ai.output.messages") is not None:
        outputs = to_messages(attrs["gen_ai.output.messages"], "assistant")
    elif any(k.startswith("llm.output_messages.") for k in attrs):
        outputs = _openinference_messages(attrs, "llm.output_messages.")
    elif any(k.startswith("gen_ai.completion.") for k in attrs):
        outputs = _openllmetry_messages(attrs, "gen_ai.completion.", "assistant")
    elif _attr(attrs, "gen_ai.completion") is not None:
        outputs = to_messages(attrs["gen_ai.completion"], "assistant")
    elif _attr(attrs, "ai.response.text", "ai.response.toolCalls", "ai.response.object") is not None:
        text = _attr(attrs, "ai.response.text", "ai.response.object")
        calls = (
            [
                _tool_call(c.get("toolName"), c.get("input", c.get("args")), c.get("toolCallId"))
                for c in loads_maybe(attrs.get("ai.response.toolCalls")) or []
                if isinstance(c, dict)
            ]
            if isinstance(loads_maybe(attrs.get("ai.response.toolCalls")), list)
            else []
        )
        outputs = [
            Message(
                role="assistant", content=text_of(text) if text is not None else "", tool_calls=tuple(calls)
            )
        ]
    elif kind == "llm" or attrs.get("openinference.span.kind"):
        value = _attr(attrs, "output.value", "output")
        if value is not None:
            outputs = to_messages(value, "assistant")
    return kind, inputs, outputs, None


def _tool_result(attrs: Mapping[str, Any], name: str) -> ToolResult:
    tool_name = _attr(attrs, "gen_ai.tool.name", "tool.name", "ai.toolCall.name")
    if tool_name is None and name.startswith("execute_tool "):
        tool_name = name[len("execute_tool ") :]
    result = _attr(attrs, "gen_ai.tool.call.result", "ai.toolCall.result", "output.value", "output")
    return ToolResult(
        name=str(tool_name) if tool_name is not None else (name or None),
        call_id=str(c)
        if (c := _attr(attrs, "gen_ai.tool.call.id", "tool_call.id", "tool.id", "ai.toolCall.id")) is not None
        else None,
        result=text_of(loads_maybe(result))
        if isinstance(result, str) and result[:1] == "["
        else ("" if result is None else dumps(result)),
        arguments=parse_arguments(
            _attr(
                attrs,
                "gen_ai.tool.call.arguments",
                "ai.toolCall.args",
                "input.value",
                "input",
                "tool.parameters",
            )
        ),
    )


# ---------------------------------------------------------------- spans → one conversation


def _canonical(value: Any) -> str:
    try:
        return orjson.dumps(
            value, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
        ).decode()
    except (TypeError, RecursionError):
        return str(value)


def _key(message: Message) -> tuple[Any, ...]:
    calls = tuple(
        (
            c.name,
            _canonical(c.arguments) if isinstance(c.arguments, dict) else str(c.arguments or "").strip(),
        )
        for c in message.tool_calls
    )
    return (message.role, " ".join(message.content.split()), calls)


def merge_conversation(
    conv: list[Message], candidate: Sequence[Message], key: Callable[[Message], tuple[Any, ...]] = _key
) -> list[Message]:
    """Extend `conv` by `candidate` (a later span's full view) without repeating what is there."""
    if not candidate:
        return conv
    if not conv:
        return list(candidate)
    ck = [key(m) for m in conv]
    nk = [key(m) for m in candidate]
    if nk[: len(ck)] == ck:
        return list(candidate)
    if ck[: len(nk)] == nk:
        return conv
    # Diverging views (a wrapper span's summary, a sub-agent, an SDK that logs only the new turn):
    # align in order, keep what is there, insert what is new where it belongs.
    out = list(conv)
    used = [False] * len(out)
    known = set(ck)
    first = next((k for k in nk if k in known), None)
    pos = ck.index(first) if first is not None else len(out)
    for message, mkey in zip(candidate, nk, strict=True):
        at = next((i for i in range(pos, len(out)) if not used[i] and ck[i] == mkey), None)
        if at is None:
            at = next((i for i in range(0, min(pos, len(out))) if not used[i] and ck[i] == mkey), None)
        if at is not None:
            used[at] = True
            pos = max(pos, at + 1)
            continue
        out.insert(pos, message)
        ck.insert(pos, mkey)
        used.insert(pos, True)
        pos += 1
    return out


def _same_text(a: str, b: str) -> bool:
    if " ".join(a.split()) == " ".join(b.split()):
        return True
    if a[:1] in "[{" and b[:1] in "[{":
        left, right = loads_maybe(a), loads_maybe(b)
        return not isinstance(left, str) and left == right
    return False


def _place_tool_result(conv: list[Message], span: SpanView, matched: set[int]) -> list[Message]:
    tool = span.tool
    if tool is None:
        return conv
    message = Message(
        role="tool", content=tool.result, tool_call_id=tool.call_id, is_error=span.error, name=tool.name
    )
    if span.error and not message.content:
        message = replace(message, content=span.error_message or "error")
    if not message.content.strip() and not span.error:
        return conv  # lifecycle markers (…start / …finish spans) carry no result
    ids = {c.id for m in conv for c in m.tool_calls if c.id}
    for i, existing in enumerate(conv):
        if existing.role != "tool" or i in matched:
            continue
        same_id = tool.call_id is not None and existing.tool_call_id == tool.call_id
        same_text = bool(tool.result) and _same_text(existing.content, tool.result)
        same_call = (
            (existing.tool_call_id is None or existing.tool_call_id not in ids)
            and bool(tool.name)
            and (existing.name == tool.name and (tool.call_id is None or tool.call_id not in ids))
        )
        if same_id or same_text or same_call:
            matched.add(i)
            conv[i] = replace(
                existing,
                is_error=existing.is_error or span.error,
                name=existing.name or tool.name,
                tool_call_id=existing.tool_call_id or tool.call_id,
            )
            return conv
    answered = {m.tool_call_id for m in conv if m.role == "tool" and m.tool_call_id}
    anchor = None
    for i, existing in enumerate(conv):
        for call in existing.tool_calls:
            if tool.call_id is not None and call.id == tool.call_id:
                anchor = i
            elif (
                tool.call_id is None and call.name == tool.name and call.id not in answered and anchor is None
            ):
                anchor = i
                if call.id:
                    message = replace(message, tool_call_id=call.id)
    if anchor is None:
        conv.append(message)
        matched.add(len(conv) - 1)
        return conv
    at = anchor + 1
    while at < len(conv) and conv[at].role == "tool":
        at += 1
    conv.insert(at, message)
    shifted = {i + 1 if i >= at else i for i in matched}
    matched.clear()
    matched.update(shifted | {at})
    return conv


def assemble(
    spans: Iterable[SpanView],
) -> tuple[list[Message], list[Feedback], datetime | None, SpanView | None]:
    """One trace's spans → (messages, feedback, started_at, root span)."""
    ordered = sorted(
        spans, key=lambda s: (s.start is None, s.start or datetime.min.replace(tzinfo=timezone.utc), s.order)
    )
    ids = {s.span_id for s in ordered}
    roots = [s for s in ordered if not s.parent_id or s.parent_id not in ids]
    root = roots[0] if roots else (ordered[0] if ordered else None)
    # A wrapper LLM span (Vercel `ai.generateText`, a framework's `invoke`) repeats what its child
    # LLM calls did in one summary; the children carry the real turns, so wrappers come last and
    # only add what the children did not show.
    by_id = {s.span_id: s for s in ordered}
    wrappers: set[str] = set()
    for span in ordered:
        if span.kind == "llm" and (span.inputs or span.outputs):
            parent, hops = span.parent_id, 0
            while parent is not None and parent in by_id and hops < 256:
                if by_id[parent].kind == "llm":
                    wrappers.add(parent)
                parent, hops = by_id[parent].parent_id, hops + 1
    cache: dict[int, tuple[Any, ...]] = {}  # every message stays alive in its span meanwhile

    def key(message: Message) -> tuple[Any, ...]:
        found = cache.get(id(message))
        if found is None:
            found = cache[id(message)] = _key(message)
        return found

    conv: list[Message] = []
    for span in ordered:
        if span.kind == "llm" and span.span_id not in wrappers:
            conv = merge_conversation(conv, span.inputs + span.outputs, key)
    for span in ordered:  # a wrapper may still know something its children did not log
        if span.span_id in wrappers:
            conv = merge_conversation(conv, span.inputs + span.outputs, key)
    if not conv:
        for span in roots + [s for s in ordered if s not in roots]:
            if span.kind != "tool" and (span.inputs or span.outputs):
                conv = merge_conversation(conv, span.inputs + span.outputs, key)
                break
    matched: set[int] = set()
    for span in ordered:
        if span.kind == "tool":
            conv = _place_tool_result(conv, span, matched)
    feedback: list[Feedback] = []
    for span in ordered:
        feedback.extend(span.feedback)
    errors = [s for s in ordered if s.error and s.kind != "tool"]
    if errors or (root is not None and root.error):
        first = errors[0] if errors else root
        assert first is not None
        feedback.append(
            Feedback(
                kind="status",
                value="error",
                comment=first.error_message or None,
                passed=False,
                name=first.name or None,
            )
        )
    starts = [s.start for s in ordered if s.start is not None]
    return conv, feedback, (min(starts) if starts else None), root


# ---------------------------------------------------------------- bounded grouping of a file's spans

MAX_BUFFERED_CHARS = 48 * 1024 * 1024  # message text held while spans wait for the rest of their trace


def _size(view: SpanView) -> int:
    size = 256
    for message in (*view.inputs, *view.outputs):
        size += len(message.content) + 64 * (1 + len(message.tool_calls))
    if view.tool is not None:
        size += len(view.tool.result) + 64
    return size


class TraceGroups:
    """Spans buffered per trace id until the file ends, in bounded memory.

    Spans of one trace may sit anywhere in a file, so a trace is complete only at the end. To keep
    memory flat on huge JSON Lines exports, once the buffered text passes `limit` the traces that
    went longest without a new span are emitted early (a late span of such a trace then starts a
    second trace with the same id, which the driver renames).
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = MAX_BUFFERED_CHARS if limit is None else limit
        self.groups: dict[str, list[SpanView]] = {}
        self.lines: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        self.total = 0

    def add(self, trace_id: str, view: SpanView, line: int) -> list[tuple[str, list[SpanView], int]]:
        """Buffer one span; returns the groups that had to be emitted early (oldest first)."""
        group = self.groups.pop(trace_id, None)
        if group is None:
            group = []
            self.lines[trace_id] = line
            self.sizes[trace_id] = 0
        group.append(view)
        self.groups[trace_id] = group  # re-inserted: dict order is least recently touched first
        size = _size(view)
        self.sizes[trace_id] += size
        self.total += size
        flushed: list[tuple[str, list[SpanView], int]] = []
        while self.total > self.limit and len(self.groups) > 1:
            oldest = next(iter(self.groups))
            flushed.append(self._pop(oldest))
        return flushed

    def _pop(self, trace_id: str) -> tuple[str, list[SpanView], int]:
        views = self.groups.pop(trace_id)
        self.total -= self.sizes.pop(trace_id)
        return trace_id, views, self.lines.pop(trace_id)

    def drain(self) -> list[tuple[str, list[SpanView], int]]:
        """Every group still buffered, in the order their traces first appeared."""
        order = sorted(self.groups, key=lambda t: self.lines[t])
        return [self._pop(t) for t in order]
