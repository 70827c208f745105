"""Where a plain record keeps its conversation: the message list, a system prompt beside it, a
provider's response, a prompt/answer pair.

Owns: recognising message-like values (`is_message_like`, `is_message_list`), finding a record's
message list (`find_message_list`: known keys, then request/input wrappers, then any list of
messages), and `conversation_of`, which folds a top-level system prompt and a separate response
into that list; `FOLDED_KEYS` names every record key it folds in, so the fast lane can leave such
records to it. Must never: convert messages (that is `convert`), or read files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from selfimprove.traces.messages.roles import STANDARD_ROLES, normalise_role
from selfimprove.traces.messages.shapes import AUTOGEN_TYPES, ITEM_TYPES, PAI_KINDS
from selfimprove.traces.messages.values import is_map, tag, text_of

MESSAGE_LIST_KEYS = ("messages", "traj", "trajectory", "history", "conversation", "conversations", "chat",
                     "chat_history", "dialog", "dialogue", "turns", "transcript", "chat_messages")

_CONTENT_KEYS = ("content", "text", "value", "parts", "message", "tool_calls", "function_call")

_ROLE_KEYS = ("role", "from", "speaker", "author", "sender", "type")


def is_message_like(value: Any) -> bool:
    """A dict that names a speaker and carries content: role/content (OpenAI, Anthropic, Inspect),
    from/value (ShareGPT), speaker/text, or a LangChain-style {type: human|ai, content/data}."""
    if type(value) is dict:  # fast path: OpenAI-style {"role": str, "content"/"tool_calls": ...}
        role_value = value.get("role")
        if role_value.__class__ is str and role_value and ("content" in value or "tool_calls" in value):
            return True
    if not is_map(value):
        return False
    kind = tag(value, "type")
    if kind in ITEM_TYPES:  # OpenAI Responses API input/output items
        return True
    if kind in AUTOGEN_TYPES:  # AutoGen messages: {source, type, content}
        return True
    if tag(value, "kind") in PAI_KINDS and isinstance(value.get("parts"), list):  # pydantic-ai
        return True
    if "lc" in value and is_map(value.get("kwargs")):  # LangChain's {lc, id: [..., "AIMessage"], kwargs}
        ids = value.get("id")
        return isinstance(ids, list) and bool(ids) and str(ids[-1]).endswith(("Message", "MessageChunk"))
    role = None
    for key in _ROLE_KEYS:
        candidate = value.get(key)
        if isinstance(candidate, str) and candidate:
            role = candidate
            break
        if key == "author" and is_map(candidate) and isinstance(candidate.get("role"), str):
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
        if is_map(value):  # {"messages": {"messages": [...]}} or {"history": {"messages": …}}
            inner = find_message_list(value, depth + 1) if depth < 3 else None
            if inner:
                return f"{key}.{inner[0]}", inner[1]
    if depth >= 3:
        return None
    for key in _WRAPPER_KEYS:
        value = record.get(key)
        if is_map(value):
            inner = find_message_list(value, depth + 1)
            if inner:
                return f"{key}.{inner[0]}", inner[1]
    for key, value in record.items():
        if isinstance(value, list) and is_message_list(value):
            return str(key), value
    return None


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


SYSTEM_KEYS = ("system", "system_prompt", "instructions")


def system_messages(record: Mapping[str, Any]) -> list[Any]:
    """A top-level system prompt kept beside the messages (Anthropic `system`, `instructions`)."""
    for key in SYSTEM_KEYS:
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return [{"role": "system", "content": value}]
        if isinstance(value, list) and value and all(is_map(v) for v in value):
            text = text_of(value)
            if text:
                return [{"role": "system", "content": text}]
    return []


RESPONSE_KEYS = ("response", "response_body", "completion", "output", "outputs", "answer", "reply",
                  "prediction", "generation")


def conversation_of(record: Mapping[str, Any]) -> tuple[str, list[Any]] | None:
    """The raw message list of a record, with a top-level system prompt and a separate response
    (request/response logs) folded in."""
    found = find_message_list(record)
    if found is None:
        # request/response pairs with the messages under a body key
        for key in ("request", "request_body", "input", "inputs"):
            inner = record.get(key)
            if is_map(inner):
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
        if is_map(record.get(outer)):
            container = record[outer]
    if not any(is_map(m) and normalise_role(m.get("role")) == "system" for m in msgs[:3]):
        system = system_messages(container)
        if not system and container is not record:
            system = system_messages(record)
        msgs = system + msgs
    for rkey in RESPONSE_KEYS:
        if rkey in record and rkey != key.split(".")[0]:
            reply = response_messages(record[rkey])
            if reply:
                msgs.extend(reply)
                break
    if "choices" in record:
        msgs.extend(response_messages(record))
    return key, msgs


PROMPT_KEYS = ("prompt", "input", "question", "query", "instruction", "user_input")

ANSWER_KEYS = ("completion", "response", "output", "answer", "generation", "prediction", "model_output")


def _prompt_completion(record: Mapping[str, Any]) -> tuple[str, list[Any]] | None:
    """Single-turn records: a prompt string and the model's answer string."""
    prompt = next((k for k in PROMPT_KEYS if isinstance(record.get(k), str) and record[k].strip()), None)
    answer = next((k for k in ANSWER_KEYS if isinstance(record.get(k), str)), None)
    if prompt is None or answer is None:
        return None
    msgs: list[Any] = system_messages(record)
    msgs += [{"role": "user", "content": record[prompt]}, {"role": "assistant", "content": record[answer]}]
    return f"{prompt}+{answer}", msgs


# Every key beside a record's `messages` that `conversation_of` folds into them (a system prompt, a
# response, OpenAI choices): a record holding one is left to it by the fast lane.
FOLDED_KEYS = frozenset(SYSTEM_KEYS + RESPONSE_KEYS + ("choices",))
