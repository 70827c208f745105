"""OpenHands event streams: user/agent messages, actions as tool calls, observations as results."""

from __future__ import annotations

import json
from pathlib import Path

from selfimprove.traces.model import Feedback, Message
from selfimprove.traces.read import read_traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces" / "openhands"


def test_chat_only_session() -> None:
    [trace] = list(read_traces([DATA / "basic_interactions.json"]))
    assert (trace.id, trace.format) == ("basic_interactions", "openhands")
    assert trace.messages == (
        Message("user", "what's 1+1?"),
        Message("assistant", "1 + 1 equals 2."),
        Message("user", "No, I mean by Goldbach's conjecture!"),
        trace.messages[3],
        Message("user", "Finish please"),
        Message("assistant", "All done! What's next on the agenda?"),
    )
    assert trace.messages[3].content.startswith("Goldbach's conjecture is an unsolved problem")


def test_actions_and_observations() -> None:
    [trace] = list(read_traces([DATA / "wrong_initial_state.json"]))
    roles = [m.role for m in trace.messages]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant", "tool", "assistant"]
    call = trace.messages[3].tool_calls[0]
    assert (
        call.name == "execute_bash"
        and call.arguments["command"] == "mv /workspace/game_2048.py /workspace/2048.py"
    )
    assert trace.messages[4].tool_call_id == call.id and trace.messages[4].name == "execute_bash"
    assert not any(m.is_error for m in trace.messages)
    assert trace.metadata["model"] == "claude-3-5-sonnet-20241022"


def test_error_observations_and_error_state(tmp_path: Path) -> None:
    events = [
        {
            "id": 0,
            "timestamp": "2025-01-01T00:00:00",
            "source": "user",
            "action": "message",
            "message": "fix it",
            "args": {"content": "fix it"},
        },
        {
            "id": 1,
            "source": "agent",
            "action": "run",
            "message": "Running command: make",
            "args": {"command": "make", "thought": "build"},
            "tool_call_metadata": {"function_name": "execute_bash", "tool_call_id": "c1"},
        },
        {
            "id": 2,
            "source": "agent",
            "observation": "run",
            "cause": 1,
            "content": "make: *** Error 2",
            "extras": {"command": "make", "metadata": {"exit_code": 2}},
            "tool_call_metadata": {"function_name": "execute_bash", "tool_call_id": "c1"},
        },
        {
            "id": 3,
            "source": "agent",
            "observation": "error",
            "content": "Agent got stuck in a loop",
            "extras": {},
        },
        {
            "id": 4,
            "source": "environment",
            "observation": "agent_state_changed",
            "content": "",
            "extras": {"agent_state": "error", "reason": "RuntimeError: budget exceeded"},
        },
    ]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(events))
    [trace] = list(read_traces([path]))
    assert [(m.role, m.is_error) for m in trace.messages] == [
        ("user", False),
        ("assistant", False),
        ("tool", True),
        ("tool", True),
    ]
    assert trace.messages[2].content == "make: *** Error 2"
    assert trace.feedback == (Feedback("error", "RuntimeError: budget exceeded", name="agent_state"),)
    assert trace.started_at is not None
