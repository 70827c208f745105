"""SWE-agent .traj: history (demos dropped), actions as tool calls, exit_status as status feedback."""

from __future__ import annotations

import json
from pathlib import Path

from selfimprove.traces.model import Feedback, Message, ToolCall
from selfimprove.traces.read import read_traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces" / "swe-agent"


def test_classic_trajectory_observations_become_tool_results() -> None:
    [trace] = list(read_traces([DATA / "swe-agent__test-repo-i1.traj"]))
    assert (trace.id, trace.format) == ("swe-agent__test-repo-i1", "swe-agent")
    assert trace.feedback == (Feedback("status", "ok", comment="submitted", name="exit_status"),)
    assert [m.role for m in trace.messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "assistant",
    ]
    assert trace.messages[2].tool_calls == (
        ToolCall("find_file", 'find_file "missing_colon.py"', "action-2"),
    )
    assert trace.messages[3].tool_call_id == "action-2" and trace.messages[3].name == "find_file"
    assert trace.messages[3].content.startswith('Found 1 matches for "missing_colon.py"')
    assert trace.metadata["exit_status"] == "submitted" and trace.metadata["submitted_patch"] is True
    assert trace.metadata["api_calls"] == 5


def test_function_calling_trajectory_without_info() -> None:
    [trace] = list(read_traces([DATA / "function_calling_simple.traj"]))
    assert trace.feedback == ()
    assert len(trace.messages) == 12
    assert trace.messages[2].tool_calls == (
        ToolCall("find_file", {"file_name": "missing_colon.py"}, "call_PbWErNIge3YTrli3fiVvmIid"),
    )
    assert trace.messages[3].role == "tool" and trace.messages[3].name == "find_file"


def test_exit_statuses_other_than_submitted_are_errors(tmp_path: Path) -> None:
    for status in ("exit_cost", "exit_format", "submitted (exit_cost)", "exit_error"):
        path = tmp_path / f"{status.split()[0]}.traj"
        path.write_text(
            json.dumps(
                {
                    "trajectory": [
                        {"action": "ls", "observation": "a.py", "response": "look", "thought": "look"}
                    ],
                    "history": [],
                    "info": {"exit_status": status},
                }
            )
        )
        [trace] = list(read_traces([path]))
        assert trace.feedback == (Feedback("status", "error", comment=status, name="exit_status"),)
        # no chat history: steps become assistant actions and tool observations
        assert trace.messages == (
            Message("assistant", "look", (ToolCall("ls", "ls", "step-0"),)),
            Message("tool", "a.py", tool_call_id="step-0", name="ls"),
        )
