"""The registry of message shapes: one small converter per way a framework writes a message.

Owns: `SHAPES`, the message shapes told apart by a tag of their own and converted whole (OpenAI
Responses items, AutoGen messages and events, pydantic-ai requests and responses), and the shapes of
the parts inside ordinary messages that `convert.convert_message` and the span field reader
(`telemetry`) both use: tool calls of every common shape (`tool_call`), tool results (Anthropic,
Gemini/ADK, Vercel AI SDK, Bedrock Converse), error flags, Google ADK authors and smolagents' text
conventions. A new shape is a function here and a line in `SHAPES` (or a branch of the part readers).

Must never: read files, look at more than one message at a time, or raise on odd data.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from selfimprove.traces.messages.values import gemini_part, is_map, opt_str, parse_arguments, tag, text_of
from selfimprove.traces.model import Message, ToolCall

ITEM_TYPES = frozenset({"function_call", "function_call_output", "reasoning", "custom_tool_call",
                         "custom_tool_call_output"})

# AutoGen: AgentChat messages and events ({source, type, content}, as a TaskResult or a team's state
# keeps them) and autogen_core's model context messages. The events listed as silent say nothing of
# the conversation (a speaker chosen, a streamed chunk of a message that follows in full, a thought).
AUTOGEN_SILENT = frozenset({"ThoughtEvent", "ModelClientStreamingChunkEvent", "UserInputRequestedEvent",
                             "SelectSpeakerEvent", "SelectorEvent", "MemoryQueryEvent"})

AUTOGEN_CALLS = frozenset({"ToolCallRequestEvent", "AssistantMessage"})

AUTOGEN_RESULTS = frozenset({"ToolCallExecutionEvent", "FunctionExecutionResultMessage"})

# pydantic-ai: ModelRequest / ModelResponse as ModelMessagesTypeAdapter dumps them,
# {kind, parts: [{part_kind, ...}]}.
PAI_KINDS = frozenset({"request", "response"})

PAI_CALLS = frozenset({"tool-call", "builtin-tool-call"})

PAI_RETURNS = frozenset({"tool-return", "builtin-tool-return"})

PAI_RETRIES = frozenset({"retry-prompt", "retry-feedback"})

PAI_FAILED = frozenset({"failed", "retried"})  # a return's `outcome` that reaches the model as an error

AUTOGEN_TYPES = AUTOGEN_SILENT | AUTOGEN_CALLS | AUTOGEN_RESULTS | frozenset({
    "TextMessage", "MultiModalMessage", "StopMessage", "HandoffMessage", "ToolCallSummaryMessage",
    "StructuredMessage", "CodeGenerationEvent", "CodeExecutionEvent", "UserMessage", "SystemMessage"})


def tool_call(value: Any) -> ToolCall | None:
    """A tool call of any common shape: OpenAI {id, function:{name, arguments}}, flat {name, arguments},
    Inspect {id, function: "name", arguments: {...}}, Anthropic/OTel {type: tool_use|tool_call, name,
    input|arguments}, Gemini {functionCall: {name, args}}."""
    if not isinstance(value, Mapping):
        return None
    fc = gemini_part(value, "functionCall", "function_call")
    if fc is not None:
        return ToolCall(str(fc.get("name", "")), parse_arguments(fc.get("args", fc.get("arguments"))),
                        opt_str(fc.get("id")))
    fn = value.get("function")
    if isinstance(fn, Mapping):
        return ToolCall(str(fn.get("name") or value.get("name") or ""),
                        parse_arguments(fn.get("arguments", fn.get("args"))), opt_str(value.get("id")))
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
    return ToolCall(str(name), parse_arguments(args), opt_str(call_id))


def is_error_flag(value: Mapping[str, Any]) -> bool:
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
    if is_map(output) and str(output.get("type", "")).startswith("error-"):
        return True
    return value.get("state") == "output-error"


def error_text(value: Mapping[str, Any]) -> str:
    err = value.get("error")
    if isinstance(err, Mapping):
        return str(err.get("message") or err.get("type") or "")
    return err if isinstance(err, str) else ""


CALL_PARTS = ("tool_use", "tool_call", "function_call", "server_tool_use", "tool-call")

RESULT_PARTS = ("tool_result", "tool_call_response", "function_call_output", "tool-result")


def tool_result_message(part: Mapping[str, Any]) -> Message:
    fr = gemini_part(part, "functionResponse", "function_response")
    if fr is not None:
        return Message(role="tool", content=text_of(fr.get("response")), name=opt_str(fr.get("name")),
                       tool_call_id=opt_str(fr.get("id")))
    key = next((k for k in ("content", "result", "output", "response", "errorText") if k in part), None)
    content = part[key] if key is not None else None  # OTel GenAI's tool_call_response: `response`
    call_id = part.get("tool_use_id") or part.get("id") or part.get("call_id") or part.get("toolCallId")
    return Message(role="tool", content=text_of(content), tool_call_id=opt_str(call_id),
                   is_error=is_error_flag(part), name=opt_str(part.get("name") or part.get("toolName")))


# --------------------------------------------------------------------------------------------------
# Parts of a message that are not text: each becomes tool calls of the message, or tool messages


Calls = list[ToolCall]
Results = list[Message]


@dataclass(frozen=True)
class PartShape:
    """A content part that is not text: `claims(kind, part)` says it is one (`kind`: the part's
    `type`, "" when it has none), `read(kind, part)` gives its calls and tool results."""

    name: str
    claims: Callable[[str, Mapping[str, Any]], bool]
    read: Callable[[str, Mapping[str, Any]], tuple[Calls, Results]]


def _is_call_part(kind: str, part: Mapping[str, Any]) -> bool:
    return kind in CALL_PARTS or gemini_part(part, "functionCall", "function_call") is not None


def _call_part(kind: str, part: Mapping[str, Any]) -> tuple[Calls, Results]:
    call = tool_call(part)
    return ([call] if call is not None else []), []


def _is_result_part(kind: str, part: Mapping[str, Any]) -> bool:
    return kind in RESULT_PARTS or gemini_part(part, "functionResponse", "function_response") is not None


def _result_part(kind: str, part: Mapping[str, Any]) -> tuple[Calls, Results]:
    return [], [tool_result_message(part)]


def ui_tool_part(kind: str, part: Mapping[str, Any]) -> bool:
    """A Vercel AI SDK UI message part of a tool: `tool-<name>` (or `dynamic-tool`) with a call id."""
    return (kind.startswith("tool-") or kind == "dynamic-tool") and "toolCallId" in part


def _ui_tool(kind: str, part: Mapping[str, Any]) -> tuple[Calls, Results]:
    """The call and, once it has one, its outcome in one part (`state`: output-available | -error)."""
    tool = str(part.get("toolName") or kind.removeprefix("tool-"))
    call_id = opt_str(part.get("toolCallId"))
    calls = [ToolCall(tool, parse_arguments(part.get("input")), call_id)]
    if part.get("state") not in ("output-available", "output-error"):
        return calls, []
    return calls, [Message("tool", text_of(part.get("output", part.get("errorText"))), tool_call_id=call_id,
                           is_error=part.get("state") == "output-error", name=tool)]


def _bedrock_use(kind: str, part: Mapping[str, Any]) -> tuple[Calls, Results]:
    use = part["toolUse"]
    return [ToolCall(str(use.get("name") or ""), parse_arguments(use.get("input")),
                     opt_str(use.get("toolUseId")))], []


def _bedrock_result(kind: str, part: Mapping[str, Any]) -> tuple[Calls, Results]:
    result = part["toolResult"]
    return [], [Message(role="tool", content=text_of(result.get("content")),
                        tool_call_id=opt_str(result.get("toolUseId")), is_error=is_error_flag(result))]


# In order: the first that claims a part reads it.
PART_SHAPES: tuple[PartShape, ...] = (
    # Anthropic tool_use / server_tool_use, OTel GenAI tool_call, Responses function_call, Vercel
    # tool-call, Gemini / Google ADK functionCall
    PartShape("tool-call", _is_call_part, _call_part),
    # Anthropic tool_result, OTel GenAI tool_call_response, Vercel tool-result, Gemini functionResponse
    PartShape("tool-result", _is_result_part, _result_part),
    PartShape("vercel-ui-tool", ui_tool_part, _ui_tool),
    PartShape("bedrock-tool-use", lambda kind, part: is_map(part.get("toolUse")), _bedrock_use),
    PartShape("bedrock-tool-result", lambda kind, part: is_map(part.get("toolResult")), _bedrock_result),
)


def read_part(part: Mapping[str, Any]) -> tuple[Calls, Results] | None:
    """The calls and tool results of a part that is not text (None for a text or unknown part)."""
    kind = str(part.get("type", ""))
    for shape in PART_SHAPES:
        if shape.claims(kind, part):
            return shape.read(kind, part)
    return None


def langchain_unwrapped(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """A LangChain message as a plain one: serialised `{lc, id: [..., "AIMessage"], kwargs}` (role from
    the class name) or dumped `{type: "human", data: {content, ...}}`; any other message unchanged."""
    if isinstance(raw.get("kwargs"), Mapping) and "lc" in raw:
        data = dict(raw["kwargs"])
        ids = raw.get("id")
        if "role" not in data and isinstance(ids, list) and ids:
            data["role"] = str(ids[-1]).replace("MessageChunk", "").replace("Message", "").lower()
        return data
    if isinstance(raw.get("data"), Mapping) and "content" not in raw and "type" in raw:
        data = dict(raw["data"])
        data.setdefault("role", raw["type"])
        return data
    return raw


# smolagents writes a step's result as "Observation:\n<output>", a failed step as "[Call id: <id>\n]Error:\n
# <error>\nNow let's retry: ...", and its calls as "Calling tools:\n" + the Python repr of
# [{id, type, function: {name, arguments}}].
SMOLAGENTS_ERROR = re.compile(r"(?:Call id: (\S+)\n)?Error:\n")

SMOLAGENTS_TOOL = re.compile(r"\btool '([^'\n]{1,100})'")


def smolagents_calls(text: str) -> list[ToolCall]:
    if len(text) > 100_000:
        return []
    try:
        value = ast.literal_eval(text.removeprefix("Calling tools:\n").strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return []
    calls = [tool_call(item) for item in value] if isinstance(value, list) else []
    return [c for c in calls if c is not None]


def response_item(item: Mapping[str, Any]) -> list[Message]:
    """OpenAI Responses API items that are not messages: calls, their outputs, reasoning (dropped)."""
    kind = item.get("type")
    call_id = opt_str(item.get("call_id") or item.get("id"))
    if kind in ("function_call", "custom_tool_call"):
        args = item.get("arguments", item.get("input"))
        call = ToolCall(str(item.get("name") or ""), parse_arguments(args), call_id)
        return [Message("assistant", "", (call,))]
    if kind in ("function_call_output", "custom_tool_call_output"):
        return [Message("tool", text_of(item.get("output")), tool_call_id=call_id)]
    return []


def authored(messages: list[Message], author: Any) -> list[Message]:
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


def autogen_message(raw: Mapping[str, Any]) -> list[Message]:
    """An AutoGen message: its `source` (an agent's name, or "user") speaks; tool call requests and
    execution results become calls and tool messages. Agents speak as assistants, named."""
    kind = tag(raw, "type")
    if kind in AUTOGEN_SILENT:
        return []
    content = raw.get("content")
    source = opt_str(raw.get("source"))
    if kind in AUTOGEN_RESULTS and isinstance(content, list):
        return [Message(role="tool", content=text_of(r.get("content")),
                        tool_call_id=opt_str(r.get("call_id")), is_error=r.get("is_error") is True,
                        name=opt_str(r.get("name")))
                for r in content if isinstance(r, Mapping)]
    if kind == "SystemMessage":
        return [Message(role="system", content=text_of(content))]
    user = kind == "UserMessage" or (source or "").lower() == "user"
    role = "user" if user else "assistant"
    name = None if source is None or source.lower() == "user" else source
    if kind in AUTOGEN_CALLS and isinstance(content, list):
        calls = tuple(tc for tc in (tool_call(c) for c in content) if tc is not None)
        thought = raw.get("thought")
        return [Message(role=role, content=thought if isinstance(thought, str) else "", tool_calls=calls,
                        name=name)]
    return [Message(role=role, content=text_of(content), name=name)]


def pydantic_ai_message(raw: Mapping[str, Any]) -> list[Message]:
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
            kind = tag(part, "part_kind")
            if kind == "text":
                texts.append(text_of(part.get("content")))
            elif kind in PAI_CALLS:
                calls.append(ToolCall(str(part.get("tool_name") or ""), parse_arguments(part.get("args")),
                                      opt_str(part.get("tool_call_id"))))
            elif kind in PAI_RETURNS:  # a provider's built-in tool answers inside the response
                out.append(_pydantic_ai_return(part))
        return [Message("assistant", "\n".join(t for t in texts if t), tuple(calls))] + out
    for part in parts:
        kind = tag(part, "part_kind")
        if kind == "system-prompt":
            out.append(Message("system", text_of(part.get("content"))))
        elif kind == "user-prompt":
            out.append(Message("user", _prompt_text(part.get("content"))))
        elif kind in PAI_RETURNS or kind in PAI_RETRIES:
            out.append(_pydantic_ai_return(part))
    return out


def _pydantic_ai_return(part: Mapping[str, Any]) -> Message:
    failed = tag(part, "part_kind") in PAI_RETRIES or tag(part, "outcome") in PAI_FAILED
    return Message("tool", text_of(part.get("content")), tool_call_id=opt_str(part.get("tool_call_id")),
                   is_error=failed, name=opt_str(part.get("tool_name")))


_MEDIA_KINDS = frozenset({"binary", "image-url", "audio-url", "video-url", "document-url", "file"})


def _prompt_text(content: Any) -> str:
    """A pydantic-ai user prompt: a string, or a list of strings and media (`{kind: image-url | binary,
    ...}`, whose data is not text)."""
    if not isinstance(content, list):
        return text_of(content)
    pieces = []
    for item in content:
        if isinstance(item, Mapping) and tag(item, "kind") in _MEDIA_KINDS:
            pieces.append(f"[{item['kind']}]")
        else:
            pieces.append(text_of(item))
    return "\n".join(p for p in pieces if p)


@dataclass(frozen=True)
class Shape:
    """A message shape told apart by a tag of its own: `claims(raw)` says it is one, `convert(raw)`
    gives its messages."""

    name: str
    claims: Callable[[Mapping[str, Any]], bool]
    convert: Callable[[Mapping[str, Any]], list[Message]]


def _is_pydantic_ai(raw: Mapping[str, Any]) -> bool:
    return tag(raw, "kind") in PAI_KINDS and isinstance(raw.get("parts"), list)


SHAPES: tuple[Shape, ...] = (
    Shape("openai-responses-item", lambda raw: tag(raw, "type") in ITEM_TYPES, response_item),
    Shape("autogen", lambda raw: tag(raw, "type") in AUTOGEN_TYPES, autogen_message),
    Shape("pydantic-ai", _is_pydantic_ai, pydantic_ai_message),
)


def shape_of(raw: Mapping[str, Any]) -> Shape | None:
    """The registered shape that claims a message (the first, in `SHAPES` order), or None."""
    for shape in SHAPES:
        if shape.claims(raw):
            return shape
    return None
