"""Google ADK session events ({author, content: {role, parts}}), read from a recorded session and from
the snake_case shape of the Python SDK's dumps."""

from __future__ import annotations

import json
from pathlib import Path

from selfimprove.analysis.signals import detect
from selfimprove.traces.model import Message, ToolCall
from selfimprove.traces.read import read_traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces" / "google-adk"
AGENT = "parallel_function_test_agent"


def test_a_recorded_session_with_parallel_calls() -> None:
    stream = read_traces([DATA / "parallel_weather.json"])
    [trace] = list(stream)
    assert trace.format == "google-adk" and stream.skipped == 0
    assert trace.messages[:4] == (
        Message("user", "What is the weather in New York and London?"),
        Message("assistant", "", (ToolCall("get_weather", {"city": "New York"}, "fc-1"),
                                  ToolCall("get_weather", {"city": "London"}, "fc-2")), name=AGENT),
        Message("tool", '{"city":"New York","condition":"sunny","humidity":45,"temperature":72}',
                tool_call_id="fc-1", name="get_weather"),
        Message("tool", '{"city":"London","condition":"cloudy","humidity":80,"temperature":60}',
                tool_call_id="fc-2", name="get_weather"),
    )
    assert trace.messages[4].role == "assistant" and trace.messages[4].name == AGENT
    assert trace.messages[4].content.startswith("The weather in New York is sunny")
    assert detect(trace) == []


def test_a_python_dump_with_snake_case_parts_and_a_failed_call(tmp_path: Path) -> None:
    session = {"id": "s-9", "app_name": "shop", "user_id": "u1", "state": {}, "events": [
        {"id": "e1", "invocation_id": "i1", "author": "user", "timestamp": 1730000000.25,
         "content": {"role": "user", "parts": [{"text": "Cancel order 123"}]}},
        {"id": "e2", "invocation_id": "i1", "author": "shop_agent", "timestamp": 1730000001.0,
         "content": {"role": "model", "parts": [
             {"function_call": {"id": "adk-1", "name": "cancel_order", "args": {"order_id": "123"}}}]}},
        {"id": "e3", "invocation_id": "i1", "author": "shop_agent", "timestamp": 1730000002.0,
         "content": {"role": "user", "parts": [
             {"function_response": {"id": "adk-1", "name": "cancel_order",
                                    "response": {"error": "order 123 not found"}}}]}},
        {"id": "e4", "invocation_id": "i1", "author": "shop_agent", "timestamp": 1730000003.0,
         "content": {"parts": [{"text": "I could not find order 123."}]}},
    ]}
    path = tmp_path / "session.json"
    path.write_text(json.dumps(session))
    stream = read_traces([path])
    [trace] = list(stream)
    assert stream.sources[0].format == "google-adk" and trace.id == "s-9"
    assert trace.started_at is not None and trace.started_at.timestamp() == 1730000000.25
    assert trace.messages == (
        Message("user", "Cancel order 123"),
        Message("assistant", "", (ToolCall("cancel_order", {"order_id": "123"}, "adk-1"),),
                name="shop_agent"),
        Message("tool", '{"error":"order 123 not found"}', tool_call_id="adk-1", name="cancel_order"),
        Message("assistant", "I could not find order 123.", name="shop_agent"),
    )
    [signal] = detect(trace)
    assert (signal.name, signal.message_index) == ("tool_error", 2)
