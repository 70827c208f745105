"""AutoGen: AgentChat messages and events ({source, type, content}) and autogen_core model context
messages, read from a real TaskResult and from variations of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfimprove.analysis.signals import detect
from selfimprove.traces.model import Message, ToolCall, Trace
from selfimprove.traces.read import read_traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces" / "autogen"
CALL_ID = "call_rOzPHDXJlI50BqN305vbzckW"


def _real() -> dict[str, Any]:
    return json.loads((DATA / "agent_run_tool_call.json").read_text())


def _read(tmp_path: Path, doc: Any, name: str = "run.json") -> Trace:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    stream = read_traces([path])
    [trace] = list(stream)
    assert stream.sources[0].format == "autogen" and stream.skipped == 0
    return trace


def test_a_recorded_task_result_with_a_tool_call() -> None:
    stream = read_traces([DATA / "agent_run_tool_call.json"])
    [trace] = list(stream)
    assert trace.format == "autogen" and trace.id == "agent_run_tool_call:0"
    assert trace.messages == (
        Message("user", "What is the weather in New York?"),
        Message("assistant", "", (ToolCall("get_weather", {"city": "New York"}, CALL_ID),),
                name="weather_agent"),
        Message("tool", "The weather in New York is 73 degrees and Sunny.", tool_call_id=CALL_ID,
                name="get_weather"),
        Message("assistant", "The weather in New York is 73 degrees and sunny.", name="weather_agent"),
    )
    assert detect(trace) == []


def test_a_failed_execution_is_a_tool_error(tmp_path: Path) -> None:
    doc = _real()
    doc["messages"][2]["content"][0].update(content="Error: city not found", is_error=True)
    trace = _read(tmp_path, doc)
    assert trace.messages[2].is_error
    [signal] = detect(trace)
    assert (signal.name, signal.detail, signal.message_index) == (
        "tool_error", "get_weather: Error: city not found", 2)


def test_a_run_stopped_by_its_message_limit_is_a_max_turns_stop(tmp_path: Path) -> None:
    doc = _real()
    doc["stop_reason"] = "Maximum number of messages 4 reached, current message count: 4"
    [signal] = detect(_read(tmp_path, doc))
    assert signal.name == "max_turns"
    assert signal.key == "max_turns|maximum number of messages <n> reached, current message count: <n>"


def test_thoughts_and_streamed_chunks_are_left_out_and_teams_keep_their_agents(tmp_path: Path) -> None:
    doc = [
        {"source": "user", "content": "Write a haiku about autumn.", "type": "TextMessage"},
        {"source": "primary", "content": "Let me think", "type": "ThoughtEvent"},
        {"source": "primary", "content": "Leaves", "type": "ModelClientStreamingChunkEvent"},
        {"source": "primary", "content": "Leaves fall slowly", "type": "TextMessage"},
        {"source": "critic", "content": "APPROVE", "type": "TextMessage"},
    ]
    trace = _read(tmp_path, doc)
    assert [(m.role, m.name, m.content) for m in trace.messages] == [
        ("user", None, "Write a haiku about autumn."),
        ("assistant", "primary", "Leaves fall slowly"),
        ("assistant", "critic", "APPROVE"),
    ]


def test_model_context_messages_of_autogen_core(tmp_path: Path) -> None:
    doc = {"messages": [
        {"content": "You are a helpful assistant.", "type": "SystemMessage"},
        {"content": "Weather in Paris?", "source": "user", "type": "UserMessage"},
        {"content": [{"id": "c1", "arguments": "{\"city\": \"Paris\"}", "name": "get_weather"}],
         "thought": "I will look it up.", "source": "assistant", "type": "AssistantMessage"},
        {"content": [{"content": "timeout", "name": "get_weather", "call_id": "c1", "is_error": True}],
         "type": "FunctionExecutionResultMessage"},
    ]}
    trace = _read(tmp_path, doc)
    assert trace.messages == (
        Message("system", "You are a helpful assistant."),
        Message("user", "Weather in Paris?"),
        Message("assistant", "I will look it up.", (ToolCall("get_weather", {"city": "Paris"}, "c1"),),
                name="assistant"),
        Message("tool", "timeout", tool_call_id="c1", is_error=True, name="get_weather"),
    )
