"""Traces written to attack a report page: markup, script, a closing </textarea>, a secret."""

from __future__ import annotations

import json
from pathlib import Path

SCRIPT = "<script>document.title='pwned'</script>"
TEXTAREA = "</textarea><img src=x onerror=alert(1)>"
SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"
ERROR = f"Error: {SCRIPT} {TEXTAREA}"


def write_traces(path: Path, n: int = 12) -> Path:
    """`n` failing conversations whose tool error (and so the pattern title) carries markup, and as
    many that succeed; one day apart, so the page has a chart over time."""
    lines = []
    for i in range(2 * n):
        fails = i % 2 == 0
        messages = [
            {"role": "user", "content": f"look up order 1234{i % 10}, my key is {SECRET} {TEXTAREA}"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"c{i}", "type": "function",
                 "function": {"name": "lookup_order", "arguments": json.dumps({"order_id": SCRIPT})}}]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": ERROR if fails else "shipped"},
            {"role": "assistant", "content": f"Sorry {SCRIPT}" if fails else "It has shipped."},
            {"role": "user", "content": "No, that's wrong, I said 12345" if fails else "thanks"},
        ]
        lines.append(json.dumps({"id": f"conv-{i}", "timestamp": f"2026-11-{1 + i // 2:02d}T10:00:00Z",
                                 "messages": messages}))
    path.write_text("\n".join(lines) + "\n")
    return path
