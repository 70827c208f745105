"""The analysis pipeline: one streaming pass over the traces, then decisions over compact summaries.

Owns `analyze()`, the entry point of `selfimprove analyze`. Each trace is looked at once, while it
streams past: its signals are detected, its explicit labels read, and only a compact summary is kept
(ids, signals, a feature vector, a few counters, and for a possible failure who first went wrong: its
`Blame`) together with bounded evidence per grouping key and a bounded pool of successful
conversations to mine demonstrations from (and, when an LLM judge is configured, a bounded pool of
candidates for it). After the pass the judge labels a sample of them, signal weights are fitted to the
labelled traces, every trace is scored, failures are grouped into patterns, and (with a model) the
patterns are reflected on.

Never does: keep whole traces (memory must stay flat for any log size), print, or call a model
without being handed a completer. Exporting failing traces as eval cases re-reads the input rather
than holding conversations in memory.
"""

from __future__ import annotations

import gc
import os
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfimprove.analysis import outcomes as oc
from selfimprove.analysis.blame import Blame, blame
from selfimprove.analysis.patterns import (
    call_steps,
    demonstration_turns,
    exchange,
    failed_calls,
    succeeded_calls,
)
from selfimprove.analysis.signals import IMPLICIT, Signal, detect, excerpt, explicit
from selfimprove.errors import SelfImproveError
from selfimprove.traces.model import Trace, TraceView, view_of

if TYPE_CHECKING:
    from selfimprove.analysis.judge import JudgeOptions, JudgePool
    from selfimprove.analysis.report import Analysis

MAX_KEYS = 5000  # distinct grouping keys that keep evidence; beyond that keys are only counted
MAX_EXAMPLES_PER_KEY = 8
MAX_KEPT = 12
MAX_DEMO_POOL = 400
USER_PREFIXES = ("user asked: ", "user gave up: ")


@dataclass(slots=True)
class Summary:
    """What analysis keeps of one trace after it has streamed past."""

    id: str
    source: str
    label: bool | None
    explicit: tuple[Signal, ...]
    implicit: tuple[Signal, ...]
    counts: dict[str, int]
    turns: int
    last_tool: str | None
    prompt_version: str | None
    kind: str = ""  # the reader that produced it: runs are only compared in length with their own kind
    x: tuple[float, ...] = ()
    extra: tuple[str, ...] = ()  # context features a labelled fit may weigh (see `context_features`)
    blame: Blame | None = None  # who first went wrong, for traces that may be failures

    def __reduce__(self) -> tuple[Any, ...]:  # workers send one per trace: as a plain tuple
        return Summary, (self.id, self.source, self.label, self.explicit, self.implicit, self.counts,
                         self.turns, self.last_tool, self.prompt_version, self.kind, self.x, self.extra,
                         self.blame)


@dataclass
class KeyEvidence:
    """Bounded evidence for one grouping key (kind|tool|template), gathered while streaming."""

    examples: list[tuple[int, str, str]] = field(default_factory=list)  # (summary index, excerpt, user text)
    # (summary index, text): raw error messages / details, and user correction texts; kept for more
    # traces than shown because only those that end up failing may be shown
    samples: list[tuple[int, str]] = field(default_factory=list)
    phrases: list[tuple[int, str]] = field(default_factory=list)
    arguments: list[tuple[int, str]] = field(default_factory=list)  # (summary index, failed call's args JSON)
    exchanges: list[tuple[int, str]] = field(default_factory=list)  # (summary index, exchange JSON)


@dataclass(frozen=True)
class Demo:
    trace_id: str
    user: str
    assistant: str
    tools: frozenset[str]
    index: int = 0  # the trace's summary index (its place in the stream)
    calls: tuple[tuple[str, str], ...] = ()  # (tool, arguments JSON) of its calls, one per tool
    steps: tuple[tuple[str, str, str, str], ...] = ()  # (tool, request, arguments JSON, reply), one per tool


@dataclass
class Collected:
    """Everything the streaming pass keeps."""

    summaries: list[Summary] = field(default_factory=list)
    evidence: dict[str, KeyEvidence] = field(default_factory=dict)
    demos: list[Demo] = field(default_factory=list)
    # (tool error key, labelled failure?) → labelled traces with it: an error as common in labelled
    # successes as in labelled failures is routine, not the cause of a failure
    labelled_errors: Counter[tuple[str, bool]] = field(default_factory=Counter)
    labelled: Counter[bool] = field(default_factory=Counter)
    routine: frozenset[str] = frozenset()  # those errors, once the pass is over (`routine_errors`)
    filtered: int = 0  # traces outside --since/--until
    undated: int = 0  # traces without a timestamp while a time filter was given (kept)
    pool: JudgePool | None = None  # candidates for the LLM judge, only when one is configured
    # one trace once (traces.read): repeats of a trace read before, not analysed; their sources by id
    duplicates: int = 0
    also: dict[str, tuple[str, ...]] = field(default_factory=dict)


def first_user(view: TraceView) -> str:
    texts = view.texts
    for i, role in enumerate(view.roles):
        if role == "user" and texts[i].strip():
            return excerpt(texts[i], 300)
    return ""


def _in_window(trace: Trace, since: datetime | None, until: datetime | None, col: Collected) -> bool:
    if since is None and until is None:
        return True
    when = trace.started_at
    if when is None:
        col.undated += 1
        return True
    if since is not None and when < since:
        return False
    return until is None or when < until


def collect(traces: Iterable[Trace], *, since: datetime | None = None, until: datetime | None = None,
            col: Collected | None = None) -> Collected:
    """The streaming pass: summaries, bounded evidence and the demonstration pool."""
    col = col if col is not None else Collected()
    with _few_collections():
        for trace in traces:
            if not _in_window(trace, since, until, col):
                col.filtered += 1
                continue
            observe(trace, col)
    return col


@contextmanager
def _few_collections() -> Iterator[None]:
    """The pass allocates millions of short-lived objects (parsed records) and keeps few: the cyclic
    garbage collector, run every 700 allocations by default, costs it about a tenth of its time
    while finding next to nothing. It still runs, every GC_EVERY allocations."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], GC_EVERY), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


GC_EVERY = 50_000


def observe(trace: Trace, col: Collected) -> None:
    view = view_of(trace)
    found = detect(trace, view)
    labels = tuple(explicit(trace)) if trace.feedback else ()
    label = oc.label_of(labels) if labels else None
    counts: dict[str, int] = {}
    for sig in found:
        counts[sig.name] = counts.get(sig.name, 0) + 1
    roles = view.roles
    turns = len(roles) - roles.count("system")
    last_tool = view.calls[-1][1] if view.calls else None
    if claims_done(view):
        counts["claims_done"] = 1
    index = len(col.summaries)
    blamed = None
    if label or (label is None and found):  # a possible failure: who went wrong first
        # names of speakers (AutoGen, ADK) live on messages; plain chat records have none worth building
        names = None if getattr(trace, "view", None) is not None else [m.name for m in trace.messages]
        blamed = blame(view, found, names)
    if label is not None:
        col.labelled[label] += 1
        for key in {sig.key for sig in found if sig.name == "tool_error"}:
            col.labelled_errors[(key, label)] += 1
    col.summaries.append(Summary(trace.id, trace.source, label, labels, tuple(found), counts, turns,
                                 last_tool, trace.prompt_version, trace.format,
                                 extra=context_features(view, found, last_tool), blame=blamed))
    user = first_user(view) if found or label is not None else ""
    if label is not False and (found or label):
        keys = found + [s for s in labels if s.name == "run_error"]
        if label:  # the key of a labelled failure no signal explains: label and last action
            key = f"explicit_failure|{_label_name(labels)}|{last_tool or ''}"
            keys.append(Signal("explicit_failure", key=key))
        for s in keys:
            _remember(col, s, index, user)
            ev = col.evidence.get(s.key)
            if ev is not None and len(ev.exchanges) < MAX_EXAMPLES_PER_KEY:
                said = exchange(view, s.message_index)
                if said is not None:
                    ev.exchanges.append((index, said))
        for key, args in failed_calls(view, found):  # what the failing calls were given
            ev = col.evidence.get(key)
            if ev is not None and len(ev.arguments) < MAX_KEPT and all(a != args for _, a in ev.arguments):
                ev.arguments.append((index, args))
    if (label is False or (label is None and not found)) and len(col.demos) < MAX_DEMO_POOL:
        pair = demonstration_turns(view)  # a request and the answer to it, not the last pleasantry
        steps = call_steps(view) if view.calls else ()  # each tool called right, with its request
        if pair is not None or steps:
            tools = frozenset(name for _, name, _, _ in view.calls)
            col.demos.append(Demo(trace.id, *(pair or ("", "")), tools, index, succeeded_calls(view), steps))
    if col.pool is not None:
        col.pool.offer(trace, view, index, label, found)


MAX_TOOLS = 12  # tools named per trace in its context features: enough for any one agent's toolset
_CLAIMS_DONE = re.compile(
    r"\b(?:final\s+answer|successfully|(?:has|have)\s+been\s+(?:\w+ed|done|sent|made)|all\s+set"
    r"|is\s+(?:now\s+)?(?:complete|done)|i(?:'ve|\s+have)\s+(?:completed|finished|done))\b")
_interned: dict[str, str] = {}


def _intern(name: str) -> str:
    """Context feature names repeat across traces: one string each (bounded; a summary stays small)."""
    if len(_interned) >= 10_000:
        return name
    return _interned.setdefault(name, name)


def claims_done(view: TraceView) -> bool:
    """The agent's last message says the task is done ("successfully", "FINAL ANSWER", ...)."""
    roles, texts = view.roles, view.texts
    for i in range(len(roles) - 1, -1, -1):
        if roles[i] not in ("user", "tool", "system") and texts[i].strip():
            text = texts[i]
            low = (text if len(text) <= 1500 else text[:500] + "\x00" + text[-1000:]).lower()
            return _CLAIMS_DONE.search(low) is not None
    return False


def context_features(view: TraceView, found: Sequence[Signal], last_tool: str | None) -> tuple[str, ...]:
    """What a labelled fit may learn from beyond the generic signals: the tools called, the last action,
    the tools that failed, who spoke last. Names, not counts: compact, and comparable across traces."""
    names = {f"tool:{name}" for _, name, _, _ in view.calls[:200]}
    if len(names) > MAX_TOOLS:
        names = set(sorted(names)[:MAX_TOOLS])
    names.add(f"last:{last_tool or '-'}")
    for sig in found:
        if sig.name == "tool_error":
            names.add("error:" + sig.key.split("|", 2)[1])
    roles, texts = view.roles, view.texts
    last = next((roles[i] for i in range(len(roles) - 1, -1, -1)
                 if roles[i] != "system" and texts[i].strip()), "-")
    names.add(f"speaker:{last[:40]}")
    return tuple(sorted(_intern(n) for n in names))


def _label_name(labels: Sequence[Signal]) -> str:
    for s in labels:
        if s.name == "explicit_failure":
            return s.key.split("|", 1)[1] if "|" in s.key else "label"
    return "label"


def _remember(col: Collected, s: Signal, index: int, user: str) -> None:
    ev = col.evidence.get(s.key)
    if ev is None:
        if len(col.evidence) >= MAX_KEYS:
            return
        ev = col.evidence[s.key] = KeyEvidence()
    if len(ev.examples) < MAX_EXAMPLES_PER_KEY and not any(e[0] == index for e in ev.examples):
        ev.examples.append((index, s.detail, user))
    said_by_user = s.name in ("user_correction", "rephrase") or s.detail.startswith(USER_PREFIXES)
    if said_by_user and s.detail:
        phrase = s.detail
        for prefix in USER_PREFIXES:
            phrase = phrase.removeprefix(prefix)
        if len(ev.phrases) < MAX_KEPT and all(p != phrase for _, p in ev.phrases):
            ev.phrases.append((index, phrase))
    elif s.name != "explicit_failure" and s.detail:
        if len(ev.samples) < MAX_KEPT and all(p != s.detail for _, p in ev.samples):
            ev.samples.append((index, s.detail))


# --- decisions after the pass -------------------------------------------------------------------

def score(col: Collected, judged: Mapping[int, tuple[bool | None, Signal]] | None = None
          ) -> tuple[list[oc.Outcome], oc.Fit, list[tuple[int, Signal | None]]]:
    """Fit the weights, decide every outcome, and choose the signal that best explains each failure.

    `judged` (summary index → the judge's label, or None, and its verdict as a signal): a judge's label
    counts as a label, for the fit and for its own trace's outcome.
    """
    judged = judged or {}
    medians = medians_of(col.summaries)
    vectorize(col.summaries, medians)
    labels = [s.label for s in col.summaries]
    for i, (judged_label, _) in judged.items():
        if labels[i] is None:  # an explicit label wins over the judge's
            labels[i] = judged_label
    rows = [(s, y) for s, y in zip(col.summaries, labels, strict=True) if y is not None]
    fit = oc.fit([(s.x, y) for s, y in rows], extras=[s.extra for s, _ in rows])
    model = fit.model
    outcomes: list[oc.Outcome] = []
    failing: list[tuple[int, Signal | None]] = []
    decided: dict[tuple[bool | None, tuple[float, ...], tuple[str, ...]], tuple[str, float]] = {}
    routine = col.routine = routine_errors(col)
    contributed: dict[tuple[float, ...], dict[str, float]] = {}
    for index, s in enumerate(col.summaries):
        label = labels[index]
        extra = s.extra if model.context else ()
        dkey = (label, s.x, extra)
        verdict = decided.get(dkey)
        if verdict is None:
            verdict = decided[dkey] = oc.decide(label, s.x, model, extra)
        outcome, failure_score = verdict
        contrib = contributed.get(s.x)
        if contrib is None:
            contrib = contributed[s.x] = oc.contributions(s.x, model)
        weighted = [_weighted(sig, contrib, s.counts) for sig in s.implicit]
        if contrib.get("long_run", 0.0) > 0 and s.turns:
            weighted.append(Signal("long_run", contrib["long_run"],
                                   f"{s.turns} turns, the median run has {medians[s.kind]:g}"))
        signals = tuple(s.explicit) + tuple(weighted)
        judge_signal = judged[index][1] if judged and index in judged else None
        if judge_signal is not None:
            signals += (judge_signal,)
        failed = outcome == "failure"
        outcomes.append(oc.Outcome(s.id, s.source, outcome, failure_score, signals,
                                   blame=s.blame if failed else None))
        if failed:
            why = explain(s, contrib, routine)
            if why is None and s.label is None and judge_signal is not None:  # the judge's label alone
                why = Signal("llm_judge", 0.0, judge_signal.detail, judge_signal.message_index,
                             f"explicit_failure|llm_judge|{s.last_tool or ''}")
            failing.append((index, why))
    return outcomes, fit, failing


def medians_of(summaries: Sequence[Summary]) -> dict[str, float]:
    """The median run length per reader (0 when too few runs of that kind to say what is usual)."""
    by_kind: dict[str, list[int]] = {}
    for s in summaries:
        by_kind.setdefault(s.kind, []).append(s.turns)
    return {kind: float(statistics.median(turns)) if len(turns) >= oc.MIN_RUNS_FOR_MEDIAN else 0.0
            for kind, turns in by_kind.items()}


def vectorize(summaries: Sequence[Summary], medians: Mapping[str, float]) -> None:
    """Give every summary its generic feature vector; most traces share a handful, each built once."""
    vectors: dict[tuple[Any, ...], tuple[float, ...]] = {}
    for s in summaries:
        vkey = (tuple(s.counts.items()), s.turns, s.kind)
        x = vectors.get(vkey)
        if x is None:
            median = medians[s.kind]
            x = vectors[vkey] = oc.features(s.counts, oc.long_run_feature(s.turns, median),
                                            oc.short_run_feature(s.turns, median))
        s.x = x


def _weighted(sig: Signal, contrib: Mapping[str, float], counts: Mapping[str, int]) -> Signal:
    share = contrib.get(sig.name, 0.0) / max(1, counts.get(sig.name, 1))
    return Signal(sig.name, share, sig.detail, sig.message_index, sig.key)


EXPLAINS = 0.25  # a signal must add at least this much log-odds to explain a failure


def routine_errors(col: Collected) -> frozenset[str]:
    """Tool error keys as common among labelled successes as among labelled failures: not a cause."""
    ok, bad = col.labelled[False], col.labelled[True]
    if not ok or not bad:
        return frozenset()
    return frozenset(key for (key, failed), n in col.labelled_errors.items()
                     if not failed and n / ok >= col.labelled_errors[(key, True)] / bad)


def explain(s: Summary, contrib: Mapping[str, float], routine: frozenset[str] = frozenset()) -> Signal | None:
    """The signal that explains a failure: a run error, else its earliest decisive anomaly (the first
    failed tool call whose error is not routine: apologies, corrections, escalations and abandonment
    after it are its consequences), else the heaviest implicit signal."""
    for sig in s.explicit:
        if sig.name == "run_error":
            return sig
    first = None
    for sig in s.implicit:
        if sig.name == "tool_error" and sig.key and sig.key not in routine and (
                first is None or (sig.message_index or 0) < (first.message_index or 0)):
            first = sig
    if first is not None:
        return first
    ranked = sorted(((contrib.get(sig.name, 0.0), -k, sig) for k, sig in enumerate(s.implicit)
                     if sig.name in IMPLICIT and sig.key not in routine),
                    key=lambda t: (t[0], t[1]), reverse=True)
    if ranked and ranked[0][0] >= EXPLAINS:
        return ranked[0][2]
    # nothing weighs enough: the earliest signal the weights do not read as success still says more
    # than a catch-all ("labelled failures where the agent's last action was …")
    said = [sig for w, _, sig in ranked if w > 0 and sig.key and sig.message_index is not None]
    return min(said, key=lambda sig: sig.message_index or 0) if said else None


# --- the entry point ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceInfo:
    path: str
    format: str
    traces: int
    skipped: int
    errors: tuple[tuple[int | None, str], ...]
    status: str = "read"
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"path": self.path, "format": self.format, "traces": self.traces,
                               "skipped": self.skipped,
                               "errors": [{"line": line, "reason": reason} for line, reason in self.errors]}
        if self.status != "read":
            doc["status"] = self.status
        if self.reason:
            doc["reason"] = self.reason
        return doc


def analyze(paths: Sequence[Path], *, format: str = "auto", since: datetime | None = None,
            until: datetime | None = None, strict: bool = False, completer: Any = None,
            model: str | None = None, progress: Callable[[int], None] | None = None,
            workers: int | None = None, judge: JudgeOptions | None = None,
            notice: Callable[[str], None] | None = None, cluster: str | None = None) -> Analysis:
    """Read, score, group and (with a model) reflect: the whole of `selfimprove analyze`.

    Large inputs are read by `workers` processes (default: one per CPU, up to 4, when the input is
    over PARALLEL_MIN_BYTES), each reading one shard; the result is the same as with one. With
    `cluster` (a Dask scheduler's address) the shards run as tasks there instead. With `judge`
    (and a completer) an LLM judge labels a sample of the traces before the weights are fitted;
    `notice` hears what it is about to spend.
    """
    from selfimprove.analysis.patterns import group
    from selfimprove.analysis.report import Analysis
    from selfimprove.traces.read import read_traces

    stream = read_traces(list(paths), format=format, strict=strict, progress=progress, views=True)
    set_total = getattr(progress, "set_total", None)
    if set_total is not None:
        set_total(stream.total_bytes)
    n = workers if workers is not None else default_workers(stream.total_bytes)
    col: Collected | None = None
    pool_size = judge.sample if judge is not None and completer is not None else 0
    if cluster:
        from selfimprove.analysis.cluster import collect_on_cluster

        col, reports = collect_on_cluster(list(paths), cluster, format=format, strict=strict, since=since,
                                          until=until, progress=progress, judge_pool=pool_size)
    elif n > 1:
        from concurrent.futures.process import BrokenProcessPool

        from selfimprove.analysis.parallel import collect_sharded

        try:
            col, reports = collect_sharded(list(paths), n, format=format, strict=strict, since=since,
                                           until=until, progress=progress, judge_pool=pool_size)
        except (BrokenProcessPool, OSError):  # no usable worker processes here: read in this one
            col = None
    if col is None:
        col = collect(stream, since=since, until=until, col=new_collected(pool_size))
        reports = list(stream.sources)
        col.duplicates, col.also = stream.duplicates, stream.also
    sources = tuple(_source_info(r) for r in reports)
    if sum(s.traces for s in sources) == 0:
        first = _first_problem(sources)
        only_other_files = all(s.status == "ignored" and not s.errors for s in sources)
        raise SelfImproveError(
            f"no traces could be read from {', '.join(str(p) for p in paths)}"
            + (f"; first problem: {first}" if first else ""),
            hint="put your agent's logs there (OpenAI or Anthropic messages, OTLP, Langfuse or LangSmith "
                 "exports, … see the README)" if only_other_files
            else "check the files' format (--format forces a reader)")
    judged, judge_report = None, None
    if judge is not None and col.pool is not None:  # a pool is gathered only with a completer
        from selfimprove.analysis import judge as llm_judge

        current, _, _ = score(col)  # the current failure scores stratify the sample
        verdicts, judge_report = llm_judge.judge(col, [o.failure_score for o in current], judge, completer,
                                                 notice)
        judged = llm_judge.labels(col, verdicts)
    outcomes, fit, failing = score(col, judged)
    # every report quotes the patterns' evidence: redact it once, here (ids and counts are unchanged)
    patterns = [_redacted_pattern(p) for p in group(col, outcomes, failing)]
    reflection = None
    if completer is not None and model and patterns:
        from selfimprove.analysis.reflect import reflect

        patterns, reflection = reflect(patterns, completer=completer, model=model)
    by_pattern = {i: p.id for p in patterns for i in p.members}
    outcomes = [_with_pattern(o, by_pattern.get(i)) for i, o in enumerate(outcomes)]
    return Analysis(
        outcomes=tuple(outcomes), patterns=tuple(patterns), sources=sources, fit=fit,
        versions=versions(col.summaries, outcomes), filtered=col.filtered, undated=col.undated,
        reflection=reflection, inputs=tuple(str(p) for p in paths), format=format, judge=judge_report,
        duplicates=col.duplicates, also=col.also,
    )


def new_collected(pool_size: int) -> Collected:
    """An empty `Collected`, gathering a judge's candidate pool when `pool_size` is above 0."""
    if pool_size <= 0:
        return Collected()
    from selfimprove.analysis.judge import JudgePool

    return Collected(pool=JudgePool(pool_size))


def _redacted_pattern(p: Any) -> Any:
    from dataclasses import replace

    from selfimprove.analysis.report import redacted

    return replace(p, title=redacted(p.title), examples=redacted(p.examples), evidence=redacted(p.evidence))


PARALLEL_MIN_BYTES = 16 << 20


def default_workers(total_bytes: int) -> int:
    if total_bytes < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1))


def _first_problem(sources: Sequence[SourceInfo]) -> str | None:
    for s in sources:
        if s.errors:
            line, reason = s.errors[0]
            return f"{s.path}:{line}: {reason}" if line is not None else f"{s.path}: {reason}"
    for s in sources:
        if s.reason:
            return f"{s.path}: {s.reason}"
    return None


def _with_pattern(o: oc.Outcome, pattern: str | None) -> oc.Outcome:
    if pattern is None:
        return o
    return oc.Outcome(o.trace_id, o.source, o.outcome, o.failure_score, o.signals, pattern, o.blame)


def _source_info(report: Any) -> SourceInfo:
    errors = tuple((line, reason) for line, reason in getattr(report, "errors", ()))
    return SourceInfo(str(report.path), str(report.format or ""), int(report.traces), int(report.skipped),
                      errors, str(getattr(report, "status", "read")), getattr(report, "reason", None))


def versions(summaries: Sequence[Summary], outcomes: Sequence[oc.Outcome]) -> tuple[dict[str, Any], ...]:
    """Failure rate per prompt_version, in order of first appearance: did a change hold up?"""
    table: dict[str, Counter[str]] = {}
    for s, o in zip(summaries, outcomes, strict=True):
        if s.prompt_version is None:
            continue
        table.setdefault(s.prompt_version, Counter())[o.outcome] += 1
    rows = []
    for version, c in table.items():
        total = sum(c.values())
        decided = c["failure"] + c["success"]
        rows.append({"prompt_version": version, "traces": total, "failure": c["failure"],
                     "success": c["success"], "unknown": c["unknown"],
                     "failure_rate": round(c["failure"] / decided, 4) if decided else None})
    return tuple(rows)


def iter_failing(paths: Sequence[Path], ids: Iterable[str], *, format: str = "auto") -> Iterator[Trace]:
    """Second pass for --export-cases: the failing traces again, read one at a time."""
    from selfimprove.traces.read import read_traces

    wanted = set(ids)
    for trace in read_traces(list(paths), format=format):
        if trace.id in wanted:
            yield trace


def export_cases(analysis: Analysis, path: Path) -> int:
    """Write the failing traces of `analysis` as eval cases; re-reads its inputs one trace at a time."""
    from selfimprove.analysis.report import write_cases
    from selfimprove.traces.read import read_traces
    from selfimprove.traces.storage import as_path

    stream = read_traces([as_path(p) for p in analysis.inputs], format=analysis.format)
    return write_cases(analysis, stream, path)


# --- inputs --------------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*(?:ago)?\s*$", re.I)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str | None, flag: str, *, now: datetime | None = None) -> datetime | None:
    """An ISO date or date-time (UTC when no zone is given), or a span ago such as 7d, 24h, 30m."""
    if text is None:
        return None
    rel = _RELATIVE.match(text)
    if rel:
        now = now or datetime.now(timezone.utc)
        return now - timedelta(**{_UNITS[rel.group(2).lower()]: int(rel.group(1))})
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        when = None
    if when is None:
        raise SelfImproveError(f"{flag} {text!r} is not a date or time",
                               hint="use an ISO date such as 2025-01-31 or 2025-01-31T12:00, or 7d / 24h")
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def resolve_inputs(paths: Sequence[Path], format: str | None, repo: Path | None, config: Path | None,
                   model: str | None, offline: bool) -> tuple[list[Path], str, str | None, float]:
    """(paths, format, reflection model, its timeout): the command's options, completed from
    selfimprove.yaml."""
    from selfimprove.config import load_settings

    settings = None
    if not paths or repo is not None or config is not None:
        settings = load_settings(repo, config)
    elif not offline and model is None:
        settings = _optional_settings()
    if not paths:
        assert settings is not None
        if not settings.traces_path:
            raise SelfImproveError("no trace paths given and selfimprove.yaml has no traces.path",
                                   where=str(settings.path.name),
                                   hint="pass PATH... or set traces: {path: logs/} in selfimprove.yaml")
        from selfimprove.traces.storage import as_path, is_url

        paths = [as_path(settings.traces_path) if is_url(settings.traces_path)
                 else settings.root / settings.traces_path]
    fmt = format or (settings.traces_format if settings is not None else "auto")
    chosen = None if offline else (model or (settings.reflection_model if settings is not None else None))
    return list(paths), fmt, chosen, settings.reflection_timeout if settings is not None else 60.0


def _optional_settings() -> Any:
    """The settings around the cwd when there are any (for the reflection model); none is fine."""
    from selfimprove.config import CONFIG_NAME, find_root, load_settings

    try:
        root = find_root(Path.cwd())
    except SelfImproveError:
        return None
    return load_settings(root) if (root / CONFIG_NAME).is_file() else None
