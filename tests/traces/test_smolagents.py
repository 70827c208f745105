"""smolagents messages (roles `tool-call` / `tool-response`, calls as the text "Calling tools: [...]",
failed steps as "Error: ..."), read from the memory of a real run and from a variation of it."""

from __future__ import annotations

import json
from pathlib import Path

from selfimprove.analysis.signals import detect
from selfimprove.traces.model import Message, ToolCall
from selfimprove.traces.read import read_traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces" / "smolagents"
FAILURE = ("Error executing tool 'cancel_order' with arguments {'order_id': '123'}: ValueError: order 123 "
           "not found; order ids look like W1234567")


def test_the_memory_of_a_run_whose_first_call_failed() -> None:
    stream = read_traces([DATA / "cancel_order_error.json"])
    [trace] = list(stream)
    assert stream.skipped == 0
    roles = ["system", "user", "tool", "assistant", "tool", "assistant", "tool"]
    assert [m.role for m in trace.messages] == roles
    failed = trace.messages[2]
    assert failed.is_error and failed.name == "cancel_order" and failed.content.startswith(FAILURE)
    assert trace.messages[3] == Message(
        "assistant", "", (ToolCall("cancel_order", {"order_id": "W2378156"}, "call_2"),))
    assert trace.messages[4] == Message("tool", "order W2378156 cancelled")
    [signal] = detect(trace)
    assert (signal.name, signal.message_index, signal.detail) == (
        "tool_error", 2, f"cancel_order: {FAILURE}")


def test_a_failed_step_with_its_call_id_names_its_tool_from_the_call(tmp_path: Path) -> None:
    messages = json.loads((DATA / "cancel_order_error.json").read_text())
    text = messages[2]["content"][0]["text"]
    messages[2]["content"][0]["text"] = "Call id: call_1\n" + text.replace("'cancel_order'", "it")
    messages.insert(2, {"role": "tool-call", "content": [{"type": "text", "text": (
        "Calling tools:\n[{'id': 'call_1', 'type': 'function', 'function': {'name': 'cancel_order', "
        "'arguments': {'order_id': '123'}}}]")}]})
    path = tmp_path / "memory.json"
    path.write_text(json.dumps(messages))
    [trace] = list(read_traces([path]))
    call = ToolCall("cancel_order", {"order_id": "123"}, "call_1")
    assert trace.messages[2] == Message("assistant", "", (call,))
    assert (trace.messages[3].tool_call_id, trace.messages[3].name, trace.messages[3].is_error) == (
        "call_1", "cancel_order", True)
