"""Vercel AI SDK messages stored as records: model messages (`tool-call` / `tool-result` parts, error
outputs typed `error-text` / `error-json`) and UI messages (`tool-<name>` / `dynamic-tool` parts that
hold a call and its outcome, by `state`). Shapes as the AI SDK v5 documents and validates them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfimprove.analysis.signals import detect
from selfimprove.traces.model import Message, ToolCall, Trace
from selfimprove.traces.read import read_traces


def _read(tmp_path: Path, record: dict[str, Any]) -> Trace:
    path = tmp_path / "chats.jsonl"
    path.write_text(json.dumps(record) + "\n")
    stream = read_traces([path])
    [trace] = list(stream)
    assert stream.skipped == 0
    return trace


def test_model_messages_with_a_failed_tool_result(tmp_path: Path) -> None:
    trace = _read(tmp_path, {"id": "chat-1", "messages": [
        {"role": "user", "content": "Cancel order 123"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool-call", "toolCallId": "call_1", "toolName": "cancelOrder",
             "input": {"orderId": "123"}}]},
        {"role": "tool", "content": [
            {"type": "tool-result", "toolCallId": "call_1", "toolName": "cancelOrder",
             "output": {"type": "error-text", "value": "order 123 not found"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "I could not find it."}]},
    ]})
    assert trace.messages == (
        Message("user", "Cancel order 123"),
        Message("assistant", "Let me check.", (ToolCall("cancelOrder", {"orderId": "123"}, "call_1"),)),
        Message("tool", "order 123 not found", tool_call_id="call_1", is_error=True, name="cancelOrder"),
        Message("assistant", "I could not find it."),
    )
    [signal] = detect(trace)
    assert (signal.name, signal.detail) == ("tool_error", "cancelOrder: order 123 not found")


def test_ui_messages_whose_tool_parts_carry_their_outcome(tmp_path: Path) -> None:
    trace = _read(tmp_path, {"id": "chat-2", "messages": [
        {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "Chart my sales"}]},
        {"id": "m2", "role": "assistant", "parts": [
            {"type": "step-start"},
            {"type": "reasoning", "text": "Let me count.", "state": "done"},
            {"type": "tool-run_sql", "toolCallId": "c1", "state": "output-available",
             "input": {"query": "SELECT 1"}, "output": {"count": 6}},
            {"type": "dynamic-tool", "toolName": "generate_chart", "toolCallId": "c2",
             "state": "output-error", "input": {"chart_type": "bar"}, "errorText": "bad data"},
            {"type": "text", "text": "You have 6.", "state": "done"},
        ]},
    ]})
    assert trace.messages == (
        Message("user", "Chart my sales"),
        Message("assistant", "You have 6.", (ToolCall("run_sql", {"query": "SELECT 1"}, "c1"),
                                             ToolCall("generate_chart", {"chart_type": "bar"}, "c2"))),
        Message("tool", '{"count":6}', tool_call_id="c1", name="run_sql"),
        Message("tool", "bad data", tool_call_id="c2", is_error=True, name="generate_chart"),
    )
    assert [s.name for s in detect(trace)] == ["tool_error"]
