"""The documented generic JSONL, one-message-per-line grouping, and the fallback for unknown shapes."""

from __future__ import annotations

import json
from pathlib import Path

from selfimprove.traces.formats import generic
from selfimprove.traces.model import Feedback, Message, ToolCall
from selfimprove.traces.read import read_traces


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_documented_example(tmp_path: Path) -> None:
    # the example of the module docstring, verbatim
    doc = generic.__doc__ or ""
    start = doc.index('{"id": "ticket-4711"')
    block = doc[start : doc.index("\n\n", start)]
    text = "\n".join(line.split("  # ")[0] for line in block.splitlines())
    record = json.loads(text.replace("\\\\", "\\"))
    path = write_jsonl(tmp_path / "traces.jsonl", [record])
    [trace] = list(read_traces([path]))
    assert trace.id == "ticket-4711"
    assert trace.messages == (
        Message("system", "You are a support agent."),
        Message("user", "Where is my order?"),
        Message("assistant", "", (ToolCall("lookup", {"id": 7}, "c1"),)),
        Message("tool", "timeout", tool_call_id="c1", is_error=True, name="lookup"),
        Message("assistant", "Sorry, I could not find it."),
    )
    assert trace.feedback == (
        Feedback("thumbs", -1, "didn't help", False),
        Feedback("label", "failure", None, False, "outcome"),
    )
    assert trace.prompt_version == "v12"
    assert trace.started_at is not None and trace.started_at.isoformat() == "2025-06-01T12:00:00+00:00"
    assert trace.metadata["user_tier"] == "gold"


def test_feedback_with_explicit_kinds_and_lists(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [
            {
                "id": "abcdef-1",
                "messages": [{"role": "user", "content": "x"}],
                "feedback": [
                    {"kind": "thumbs", "value": 1},
                    {"key": "helpfulness", "score": 0.2, "comment": "meh"},
                ],
                "outcome": {"reward": 0},
            },
        ],
    )
    [trace] = list(read_traces([path]))
    assert trace.feedback == (
        Feedback("thumbs", 1, None, True),
        Feedback("score", 0.2, "meh", None, "helpfulness"),
        Feedback("reward", 0.0),
    )


def test_one_message_per_line_grouped_by_id(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "msgs.jsonl",
        [
            {"trace_id": "conv-aaaa", "role": "user", "content": "hi", "timestamp": "2025-01-01T00:00:00Z"},
            {"session_id": "conv-bbbb", "role": "user", "content": "yo"},
            {"trace_id": "conv-aaaa", "role": "assistant", "content": "hello"},
            {"session_id": "conv-bbbb", "role": "assistant", "content": "sup", "thumbs": -1},
            {"trace_id": "conv-aaaa", "role": "user", "content": "bye", "prompt_version": "p2"},
        ],
    )
    stream = read_traces([path])
    traces = list(stream)
    assert [t.id for t in traces] == ["conv-aaaa", "conv-bbbb"]
    assert [t.source for t in traces] == [f"{path}:1", f"{path}:2"]
    assert traces[0].messages == (
        Message("user", "hi"),
        Message("assistant", "hello"),
        Message("user", "bye"),
    )
    assert traces[0].prompt_version == "p2"
    assert traces[1].feedback == (Feedback("thumbs", -1, None, False),)
    assert stream.sources[0].format == "generic"


def test_unknown_shapes_with_messages_somewhere(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "sharegpt.jsonl",
        [
            {
                "uid": 1,
                "conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}],
                "result": "failure",
            },
            {
                "uid": 2,
                "data": {"turns": [{"speaker": "customer", "text": "c"}, {"speaker": "bot", "text": "d"}]},
            },
            {
                "uid": 3,
                "dialog": [
                    {"type": "human", "data": {"content": "e"}},
                    {"type": "ai", "data": {"content": "f"}},
                ],
            },
            {"uid": 4, "nothing": "here"},
        ],
    )
    stream = read_traces([path])
    traces = list(stream)
    assert [[(m.role, m.content) for m in t.messages] for t in traces] == [
        [("user", "a"), ("assistant", "b")],
        [("user", "c"), ("assistant", "d")],
        [("user", "e"), ("assistant", "f")],
    ]
    assert traces[0].feedback == (Feedback("label", "failure", None, False, "result"),)
    [report] = stream.sources
    assert (report.traces, report.skipped, report.errors) == (3, 1, [(4, "no messages")])


def test_file_without_any_messages_is_ignored(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "labels.jsonl", [{"trajectory_id": 1, "failures": []}, {"x": 2}])
    stream = read_traces([path])
    assert list(stream) == []
    [report] = stream.sources
    assert (report.status, report.reason, report.skipped) == (
        "ignored",
        "no traces in 2 records (no messages)",
        0,
    )


def test_shapes_from_other_projects(tmp_path: Path) -> None:
    responses = {  # OpenAI Responses API log
        "id": "resp_abcdef",
        "model": "gpt-4.1",
        "instructions": "be nice",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "weather in Paris?"}]},
            {
                "type": "function_call",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
                "call_id": "fc1",
            },
            {"type": "reasoning", "summary": []},
            {"type": "function_call_output", "call_id": "fc1", "output": "sunny"},
        ],
        "output": [
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "It is sunny."}],
            }
        ],
    }
    gemini = {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"r": 2}}}]},
        ]
    }
    single = {"prompt": "2+2?", "completion": "4", "label": "good"}
    nested = {"event": {"payload": {"chat": {"history": [{"role": "user", "content": "deep"}]}}}}
    path = write_jsonl(tmp_path / "mixed.jsonl", [responses, gemini, single, nested])
    traces = list(read_traces([path]))
    assert traces[0].messages == (
        Message("system", "be nice"),
        Message("user", "weather in Paris?"),
        Message("assistant", "", (ToolCall("get_weather", {"city": "Paris"}, "fc1"),)),
        Message("tool", "sunny", tool_call_id="fc1", name="get_weather"),
        Message("assistant", "It is sunny."),
    )
    assert traces[1].messages == (
        Message("user", "hi"),
        Message("assistant", "", (ToolCall("f", {"a": 1}),)),
        Message("tool", '{"r":2}', name="f"),
    )
    assert traces[2].messages == (Message("user", "2+2?"), Message("assistant", "4"))
    assert traces[2].feedback == (Feedback("label", "good", None, True),)
    assert traces[3].messages == (Message("user", "deep"),)
    assert [t.id for t in traces] == ["resp_abcdef", "mixed:2", "mixed:3", "mixed:4"]


def test_langgraph_state_and_checkpoint_keep_their_messages_under_values(tmp_path: Path) -> None:
    def lc(kind: str, **kwargs: object) -> dict[str, object]:  # LangChain's serialisation of a message
        return {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", kind],
                "kwargs": kwargs}

    messages = [
        lc("HumanMessage", content="Find order 123", type="human"),
        lc("AIMessage", content="", type="ai",
           tool_calls=[{"name": "get_order", "args": {"order_id": "123"}, "id": "c1", "type": "tool_call"}]),
        lc("ToolMessage", content="order 123 not found", type="tool", name="get_order", tool_call_id="c1",
           status="error"),
    ]
    checkpoint = {"v": 1, "ts": "2025-01-01T10:00:00+00:00", "id": "ckpt-1",
                  "channel_values": {"messages": messages}, "channel_versions": {"messages": 3}}
    state = {"values": {"messages": messages}, "next": [], "created_at": "2025-01-01T10:00:00+00:00"}
    # the same thread as a checkpoint and as a state: read apart (together they would be one trace)
    traces = [trace for n, record in enumerate([checkpoint, state])
              for trace in read_traces([write_jsonl(tmp_path / f"thread{n}.jsonl", [record])])]
    expected = (
        Message("user", "Find order 123"),
        Message("assistant", "", (ToolCall("get_order", {"order_id": "123"}, "c1"),)),
        Message("tool", "order 123 not found", tool_call_id="c1", is_error=True, name="get_order"),
    )
    assert [t.messages for t in traces] == [expected, expected]
    assert traces[0].id == "ckpt-1"
