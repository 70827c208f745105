"""The one trace model every reader produces and every later stage consumes.

Readers normalise; they never judge. Whether a trace failed is decided in `analysis`, from the
`feedback` a reader found (explicit labels) and the messages (implicit signals). Records are frozen:
a stage that needs to add information builds a new record (`dataclasses.replace`).

Feedback kinds (the vocabulary readers map their labels into, and `analysis.outcomes` interprets):
  reward   number; the run's reward (tau-bench style: 1 = success, below 1 = failure)
  score    number in [0, 1], higher is better; `passed` says pass/fail when the source knows it
  success  bool
  thumbs   +1 (up) or -1 (down)
  status   "ok" | "error"  (a run- or span-level status)
  label    free string from a human or evaluator (pass/fail, correct/incorrect, C/I, ...); `passed` when known
  error    a run-level error message (the run crashed / was cancelled / hit a limit)
`passed` is True/False when the source states the verdict, None when only a value is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Any = None  # a dict when the source gave JSON, else the raw string
    id: str | None = None


@dataclass(frozen=True)
class Message:
    role: str  # system | user | assistant | tool, or an agent's name in multi-agent logs
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    is_error: bool = False  # a tool result the source marks as an error
    name: str | None = None  # tool name for tool results, agent/participant name when known


@dataclass(frozen=True)
class Feedback:
    kind: str  # see the module docstring
    value: Any = None
    comment: str | None = None
    passed: bool | None = None
    name: str | None = None  # scorer / evaluator / feedback key, when the source names it


@dataclass(frozen=True)
class Trace:
    id: str
    source: str  # "path:line" of the record the trace starts at
    messages: tuple[Message, ...] = ()
    feedback: tuple[Feedback, ...] = ()
    started_at: datetime | None = None  # timezone-aware (UTC) when known
    prompt_version: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    format: str = ""  # name of the reader that produced it
