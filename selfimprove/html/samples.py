"""What the analyze page shows beyond the analysis JSON: a few whole conversations and start times.

The analysis JSON holds counts and bounded evidence; the outcome lines say, per trace, its outcome,
pattern and blamed step. Neither carries a trace's messages or start time, so the page reads the
inputs once more (as `--export-cases` does), keeping only: the start time of every trace (a float
per trace) and the messages of the few example traces it will show, cut to a fixed size.

Never does: judge anything, or keep a trace it will not show.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MAX_MESSAGES = 60  # per conversation; beyond it, the messages around the blamed step
MAX_CHARS = 3000  # per message


@dataclass
class Samples:
    started: dict[str, float] = field(default_factory=dict)  # trace source -> start (POSIX seconds)
    conversations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # source -> messages


def read_samples(paths: Sequence[Path], *, format: str, wanted: Collection[str]) -> Samples:
    """Start times of every trace in `paths` and the messages of the traces whose source is `wanted`."""
    from selfimprove.traces.read import read_traces

    samples = Samples()
    for trace in read_traces(list(paths), format=format, views=True):
        if trace.started_at is not None:
            samples.started[trace.source] = trace.started_at.timestamp()
        if trace.source in wanted:
            samples.conversations[trace.source] = [message_json(i, m) for i, m in enumerate(trace.messages)]
    return samples


def message_json(index: int, message: Any) -> dict[str, Any]:
    """One message as the page shows it: its step, speaker, text (cut) and the tools it called."""
    text = str(message.content or "")
    calls = [f"{c.name}({_args(c.arguments)})" for c in message.tool_calls]
    return {"step": index, "role": message.role, "name": message.name, "text": _cut(text),
            "calls": [_cut(c, 500) for c in calls], "error": bool(message.is_error)}


def _args(arguments: Any) -> str:
    import json

    if isinstance(arguments, str):
        return arguments
    try:
        return json.dumps(arguments, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(arguments)


def _cut(text: str, limit: int = MAX_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f" … [{len(text) - limit} more characters]"


def window(messages: Sequence[Mapping[str, Any]], step: int | None) -> list[Mapping[str, Any] | None]:
    """At most MAX_MESSAGES messages: the first few and those around the blamed step; None marks a gap."""
    if len(messages) <= MAX_MESSAGES:
        return list(messages)
    centre = step if step is not None and 0 <= step < len(messages) else len(messages) - 1
    half = (MAX_MESSAGES - 4) // 2
    lo, hi = max(4, centre - half), min(len(messages), centre + half)
    kept: list[Mapping[str, Any] | None] = list(messages[:4])
    if lo > 4:
        kept.append(None)
    kept += messages[lo:hi]
    if hi < len(messages):
        kept.append(None)
    return kept


def timeline(outcomes: Iterable[Mapping[str, Any]], started: Mapping[str, float],
             patterns: Sequence[str]) -> tuple[str, list[dict[str, Any]]]:
    """(bucket unit, rows {t, series, rate}): the failure rate over time, overall and per pattern in
    `patterns` (others are counted in the overall rate only). A bucket is an hour, a day or a week,
    whichever gives at most ~60 points over the traces' span; empty buckets are left out."""
    dated: list[tuple[float, str, str]] = []
    for o in outcomes:
        when = started.get(str(o.get("source")))
        if when is not None and o.get("outcome") in ("failure", "success"):
            dated.append((when, str(o["outcome"]), str(o.get("pattern") or "")))
    if len(dated) < 2:
        return "", []
    span = max(d[0] for d in dated) - min(d[0] for d in dated)
    unit, seconds = next(((u, s) for u, s in (("hour", 3600), ("day", 86400)) if span / s <= 60),
                         ("week", 7 * 86400))
    if span < seconds:  # one bucket is no line
        return "", []
    decided: dict[int, int] = {}
    failed: dict[tuple[int, str], int] = {}
    for when, outcome, pattern in dated:
        b = int(when // seconds)
        decided[b] = decided.get(b, 0) + 1
        if outcome == "failure":
            failed[b, "all failures"] = failed.get((b, "all failures"), 0) + 1
            if pattern in patterns:
                failed[b, pattern] = failed.get((b, pattern), 0) + 1
    rows = []
    for b in sorted(decided):
        iso = datetime.fromtimestamp(b * seconds, tz=timezone.utc).isoformat()
        for series in ("all failures", *patterns):
            rate = failed.get((b, series), 0) / decided[b]
            rows.append({"t": iso, "series": series, "rate": round(rate, 4)})
    return unit, rows
