"""OpenAI chat-message records: tau-bench runs, JSONL/array/single record, outcome fields, recordings."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson

from selfimprove.traces.model import Feedback, Message, ToolCall
from selfimprove.traces.read import read_traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces"
TAU = DATA / "tau-bench" / "tau_retail_2.json"


def read(*paths: Path, **kw):  # type: ignore[no-untyped-def]
    stream = read_traces(list(paths), **kw)
    return list(stream), stream


def test_tau_bench_runs_become_traces_with_their_reward() -> None:
    traces, stream = read(TAU)
    assert [t.id for t in traces] == ["0/0", "2/2"]  # task id / trial, as the file gives them
    assert [t.feedback for t in traces] == [(Feedback("reward", 1.0),), (Feedback("reward", 0.0),)]
    assert all(t.format == "openai" for t in traces)
    assert traces[0].source == f"{TAU}:1"
    assert dict(traces[0].metadata) == {"task_id": 0, "trial": 0, "messages_key": "traj"}
    first = traces[0]
    assert len(first.messages) == 28
    assert [m.role for m in first.messages[:6]] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
    ]
    assert first.messages[4].tool_calls == (
        ToolCall(
            "find_user_id_by_name_zip",
            {"first_name": "Yusuf", "last_name": "Rossi", "zip": "19122"},
            "call_OEikVFXK8h7goki7yiodLeIo",
        ),
    )
    assert first.messages[5] == Message(
        "tool",
        "yusuf_rossi_9620",
        tool_call_id="call_OEikVFXK8h7goki7yiodLeIo",
        name="find_user_id_by_name_zip",
    )
    assert first.messages[2].content.startswith("To assist you with the exchange")
    [report] = stream.sources
    assert (report.format, report.traces, report.skipped, report.errors) == ("openai", 2, 0, [])


def test_same_records_as_jsonl_and_gzip_give_the_same_traces(tmp_path: Path) -> None:
    records = json.loads(TAU.read_text())
    jsonl = tmp_path / "runs.jsonl"
    jsonl.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    gz = tmp_path / "runs2.jsonl.gz"
    gz.write_bytes(gzip.compress(jsonl.read_bytes()))
    from_array, _ = read(TAU)
    from_jsonl, _ = read(jsonl)
    from_gz, stream = read(gz)
    assert [t.messages for t in from_jsonl] == [t.messages for t in from_array]
    assert [t.messages for t in from_gz] == [t.messages for t in from_array]
    assert [t.source for t in from_jsonl] == [f"{jsonl}:1", f"{jsonl}:2"]
    assert [t.id for t in from_gz] == ["0/0", "2/2"]
    assert stream.sources[0].format == "openai"


def test_messages_under_other_keys_and_outcome_fields(tmp_path: Path) -> None:
    lines = [
        {
            "id": "conv-000001",
            "history": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
            ],
            "score": 0.25,
            "feedback": {"thumbs": "down", "comment": "rude"},
        },
        {
            "conversation": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
            "success": False,
            "label": "incorrect",
            "prompt_version": "v7",
            "timestamp": 1717243200,
        },
        {"messages": [{"role": "user", "content": "q"}], "thumbs_up": True, "reward": "0.5"},
    ]
    path = tmp_path / "chats.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    traces, _ = read(path)
    assert [t.id for t in traces] == ["conv-000001", "chats:2", "chats:3"]  # no id field: file:line
    assert traces[0].messages == (Message("user", "hi"), Message("assistant", "hello"))
    assert traces[0].feedback == (Feedback("score", 0.25), Feedback("thumbs", -1, "rude", False))
    assert traces[1].feedback == (
        Feedback("success", False, passed=False),
        Feedback("label", "incorrect", passed=False),
    )
    assert traces[1].prompt_version == "v7"
    assert (
        traces[1].started_at is not None and traces[1].started_at.isoformat() == "2024-06-01T12:00:00+00:00"
    )
    assert traces[2].feedback == (Feedback("reward", 0.5), Feedback("thumbs", 1, passed=True))


def test_request_response_log_and_recording() -> None:
    traces, stream = read(DATA / "provider-native" / "openai_chat_agno_failing_tool.json")
    [trace] = traces
    assert trace.format == "openai"
    assert [m.role for m in trace.messages] == ["user", "assistant", "tool", "assistant"]
    assert trace.messages[1].tool_calls == (
        ToolCall("unreliable_search", {"query": "Python tutorials"}, "call_llgjFMkgf1Ye6zguvv9zXtDq"),
    )
    assert trace.messages[2].content == "Search service unavailable for: Python tutorials"
    assert trace.messages[2].name == "unreliable_search"
    assert trace.metadata["finish_reason"] == "stop"


def test_record_with_separate_response(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text(
        json.dumps(
            {
                "request": {
                    "model": "gpt-4o",
                    "messages": [
                        {"role": "system", "content": "be brief"},
                        {"role": "user", "content": "2+2?"},
                    ],
                },
                "response": {
                    "choices": [{"message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}]
                },
                "status": "error",
            }
        )
        + "\n"
    )
    [trace], _ = read(path)
    assert trace.messages == (
        Message("system", "be brief"),
        Message("user", "2+2?"),
        Message("assistant", "4"),
    )
    assert trace.feedback == (Feedback("status", "error"),)


def test_format_forced(tmp_path: Path) -> None:
    traces, stream = read(TAU, format="openai")
    assert len(traces) == 2 and stream.sources[0].format == "openai"
