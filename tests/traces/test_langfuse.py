"""Langfuse reader: 20 frameworks' exports, checked against Langfuse's own ChatML normalisation."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from selfimprove.traces.formats.langfuse import READER, langfuse_score
from selfimprove.traces.messages import telemetry
from selfimprove.traces.model import Feedback, Message, Trace
from selfimprove.traces.read import SourceReport, read_traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces" / "langfuse"


def read(path: Path) -> tuple[list[Trace], SourceReport]:
    report = SourceReport(path=str(path), format="langfuse")
    return list(READER.read(path, report)), report


def shape(messages: Any) -> list[tuple[Any, ...]]:
    return [
        (
            m.role,
            " ".join(m.content.split()),
            tuple((c.name, c.arguments) for c in m.tool_calls),
            m.tool_call_id,
            m.is_error,
        )
        for m in messages
    ]


def chatml_pairs(trace_file: Path) -> list[tuple[str, str, list[Message], list[Message]]]:
    """(observation id, input|output, expected from Langfuse's ChatML, ours) for every GENERATION field
    Langfuse could normalise into role-carrying messages."""
    doc = json.loads(trace_file.read_text())
    expected = json.loads(trace_file.with_name(trace_file.name.replace(".trace.", ".chatml.")).read_text())
    observations = {o["id"]: o for o in doc["observations"]}
    out = []
    for obs_id, fields in expected.items():
        obs = observations.get(obs_id)
        if obs is None or obs["type"] != "GENERATION":
            continue
        for field, role in (("input", "user"), ("output", "assistant")):
            result = fields.get(field) or {}
            data = [m for m in result.get("data") or [] if isinstance(m, dict) and "role" in m]
            if result.get("success") and data:
                out.append(
                    (obs_id, field, telemetry.to_messages(data, role),
                     telemetry.to_messages(obs[field], role))
                )
    return out


# Where we deliberately read more than Langfuse's ChatML does: Gemini's function_response part is a
# tool result (ChatML: a user turn); the Microsoft Agent Framework's `function_result` envelope is
# unwrapped to the tool's own output.
DIVERGENCES = {
    ("google-adk-2025-08-28.trace.json", "bded677884f031ce", "input"): (
        "tool",
        "say_hello",
        '{"greeting":"Hello Langfuse 👋"}',
    ),
    ("microsoft-agent-2025-12-17.trace.json", "b0913e7cd82d72b8", "input"): (
        "tool",
        None,
        "The weather in Tokyo, Japan is stormy with a high of 23°C.",
    ),
}


@pytest.mark.parametrize(
    "name",
    [
        "microsoft-agent-2025-12-17",
        "vercel-aisdk-2025-11-17",
        "openai-agents-2025-09-30",
        "claude-agent-2025-12-22",
    ],
)
def test_generation_messages_match_langfuse_chatml(name: str) -> None:
    trace_file = DATA / f"{name}.trace.json"
    pairs = chatml_pairs(trace_file)
    assert pairs
    for obs_id, field, expected, ours in pairs:
        known = DIVERGENCES.get((trace_file.name, obs_id, field))
        if known is not None:
            assert (ours[-1].role, ours[-1].name, ours[-1].content) == known
            assert [m.role for m in ours[:-1]] == [m.role for m in expected[:-1]]
        else:
            assert shape(ours) == shape(expected), (obs_id, field)


def test_all_twenty_frameworks_match_chatml_except_documented_choices(shared_traces: Path) -> None:
    folder = shared_traces / "langfuse-framework-traces"
    agree, differ = 0, {}
    for trace_file in sorted(folder.glob("*.trace.json")):
        for obs_id, field, expected, ours in chatml_pairs(trace_file):
            if shape(ours) == shape(expected):
                agree += 1
            else:
                differ[(trace_file.name, obs_id, field)] = (ours[-1].role, ours[-1].name, ours[-1].content)
    assert agree == 57
    assert differ == DIVERGENCES


def test_openai_agents_trace_is_one_conversation_with_tool_result() -> None:
    [trace], report = read(DATA / "openai-agents-2025-09-30.trace.json")
    assert report.skipped == 0
    assert trace.id == "fee618f96dc31e0ca38b2f7b26eb8b29"
    assert trace.format == "langfuse"
    assert trace.source == f"{DATA / 'openai-agents-2025-09-30.trace.json'}:3"
    assert trace.started_at == datetime(2025, 9, 30, 9, 3, 59, 962000, tzinfo=timezone.utc)
    assert shape(trace.messages) == [
        ("system", "You are a helpful agent.", (), None, False),  # the Responses API's `instructions`
        ("user", "What's the weather in Tokyo?", (), None, False),
        ("assistant", "", (("get_weather", {"city": "Tokyo"}),), None, False),
        ("tool", "The weather in Tokyo is sunny.", (), "call_Kud0j0DxWSmLzv9W5m6qVqXn", False),
        (
            "assistant",
            "The weather in Tokyo is currently sunny. If you need more details like temperature or "
            "forecast for the upcoming days, just let me know!",
            (),
            None,
            False,
        ),
    ]
    assert trace.metadata["model"] == "gpt-4.1-2025-04-14"


def test_claude_agent_scores_become_feedback_with_lower_is_better_inverted() -> None:
    [trace], _ = read(DATA / "claude-agent-2025-12-22.trace.json")
    assert [(f.kind, f.name, f.value, f.passed) for f in trace.feedback] == [
        ("score", "correctness", 0.0, None),
        ("score", "hallucination", 0.0, None),
        ("score", "toxicity", 1.0, None),
    ]
    assert trace.feedback[1].comment is not None
    assert trace.feedback[1].comment.startswith("hallucination 1 (lower is better), recorded as 1 - value: ")
    assert [m.role for m in trace.messages] == [
        "user",
        "assistant",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    assert [m.tool_call_id for m in trace.messages if m.role == "tool"] == [
        "toolu_01TKoqQLvY2UWuC49qnD48y7",
        "toolu_01NtVat4vJLFfVd5TqdLHcA7",
    ]


def test_score_types() -> None:
    assert langfuse_score({"name": "resolved", "dataType": "BOOLEAN", "value": 0}) == Feedback(
        kind="score", value=0.0, passed=False, name="resolved"
    )
    assert langfuse_score(
        {"name": "verdict", "dataType": "CATEGORICAL", "stringValue": "fail", "value": 0}
    ) == Feedback(kind="label", value="fail", passed=False, name="verdict")
    assert langfuse_score({"name": "rating", "dataType": "NUMERIC", "value": 4}) == Feedback(
        kind="label", value="4", name="rating"
    )
    assert langfuse_score(
        {"name": "fix", "dataType": "CORRECTION", "longStringValue": "Use 30 days"}
    ) == Feedback(kind="label", value="correction", comment="Use 30 days", passed=False, name="fix")
    assert langfuse_score({"name": "x", "dataType": "NUMERIC", "value": None}) is None


def test_error_levels_versions_and_api_pages(tmp_path: Path) -> None:
    trace = {
        "id": "t-err",
        "name": "support",
        "timestamp": "2026-02-01T08:00:00Z",
        "release": "r-12",
        "version": "prompt-v7",
        "input": "Cancel order 9",
        "output": None,
        "scores": [{"name": "user-feedback", "dataType": "NUMERIC", "value": 0, "comment": "thumbs down"}],
    }
    observations = [
        {
            "id": "g1",
            "traceId": "t-err",
            "type": "GENERATION",
            "name": "chat",
            "startTime": "2026-02-01T08:00:01Z",
            "level": "DEFAULT",
            "input": [{"role": "user", "content": "Cancel order 9"}],
            "output": {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "cancel", "arguments": '{"order": 9}'},
                    }
                ],
            },
        },
        {
            "id": "t1",
            "traceId": "t-err",
            "type": "TOOL",
            "name": "cancel",
            "startTime": "2026-02-01T08:00:02Z",
            "level": "ERROR",
            "statusMessage": "order 9 already shipped",
            "input": '{"order": 9}',
            "output": None,
            "metadata": json.dumps({"attributes": {"gen_ai.tool.call.id": "c1"}}),
        },
        {
            "id": "g2",
            "traceId": "t-err",
            "type": "GENERATION",
            "name": "chat",
            "startTime": "2026-02-01T08:00:03Z",
            "level": "ERROR",
            "statusMessage": "RateLimitError: 429",
            "input": None,
            "output": None,
        },
    ]
    page = {"data": [dict(trace, observations=observations)], "meta": {"page": 1}}
    path = tmp_path / "page.json"
    path.write_text(json.dumps(page))
    [result], report = read(path)
    assert report.skipped == 0
    assert result.prompt_version == "prompt-v7"
    assert shape(result.messages) == [
        ("user", "Cancel order 9", (), None, False),
        ("assistant", "", (("cancel", {"order": 9}),), None, False),
        ("tool", "order 9 already shipped", (), "c1", True),
    ]
    assert result.feedback == (
        Feedback(kind="score", value=0.0, comment="thumbs down", name="user-feedback"),
        Feedback(kind="status", value="error", comment="RateLimitError: 429", passed=False, name="chat"),
    )
    lines = tmp_path / "export.jsonl"
    lines.write_text(
        json.dumps({"trace": dict(trace, id="a"), "observations": []})
        + "\n[1, 2]\n"
        + json.dumps({"trace": dict(trace, id="b", version=None), "observations": []})
        + "\n"
    )
    traces, report = read(lines)
    report.traces = len(traces)  # as the driver counts them, before settling deferred records
    report.settle()
    assert [(t.id, t.prompt_version, t.source) for t in traces] == [
        ("a", "prompt-v7", f"{lines}:1"),
        ("b", "r-12", f"{lines}:3"),
    ]
    assert shape(traces[0].messages) == [("user", "Cancel order 9", (), None, False)]
    assert report.errors == [(2, "not a Langfuse export (no trace with observations)")]


def test_sniff_claims_exports_not_chatml(shared_traces: Path) -> None:
    folder = shared_traces / "langfuse-framework-traces"
    for path in sorted(folder.glob("*.json")):
        score = READER.sniff(path, path.read_bytes()[:65536])
        assert score == (90 if path.name.endswith(".trace.json") else 0), path.name


def test_shared_langfuse_folder_reads_fully(shared_traces: Path) -> None:
    stream = read_traces([shared_traces / "langfuse-framework-traces"])
    traces = list(stream)
    assert len(traces) == 19 and stream.duplicates == 1  # one trace is in two exports: read once
    for source in stream.sources:
        name = Path(source.path).name
        assert source.skipped == 0, (name, source.errors)
        if name.endswith(".trace.json"):
            assert (source.format, source.traces) == ("langfuse", 1), name
        else:  # the ChatML expectations and the README are not traces
            assert source.traces == 0 and source.status == "ignored", name
    assert all(t.messages for t in traces)
    scored = {t.metadata["name"]: len(t.feedback) for t in traces if t.feedback}
    assert scored["claude.conversation"] == 3


def test_many_traces_are_emitted_in_bounded_batches(tmp_path: Path, monkeypatch: Any) -> None:
    from selfimprove.traces.formats import langfuse

    monkeypatch.setattr(langfuse, "MAX_BUFFERED_OBSERVATIONS", 5)
    rows = []
    for i in range(12):
        obs = [
            {
                "id": f"o{i}-{j}",
                "traceId": f"t{i}",
                "type": "GENERATION",
                "startTime": f"2026-01-01T00:00:{j:02d}Z",
                "input": [{"role": "user", "content": f"q{i}"}],
                "output": {"role": "assistant", "content": f"a{i}"},
            }
            for j in range(2)
        ]
        rows.append({"trace": {"id": f"t{i}", "timestamp": "2026-01-01T00:00:00Z"}, "observations": obs})
    path = tmp_path / "traces.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    traces, report = read(path)
    assert [t.id for t in traces] == [f"t{i}" for i in range(12)]
    assert all(
        shape(t.messages) == [("user", f"q{i}", (), None, False), ("assistant", f"a{i}", (), None, False)]
        for i, t in enumerate(traces)
    )
    assert report.skipped == 0


def test_scores_exported_apart_join_their_trace(tmp_path: Path) -> None:
    trace = {"id": "t9", "timestamp": "2026-01-01T00:00:00Z", "input": "hi", "output": "hello", "scores": []}
    score = {
        "id": "s1",
        "traceId": "t9",
        "name": "helpful",
        "value": 1,
        "dataType": "BOOLEAN",
        "source": "ANNOTATION",
    }
    path = tmp_path / "export.jsonl"
    path.write_text(
        json.dumps({"trace": trace, "observations": []}) + "\n" + json.dumps({"data": [score]}) + "\n"
    )
    [result], report = read(path)
    assert report.skipped == 0
    assert result.feedback == (Feedback(kind="score", value=1.0, passed=True, name="helpful"),)
    assert shape(result.messages) == [
        ("user", "hi", (), None, False),
        ("assistant", "hello", (), None, False),
    ]
