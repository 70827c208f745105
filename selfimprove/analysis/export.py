"""What an analysis writes for tools: the `--outcomes` JSONL and the `--export-cases` eval suite.

Owns `write_outcomes` (one JSON line per trace, DESIGN §5) and `export_cases`, which re-reads the
analysis' inputs one trace at a time and turns the failing ones into eval cases in the suite format
(DESIGN §6), so production failures become regression tests. Every string that quotes a trace is
redacted; every file is written whole or not at all.

Never does: decide anything (outcomes and patterns are final when they get here), render for people
(that is `cli.reports.analysis`), or hold the traces it re-reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from selfimprove.analysis.outcomes import Outcome
from selfimprove.analysis.records import Analysis, Pattern
from selfimprove.analysis.signals import excerpt, first_line
from selfimprove.files import write_atomic
from selfimprove.redact import redacted
from selfimprove.traces.model import Trace


def outcome_lines(analysis: Analysis) -> Iterator[str]:
    for o in analysis.outcomes:
        doc = o.to_json()
        doc["signals"] = redacted(doc["signals"])
        if "blame" in doc:  # its reason quotes the trace (an error message, a worker's output)
            doc["blame"] = redacted(doc["blame"])
        if o.trace_id in analysis.also:  # the same trace read from more places than `source`
            doc["duplicate_sources"] = list(analysis.also[o.trace_id])
        yield json.dumps(doc, ensure_ascii=False) + "\n"


def write_outcomes(analysis: Analysis, path: Path) -> None:
    write_atomic(path, outcome_lines(analysis))


def _message_json(m: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        doc["tool_calls"] = [{"id": c.id or f"call_{n}", "type": "function",
                              "function": {"name": c.name, "arguments": c.arguments
                                           if isinstance(c.arguments, str) else json.dumps(c.arguments)}}
                             for n, c in enumerate(m.tool_calls)]
    if m.tool_call_id:
        doc["tool_call_id"] = m.tool_call_id
    if m.name and m.role == "tool":
        doc["name"] = m.name
    return doc


def case_for(trace: Trace, outcome: Outcome, pattern: Pattern | None) -> dict[str, Any] | None:
    """One eval case: the conversation up to the failure, and an assertion the failure would break."""
    explaining = None
    if pattern is not None:
        explaining = next((s for s in outcome.signals if s.key and _kind(s.name) == pattern.kind
                           and s.message_index is not None), None)
    msgs = [m for m in trace.messages if m.role != "system"]
    index_map = [i for i, m in enumerate(trace.messages) if m.role != "system"]
    cut = len(msgs)
    asserts: list[dict[str, Any]] = []
    if explaining is not None and explaining.message_index is not None \
            and explaining.message_index in index_map:
        at = index_map.index(explaining.message_index)
        original = trace.messages[explaining.message_index]
        if explaining.name == "tool_error":
            # cut before the assistant turn that made the failing call
            call_at = at
            while call_at > 0 and msgs[call_at].role != "assistant":
                call_at -= 1
            cut = call_at
            calls = msgs[call_at].tool_calls
            failing_call = next((c for c in calls if c.id and c.id == original.tool_call_id),
                                calls[0] if calls else None)
            if failing_call is not None:
                value: dict[str, Any] = {"name": failing_call.name}
                if isinstance(failing_call.arguments, dict):
                    value["arguments"] = failing_call.arguments
                asserts.append({"type": "not-tool-called", "value": value})
        elif explaining.name in ("user_correction", "rephrase", "escalation") and original.role == "user":
            # the reply before the correction is what went wrong: ask for a better one
            cut = at - 1 if at > 0 and msgs[at - 1].role == "assistant" else at
            said = excerpt(original.content, 300)
            if explaining.name == "escalation":
                rubric = ("The reply meets the user's need so that they have no reason to ask for a human; "
                          f"in production they then said: \u201c{said}\u201d")
            else:
                rubric = f"The reply avoids the mistake the user then pointed out: \u201c{said}\u201d"
            asserts.append({"type": "llm-rubric", "value": rubric})
        elif explaining.name == "refusal":
            cut = at
            phrase = first_line(explaining.detail, 60)
            asserts.append({"type": "not-icontains", "value": phrase})
        elif explaining.name == "loop":
            cut = at
    while cut > 0 and msgs[cut - 1].role == "assistant":
        cut -= 1
    if cut == 0:
        cut = next((k + 1 for k, m in enumerate(msgs) if m.role == "user"), 0)
    if cut == 0:
        return None
    if not asserts:
        why = "; ".join(s.detail for s in outcome.signals if s.detail)[:300] or "it was labelled a failure"
        asserts.append({"type": "llm-rubric", "value": "The reply handles the request correctly; in "
                        f"production this conversation failed ({why})"})
    tags = [pattern.kind, pattern.id] if pattern is not None else ["failure"]
    return {
        "id": "prod-" + re.sub(r"[^\w.:-]+", "-", outcome.trace_id)[:80],
        "description": f"{outcome.trace_id}: {pattern.title if pattern else 'failed in production'}"[:200],
        "messages": [_message_json(m) for m in msgs[:cut]],
        "tags": tags,
        "assert": asserts,
        "metadata": {"trace_id": outcome.trace_id, "source": outcome.source, "split": "dev"},
    }


def _kind(signal: str) -> str:
    return "user_correction" if signal == "rephrase" else signal


def cases(analysis: Analysis, traces: Iterable[Trace]) -> list[dict[str, Any]]:
    """Eval cases for the failing traces among `traces`, in analysis order."""
    # a source names the record a trace starts at; one record (a JSON array file) can hold many traces
    failing = {(o.source, o.trace_id): (i, o) for i, o in analysis.failing()}
    pattern_of = {p.id: p for p in analysis.patterns}
    found: list[tuple[int, dict[str, Any]]] = []
    for trace in traces:
        hit = failing.get((trace.source, trace.id))
        if hit is None:
            continue
        index, outcome = hit
        case = case_for(trace, outcome, pattern_of.get(outcome.pattern or ""))
        if case is not None:
            for key in ("description", "messages", "assert"):
                case[key] = redacted(case[key])
            found.append((index, case))
    found.sort(key=lambda t: t[0])
    return [c for _, c in found]


def write_cases(analysis: Analysis, traces: Iterable[Trace], path: Path) -> int:
    import yaml

    tests = cases(analysis, traces)
    doc = {"description": "failing production traces exported by selfimprove analyze", "tests": tests}
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    write_atomic(path, [text])
    return len(tests)


def export_cases(analysis: Analysis, path: Path) -> int:
    """Write the failing traces of `analysis` as eval cases; re-reads its inputs one trace at a time."""
    from selfimprove.traces.read import read_traces
    from selfimprove.traces.storage import as_path

    stream = read_traces([as_path(p) for p in analysis.inputs], format=analysis.format)
    return write_cases(analysis, stream, path)
