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
from functools import cached_property
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


Call = tuple[int, str, Any, "str | None"]  # (message index, tool name, arguments, call id)
Result = tuple[int, str, bool, "str | None", "str | None"]  # (message index, text, is_error, name, call id)


class TraceView:
    """The messages of one trace as columns, what analysis reads: `roles` and `texts` per message,
    `calls` (every tool call, in order) and `results` (tool results, and error-flagged messages that
    answer a call). Built once per trace, by `view_of` from its messages, or by a reader straight
    from plain chat records (`RawTrace`), which spares analysis one Python object per message."""

    __slots__ = ("roles", "texts", "calls", "results")

    def __init__(self, roles: list[str], texts: list[str], calls: list[Call], results: list[Result]) -> None:
        self.roles = roles
        self.texts = texts
        self.calls = calls
        self.results = results

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TraceView) and (self.roles, self.texts, self.calls, self.results) == \
            (other.roles, other.texts, other.calls, other.results)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TraceView(roles={self.roles!r}, texts={self.texts!r}, calls={self.calls!r}, " \
               f"results={self.results!r})"


def view_of(trace: Trace) -> TraceView:
    """The columns of a trace's messages (the reader's own when it built them from raw records).
    Built once per trace: the stream reads them to tell repeats apart, analysis to detect signals."""
    view = getattr(trace, "view", None)
    if view is not None:
        return view  # type: ignore[no-any-return]
    view = trace.__dict__["view"] = _columns(trace)  # a frozen trace's messages never change
    return view


def _columns(trace: Trace) -> TraceView:
    roles: list[str] = []
    texts: list[str] = []
    calls: list[Call] = []
    results: list[Result] = []
    for i, m in enumerate(trace.messages):
        roles.append(m.role)
        texts.append(m.content)
        for c in m.tool_calls:
            calls.append((i, c.name, c.arguments, c.id))
        if m.role == "tool" or (m.is_error and m.tool_call_id):
            results.append((i, m.content, m.is_error, m.name, m.tool_call_id))
    return TraceView(roles, texts, calls, results)


class RawTrace(Trace):
    """A trace read from plain chat records: it carries its `view`, and builds its messages from the
    raw records only when something asks for them (`materialise`, set by the reader). Equal in every
    field to the Trace the general reader builds; analysis never needs the messages themselves."""

    view: TraceView | None = None  # None after dataclasses.replace: view_of rebuilds it

    @cached_property
    def messages(self) -> tuple[Message, ...]:
        return self.__dict__.pop("materialise")()  # type: ignore[no-any-return]
