"""Flat span reader: OpenInference, OTel GenAI current/deprecated attribute maps, Vercel AI SDK spans."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from selfimprove.traces.formats.openinference import READER, flatten
from selfimprove.traces.model import Feedback, Trace
from selfimprove.traces.read import SourceReport, read_traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces" / "openinference"


def read(path: Path) -> tuple[list[Trace], SourceReport]:
    report = SourceReport(path=str(path), format="openinference")
    return list(READER.read(path, report)), report


def shape(trace: Trace) -> list[tuple[Any, ...]]:
    return [
        (
            m.role,
            m.content,
            tuple((c.name, c.arguments, c.id) for c in m.tool_calls),
            m.tool_call_id,
            m.is_error,
        )
        for m in trace.messages
    ]


PARIS = [
    ("user", "Weather in Paris?", (), None, False),
    (
        "assistant",
        "Absolutely! Let me check the weather for you.",
        (("get_weather", {"location": "Paris"}, "1234"),),
        None,
        False,
    ),
    ("tool", "rainy, 57°F", (), "1234", False),
    ("assistant", "The weather in Paris is currently rainy with a temperature of 57°F.", (), None, False),
]


def test_three_attribute_styles_give_the_same_conversation() -> None:
    for name in (
        "otel_genai_client_span_tool_calls.json",
        "otel_genai_deprecated_client_span_tool_calls.json",
        "openinference_client_span_tool_calls.json",
    ):
        traces, report = read(DATA / name)
        assert report.skipped == 0, name
        [trace] = traces
        assert trace.id == name.split(".")[0]
        assert trace.source == f"{DATA / name}:1"
        assert trace.format == "openinference"
        assert shape(trace) == PARIS, name


def test_tool_execution_span_alone_is_a_tool_result() -> None:
    [trace], _ = read(DATA / "otel_genai_tool_execution_span.json")
    [message] = trace.messages
    assert (message.role, message.name, message.tool_call_id) == ("tool", "get_weather", "1234")
    assert json.loads(message.content)["status"] == "success"


def test_vercel_ai_sdk_spans() -> None:
    traces, report = read(DATA / "ai-generateText-doGenerate.json")
    assert report.skipped == 0
    assert [t.id for t in traces] == ["b3e700af9eab81e19f72f964d62a35af", "edff2fc5854be6170e8cccccec0c82cf"]
    haiku, math = traces
    assert shape(haiku) == [
        ("user", "Write a haiku about programming.", (), None, False),
        (
            "assistant",
            "Lines of code align,  \nLogic dances through the night—  \nDreams in data flow.",
            (),
            None,
            False,
        ),
    ]
    assert [(m.role, m.content) for m in math.messages] == [
        ("system", "You are a helpful assistant."),
        ("user", "What is 2 + 2?"),
        ("assistant", "2 + 2 equals 4."),
        ("user", "And what is 3 + 3?"),
        ("assistant", "3 + 3 equals 6."),
    ]
    assert haiku.started_at == datetime(2026, 2, 3, 15, 19, 52, 242000, tzinfo=timezone.utc)
    assert haiku.metadata["model"] == "gpt-4o-mini" and haiku.metadata["provider"] == "openai.responses"
    assert haiku.source == f"{DATA / 'ai-generateText-doGenerate.json'}:5"


def test_vercel_tool_call_spans_and_error_status(tmp_path: Path) -> None:
    tid = "ee" * 16
    spans = [
        {
            "name": "ai.generateText",
            "spanContext": {"traceId": tid, "spanId": "01"},
            "startTime": [1770000000, 0],
            "status": {"code": 2, "message": "AI_APICallError: overloaded"},
            "attributes": {
                "ai.operationId": "ai.generateText",
                "ai.prompt": json.dumps({"prompt": "Weather in SF?"}),
                "ai.response.text": "It is 64°F in San Francisco.",
            },
        },
        {
            "name": "ai.generateText.doGenerate",
            "spanContext": {"traceId": tid, "spanId": "02"},
            "parentSpanId": "01",
            "startTime": [1770000001, 0],
            "status": {"code": 0},
            "attributes": {
                "ai.prompt.messages": json.dumps(
                    [{"role": "user", "content": [{"type": "text", "text": "Weather in SF?"}]}]
                ),
                "ai.response.toolCalls": json.dumps(
                    [{"toolCallId": "c9", "toolName": "getWeather", "input": '{"city": "SF"}'}]
                ),
            },
        },
        {
            "name": "ai.toolCall",
            "spanContext": {"traceId": tid, "spanId": "03"},
            "parentSpanId": "01",
            "startTime": [1770000002, 0],
            "status": {"code": 2, "message": "fetch failed"},
            "attributes": {
                "ai.toolCall.name": "getWeather",
                "ai.toolCall.id": "c9",
                "ai.toolCall.args": '{"city": "SF"}',
            },
        },
        {
            "name": "ai.generateText.doGenerate",
            "spanContext": {"traceId": tid, "spanId": "04"},
            "parentSpanId": "01",
            "startTime": [1770000003, 0],
            "status": {"code": 0},
            "attributes": {
                "ai.prompt.messages": json.dumps(
                    [
                        {"role": "user", "content": [{"type": "text", "text": "Weather in SF?"}]},
                        {
                            "role": "assistant",
                            "content": [
                                {
                                    "type": "tool-call",
                                    "toolCallId": "c9",
                                    "toolName": "getWeather",
                                    "input": {"city": "SF"},
                                }
                            ],
                        },
                        {
                            "role": "tool",
                            "content": [
                                {
                                    "type": "tool-result",
                                    "toolCallId": "c9",
                                    "toolName": "getWeather",
                                    "output": {"type": "text", "value": "fetch failed"},
                                }
                            ],
                        },
                    ]
                ),
                "ai.response.text": "It is 64°F in San Francisco.",
            },
        },
    ]
    path = tmp_path / "spans.json"
    path.write_text(json.dumps(spans, indent=2))
    [trace], report = read(path)
    assert report.skipped == 0
    assert shape(trace) == [
        ("user", "Weather in SF?", (), None, False),
        ("assistant", "", (("getWeather", {"city": "SF"}, "c9"),), None, False),
        ("tool", "fetch failed", (), "c9", True),
        ("assistant", "It is 64°F in San Francisco.", (), None, False),
    ]
    assert trace.feedback == (
        Feedback(
            kind="status",
            value="error",
            comment="AI_APICallError: overloaded",
            passed=False,
            name="ai.generateText",
        ),
    )


def test_phoenix_style_nested_attributes_and_jsonl(tmp_path: Path) -> None:
    rows = [
        {
            "name": "ChatCompletion",
            "context": {"trace_id": "t-1", "span_id": "s-2"},
            "parent_id": "s-1",
            "start_time": "2026-01-05T10:00:01+00:00",
            "status_code": "OK",
            "attributes": {
                "openinference": {"span": {"kind": "LLM"}},
                "llm": {
                    "input_messages": [{"message": {"role": "user", "content": "cancel my plan"}}],
                    "output_messages": [
                        {"message": {"role": "assistant", "content": "Done, it is cancelled."}}
                    ],
                },
            },
        },
        {
            "name": "agent",
            "context": {"trace_id": "t-1", "span_id": "s-1"},
            "parent_id": None,
            "start_time": "2026-01-05T10:00:00+00:00",
            "status_code": "ERROR",
            "status_message": "timeout",
            "attributes": {"openinference.span.kind": "AGENT", "input.value": "cancel my plan"},
        },
        "not a span",
    ]
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    [trace], report = read(path)
    assert trace.id == "t-1"
    assert [(m.role, m.content) for m in trace.messages] == [
        ("user", "cancel my plan"),
        ("assistant", "Done, it is cancelled."),
    ]
    assert trace.started_at == datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)
    assert [f.value for f in trace.feedback] == ["error"]
    report.traces = 1  # as the driver counts, then settles records that held no span
    report.settle()
    assert report.errors == [(3, "no span attributes (gen_ai.*, llm.*, openinference.*, ai.*)")]


def test_flatten_turns_nested_objects_into_dotted_keys() -> None:
    flat = flatten({"llm": {"input_messages": [{"message": {"role": "user"}}], "model_name": "m"}})
    assert flat["llm.input_messages.0.message.role"] == "user"
    assert flat["llm.model_name"] == "m"


def test_sniff(shared_traces: Path) -> None:
    def score(rel: str) -> int:
        path = shared_traces / rel
        return READER.sniff(path, path.read_bytes()[:65536])

    assert score("openinference-fixtures/genai/otel_genai_tool_execution_span.json") >= 50
    assert score("openinference-fixtures/vercel-v6-spans/all-spans.json") == 70
    assert score("otlp/genai-interlingua/raw-otel-openai-v2.in.json") == 0
    assert score("langfuse-framework-traces/openai-agents-2025-09-30.trace.json") == 0
    assert score("langsmith/langsmith_js_wrap_openai_default.json") == 0


def test_shared_openinference_folder_reads_fully(shared_traces: Path) -> None:
    stream = read_traces([shared_traces / "openinference-fixtures"])
    traces = list(stream)
    counts = {Path(s.path).name: (s.format, s.traces, s.skipped) for s in stream.sources}
    assert counts == {
        "openinference_client_span_input_output_only.json": ("openinference", 1, 0),
        "openinference_client_span_tool_calls.json": ("openinference", 1, 0),
        "otel_genai_client_span_tool_calls.json": ("openinference", 1, 0),
        "otel_genai_deprecated_client_span_tool_calls.json": ("openinference", 1, 0),
        "otel_genai_tool_execution_span.json": ("openinference", 1, 0),
        "ai-generateText-doGenerate.json": ("openinference", 2, 0),
        "ai-generateText.json": ("openinference", 2, 0),
        "ai-streamText-doStream.json": ("openinference", 1, 0),
        "ai-streamText.json": ("openinference", 1, 0),
        "all-spans.json": ("openinference", 10, 0),
    }
    # read once: the four genai files write one conversation in four conventions, and `all-spans.json`
    # holds the spans of the other Vercel files again
    assert len(traces) == 11 and stream.duplicates == 10


CONSOLE_SPAN = """{{
    "name": "chat gpt-4o",
    "context": {{
        "trace_id": "0x{tid}",
        "span_id": "0xeee19b7ec3c1b174",
        "trace_state": "[]"
    }},
    "kind": "SpanKind.CLIENT",
    "parent_id": null,
    "start_time": "2026-01-02T03:04:05.000000Z",
    "status": {{
        "status_code": "{status}",
        "description": "APIConnectionError"
    }},
    "attributes": {{
        "gen_ai.operation.name": "chat",
        "gen_ai.input.messages": {messages}
    }},
    "events": [],
    "resource": {{
        "attributes": {{
            "service.name": "bot"
        }},
        "schema_url": ""
    }}
}}
"""


def test_python_console_exporter_output_of_concatenated_spans(tmp_path: Path) -> None:
    path = tmp_path / "console.json"

    def console(tid: str, status: str, text: str) -> str:
        messages = json.dumps(json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}]))
        return CONSOLE_SPAN.format(tid=tid, status=status, messages=messages)

    path.write_text(
        console("5b" * 16, "ERROR", "hello") + console("6b" * 16, "UNSET", "bye") + '{\n  "name": "trunc'
    )
    traces, report = read(path)
    assert [(t.id, t.source, [m.content for m in t.messages]) for t in traces] == [
        ("5b" * 16, f"{path}:1", ["hello"]),
        ("6b" * 16, f"{path}:27", ["bye"]),
    ]
    assert [f.comment for f in traces[0].feedback] == ["APIConnectionError"]
    assert traces[1].feedback == ()
    assert report.errors == [(53, "not valid JSON (the file ends inside a value)")]


def test_phoenix_dataframe_records_and_lists_of_bare_maps(tmp_path: Path) -> None:
    rows = [
        {
            "name": "llm",
            "context.trace_id": "p-1",
            "context.span_id": "s-1",
            "parent_id": None,
            "start_time": 1767000000000,
            "status_code": "OK",
            "attributes.openinference.span.kind": "LLM",
            "attributes.llm.input_messages": [
                {"message.role": "user", "message.content": "reset my password"}
            ],
            "attributes.llm.output_messages": [
                {"message.role": "assistant", "message.content": "Link sent."}
            ],
        },
    ]
    path = tmp_path / "phoenix.json"
    path.write_text(json.dumps(rows))
    [trace], report = read(path)
    assert trace.id == "p-1" and report.skipped == 0
    assert [(m.role, m.content) for m in trace.messages] == [
        ("user", "reset my password"),
        ("assistant", "Link sent."),
    ]
    assert trace.started_at == datetime(2025, 12, 29, 9, 20, tzinfo=timezone.utc)

    bare = json.loads((DATA / "otel_genai_client_span_tool_calls.json").read_text())
    path = tmp_path / "maps.json"
    path.write_text(json.dumps([bare, bare, {"unrelated": 1}]))
    traces, report = read(path)
    assert [t.id for t in traces] == ["maps:1#1", "maps:1#2"]
    assert all(shape(t) == PARIS for t in traces)
    assert report.errors == [(1, "list item is not a span with an attributes object")]
