"""Claude Code session JSONL: one trace per sessionId, tool_use/tool_result blocks, summaries."""

from __future__ import annotations

import json
from pathlib import Path

from selfimprove.traces.model import Message, ToolCall
from selfimprove.traces.read import read_traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces" / "claude-code"


def test_session_file() -> None:
    stream = read_traces([DATA / "representative_messages.jsonl"])
    [trace] = list(stream)
    assert (trace.id, trace.format) == ("test_session", "claude-code")
    assert trace.source.endswith("representative_messages.jsonl:1")
    assert trace.started_at is not None and trace.started_at.isoformat() == "2025-06-14T10:00:00+00:00"
    assert [m.role for m in trace.messages] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert trace.messages[3].tool_calls[0].name == "Edit"
    assert trace.messages[4] == Message(
        "tool",
        "File created successfully at: /tmp/decorator_example.py",
        tool_call_id="tool_001",
        name="Edit",
    )
    assert trace.messages[7].tool_calls == (
        ToolCall(
            "Bash",
            {
                "command": "python /tmp/decorator_example.py",
                "description": "Run the decorator example to show output",
            },
            "tool_002",
        ),
    )
    assert trace.metadata["model"] == "claude-3-sonnet-20240229"
    assert trace.metadata["summary"].startswith("User learned about Python decorators")
    report = stream.sources[0]
    assert (report.traces, report.skipped, report.errors) == (1, 0, [])


def _line(session: str, uuid: str, kind: str, message: object, ts: str = "2025-01-01T00:00:00Z") -> str:
    return json.dumps(
        {
            "type": kind,
            "sessionId": session,
            "uuid": uuid,
            "parentUuid": None,
            "isSidechain": False,
            "userType": "external",
            "timestamp": ts,
            "message": message,
        }
    )


def test_interleaved_sessions_split_blocks_and_errors(tmp_path: Path) -> None:
    lines = [
        _line("s-aaaaaa", "1", "user", {"role": "user", "content": "run the tests"}),
        _line("s-bbbbbb", "2", "user", {"role": "user", "content": "other session"}),
        # one assistant reply written as two lines (one per content block), same message id
        _line(
            "s-aaaaaa",
            "3",
            "assistant",
            {"id": "m1", "role": "assistant", "content": [{"type": "text", "text": "Running."}]},
        ),
        _line(
            "s-aaaaaa",
            "4",
            "assistant",
            {
                "id": "m1",
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "tu1", "name": "Bash", "input": {"command": "pytest"}}
                ],
            },
        ),
        json.dumps({"type": "file-history-snapshot", "messageId": "x", "snapshot": {}}),
        _line(
            "s-aaaaaa",
            "5",
            "user",
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "tu1", "content": "exit 1", "is_error": True}
                ],
            },
        ),
        "{not json",
        json.dumps(
            {
                **json.loads(_line("s-aaaaaa", "6", "user", {"role": "user", "content": "sub-task"})),
                "isSidechain": True,
            }
        ),
        json.dumps(
            {
                **json.loads(_line("s-aaaaaa", "7", "user", {"role": "user", "content": "<caveat>"})),
                "isMeta": True,
            }
        ),
    ]
    path = tmp_path / "session.jsonl"
    path.write_text("\n".join(lines) + "\n")
    stream = read_traces([path])
    traces = list(stream)
    assert [t.id for t in traces] == ["s-aaaaaa", "s-bbbbbb"]
    a = traces[0]
    assert a.messages == (
        Message("user", "run the tests"),
        Message("assistant", "Running.", (ToolCall("Bash", {"command": "pytest"}, "tu1"),)),
        Message("tool", "exit 1", tool_call_id="tu1", is_error=True, name="Bash"),
    )
    assert a.metadata["left_out_turns"] == 2 and "left_out_turns" not in traces[1].metadata
    assert stream.sources[0].errors == [(7, "invalid JSON (unexpected character, expected a string key)")]
    assert stream.sources[0].skipped == 1
