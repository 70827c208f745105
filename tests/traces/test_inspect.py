"""Inspect AI logs: .json and .eval zip, one trace per sample, C/I scores, tool errors."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from selfimprove.traces.model import Feedback, Message
from selfimprove.traces.read import read_traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces" / "inspect"


def test_json_log_with_correct_score() -> None:
    [trace] = list(read_traces([DATA / "log_read_sample.json"]))
    assert (trace.id, trace.format) == ("log_read_sample:1/1", "inspect")
    assert trace.feedback == (Feedback("label", "C", "Yes\n", True, "match"),)
    assert [m.role for m in trace.messages] == ["system", "user", "assistant"]
    assert trace.messages[2].content == "Yes\n"
    assert trace.metadata["task"] == "popularity" and trace.metadata["model"] == "ollama/gemma3"


def test_eval_zip_with_incorrect_score() -> None:
    stream = read_traces([DATA / "log_formats.eval"])
    [trace] = list(stream)
    assert (trace.id, trace.format) == ("log_formats:1/1", "inspect")
    assert trace.feedback == (Feedback("label", "I", None, False, "match"),)
    assert trace.started_at is not None and trace.started_at.isoformat() == "2024-10-15T16:53:13+00:00"
    assert stream.sources[0].format == "inspect"


def test_tool_errors() -> None:
    [trace] = list(read_traces([DATA / "log_tool_call_error.json"]))
    assert len(trace.messages) == 11
    assert all(m.role == "tool" and m.is_error and m.name == "bash" for m in trace.messages)
    assert trace.messages[0] == Message("tool", "...", tool_call_id="bash_1", is_error=True, name="bash")


def test_sample_errors_limits_and_numeric_scores(tmp_path: Path) -> None:
    header = {
        "version": 2,
        "status": "error",
        "eval": {"task": "t", "model": "m", "created": "2025-01-01T00:00:00Z"},
        "plan": {},
        "results": None,
        "stats": {},
    }
    samples = [
        {
            "id": "a",
            "epoch": 1,
            "messages": [{"role": "user", "content": "q"}],
            "scores": {"acc": {"value": 0.5}, "multi": {"value": {"x": "C", "y": 1}}},
        },
        {
            "id": "b",
            "epoch": 2,
            "messages": [{"role": "user", "content": "q"}],
            "error": {"message": "RuntimeError('boom')", "traceback": "..."},
            "limit": {"type": "message", "limit": 10},
        },
    ]
    path = tmp_path / "run.eval"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("header.json", json.dumps(header))
        for s in samples:
            zf.writestr(f"samples/{s['id']}_epoch_{s['epoch']}.json", json.dumps(s))
    traces = list(read_traces([path]))
    assert [t.id for t in traces] == ["run:a/1", "run:b/2"]
    assert traces[0].feedback == (
        Feedback("score", 0.5, name="acc"),
        Feedback("label", "C", None, True, "multi.x"),
        Feedback("score", 1.0, name="multi.y"),
    )
    assert traces[1].feedback == (
        Feedback("error", "RuntimeError('boom')", name="error"),
        Feedback("error", "message limit reached (10)", name="limit"),
    )
    assert traces[1].metadata["eval_status"] == "error" and traces[1].metadata["limit"] == "message"


def test_corrupt_zip_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.eval"
    path.write_bytes((DATA / "log_formats.eval").read_bytes()[:1500])
    stream = read_traces([path])
    assert list(stream) == []
    [report] = stream.sources
    assert report.skipped == 1 and report.errors[0][0] is None
    assert report.errors[0][1].startswith("not a readable .eval zip")


def test_eval_zip_under_another_name(tmp_path: Path) -> None:
    path = tmp_path / "log.zip"
    path.write_bytes((DATA / "log_formats.eval").read_bytes())
    stream = read_traces([tmp_path])
    assert [t.id for t in stream] == ["log.zip:1/1"] and stream.sources[0].format == "inspect"
