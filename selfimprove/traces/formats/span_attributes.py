"""Span attribute conventions: one span's flat attribute map → what it contributes to its trace.

Owns: `SpanView` (a span, run or observation, source-independent), `ToolResult`, `span_kind`, and
`span_content`, which reads the GenAI (current and deprecated), OpenInference (indexed
`llm.input_messages.N…`), OpenLLMetry (`gen_ai.prompt.N…`) and Vercel AI SDK (`ai.*`) conventions
into input and output messages (through `messages.telemetry`) or a tool result; also the span time
helpers (`from_nanos`, `to_datetime`). Used by the otlp, openinference, langsmith and langfuse readers.

Must never: read files, put spans together (that is `assembly`), or convert message shapes itself
(that is `messages`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from selfimprove.traces.messages.roles import normalise_role
from selfimprove.traces.messages.telemetry import call_of, field_text, from_parts, to_messages, tool_message
from selfimprove.traces.messages.values import dumps, loads_maybe, parse_arguments
from selfimprove.traces.model import Feedback, Message


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
        role = normalise_role(fields.get("message.role", "user"), missing="")
        contents = _indexed(fields, "message.contents.")
        parts = [
            {"type": f.get("message_content.type", "text"), "text": f.get("message_content.text")}
            for _, f in sorted(contents.items())
            if f.get("message_content.text") is not None
        ]
        text = field_text(parts) if parts else field_text(fields.get("message.content"))
        calls = [
            call_of(
                f.get("tool_call.function.name"), f.get("tool_call.function.arguments"), f.get("tool_call.id")
            )
            for _, f in sorted(_indexed(fields, "message.tool_calls.").items())
        ]
        name = fields.get("message.name")
        call_id = fields.get("message.tool_call_id")
        if role == "tool" or call_id:
            out.append(tool_message(text, call_id, name))
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
        role = normalise_role(fields.get("role", default_role), missing="")
        content = loads_maybe(fields.get("content"))
        calls = [
            call_of(f.get("name"), f.get("arguments"), f.get("id"))
            for _, f in sorted(_indexed(fields, "tool_calls.").items())
        ]
        call_id = fields.get("tool_call_id")
        if role == "tool" or call_id:
            out.append(tool_message(content, call_id, fields.get("name")))
        elif isinstance(content, list):
            out.extend(from_parts(role, content))
        else:
            out.append(Message(role=role, content=field_text(content), tool_calls=tuple(calls)))
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
        sys_text = field_text(loads_maybe(system))
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
                call_of(c.get("toolName"), c.get("input", c.get("args")), c.get("toolCallId"))
                for c in loads_maybe(attrs.get("ai.response.toolCalls")) or []
                if isinstance(c, dict)
            ]
            if isinstance(loads_maybe(attrs.get("ai.response.toolCalls")), list)
            else []
        )
        outputs = [
            Message(
                role="assistant",
                content=field_text(text) if text is not None else "",
                tool_calls=tuple(calls),
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
        result=field_text(loads_maybe(result))
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

