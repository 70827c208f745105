"""Multi-agent logs whose roles are agent names (AgentRx Magentic-One)."""

from __future__ import annotations

from pathlib import Path

from selfimprove.traces.read import read_traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces" / "magentic"


def test_magentic_log() -> None:
    stream = read_traces([DATA])
    [trace] = list(stream)
    assert trace.id == "42576abe-0deb-4869-8c63-225c2d75a95a"
    assert trace.format == "multi-agent"
    assert trace.feedback == ()  # the logs carry no labels; none are invented
    assert [(m.role, m.name) for m in trace.messages] == [
        ("user", None),
        ("Orchestrator (thought)", "Orchestrator"),
        ("Orchestrator (thought)", "Orchestrator"),
        ("Orchestrator (thought)", "Orchestrator"),
        ("Orchestrator (termination condition)", "Orchestrator"),
    ]
    assert trace.messages[0].content.startswith("In the fictional language of Tizin")
    assert trace.metadata["agents"] == ["Orchestrator"]
    report, readme = stream.sources  # sorted by name; the README is ignored, not an error
    assert (readme.status, readme.reason, readme.skipped) == ("ignored", "not a trace file (.md)", 0)
    assert (report.format, report.traces, report.skipped, report.status) == ("multi-agent", 1, 0, "read")
