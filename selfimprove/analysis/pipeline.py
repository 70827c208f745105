"""The analysis pipeline: one streaming pass over the traces, then decisions over compact summaries.

Owns `analyze()`, the entry point of `selfimprove analyze`: the streaming pass (`collect`, or
`parallel` for a large input) keeps a compact summary per trace and bounded evidence; after it the
judge labels a sample of them, signal weights are fitted to the labelled traces, every trace is
scored (`score`), its failure explained by one signal (`explain`), failures are grouped into
patterns, and (with a model) the patterns are reflected on. The result is an `Analysis` record.

Never does: keep whole traces, print, render, or call a model without being handed a completer.
"""

from __future__ import annotations

import os
import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfimprove.analysis import outcomes as oc
from selfimprove.analysis.collect import collect, new_collected
from selfimprove.analysis.records import Analysis, Collected, Evidence, Example, Pattern, SourceInfo, Summary
from selfimprove.analysis.signals import IMPLICIT, Signal
from selfimprove.errors import SelfImproveError
from selfimprove.redact import redacted

if TYPE_CHECKING:
    from selfimprove.analysis.judge import JudgeOptions

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


def _redacted_pattern(p: Pattern) -> Pattern:
    """The pattern with every string that quotes a trace redacted (the keys of its counts are names)."""
    return replace(p, title=redacted(p.title),
                   examples=tuple(Example.from_json(redacted(e.to_json())) for e in p.examples),
                   evidence=Evidence.from_json(redacted(p.evidence.to_json())))


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
