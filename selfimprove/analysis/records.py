"""The records analysis hands on: what the streaming pass keeps, and what `analyze()` returns.

Owns the shared, typed records of the analysis stage so that every module of it (the streaming
pass, scoring, grouping, the judge, reflection, the exports) and every reader downstream (the CLI's
reports, the proposers) depends on them rather than on each other: `Summary`, `KeyEvidence`, `Demo`
and `Collected` (what one pass over the traces keeps), `SourceInfo`, `Pattern` with its `Evidence`
and `Example`s, and `Analysis` (the result, `to_json` giving the "selfimprove.analysis/v1" document,
DESIGN §5, described by schemas/analysis.schema.json). `Pattern.from_json` is how proposals read a
saved analysis: the contract between the two stages is these records, not a dict with string keys.

Never does: decide, read or render anything; it imports no other module of the analysis but the
record modules below it (signals, blame, outcomes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from selfimprove.analysis.blame import Blame
    from selfimprove.analysis.outcomes import Fit, Outcome
    from selfimprove.analysis.signals import Signal
    from selfimprove.traces.model import Trace, TraceView

SCHEMA = "selfimprove.analysis/v1"


# --- what the streaming pass keeps --------------------------------------------------------------

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


class CandidatePool(Protocol):
    """Where the pass offers each trace to an LLM judge's sample (`judge.JudgePool`)."""

    def offer(self, trace: Trace, view: TraceView, index: int, label: bool | None,
              found: Sequence[Signal]) -> None: ...


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
    pool: CandidatePool | None = None  # candidates for the LLM judge, only when one is configured
    # one trace once (traces.read): repeats of a trace read before, not analysed; their sources by id
    duplicates: int = 0
    also: dict[str, tuple[str, ...]] = field(default_factory=dict)


# --- the result ---------------------------------------------------------------------------------------

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


# --- a pattern and its evidence: what analysis hands to proposals ------------------------------------

@dataclass(frozen=True)
class Example:
    """A failing trace of a pattern, with what it shows (a signal's detail or the user's request)."""

    trace_id: str
    source: str
    excerpt: str

    def to_json(self) -> dict[str, Any]:
        return {"trace_id": self.trace_id, "source": self.source, "excerpt": self.excerpt}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Example:
        return cls(str(doc.get("trace_id", "")), str(doc.get("source", "")), str(doc.get("excerpt", "")))


@dataclass(frozen=True)
class Demonstration:
    """A successful exchange that answers the same kind of request (for a tool's pattern: the request,
    then the call that worked and the agent's reply)."""

    trace_id: str
    user: str
    assistant: str

    def to_json(self) -> dict[str, Any]:
        return {"trace_id": self.trace_id, "user": self.user, "assistant": self.assistant}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Demonstration:
        return cls(str(doc.get("trace_id", "")), str(doc.get("user", "")), str(doc.get("assistant", "")))


@dataclass(frozen=True)
class Turn:
    """One message of a failing exchange, excerpted (a call shown as `[calls tool({...})]`)."""

    role: str
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "text": self.text}


@dataclass(frozen=True)
class CallArguments:
    """The scalar arguments of the pattern's failing calls and of the same tool's calls that worked."""

    failing: tuple[Mapping[str, Any], ...]
    succeeding: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"failing": [dict(c) for c in self.failing], "succeeding": [dict(c) for c in self.succeeding]}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> CallArguments:
        return cls(tuple(dict(c) for c in doc.get("failing") or ()),
                   tuple(dict(c) for c in doc.get("succeeding") or ()))


@dataclass(frozen=True)
class Evidence:
    """What the traces show about a pattern: built by `patterns`, read by the proposers and reports.

    Every field is bounded when it is built, and in JSON (`to_json`, schemas/analysis.schema.json) a
    field is written only when it holds something, except `signals`. A new field is added here, in
    `to_json` / `from_json` and in the schema.
    """

    signals: Mapping[str, int] = field(default_factory=dict)  # signal name → failing traces with it
    consequences: Mapping[str, int] = field(default_factory=dict)  # what followed the anomaly → traces
    blame: Mapping[str, int] = field(default_factory=dict)  # the agent that first went wrong → traces
    tool: str | None = None
    error_template: str | None = None
    error_samples: tuple[str, ...] = ()
    user_phrases: tuple[str, ...] = ()
    config_hint: str | None = None  # a config knob the errors point at (timeout, max_results, …)
    demonstrations: tuple[Demonstration, ...] = ()
    exchanges: tuple[tuple[Turn, ...], ...] = ()
    call_arguments: CallArguments | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"signals": dict(self.signals)}
        if self.consequences:
            doc["consequences"] = dict(self.consequences)
        if self.blame:
            doc["blame"] = dict(self.blame)
        if self.tool is not None:
            doc["tool"] = self.tool
        if self.error_template is not None:
            doc["error_template"] = self.error_template
        if self.error_samples:
            doc["error_samples"] = list(self.error_samples)
        if self.user_phrases:
            doc["user_phrases"] = list(self.user_phrases)
        if self.config_hint is not None:
            doc["config_hint"] = self.config_hint
        if self.demonstrations:
            doc["demonstrations"] = [d.to_json() for d in self.demonstrations]
        if self.exchanges:
            doc["exchanges"] = [[turn.to_json() for turn in exchange] for exchange in self.exchanges]
        if self.call_arguments is not None:
            doc["call_arguments"] = self.call_arguments.to_json()
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Evidence:
        """The evidence of an `analyze --json` document (checked against its schema before)."""
        calls = doc.get("call_arguments")
        return cls(
            signals=dict(doc.get("signals") or {}),
            consequences=dict(doc.get("consequences") or {}),
            blame=dict(doc.get("blame") or {}),
            tool=doc.get("tool"),
            error_template=doc.get("error_template"),
            error_samples=tuple(doc.get("error_samples") or ()),
            user_phrases=tuple(doc.get("user_phrases") or ()),
            config_hint=doc.get("config_hint"),
            demonstrations=tuple(Demonstration.from_json(d) for d in doc.get("demonstrations") or ()),
            exchanges=tuple(tuple(Turn(str(t.get("role", "")), str(t.get("text", ""))) for t in exchange)
                            for exchange in doc.get("exchanges") or ()),
            call_arguments=CallArguments.from_json(calls) if isinstance(calls, Mapping) else None,
        )


@dataclass(frozen=True)
class Pattern:
    """Failing traces that went wrong the same way, ranked by count; the unit a proposal fixes."""

    id: str
    title: str
    kind: str
    count: int
    share: float
    trace_ids: tuple[str, ...]
    examples: tuple[Example, ...]
    evidence: Evidence
    members: tuple[int, ...] = field(default=(), compare=False, repr=False)  # summary indices, internal
    # what a model wrote about the pattern (reflection): its notes, never mixed into what traces show
    notes: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc = {"id": self.id, "title": self.title, "kind": self.kind, "count": self.count,
               "share": round(self.share, 4), "trace_ids": list(self.trace_ids),
               "examples": [e.to_json() for e in self.examples], "evidence": self.evidence.to_json()}
        if self.notes:
            doc["notes"] = dict(self.notes)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Pattern:
        """A pattern of an `analyze --json` document (checked against its schema before)."""
        return cls(
            id=str(doc["id"]), title=str(doc.get("title") or ""), kind=str(doc.get("kind") or ""),
            count=int(doc.get("count") or 0), share=float(doc.get("share") or 0.0),
            trace_ids=tuple(str(i) for i in doc.get("trace_ids") or ()),
            examples=tuple(Example.from_json(e) for e in doc.get("examples") or ()),
            evidence=Evidence.from_json(doc.get("evidence") or {}),
            notes=dict(doc.get("notes") or {}),
        )


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
