"""Reports of an analysis: the JSON document, the terminal and Markdown reports, outcomes, eval cases.

Owns every rendering of an `Analysis`: `to_json` (schema "selfimprove.analysis/v1", DESIGN §5), the
rich terminal report ("the top reasons the agent fails, with numbers"), the Markdown report for
humans, the `--outcomes` JSONL, and `--export-cases`, which turns failing traces into eval cases in
the suite format (DESIGN §6) so production failures become regression tests.

Never does: decide anything (outcomes and patterns are final when they get here) or write a file
half-way: every file is written to a temporary sibling and renamed into place.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfimprove.analysis.outcomes import Fit, Outcome
from selfimprove.analysis.patterns import Pattern
from selfimprove.analysis.signals import excerpt
from selfimprove.errors import SelfImproveError
from selfimprove.traces.model import Trace

if TYPE_CHECKING:
    from rich.console import Console

    from selfimprove.analysis.pipeline import SourceInfo

SCHEMA = "selfimprove.analysis/v1"
TOP = 10
NAMED_SKIPS = 3  # bad records named in the default report; -v names every one kept


@dataclass(frozen=True)
class Analysis:
    outcomes: tuple[Outcome, ...]
    patterns: tuple[Pattern, ...]
    sources: tuple[SourceInfo, ...]
    fit: Fit
    versions: tuple[Mapping[str, Any], ...] = ()
    filtered: int = 0
    undated: int = 0
    reflection: Mapping[str, Any] | None = None
    inputs: tuple[str, ...] = ()
    format: str = "auto"
    judge: Mapping[str, Any] | None = None  # what the LLM judge labelled and spent, when one ran
    duplicates: int = 0  # traces read again (identical content), counted once
    also: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # trace id → its repeats' sources

    @property
    def counts(self) -> dict[str, int]:
        c = {"total": len(self.outcomes), "failure": 0, "success": 0, "unknown": 0,
             "skipped": sum(s.skipped for s in self.sources), "duplicates": self.duplicates}
        for o in self.outcomes:
            c[o.outcome] += 1
        return c

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schema": SCHEMA,
            "traces": self.counts,
            "sources": [s.to_json() for s in self.sources],
            "patterns": [p.to_json() for p in self.patterns],
            "fit": self.fit.to_json(),
        }
        if self.filtered or self.undated:
            doc["filtered"] = {"outside_window": self.filtered, "undated_kept": self.undated}
        if self.versions:
            doc["versions"] = [dict(v) for v in self.versions]
        if self.reflection is not None:
            doc["reflection"] = dict(self.reflection)
        if self.judge is not None:
            doc["judge"] = dict(self.judge)
        return doc

    def failing(self) -> Iterator[tuple[int, Outcome]]:
        for i, o in enumerate(self.outcomes):
            if o.outcome == "failure":
                yield i, o


# --- files ---------------------------------------------------------------------------------------

def write_atomic(path: Path, chunks: Iterable[str]) -> None:
    """Write a whole file or nothing: a temporary sibling renamed into place."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SelfImproveError(f"cannot write {path}: the folder {parent} does not exist",
                               hint="create it first or choose another path")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for chunk in chunks:
                fh.write(chunk)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise SelfImproveError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def redacted(value: Any) -> Any:
    """`value` (JSON-like) with every string passed through `llm.redact`: reports and exported cases
    are shared and committed, so they never carry a key, token, e-mail, card or phone number."""
    from selfimprove.llm import redact

    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redacted(v) for v in value)
    return value


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


# --- terminal --------------------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def render(analysis: Analysis, console: Console, *, verbose: bool = False) -> None:
    """The terminal report: the top reasons the agent fails, with numbers."""
    from rich.table import Table
    from rich.text import Text

    c = analysis.counts
    decided = c["failure"] + c["success"]
    rate = f" ({_pct(c['failure'] / decided)} of decided)" if decided else ""
    skipped = f"{c['skipped']} bad record{'' if c['skipped'] == 1 else 's'} skipped"
    console.print(Text(f"{c['total']} traces: {c['failure']} failed{rate}, {c['success']} succeeded, "
                       f"{c['unknown']} unknown; {skipped}", style="bold"), soft_wrap=True)
    if analysis.filtered:
        console.print(f"{analysis.filtered} traces outside --since/--until left out")
    if analysis.duplicates:
        console.print(_duplicates_line(analysis.duplicates))
    named = 0
    for s in analysis.sources:
        if verbose:
            state = f"{s.status}: {s.reason}" if s.reason else s.status
            line = f"  {s.path}: {s.format or '-'}, {s.traces} traces, {s.skipped} skipped ({state})"
            console.print(Text(line), soft_wrap=True)
        problems = s.errors or ([(None, s.reason or "unreadable")] if s.status == "skipped" else [])
        for line_no, reason in problems[: None if verbose else max(0, NAMED_SKIPS - named)]:
            where = f"{s.path}:{line_no}" if line_no is not None else s.path
            console.print(Text(f"  skipped {where}: {reason}", style="yellow"), soft_wrap=True)
            named += 1
    if not verbose and c["skipped"] > named:
        console.print(Text(f"  … and {c['skipped'] - named} more: -v names them, as does --json "
                           "(sources[].errors)", style="yellow"), soft_wrap=True)
    if analysis.patterns:
        table = Table(title="Top reasons the agent fails", title_justify="left", show_lines=False)
        table.add_column("#", justify="right")
        table.add_column("id", no_wrap=True)
        table.add_column("pattern")
        table.add_column("kind")
        table.add_column("traces", justify="right")
        table.add_column("share", justify="right")
        for n, p in enumerate(analysis.patterns[:TOP], 1):
            title = p.notes.get("name") or p.title
            table.add_row(str(n), p.id, excerpt(str(title), 60), p.kind, str(p.count), _pct(p.share))
        console.print(table)
        if len(analysis.patterns) > TOP:
            rest = sum(p.count for p in analysis.patterns[TOP:])
            console.print(f"… and {len(analysis.patterns) - TOP} more patterns covering {rest} failures")
        for n, p in enumerate(analysis.patterns[: 3 if not verbose else TOP], 1):
            console.print(Text(f"{n}. {p.title}  [{p.id}]", style="bold"), soft_wrap=True)
            for line in _pattern_lines(p):
                console.print(Text(f"   {line}"), soft_wrap=True)
    elif c["failure"]:
        console.print("no failure pattern stands out")
    fit = analysis.fit
    console.print(Text(_fit_line(fit)), soft_wrap=True)
    if analysis.judge is not None:
        for line in judge_lines(analysis.judge):
            console.print(Text(line), soft_wrap=True)
    if analysis.versions:
        table = Table(title="Failure rate by prompt version", title_justify="left")
        for col in ("version", "traces", "failures", "rate"):
            table.add_column(col, justify="left" if col == "version" else "right")
        for v in analysis.versions:
            rate_v = v["failure_rate"]
            table.add_row(str(v["prompt_version"]), str(v["traces"]), str(v["failure"]),
                          "–" if rate_v is None else _pct(rate_v))
        console.print(table)
    if analysis.reflection is not None:
        r = analysis.reflection
        console.print(f"reflection by {r.get('model')}: {r.get('calls')} call(s), "
                      f"${float(r.get('cost_usd') or 0):.4f}")


def judge_lines(j: Mapping[str, Any]) -> list[str]:
    """What the LLM judge labelled, how far it agrees with the explicit labels, and what it cost."""
    v = j["verdicts"]
    lines = [f"judge {j['model']}: {j['judged']} traces judged ({v['failure']} failed, {v['success']} "
             f"succeeded, {v['unknown']} unknown); {j['labels_used']} of its labels used for the weights"]
    a = j["agreement"]
    if a["compared"]:
        lines.append(f"judge agrees with the explicit labels on {a['agreed']} of {a['compared']} traces "
                     f"({_pct(a['rate'])})")
    lines.append(f"judge calls: {j['calls']} made, {j['cached']} cached · tokens: {j['input_tokens']} in, "
                 f"{j['output_tokens']} out · cost: ${float(j['cost_usd']):.4f}")
    if j.get("stopped"):
        lines.append(f"judge stopped: {j['stopped']}")
    elif j.get("errors"):
        lines.append(f"judge: {j['errors']} call(s) failed (verdict unknown); first: {j['first_error']}")
    return lines


def _duplicates_line(n: int) -> str:
    return f"{n} duplicate{'s' if n != 1 else ''} merged (the same trace read more than once is counted once)"


def _fit_line(fit: Fit) -> str:
    # say plainly when the weights were not fitted to this agent's labels
    parts = ["signal weights: learned" if fit.method == "learned" else
             "signal weights: uncalibrated prior (not fitted to this agent's labels)"]
    if fit.auroc_prior is not None:
        parts.append(f"prior AUROC {fit.auroc_prior:.2f} on {fit.labelled} labelled traces")
    if fit.auroc_learned is not None:
        parts.append(f"learned AUROC {fit.auroc_learned:.2f} against {fit.auroc_prior_cv or 0:.2f} for the "
                     f"prior ({fit.cv} cross-validation)")
        if fit.model.context:
            parts.append(f"{len(fit.model.context)} context features weighed (tools, last action, failing "
                         "tools, last speaker)")
    if fit.labelled == 0:
        parts.append("no labelled traces, so unlabelled outcomes rest on prior weights")
    return "; ".join(parts)


def _pattern_lines(p: Pattern) -> list[str]:
    ev = p.evidence
    lines = []
    signals = ", ".join(f"{k} {v}" for k, v in sorted(ev.get("signals", {}).items(), key=lambda kv: -kv[1]))
    lines.append(f"{p.count} traces, {_pct(p.share)} of failures; signals: {signals}")
    if p.notes.get("root_cause"):
        lines.append(f"root cause (model): {p.notes['root_cause']}")
    if p.notes.get("suggested_fix"):
        lines.append(f"suggested fix (model): {p.notes['suggested_fix']}")
    label = "error" if p.kind in ("tool_error", "run_error") else "seen"
    for sample in ev.get("error_samples", [])[:2]:
        lines.append(f"{label}: {excerpt(sample, 110)}")
    for phrase in ev.get("user_phrases", [])[:2]:
        lines.append(f"user: {excerpt(phrase, 110)}")
    if ev.get("config_hint"):
        lines.append(f"config knob: {ev['config_hint']}")
    if ev.get("consequences"):
        followed = ev["consequences"].items()
        lines.append("then: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in followed))
    blamed = ev.get("blame") or {}
    if any(agent.lower() not in ("assistant", "user") for agent in blamed):  # a multi-agent log: say who
        lines.append("responsible agent: " + ", ".join(f"{k} ({v} of {p.count})" for k, v in blamed.items()))
    if p.examples:
        lines.append("e.g. " + ", ".join(str(e["trace_id"]) for e in p.examples))
    return lines


# --- markdown ----------------------------------------------------------------------------------------

def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(analysis: Analysis) -> str:
    c = analysis.counts
    decided = c["failure"] + c["success"]
    out = ["# Why the agent fails", ""]
    rate = f" ({_pct(c['failure'] / decided)} of decided traces)" if decided else ""
    out.append(f"{c['total']} traces: **{c['failure']} failed**{rate}, {c['success']} succeeded, "
               f"{c['unknown']} unknown; {c['skipped']} records skipped.")
    if analysis.duplicates:
        out += ["", _duplicates_line(analysis.duplicates) + "."]
    out.append("")
    out.append(_fit_line(analysis.fit) + ".")
    out.append("")
    if analysis.judge is not None:
        out += ["- " + _md(line) for line in judge_lines(analysis.judge)] + [""]
    if analysis.patterns:
        out += ["## Top reasons", "", "| # | pattern | kind | traces | share |", "|---:|---|---|---:|---:|"]
        for n, p in enumerate(analysis.patterns, 1):
            out.append(f"| {n} | {_md(p.title)} | {p.kind} | {p.count} | {_pct(p.share)} |")
        out.append("")
        for n, p in enumerate(analysis.patterns[:TOP], 1):
            out += [f"### {n}. {_md(p.title)}", ""]
            out += [f"- {_md(line)}" for line in _pattern_lines(p)]
            for demo in p.evidence.get("demonstrations", [])[:1]:
                user, reply = excerpt(demo["user"], 100), excerpt(demo["assistant"], 100)
                out.append(f"- a success that looked alike ({_md(demo['trace_id'])}): user "
                           f"“{_md(user)}”, agent “{_md(reply)}”")
            out.append("")
    if analysis.versions:
        out += ["## Failure rate by prompt version", "", "| version | traces | failures | rate |",
                "|---|---:|---:|---:|"]
        for v in analysis.versions:
            rate_v = v["failure_rate"]
            out.append(f"| {_md(v['prompt_version'])} | {v['traces']} | {v['failure']} | "
                       f"{'–' if rate_v is None else _pct(rate_v)} |")
        out.append("")
    out += ["## Sources", "", "| path | format | traces | skipped |", "|---|---|---:|---:|"]
    for s in analysis.sources:
        out.append(f"| {_md(s.path)} | {s.format} | {s.traces} | {s.skipped} |")
    return "\n".join(out) + "\n"


def write_markdown(analysis: Analysis, path: Path) -> None:
    write_atomic(path, [markdown(analysis)])


# --- eval cases ------------------------------------------------------------------------------------

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
    from selfimprove.analysis.signals import first_line

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
