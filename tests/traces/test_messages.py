"""The one message converter (`traces.messages`): each shape it reads, with exact outputs."""

from __future__ import annotations

from selfimprove.traces.messages.conversations import conversation_of, find_message_list, is_message_like
from selfimprove.traces.messages.convert import convert_message, convert_messages
from selfimprove.traces.messages.fast import fast_message, fast_view
from selfimprove.traces.messages.roles import normalise_role
from selfimprove.traces.messages.shapes import PART_SHAPES, SHAPES, read_part, shape_of
from selfimprove.traces.messages.telemetry import field_text, to_messages
from selfimprove.traces.messages.values import parse_arguments, text_of
from selfimprove.traces.model import Message, ToolCall


def test_one_role_table() -> None:
    assert [normalise_role(r) for r in ("User", "customer", "human", "agent", "AI", "model", "observation",
                                        "function", "developer", "tool-response", "Planner", None, "")] == [
        "user", "user", "user", "assistant", "assistant", "assistant", "tool", "tool", "system", "tool",
        "Planner", "unknown", "unknown"]
    assert normalise_role(None, missing="") == "" and normalise_role("customer", missing="") == "user"


def test_text_of_and_arguments() -> None:
    assert text_of([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}},
                    {"type": "tool_use", "name": "f"}, {"type": "thinking", "thinking": "hm"}, "b"]) == \
        "a\n[image_url]\nb"
    assert text_of({"k": 1}) == '{"k":1}' and text_of(None) == "" and text_of(3) == "3"
    assert parse_arguments('{"a": 1}') == {"a": 1} and parse_arguments("[1]") == [1]
    assert parse_arguments("ls -a") == "ls -a" and parse_arguments("{bad") == "{bad"
    assert field_text("None") == "" and field_text('[{"type": "text", "text": "hi"}]') == "hi"


def test_openai_chat_with_tool_calls_takes_the_fast_lane() -> None:
    raw = [{"role": "user", "content": "find order 7"},
           {"role": "assistant", "content": None, "tool_calls": [
               {"id": "c1", "type": "function", "function": {"name": "find", "arguments": '{"order": 7}'}}]},
           {"role": "tool", "tool_call_id": "c1", "content": "not found"}]
    expected = (Message("user", "find order 7"),
                Message("assistant", "", (ToolCall("find", {"order": 7}, "c1"),)),
                Message("tool", "not found", tool_call_id="c1", name="find"))
    assert convert_messages(raw) == expected
    assert fast_message(raw[0]) == expected[0]
    view = fast_view(raw)
    assert view is not None and view.roles == ["user", "assistant", "tool"]
    assert fast_message({"role": "user", "content": "hi", "extra": 1}) is None  # not on the allowlist


def test_anthropic_blocks_split_into_calls_and_results() -> None:
    use = {"type": "tool_use", "id": "t1", "name": "get", "input": {"id": 7}}
    raw = [{"role": "assistant", "content": [{"type": "text", "text": "checking"}, use]},
           {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "boom",
                                         "is_error": True}]}]
    assert convert_messages(raw) == (
        Message("assistant", "checking", (ToolCall("get", {"id": 7}, "t1"),)),
        Message("tool", "boom", tool_call_id="t1", is_error=True, name="get"))


def test_langchain_serialised_and_dumped_messages() -> None:
    assert convert_message({"lc": 1, "type": "constructor", "id": ["langchain", "schema", "HumanMessage"],
                            "kwargs": {"content": "hi"}}) == [Message("user", "hi")]
    assert convert_message({"type": "ai", "data": {"content": "hello"}}) == [Message("assistant", "hello")]


def test_gemini_and_google_adk() -> None:
    call = {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"x": 1}}}]}
    assert convert_message(call) == [Message("assistant", "", (ToolCall("f", {"x": 1}),))]
    event = {"author": "billing_agent", "content": {"parts": [{"text": "paid"}]}}
    assert convert_message(event) == [Message("assistant", "paid", name="billing_agent")]
    result = {"role": "user",
              "parts": [{"function_response": {"name": "f", "id": "g1", "response": {"ok": 1}}}]}
    assert convert_message(result) == [Message("tool", '{"ok":1}', tool_call_id="g1", name="f")]


def test_bedrock_converse() -> None:
    raw = [{"role": "assistant", "content": [{"toolUse": {"toolUseId": "b1", "name": "f", "input": {}}}]},
           {"role": "user", "content": [{"toolResult": {"toolUseId": "b1", "content": [{"text": "no"}],
                                                        "status": "error"}}]}]
    assert convert_messages(raw) == (Message("assistant", "", (ToolCall("f", {}, "b1"),)),
                                     Message("tool", "no", tool_call_id="b1", is_error=True, name="f"))


def test_registered_shapes_autogen_pydantic_ai_and_responses_items() -> None:
    assert [s.name for s in SHAPES] == ["openai-responses-item", "autogen", "pydantic-ai"]
    autogen = [{"source": "user", "type": "TextMessage", "content": "hi"},
               {"source": "planner", "type": "ToolCallRequestEvent",
                "content": [{"id": "a1", "name": "f", "arguments": "{}"}]},
               {"source": "planner", "type": "ToolCallExecutionEvent",
                "content": [{"call_id": "a1", "content": "err", "is_error": True, "name": "f"}]},
               {"source": "planner", "type": "ThoughtEvent", "content": "hm"}]
    assert convert_messages(autogen) == (
        Message("user", "hi"), Message("assistant", "", (ToolCall("f", {}, "a1"),), name="planner"),
        Message("tool", "err", tool_call_id="a1", is_error=True, name="f"))
    pai = [{"kind": "request", "parts": [{"part_kind": "user-prompt", "content": "hi"}]},
           {"kind": "response", "parts": [{"part_kind": "tool-call", "tool_name": "f", "args": {},
                                           "tool_call_id": "p1"}]},
           {"kind": "request", "parts": [{"part_kind": "retry-prompt", "tool_name": "f", "content": "bad",
                                          "tool_call_id": "p1"}]}]
    assert convert_messages(pai) == (
        Message("user", "hi"), Message("assistant", "", (ToolCall("f", {}, "p1"),)),
        Message("tool", "bad", tool_call_id="p1", is_error=True, name="f"))
    item = {"type": "function_call", "call_id": "r1", "name": "f", "arguments": '{"a": 1}'}
    assert shape_of(item) is SHAPES[0]
    assert convert_message(item) == [Message("assistant", "", (ToolCall("f", {"a": 1}, "r1"),))]
    # the span readers' field reader hands tagged shapes to the same registry
    assert to_messages([item]) == [Message("assistant", "", (ToolCall("f", {"a": 1}, "r1"),))]


def test_smolagents_text_conventions() -> None:
    raw = [{"role": "tool-call", "content": "Calling tools:\n[{'id': 's1', 'type': 'function', "
                                            "'function': {'name': 'cancel', 'arguments': {'order': 7}}}]"},
           {"role": "tool-response", "content": "Call id: s1\nError:\nError executing tool 'cancel' with x"}]
    assert convert_messages(raw) == (
        Message("assistant", "", (ToolCall("cancel", {"order": 7}, "s1"),)),
        Message("tool", "Error executing tool 'cancel' with x", tool_call_id="s1", is_error=True,
                name="cancel"))


def test_vercel_ui_tool_part() -> None:
    part = {"type": "tool-weather", "toolCallId": "v1", "input": {"city": "Oslo"}, "state": "output-error",
            "errorText": "no data"}
    assert convert_message({"role": "assistant", "parts": [part]}) == [
        Message("assistant", "", (ToolCall("weather", {"city": "Oslo"}, "v1"),)),
        Message("tool", "no data", tool_call_id="v1", is_error=True, name="weather")]


def test_telemetry_fields() -> None:
    assert to_messages("system: be brief\nuser: hi") == [Message("system", "be brief"), Message("user", "hi")]
    assert to_messages({"messages": [{"role": "customer", "content": "hi"}]}) == [Message("user", "hi")]
    reply = {"choices": [{"message": {"content": "ok"}}]}
    assert to_messages(reply, "assistant") == [Message("assistant", "ok")]
    otel = [{"role": "user", "parts": [{"type": "text", "content": "a"}]}]
    assert to_messages(otel) == [Message("user", "a")]
    assert to_messages("None") == []


def test_finding_a_records_conversation() -> None:
    record = {"system": "Be brief.", "request": {"messages": [{"role": "user", "content": "hi"}]},
              "response": {"choices": [{"message": {"role": "assistant", "content": "hello"}}]}}
    assert conversation_of(record) == ("request.messages", [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}])
    assert conversation_of({"prompt": "2+2?", "completion": "4"}) == (
        "prompt+completion", [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}])
    assert find_message_list({"state": {"history": [{"from": "human", "value": "hi"}]}}) == (
        "state.history", [{"from": "human", "value": "hi"}])
    assert is_message_like({"speaker": "agent", "text": "x"}) and not is_message_like({"type": "object"})


def test_span_fields_and_records_read_a_message_with_a_role_the_same_way() -> None:
    samples = [
        {"role": "customer", "content": "hi"},
        {"role": "agent", "content": [{"type": "text", "text": "checking"},
                                      {"type": "tool_use", "id": "t1", "name": "get", "input": {"id": 7}}]},
        {"role": "ai", "content": "", "additional_kwargs": {"tool_calls": [
            {"id": "l1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}},
        {"role": "model", "parts": [{"text": "ok"}, {"functionCall": {"name": "g", "args": {}}}]},
        {"role": "user", "parts": [{"type": "tool_call_response", "id": "1", "response": "rainy"}]},
        {"source": "planner", "type": "TextMessage", "content": "done"},
    ]
    for raw in samples:
        assert to_messages([raw]) == convert_message(raw), raw
    assert convert_message(samples[2]) == [Message("assistant", "", (ToolCall("f", {"a": 1}, "l1"),))]
    assert convert_message(samples[4]) == [Message("tool", "rainy", tool_call_id="1")]


def test_registered_part_shapes_give_calls_and_results_and_text_parts_none() -> None:
    assert [s.name for s in PART_SHAPES] == ["tool-call", "tool-result", "vercel-ui-tool", "bedrock-tool-use",
                                             "bedrock-tool-result"]
    assert read_part({"type": "text", "text": "hi"}) is None
    use = {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
    assert read_part(use) == ([ToolCall("f", {}, "t1")], [])
    assert read_part({"functionResponse": {"name": "f", "response": {"ok": 1}}}) == (
        [], [Message("tool", '{"ok":1}', name="f")])
    assert read_part({"type": "tool-f", "toolCallId": "v1", "input": {}, "state": "input-available"}) == (
        [ToolCall("f", {}, "v1")], [])
    assert read_part({"toolResult": {"toolUseId": "b1", "content": [{"text": "x"}]}}) == (
        [], [Message("tool", "x", tool_call_id="b1")])
