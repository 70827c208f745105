"""Anthropic Messages bodies: tool_use blocks → tool calls, tool_result blocks → tool messages."""

from __future__ import annotations

import json
from pathlib import Path

from selfimprove.traces.model import Message, ToolCall
from selfimprove.traces.read import read_traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces" / "provider-native"


def test_recorded_request_with_tool_result_and_its_response() -> None:
    stream = read_traces([DATA / "anthropic_messages_tool_use_in_input.json"])
    [trace] = list(stream)
    assert trace.format == "anthropic" and stream.sources[0].format == "anthropic"
    assert trace.id == "anthropic_messages_tool_use_in_input:0"
    assert [m.role for m in trace.messages] == ["user", "assistant", "tool", "assistant"]
    assert trace.messages[1].tool_calls == (
        ToolCall(
            "get_weather",
            {"location": "San Francisco, CA", "unit": "fahrenheit"},
            "toolu_01KBqpqR73qWGsMaW3vBzEjz",
        ),
    )
    assert trace.messages[2] == Message(
        "tool",
        '{"weather": "sunny", "temperature": "75"}',
        tool_call_id="toolu_01KBqpqR73qWGsMaW3vBzEjz",
        name="get_weather",
    )
    assert trace.messages[3].content.startswith("The current weather in San Francisco, CA is **sunny**")
    assert trace.metadata["finish_reason"] == "end_turn"


def test_parallel_tool_calls_in_one_response() -> None:
    [trace] = list(read_traces([DATA / "anthropic_messages_multiple_tool_calling.json"]))
    assert [c.name for c in trace.messages[1].tool_calls] == ["get_weather", "get_time"]
    assert (
        trace.messages[1].content
        == "Sure! Let me fetch the current weather and time in New York simultaneously!"
    )
    assert trace.metadata["finish_reason"] == "tool_use"


def test_request_body_with_system_and_failed_tool_result(tmp_path: Path) -> None:
    body = {
        "model": "claude-sonnet-4-6",
        "system": "You are a support agent.",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "refund order 7"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm"},
                    {"type": "tool_use", "id": "t1", "name": "refund", "input": {"order": 7}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "is_error": True,
                        "content": [{"type": "text", "text": "order 7 not found"}],
                    },
                    {"type": "text", "text": "well?"},
                ],
            },
        ],
    }
    path = tmp_path / "req.json"
    path.write_text(json.dumps(body))
    [trace] = list(read_traces([path]))
    assert trace.format == "anthropic"
    assert trace.messages == (
        Message("system", "You are a support agent."),
        Message("user", "refund order 7"),
        Message("assistant", "", (ToolCall("refund", {"order": 7}, "t1"),)),
        Message("user", "well?"),
        Message("tool", "order 7 not found", tool_call_id="t1", is_error=True, name="refund"),
    )
