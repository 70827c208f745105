"""A file's spans grouped by trace id, in bounded memory (`TraceGroups`).

Owns: buffering spans until their trace is complete (the end of the file), and emitting the traces
that went longest without a new span early once the buffered text passes a limit. Must never: hold
more than about `MAX_BUFFERED_CHARS` of message text, or read or assemble spans.
"""

from __future__ import annotations

from selfimprove.traces.formats.span_attributes import SpanView

MAX_BUFFERED_CHARS = 48 * 1024 * 1024  # message text held while spans wait for the rest of their trace


def _size(view: SpanView) -> int:
    size = 256
    for message in (*view.inputs, *view.outputs):
        size += len(message.content) + 64 * (1 + len(message.tool_calls))
    if view.tool is not None:
        size += len(view.tool.result) + 64
    return size


class TraceGroups:
    """Spans buffered per trace id until the file ends, in bounded memory.

    Spans of one trace may sit anywhere in a file, so a trace is complete only at the end. To keep
    memory flat on huge JSON Lines exports, once the buffered text passes `limit` the traces that
    went longest without a new span are emitted early (a late span of such a trace then starts a
    second trace with the same id, which the driver renames).
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = MAX_BUFFERED_CHARS if limit is None else limit
        self.groups: dict[str, list[SpanView]] = {}
        self.lines: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        self.total = 0

    def add(self, trace_id: str, view: SpanView, line: int) -> list[tuple[str, list[SpanView], int]]:
        """Buffer one span; returns the groups that had to be emitted early (oldest first)."""
        group = self.groups.pop(trace_id, None)
        if group is None:
            group = []
            self.lines[trace_id] = line
            self.sizes[trace_id] = 0
        group.append(view)
        self.groups[trace_id] = group  # re-inserted: dict order is least recently touched first
        size = _size(view)
        self.sizes[trace_id] += size
        self.total += size
        flushed: list[tuple[str, list[SpanView], int]] = []
        while self.total > self.limit and len(self.groups) > 1:
            oldest = next(iter(self.groups))
            flushed.append(self._pop(oldest))
        return flushed

    def _pop(self, trace_id: str) -> tuple[str, list[SpanView], int]:
        views = self.groups.pop(trace_id)
        self.total -= self.sizes.pop(trace_id)
        return trace_id, views, self.lines.pop(trace_id)

    def drain(self) -> list[tuple[str, list[SpanView], int]]:
        """Every group still buffered, in the order their traces first appeared."""
        order = sorted(self.groups, key=lambda t: self.lines[t])
        return [self._pop(t) for t in order]

