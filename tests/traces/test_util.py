"""The shared converters every reader relies on: outcome fields, content text, times, roles."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from selfimprove.traces.formats import _feedback, _fields, _records
from selfimprove.traces.messages import convert
from selfimprove.traces.messages import fast as fast_lane
from selfimprove.traces.messages.roles import normalise_role
from selfimprove.traces.messages.values import text_of
from selfimprove.traces.model import Feedback, Message, Trace


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"reward": 0}, (Feedback("reward", 0.0),)),
        ({"reward": {"reward": 1.0, "info": {}}}, (Feedback("reward", 1.0),)),
        ({"score": 0.4}, (Feedback("score", 0.4),)),
        ({"success": "yes"}, (Feedback("success", True, passed=True),)),
        ({"passed": False}, (Feedback("success", False, passed=False, name="passed"),)),
        ({"thumbs": "down"}, (Feedback("thumbs", -1, passed=False),)),
        ({"thumbs_up": False}, (Feedback("thumbs", -1, passed=False),)),
        ({"label": "C"}, (Feedback("label", "C", passed=True),)),
        ({"label": "needs review"}, (Feedback("label", "needs review"),)),
        ({"status": "failed"}, (Feedback("status", "error", comment="failed"),)),
        ({"status": "ok"}, (Feedback("status", "ok"),)),
        ({"status": 200}, ()),
        ({"error": "Timeout"}, (Feedback("error", "Timeout"),)),
        ({"error": {"type": "RateLimit", "message": "429"}}, (Feedback("error", "429"),)),
        ({"error": None}, ()),
        ({"rating": 4}, (Feedback("label", "4", name="rating"),)),
        ({"outcome": "failure"}, (Feedback("label", "failure", passed=False, name="outcome"),)),
        ({"outcome": {"reward": 0.5}}, (Feedback("reward", 0.5),)),
        (
            {"feedback": [{"key": "correct", "score": 1}, {"kind": "thumbs", "value": -1, "comment": "no"}]},
            (Feedback("score", 1.0, name="correct"), Feedback("thumbs", -1, "no", False)),
        ),
        ({"metadata": {"resolved": True}}, (Feedback("success", True, passed=True, name="resolved"),)),
        ({"messages": [], "id": "x"}, ()),
    ],
)
def test_outcome_fields(record: dict[str, object], expected: tuple[Feedback, ...]) -> None:
    assert _feedback.feedback_from_record(record) == expected


@pytest.mark.parametrize(
    ("content", "text"),
    [
        (None, ""),
        ("plain", "plain"),
        ([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}], "a\n[image_url]"),
        ([{"type": "tool_use", "id": "t", "name": "f", "input": {}}, {"type": "text", "text": "b"}], "b"),
        ([{"type": "thinking", "thinking": "secret"}, "c"], "c"),
        ({"text": "d"}, "d"),
        ([{"type": "input_text", "text": "e"}, {"type": "output_text", "text": "f"}], "e\nf"),
        (3, "3"),
    ],
)
def test_text_of(content: object, text: str) -> None:
    assert text_of(content) == text


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("2025-06-01T12:00:00Z", "2025-06-01T12:00:00+00:00"),
        ("2025-06-01T14:00:00+02:00", "2025-06-01T12:00:00+00:00"),
        ("2025-06-01 12:00:00", "2025-06-01T12:00:00+00:00"),
        ("2025-06-01T12:00:00.123456789Z", "2025-06-01T12:00:00.123456+00:00"),
        (1748779200, "2025-06-01T12:00:00+00:00"),
        (1748779200000, "2025-06-01T12:00:00+00:00"),
        ("1748779200000000000", "2025-06-01T12:00:00+00:00"),
        ("yesterday", None),
        (None, None),
        (True, None),
    ],
)
def test_parse_time(value: object, iso: str | None) -> None:
    dt = _fields.parse_time(value)
    assert (dt.isoformat() if dt else None) == iso
    if dt is not None:
        assert dt.tzinfo == timezone.utc and isinstance(dt, datetime)


def test_roles() -> None:
    assert [
        normalise_role(r)
        for r in ("User", "human", "AI", "model", "function", "developer", "Planner", None)
    ] == ["user", "user", "assistant", "assistant", "tool", "system", "Planner", "unknown"]


def test_fast_path_gives_the_same_messages_as_the_general_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    from selfimprove.traces.read import read_traces

    data = Path(__file__).resolve().parents[1] / "data" / "traces"
    paths = [data / "tau-bench", data / "provider-native", data / "swe-agent"]
    fast = [(t.id, t.messages) for t in read_traces(paths)]
    monkeypatch.setattr(convert, "fast_message", lambda raw, names=None: None)
    monkeypatch.setattr(fast_lane, "make_message", Message)
    monkeypatch.setattr(_records, "make_trace", Trace)  # trace_from_record looks it up there
    slow = [(t.id, t.messages) for t in read_traces(paths)]
    assert len(fast) == 9 and fast == slow
