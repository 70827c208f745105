"""Amazon Bedrock Converse: blocks keyed by kind (`text`, `toolUse`, `toolResult`, `reasoningContent`),
read from real recordings and from variations of them."""

from __future__ import annotations

import json
from pathlib import Path

from selfimprove.analysis.signals import detect
from selfimprove.traces.model import Message, ToolCall
from selfimprove.traces.read import read_traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces" / "provider-native"
USE_ID = "tooluse_ZQEZysOVRqitr-89GxHizA"


def test_a_recorded_request_with_tool_use_and_tool_result() -> None:
    stream = read_traces([DATA / "bedrock_converse_tool_result.json"])
    [trace] = list(stream)
    assert trace.format == "bedrock" and stream.skipped == 0
    assert trace.messages == (
        Message("user", "What is the most popular song on WZPZ?"),
        Message("assistant", "Okay, let's find the most popular song played on radio station WZPZ",
                (ToolCall("top_song", {"sign": "WZPZ"}, USE_ID),)),
        Message("tool", "Rock and Roll Hall", tool_call_id=USE_ID, name="top_song"),
    )
    assert detect(trace) == []


def test_a_recorded_tool_use_reply_and_its_stop_reason() -> None:
    [trace] = list(read_traces([DATA / "bedrock_converse_tool_use.json"]))
    assert trace.messages[-1] == Message(
        "assistant", "", (ToolCall("top_song", {"sign": "Radio XYZ"}, "tooluse_Z4oIdWzp6MUkuN99WX3jLk"),))
    assert trace.metadata["finish_reason"] == "tool_use"


def test_a_tool_result_with_status_error_is_a_tool_error(tmp_path: Path) -> None:
    doc = json.loads((DATA / "bedrock_converse_tool_result.json").read_text())
    body = doc["interactions"][0]["request_body"]
    body["messages"][1]["content"].insert(0, {"reasoningContent": {"reasoningText": {"text": "hidden"}}})
    body["messages"][2]["content"][0]["toolResult"].update(
        status="error", content=[{"json": {"error": "station WZPZ unknown"}}])
    path = tmp_path / "converse.json"
    path.write_text(json.dumps(body))
    [trace] = list(read_traces([path]))
    assert trace.messages[1].content == "Okay, let's find the most popular song played on radio station WZPZ"
    assert trace.messages[2] == Message("tool", '{"error":"station WZPZ unknown"}', tool_call_id=USE_ID,
                                        is_error=True, name="top_song")
    [signal] = detect(trace)
    assert (signal.name, signal.message_index) == ("tool_error", 2)
