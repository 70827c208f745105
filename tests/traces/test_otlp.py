"""OTLP JSON reader: real captures, every GenAI content style, grouping, errors, evaluation labels."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from selfimprove.traces.formats.otlp import READER, any_value, key_values
from selfimprove.traces.model import Feedback, Message, ToolCall, Trace
from selfimprove.traces.read import SourceReport, read_traces

T0 = 1_700_000_000_000_000_000
DATA = Path(__file__).resolve().parents[1] / "data" / "traces" / "otlp"


def read(path: Path) -> tuple[list[Trace], SourceReport]:
    report = SourceReport(path=str(path), format="otlp")
    return list(READER.read(path, report)), report


def kv(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, value in attrs.items():
        if isinstance(value, bool):
            v: dict[str, Any] = {"boolValue": value}
        elif isinstance(value, int):
            v = {"intValue": str(value)}
        elif isinstance(value, float):
            v = {"doubleValue": value}
        elif isinstance(value, list):
            v = {"arrayValue": {"values": [{"stringValue": x} for x in value]}}
        else:
            v = {"stringValue": value}
        out.append({"key": key, "value": v})
    return out


def span(
    trace_id: str,
    span_id: str,
    name: str,
    attrs: dict[str, Any],
    *,
    parent: str | None = None,
    start: int = T0,
    status: Any = None,
    kind: Any = 3,
    events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 1000),
        "attributes": kv(attrs),
    }
    if parent:
        out["parentSpanId"] = parent
    if status is not None:
        out["status"] = (
            {"code": status, "message": "boom"} if status in (2, "STATUS_CODE_ERROR") else {"code": status}
        )
    if events:
        out["events"] = [
            {"name": e["name"], "timeUnixNano": str(start), "attributes": kv(e.get("attributes", {}))}
            for e in events
        ]
    return out


def request(*spans: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": kv({"service.name": "support-bot", "service.version": "2026.11.3"})
                },
                "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}],
            }
        ]
    }


def shape(trace: Trace) -> list[tuple[Any, ...]]:
    return [
        (m.role, m.content, tuple((c.name, c.arguments) for c in m.tool_calls), m.tool_call_id, m.is_error)
        for m in trace.messages
    ]


EXPECTED_SUPPORT = [
    ("system", "You are a support agent. Use the tools you are given.", (), None, False),
    ("user", "Where is order A-1187?", (), None, False),
    ("assistant", "", (("lookup_order", {"order_id": "A-1187"}),), None, False),
]


def test_real_otel_openai_v2_capture() -> None:
    traces, report = read(DATA / "raw-otel-openai-v2.in.json")
    assert report.skipped == 0 and report.errors == []
    [trace] = traces
    assert trace.id == "053074667b1113278073667614bb3e19"
    assert trace.format == "otlp"
    assert trace.source == f"{DATA / 'raw-otel-openai-v2.in.json'}:46"
    assert trace.started_at == datetime(2026, 9, 7, 14, 41, 14, 27616, tzinfo=timezone.utc)
    assert shape(trace) == EXPECTED_SUPPORT
    assert trace.messages[2].tool_calls == (
        ToolCall("lookup_order", {"order_id": "A-1187"}, "call_9RtYbK2mXqLp"),
    )
    assert trace.metadata["model"] == "gpt-4o-mini" and trace.metadata["service"] == "capture"
    assert trace.feedback == ()


def test_openinference_capture_of_the_same_call_gives_the_same_conversation() -> None:
    traces, report = read(DATA / "openinference-openai.in.json")
    assert report.skipped == 0
    [trace] = traces
    assert trace.id == "9ed94f9bdc36b397e11c51f77d49e01a"
    assert shape(trace) == EXPECTED_SUPPORT


def test_any_value_decodes_every_otlp_value_kind() -> None:
    assert any_value({"intValue": "1024"}) == 1024
    assert any_value({"doubleValue": 0.5}) == 0.5
    assert any_value({"boolValue": True}) is True
    assert any_value({"arrayValue": {"values": [{"stringValue": "stop"}, {"intValue": "2"}]}}) == ["stop", 2]
    assert any_value({"kvlistValue": {"values": [{"key": "a", "value": {"stringValue": "b"}}]}}) == {"a": "b"}
    assert any_value({"bytesValue": "aGk="}) == "hi"
    assert key_values([{"key": "x", "value": {"intValue": "7"}}, {"bogus": 1}]) == {"x": 7}


def test_agent_run_across_jsonl_requests_is_one_deduplicated_trace(tmp_path: Path) -> None:
    tid = "aa" * 16
    sys_user = json.dumps(
        [
            {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
            {"role": "user", "parts": [{"type": "text", "content": "Refund order 42"}]},
        ]
    )
    call = {"type": "tool_call", "id": "c1", "name": "refund", "arguments": {"order": 42}}
    first = span(
        tid,
        "02",
        "chat gpt-4o",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.input.messages": sys_user,
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [call]}]),
        },
        parent="01",
        start=T0 + 2_000,
    )
    tool = span(
        tid,
        "03",
        "execute_tool refund",
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "refund",
            "gen_ai.tool.call.id": "c1",
            "gen_ai.tool.call.result": "order 42 is not refundable: payment pending",
        },
        parent="01",
        start=T0 + 3_000,
        status="STATUS_CODE_ERROR",
        kind="SPAN_KIND_INTERNAL",
    )
    second = span(
        tid,
        "04",
        "chat gpt-4o",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
            "gen_ai.input.messages": json.dumps(
                [
                    {"role": "user", "parts": [{"type": "text", "content": "Refund order 42"}]},
                    {"role": "assistant", "parts": [call]},
                    {
                        "role": "tool",
                        "parts": [
                            {
                                "type": "tool_call_response",
                                "id": "c1",
                                "response": "order 42 is not refundable: payment pending",
                            }
                        ],
                    },
                ]
            ),
            "gen_ai.output.messages": json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": "Sorry, I cannot refund it yet."}],
                        "finish_reason": "stop",
                    }
                ]
            ),
        },
        parent="01",
        start=T0 + 4_000,
    )
    root = span(
        tid,
        "01",
        "invoke_agent support",
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support"},
        start=T0 + 1_000,
    )
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(json.dumps(request(*s)) for s in ([root, first], [tool], [second])) + "\n")
    traces, report = read(path)
    assert report.skipped == 0
    [trace] = traces
    assert trace.id == tid
    assert trace.source == f"{path}:1"
    assert shape(trace) == [
        ("system", "Be brief.", (), None, False),
        ("user", "Refund order 42", (), None, False),
        ("assistant", "", (("refund", {"order": 42}),), None, False),
        ("tool", "order 42 is not refundable: payment pending", (), "c1", True),
        ("assistant", "Sorry, I cannot refund it yet.", (), None, False),
    ]
    assert trace.feedback == ()  # a tool error is a signal for analysis, not a run-level status
    assert trace.started_at == datetime(2023, 11, 14, 22, 13, 20, 1, tzinfo=timezone.utc)
    assert trace.prompt_version == "2026.11.3"
    assert trace.metadata["agent"] == "support" and trace.metadata["spans"] == 4


def test_deprecated_events_indexed_prompts_status_and_evaluation(tmp_path: Path) -> None:
    events = span(
        "bb" * 16,
        "01",
        "chat gpt-4",
        {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4"},
        status=2,
        kind=3,
        events=[
            {
                "name": "gen_ai.system.message",
                "attributes": {"gen_ai.event.content": json.dumps({"content": "You sell shoes."})},
            },
            {"name": "gen_ai.user.message", "attributes": {"content": "Do you have size 47?"}},
            {
                "name": "gen_ai.choice",
                "attributes": {
                    "gen_ai.event.content": json.dumps(
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "We stop at 46."},
                        }
                    )
                },
            },
            {
                "name": "gen_ai.evaluation.result",
                "attributes": {
                    "gen_ai.evaluation.name": "helpfulness",
                    "gen_ai.evaluation.score.label": "fail",
                    "gen_ai.evaluation.score.value": 0.2,
                    "gen_ai.evaluation.explanation": "no alternative",
                },
            },
        ],
    )
    indexed = span(
        "cc" * 16,
        "01",
        "openai.chat",
        {
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "What is 2+2?",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "",
            "gen_ai.completion.0.tool_calls.0.name": "calc",
            "gen_ai.completion.0.tool_calls.0.arguments": '{"x": "2+2"}',
            "gen_ai.completion.0.tool_calls.0.id": "t1",
        },
        status="STATUS_CODE_OK",
        kind="SPAN_KIND_CLIENT",
    )
    path = tmp_path / "deprecated.json"
    path.write_text(json.dumps([request(events), request(indexed)], indent=1))
    traces, report = read(path)
    assert report.skipped == 0
    by_id = {t.id: t for t in traces}
    shoes = by_id["bb" * 16]
    assert shape(shoes) == [
        ("system", "You sell shoes.", (), None, False),
        ("user", "Do you have size 47?", (), None, False),
        ("assistant", "We stop at 46.", (), None, False),
    ]
    assert shoes.feedback == (
        Feedback(kind="label", value="fail", comment="no alternative", passed=False, name="helpfulness"),
        Feedback(kind="status", value="error", comment="boom", passed=False, name="chat gpt-4"),
    )
    calc = by_id["cc" * 16]
    assert shape(calc) == [
        ("user", "What is 2+2?", (), None, False),
        ("assistant", "", (("calc", {"x": "2+2"}),), None, False),
    ]
    assert calc.feedback == ()


def test_bad_spans_and_lines_are_skipped_with_line_and_reason(tmp_path: Path) -> None:
    good = request(
        span(
            "dd" * 16,
            "01",
            "chat",
            {"gen_ai.operation.name": "chat", "gen_ai.input.messages": '[{"role":"user","content":"hi"}]'},
        )
    )
    no_trace = request({"spanId": "02", "name": "orphan"})
    path = tmp_path / "mixed.jsonl.gz"
    lines = [json.dumps(good), "{not json", json.dumps(no_trace), json.dumps({"hello": "world"})]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    report = SourceReport(path=str(path))
    traces = list(READER.read(path, report))
    report.settle()
    assert [t.id for t in traces] == ["dd" * 16]
    assert shape(traces[0]) == [("user", "hi", (), None, False)]
    assert report.skipped == 3
    assert [line for line, _ in report.errors] == [2, 3, 4]
    assert report.errors[0][1].startswith("not valid JSON")
    assert report.errors[1][1] == "span without traceId"
    assert report.errors[2][1] == "not an OTLP export request (no resourceSpans or resourceLogs)"


def test_sniff_claims_otlp_and_nothing_else(shared_traces: Path) -> None:
    otlp_file = DATA / "raw-otel-openai-v2.in.json"
    assert READER.sniff(otlp_file, otlp_file.read_bytes()[:65536]) == 90
    assert READER.sniff(otlp_file, gzip.compress(otlp_file.read_bytes())[:65536]) == 90
    for other in (
        "langsmith/langsmith_py_wrap_openai_.json",
        "openinference-fixtures/vercel-v6-spans/all-spans.json",
        "langfuse-framework-traces/koog-2025-08-26.trace.json",
        "agentrx/tau_retail/tau_dataset_failed.json",
    ):
        path = shared_traces / other
        assert READER.sniff(path, path.read_bytes()[:65536]) == 0, other


def test_shared_otlp_folder_reads_fully(shared_traces: Path) -> None:
    stream = read_traces([shared_traces / "otlp"])
    traces = list(stream)
    counts = {Path(s.path).name: (s.format, s.traces, s.skipped) for s in stream.sources}
    assert counts == {
        "openinference-openai.in.json": ("otlp", 1, 0),
        "raw-otel-openai-v2.in.json": ("otlp", 1, 0),
        "otlp-proto-example-trace.json": ("otlp", 1, 0),
    }
    example = next(t for t in traces if t.id == "5b8efff798038103d269b633813fc60c")
    assert example.messages == () and example.metadata["root_span"] == "I'm a server span"
    assert all(isinstance(m, Message) for t in traces for m in t.messages)


def test_trace_groups_emit_the_longest_idle_traces_when_full() -> None:
    from selfimprove.traces.formats.grouping import TraceGroups
    from selfimprove.traces.formats.span_attributes import SpanView

    def view(text: str) -> SpanView:
        return SpanView(span_id=text, kind="llm", inputs=[Message(role="user", content=text * 100)])

    groups = TraceGroups(limit=1000)
    assert groups.add("a", view("a"), 1) == []
    assert groups.add("b", view("b"), 2) == []
    assert [(t, len(v), line) for t, v, line in groups.add("a", view("A"), 0)] == [("b", 1, 2)]
    assert groups.add("c", view("c"), 4)[0][0] == "a"
    assert [(t, line) for t, _, line in groups.drain()] == [("c", 4)]


def test_huge_jsonl_exports_stay_bounded(tmp_path: Path, monkeypatch: Any) -> None:
    from selfimprove.traces.formats import grouping

    monkeypatch.setattr(grouping, "MAX_BUFFERED_CHARS", 20_000)
    left_at_end: list[int] = []
    drain = grouping.TraceGroups.drain

    def spy(self: grouping.TraceGroups) -> Any:
        left_at_end.append(len(self.groups))
        return drain(self)

    monkeypatch.setattr(grouping.TraceGroups, "drain", spy)
    lines = []
    for i in range(200):
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.input.messages": json.dumps([{"role": "user", "content": f"question {i} " + "x" * 500}]),
        }
        lines.append(json.dumps(request(span(f"{i:032x}", "01", "chat", attrs, start=T0 + i))))
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(lines) + "\n")
    seen = []
    report = SourceReport(path=str(path))
    for trace in READER.read(path, report):
        seen.append(trace.id)
    assert seen == [f"{i:032x}" for i in range(200)]
    assert report.skipped == 0
    assert left_at_end and left_at_end[0] < 40  # the rest were emitted while reading


def test_genai_events_exported_as_log_records(tmp_path: Path) -> None:
    tid, sid = "ab" * 16, "cd" * 8

    def record(name: str, body: dict[str, Any], at: int) -> dict[str, Any]:
        return {
            "timeUnixNano": str(T0 + at),
            "traceId": tid,
            "spanId": sid,
            "eventName": name,
            "attributes": kv({"gen_ai.system": "openai"}),
            "body": {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in body.items()]}},
        }

    text = {"stringValue": "Where is my parcel?"}
    logs = {
        "resourceLogs": [
            {
                "resource": {"attributes": kv({"service.name": "shop"})},
                "scopeLogs": [
                    {
                        "scope": {"name": "opentelemetry.instrumentation.openai_v2"},
                        "logRecords": [
                            {
                                "timeUnixNano": str(T0),
                                "body": {"stringValue": "GET /health 200"},
                            },  # an ordinary app log
                            record("gen_ai.user.message", {"content": text}, 1),
                            record(
                                "gen_ai.choice",
                                {
                                    "index": {"intValue": "0"},
                                    "finish_reason": {"stringValue": "stop"},
                                    "message": {
                                        "kvlistValue": {
                                            "values": [
                                                {"key": "role", "value": {"stringValue": "assistant"}},
                                                {
                                                    "key": "content",
                                                    "value": {"stringValue": "It ships today."},
                                                },
                                            ]
                                        }
                                    },
                                },
                                2,
                            ),
                        ],
                    }
                ],
            }
        ]
    }
    spans = request(span(tid, sid, "chat gpt-4o-mini", {"gen_ai.operation.name": "chat"}, start=T0))
    path = tmp_path / "export.jsonl"
    path.write_text(json.dumps(spans) + "\n" + json.dumps(logs) + "\n")
    [trace], report = read(path)
    assert report.skipped == 0
    assert trace.id == tid
    assert shape(trace) == [
        ("user", "Where is my parcel?", (), None, False),
        ("assistant", "It ships today.", (), None, False),
    ]
    assert READER.sniff(path, b'{"resourceLogs": [') == 85
