"""Small value helpers every message shape uses: mappings, tags, ids, text, tool-call arguments, JSON.

Owns: `text_of` (the one content → text function: strings, parts of any common shape, media as a
placeholder), `parse_arguments` (tool-call arguments as JSON when they are JSON), the fast mapping
check `is_map`, and `loads_maybe` / `dumps` for JSON carried inside strings. Must never: know a
message shape (that is `shapes`), raise on odd input, or import from the readers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

import orjson


def is_map(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """isinstance(value, Mapping), fast for what JSON parsing produces (the ABC check is slow, and
    absent keys, strings and lists are asked about far more often than other mappings)."""
    kind = value.__class__
    return kind is dict or (kind not in _NOT_MAPS and isinstance(value, Mapping))


_NOT_MAPS = frozenset({type(None), str, int, float, bool, list})


# Where a record, or a message, keeps its time (read the same way by every reader and by the fast lane).
TIME_KEYS = ("timestamp", "started_at", "start_time", "startTime", "created_at", "createdAt", "created",
             "time", "date", "ts")


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
    """Tool-call arguments parsed when they are a JSON object or array (as OpenAI sends them, in a
    string), else the raw value."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith(("{", "[")):
            try:
                return orjson.loads(stripped)
            except orjson.JSONDecodeError:
                return value
    return value


def gemini_part(part: Mapping[str, Any], camel: str, snake: str) -> Mapping[str, Any] | None:
    """A Gemini part's function call or response, under its REST (camelCase) or Python SDK key."""
    value = part.get(camel)
    if value is None:
        value = part.get(snake)
    return value if isinstance(value, Mapping) else None


def tag(value: Mapping[str, Any], key: str) -> str | None:
    """A discriminating field (`type`, `kind`, ...) when it is a string: any other value (a list or an
    object where a writer put one) names no known kind, and must not fail a set lookup."""
    found = value.get(key)
    return found if isinstance(found, str) else None


def opt_str(value: Any) -> str | None:
    """An id or name as text; None for a missing or empty one."""
    return None if value is None or value == "" else str(value)


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

