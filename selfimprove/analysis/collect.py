"""The streaming pass of `analyze`: each trace looked at once, only a compact summary kept.

Owns `collect()`: while a trace streams past, its signals are detected, its explicit labels read, and
only a compact `Summary` is kept (ids, signals, a few counters, context features, and for a possible
failure who first went wrong: its `Blame`), together with bounded evidence per grouping key, a
bounded pool of successful conversations to mine demonstrations from and, when an LLM judge is
configured, its bounded pool of candidates. `parallel` runs the same pass in worker processes.

Never does: keep whole traces (memory must stay flat for any log size), decide an outcome (that is
`pipeline.score`, once the pass is over), print or call a model.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from selfimprove.analysis import outcomes as oc
from selfimprove.analysis.blame import blame
from selfimprove.analysis.patterns import (
    call_steps,
    demonstration_turns,
    exchange,
    failed_calls,
    succeeded_calls,
)
from selfimprove.analysis.records import Collected, Demo, KeyEvidence, Summary
from selfimprove.analysis.signals import Signal, detect, excerpt, explicit
from selfimprove.traces.model import Trace, TraceView, view_of

MAX_KEYS = 5000  # distinct grouping keys that keep evidence; beyond that keys are only counted
MAX_EXAMPLES_PER_KEY = 8
MAX_KEPT = 12
MAX_DEMO_POOL = 400
USER_PREFIXES = ("user asked: ", "user gave up: ")


def first_user(view: TraceView) -> str:
    texts = view.texts
    for i, role in enumerate(view.roles):
        if role == "user" and texts[i] and not texts[i].isspace():
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
    if label is not False and (found or label):
        user: list[str] = []  # the trace's first request, quoted by a key's first examples only
        keys = found + [s for s in labels if s.name == "run_error"]
        if label:  # the key of a labelled failure no signal explains: label and last action
            key = f"explicit_failure|{_label_name(labels)}|{last_tool or ''}"
            keys.append(Signal("explicit_failure", key=key))
        for s in keys:
            _remember(col, s, index, view, user)
            ev = col.evidence.get(s.key)
            if ev is not None and len(ev.exchanges) < MAX_EXAMPLES_PER_KEY:
                said = exchange(view, s.message_index)
                if said is not None:
                    ev.exchanges.append((index, said))
        if any(s.name == "tool_error" and (ev := col.evidence.get(s.key)) is not None
               and len(ev.arguments) < MAX_KEPT for s in found):
            for key, args in failed_calls(view, found):  # what the failing calls were given
                ev = col.evidence.get(key)
                if ev is not None and len(ev.arguments) < MAX_KEPT \
                        and all(a != args for _, a in ev.arguments):
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
_CLAIMS_WORDS = ("answer", "success", "been", "all set", "complete", "done", "finished")  # one in each match
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
        if roles[i] not in ("user", "tool", "system") and texts[i] and not texts[i].isspace():
            text = texts[i]
            low = (text if len(text) <= 1500 else text[:500] + "\x00" + text[-1000:]).lower()
            for word in _CLAIMS_WORDS:  # a cheap test before the expression
                if word in low:
                    return _CLAIMS_DONE.search(low) is not None
            return False
    return False


def context_features(view: TraceView, found: Sequence[Signal], last_tool: str | None) -> tuple[str, ...]:
    """What a labelled fit may learn from beyond the generic signals: the tools called, the last action,
    the tools that failed, who spoke last. Names, not counts: compact, and comparable across traces."""
    roles, texts = view.roles, view.texts
    last = next((roles[i] for i in range(len(roles) - 1, -1, -1)
                 if roles[i] != "system" and texts[i] and not texts[i].isspace()), "-")
    tools = frozenset(call[1] for call in view.calls[:200])
    failing = frozenset(sig.key for sig in found if sig.name == "tool_error")
    key = (tools, last_tool, failing, last)
    hit = _features.get(key)
    if hit is not None:
        return hit
    names = {f"tool:{name}" for name in tools}
    if len(names) > MAX_TOOLS:
        names = set(sorted(names)[:MAX_TOOLS])
    names.add(f"last:{last_tool or '-'}")
    names.update("error:" + k.split("|", 2)[1] for k in failing)
    names.add(f"speaker:{last[:40]}")
    out = tuple(sorted(_intern(n) for n in names))
    if len(_features) < 10_000:  # bounded: most traces of one agent share a handful
        _features[key] = out
    return out


_features: dict[tuple[frozenset[str], str | None, frozenset[str], str], tuple[str, ...]] = {}


def _label_name(labels: Sequence[Signal]) -> str:
    for s in labels:
        if s.name == "explicit_failure":
            return s.key.split("|", 1)[1] if "|" in s.key else "label"
    return "label"


def _remember(col: Collected, s: Signal, index: int, view: TraceView, user: list[str]) -> None:
    ev = col.evidence.get(s.key)
    if ev is None:
        if len(col.evidence) >= MAX_KEYS:
            return
        ev = col.evidence[s.key] = KeyEvidence()
    if len(ev.examples) < MAX_EXAMPLES_PER_KEY and not any(e[0] == index for e in ev.examples):
        if not user:
            user.append(first_user(view))
        ev.examples.append((index, s.detail, user[0]))
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




def new_collected(pool_size: int) -> Collected:
    """An empty `Collected`, gathering a judge's candidate pool when `pool_size` is above 0."""
    if pool_size <= 0:
        return Collected()
    from selfimprove.analysis.judge import JudgePool

    return Collected(pool=JudgePool(pool_size))
