"""LangSmith reader: ingestion payloads, run lists and trees, LangChain messages, errors and feedback."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from selfimprove.traces.formats.langsmith import READER
from selfimprove.traces.model import Feedback, Trace
from selfimprove.traces.read import SourceReport, read_traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces" / "langsmith"


def read(path: Path) -> tuple[list[Trace], SourceReport]:
    report = SourceReport(path=str(path), format="langsmith")
    return list(READER.read(path, report)), report


def shape(trace: Trace) -> list[tuple[Any, ...]]:
    return [
        (m.role, m.content, tuple((c.name, c.arguments) for c in m.tool_calls), m.tool_call_id, m.is_error)
        for m in trace.messages
    ]


def lc(cls: str, **kwargs: Any) -> dict[str, Any]:
    return {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", cls], "kwargs": kwargs}


def test_js_payload_patch_matched_by_dotted_order() -> None:
    [trace], report = read(DATA / "langsmith_js_wrap_openai_default.json")
    assert report.skipped == 0
    assert trace.id == "dc34609e-3eeb-459d-bc2a-6fedb01d2e6e"
    assert trace.format == "langsmith"
    assert shape(trace) == [
        ("user", "howdy", (), None, False),
        ("assistant", "Howdy! How can I assist you today?", (), None, False),
    ]
    assert trace.started_at == datetime(2024, 10, 13, 7, 5, 37, 170000, tzinfo=timezone.utc)
    assert trace.metadata["model"] == "gpt-4o-mini" and trace.metadata["project"] == "default"
    assert trace.feedback == ()


def test_python_payload_with_revision_as_prompt_version() -> None:
    [trace], _ = read(DATA / "langsmith_py_wrap_openai_.json")
    assert trace.id == "d0d84d31-923d-4cb5-94a8-40a0a0087578"
    assert [m.role for m in trace.messages] == ["user", "assistant"]
    assert trace.prompt_version == "v0.1.82-381-g03d9e1a-dirty"
    assert trace.started_at == datetime(2024, 10, 11, 20, 58, 23, 298773, tzinfo=timezone.utc)


def agent_runs() -> list[dict[str, Any]]:
    tid = "11111111-1111-1111-1111-111111111111"
    history = [
        lc("SystemMessage", content="You book flights."),
        lc("HumanMessage", content="Book LHR to JFK"),
    ]
    call = {"name": "search_flights", "args": {"from": "LHR", "to": "JFK"}, "id": "call_1"}
    return [
        {
            "id": tid,
            "trace_id": tid,
            "name": "AgentExecutor",
            "run_type": "chain",
            "start_time": "2026-03-01T09:00:00Z",
            "inputs": {"input": "Book LHR to JFK"},
            "outputs": None,
            "error": "GraphRecursionError: Recursion limit of 25 reached",
            "feedback_stats": {"user_score": {"n": 2, "avg": 0.0}},
            "feedback": [
                {"key": "thumbs", "score": 0, "comment": "it never booked"},
                {"key": "correctness", "value": "incorrect"},
            ],
        },
        {
            "id": "r2",
            "trace_id": tid,
            "parent_run_id": tid,
            "name": "ChatOpenAI",
            "run_type": "llm",
            "start_time": "2026-03-01T09:00:01Z",
            "inputs": {"messages": [history]},
            "outputs": {
                "generations": [[{"text": "", "message": lc("AIMessage", content="", tool_calls=[call])}]]
            },
        },
        {
            "id": "r3",
            "trace_id": tid,
            "parent_run_id": tid,
            "name": "search_flights",
            "run_type": "tool",
            "start_time": "2026-03-01T09:00:02Z",
            "inputs": {"input": "{'from': 'LHR', 'to': 'JFK'}"},
            "outputs": None,
            "error": "TimeoutError: upstream took 30s",
        },
        {
            "id": "r4",
            "trace_id": tid,
            "parent_run_id": tid,
            "name": "ChatOpenAI",
            "run_type": "llm",
            "start_time": "2026-03-01T09:00:33Z",
            "inputs": {
                "messages": [
                    [
                        *history,
                        lc("AIMessage", content="", tool_calls=[call]),
                        lc(
                            "ToolMessage",
                            content="TimeoutError: upstream took 30s",
                            tool_call_id="call_1",
                            status="error",
                        ),
                    ]
                ]
            },
            "outputs": {
                "generations": [
                    [
                        {
                            "text": "Sorry, the search is down.",
                            "message": lc("AIMessage", content="Sorry, the search is down."),
                        }
                    ]
                ]
            },
        },
    ]


def test_run_list_with_langchain_messages_errors_and_feedback(tmp_path: Path) -> None:
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(agent_runs(), indent=2))
    [trace], report = read(path)
    assert report.skipped == 0
    assert trace.id == "11111111-1111-1111-1111-111111111111"
    assert shape(trace) == [
        ("system", "You book flights.", (), None, False),
        ("user", "Book LHR to JFK", (), None, False),
        ("assistant", "", (("search_flights", {"from": "LHR", "to": "JFK"}),), None, False),
        ("tool", "TimeoutError: upstream took 30s", (), "call_1", True),
        ("assistant", "Sorry, the search is down.", (), None, False),
    ]
    assert trace.feedback == (
        Feedback(kind="score", value=0.0, comment="it never booked", name="thumbs"),
        Feedback(kind="label", value="incorrect", passed=False, name="correctness"),
        Feedback(kind="score", value=0.0, comment="average of 2", name="user_score"),
        Feedback(
            kind="status",
            value="error",
            comment="GraphRecursionError: Recursion limit of 25 reached",
            passed=False,
            name="AgentExecutor",
        ),
    )
    assert trace.started_at == datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def test_nested_child_runs_and_jsonl_with_a_bad_line(tmp_path: Path) -> None:
    root, *children = agent_runs()
    tree = dict(
        root,
        child_runs=[{k: v for k, v in c.items() if k not in ("trace_id", "parent_run_id")} for c in children],
    )
    other = {
        "id": "22222222-2222-2222-2222-222222222222",
        "run_type": "llm",
        "name": "ChatAnthropic",
        "start_time": 1772355600000,
        "inputs": {"messages": [{"role": "user", "content": "hello"}]},
        "outputs": {"content": [{"type": "text", "text": "Hi!"}], "role": "assistant"},
    }
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(tree) + "\n{oops\n" + json.dumps(other) + "\n")
    traces, report = read(path)
    assert [t.id for t in traces] == [
        "11111111-1111-1111-1111-111111111111",
        "22222222-2222-2222-2222-222222222222",
    ]
    assert len(traces[0].messages) == 5 and traces[0].messages[3].is_error
    assert shape(traces[1]) == [("user", "hello", (), None, False), ("assistant", "Hi!", (), None, False)]
    assert traces[1].source == f"{path}:3"
    assert report.skipped == 1 and report.errors[0][0] == 2


def test_sniff(shared_traces: Path) -> None:
    js = DATA / "langsmith_js_wrap_openai_default.json"
    assert READER.sniff(js, js.read_bytes()[:65536]) == 90
    for other in (
        "otlp/genai-interlingua/raw-otel-openai-v2.in.json",
        "langfuse-framework-traces/langgraph-python-2025-08-22.trace.json",
        "openinference-fixtures/vercel-v6-spans/all-spans.json",
    ):
        path = shared_traces / other
        assert READER.sniff(path, path.read_bytes()[:65536]) == 0, other


def test_shared_langsmith_folder_reads_fully(shared_traces: Path) -> None:
    stream = read_traces([shared_traces / "langsmith"])
    traces = list(stream)
    assert {Path(s.path).name: (s.format, s.traces, s.skipped) for s in stream.sources} == {
        "langsmith_js_wrap_openai_default.json": ("langsmith", 1, 0),
        "langsmith_js_wrap_openai_stream.json": ("langsmith", 1, 0),
        "langsmith_py_wrap_openai_.json": ("langsmith", 1, 0),
        "langsmith_py_wrap_openai_reasoning.json": ("langsmith", 1, 0),
        "langsmith_py_wrap_openai_stream.json": ("langsmith", 1, 0),
        "langsmith_py_wrap_openai_stream_no_usage.json": ("langsmith", 1, 0),
    }
    assert all([m.role for m in t.messages] == ["user", "assistant"] for t in traces)
    assert all(t.messages[1].content for t in traces)


def test_many_runs_are_emitted_in_bounded_batches(tmp_path: Path, monkeypatch: Any) -> None:
    from selfimprove.traces.formats import langsmith

    monkeypatch.setattr(langsmith, "MAX_BUFFERED_RUNS", 10)
    runs = []
    for i in range(30):
        tid = f"00000000-0000-0000-0000-{i:012d}"
        runs.append(
            {
                "id": tid,
                "trace_id": tid,
                "run_type": "llm",
                "name": "llm",
                "inputs": {"messages": [{"role": "user", "content": f"q{i}"}]},
                "outputs": {"choices": [{"message": {"role": "assistant", "content": f"a{i}"}}]},
            }
        )
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in runs) + "\n")
    traces, report = read(path)
    assert sorted(t.messages[0].content for t in traces) == sorted(f"q{i}" for i in range(30))
    assert [t.messages[1].content for t in traces if t.messages[0].content == "q7"] == ["a7"]
    assert len({t.id for t in traces}) == 30 and report.skipped == 0


def test_feedback_records_exported_beside_runs_join_their_trace(tmp_path: Path) -> None:
    runs = agent_runs()
    records = [
        {"id": "f1", "run_id": "r4", "key": "user_feedback", "score": 0, "comment": "wrong flight"},
        {"id": "f2", "run_id": "r2", "key": "fix", "correction": {"output": "search with a date"}},
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps([records[0], *runs, records[1]]))
    [trace], report = read(path)
    assert report.skipped == 0
    added = [f for f in trace.feedback if f.name in ("user_feedback", "fix")]
    assert added == [
        Feedback(kind="score", value=0.0, comment="wrong flight", name="user_feedback"),
        Feedback(
            kind="label",
            value="correction",
            comment='{"output":"search with a date"}',
            passed=False,
            name="fix",
        ),
    ]
    assert trace.feedback[-1].kind == "status"  # the run error still closes the list
