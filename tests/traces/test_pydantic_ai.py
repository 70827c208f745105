"""pydantic-ai message history ({kind: request | response, parts: [{part_kind}]}), read from a dump
written by pydantic-ai itself and from variations of it (older retry prompts, media, records)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfimprove.analysis.signals import detect
from selfimprove.traces.model import Message, ToolCall, Trace
from selfimprove.traces.read import read_traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces" / "pydantic-ai"


def _history() -> list[dict[str, Any]]:
    return json.loads((DATA / "cancel_order_retry.json").read_text())


def _read(tmp_path: Path, doc: Any, name: str = "history.json") -> Trace:
    path = tmp_path / name
    path.write_text(json.dumps(doc) if name.endswith(".json") else doc)
    stream = read_traces([path])
    [trace] = list(stream)
    assert stream.sources[0].format == "pydantic-ai" and stream.skipped == 0
    return trace


def test_a_dumped_run_whose_tool_asked_for_a_retry() -> None:
    history = _history()
    first_id = history[1]["parts"][1]["tool_call_id"]
    second_id = history[3]["parts"][0]["tool_call_id"]
    stream = read_traces([DATA / "cancel_order_retry.json"])
    [trace] = list(stream)
    assert trace.format == "pydantic-ai" and trace.id == "cancel_order_retry"
    assert trace.messages == (
        Message("system", "You are the support agent of an online shop."),
        Message("user", "Please cancel my order 123, it has not shipped yet."),
        Message("assistant", "Let me cancel that order.",
                (ToolCall("cancel_order", {"order_id": "123"}, first_id),)),
        Message("tool", "order 123 not found; order ids look like W1234567", tool_call_id=first_id,
                is_error=True, name="cancel_order"),
        Message("assistant", "", (ToolCall("cancel_order", {"order_id": "W2378156"}, second_id),)),
        Message("tool", "order W2378156 cancelled", tool_call_id=second_id, name="cancel_order"),
        Message("assistant", "Done: order W2378156 cancelled"),
    )
    assert trace.started_at is not None and trace.started_at.isoformat() == history[0]["timestamp"].replace(
        "Z", "+00:00")
    [signal] = detect(trace)
    assert (signal.name, signal.detail, signal.message_index) == (
        "tool_error", "cancel_order: order 123 not found; order ids look like W1234567", 3)


def test_older_retry_prompts_are_failed_results_too(tmp_path: Path) -> None:
    history = _history()
    retried = history[2]["parts"][0]
    history[2]["parts"][0] = {"part_kind": "retry-prompt", "tool_name": "cancel_order",
                              "tool_call_id": retried["tool_call_id"],
                              "content": [{"type": "missing", "loc": ["order_id"], "msg": "Field required"}]}
    history.append({"kind": "request", "parts": [{"part_kind": "retry-prompt", "content": "answer in JSON"}]})
    trace = _read(tmp_path, history)
    assert trace.messages[3] == Message(
        "tool", '{"loc":["order_id"],"msg":"Field required","type":"missing"}',
        tool_call_id=retried["tool_call_id"], is_error=True, name="cancel_order")
    assert trace.messages[-1] == Message("tool", "answer in JSON", is_error=True)


def test_media_in_a_user_prompt_is_a_placeholder_not_its_data(tmp_path: Path) -> None:
    history = _history()
    history[0]["parts"][1]["content"] = [
        "What is on this label?",
        {"kind": "binary", "data": "iVBORw0KGgoAAAANSUhEUg", "media_type": "image/png"},
        {"kind": "image-url", "url": "https://example.com/label.png"},
    ]
    trace = _read(tmp_path, history)
    assert trace.messages[1] == Message("user", "What is on this label?\n[binary]\n[image-url]")


def test_records_holding_a_history_keep_their_id_and_label(tmp_path: Path) -> None:
    line = json.dumps({"id": "conv-7", "feedback": "thumbs_down", "messages": _history()})
    trace = _read(tmp_path, line + "\n", name="conversations.jsonl")
    assert trace.id == "conv-7" and len(trace.messages) == 7
    assert [(f.kind, f.value) for f in trace.feedback] == [("label", "thumbs_down")]
