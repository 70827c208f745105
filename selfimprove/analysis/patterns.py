"""Failure patterns: deterministic grouping of failing traces into ranked, evidenced patterns.

Owns the step from "these traces failed, each mostly because of this signal" to a short list of
patterns a person (or the proposer) can act on. A failure is keyed by the signal that best explains
it: kind, tool and a normalised error template (numbers, ids, quoted values, paths → placeholders),
or the correction phrasing a user used. Keys of the same kind whose templates read alike (rapidfuzz)
are merged. Each pattern carries bounded evidence: counts of signals, error samples, user phrases, a
config knob the error points at, and demonstrations mined from successful traces that resemble the
failing ones (what the agent does when it gets such a request right).

Never does: call a model (naming by an LLM is `reflect`'s job, on top of this) or depend on input
order beyond stream order, so the same traces always give byte-identical patterns.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from selfimprove.analysis.signals import Signal

if TYPE_CHECKING:
    from selfimprove.analysis.outcomes import Outcome
    from selfimprove.analysis.pipeline import Collected, Demo

KIND_ORDER = ("run_error", "max_turns", "tool_error", "loop", "escalation", "refusal", "user_correction",
              "abandonment", "explicit_failure")
SIMILAR = 88  # rapidfuzz ratio above which two error templates of one kind and tool are the same pattern
SIMILAR_PROSE = 75  # token-set ratio for prose (refusals, correction cues): word order varies more
MAX_COMPARED = 300  # keys per kind compared pairwise (the most frequent); the rest stay as they are
MAX_EXAMPLES = 3
MAX_DEMOS = 3


@dataclass(frozen=True)
class Pattern:
    id: str
    title: str
    kind: str
    count: int
    share: float
    trace_ids: tuple[str, ...]
    examples: tuple[Mapping[str, Any], ...]
    evidence: Mapping[str, Any]
    members: tuple[int, ...] = field(default=(), compare=False, repr=False)  # summary indices, internal

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "kind": self.kind, "count": self.count,
                "share": round(self.share, 4), "trace_ids": list(self.trace_ids),
                "examples": [dict(e) for e in self.examples], "evidence": dict(self.evidence)}


def kind_of(key: str) -> str:
    kind = key.split("|", 1)[0]
    return "user_correction" if kind == "rephrase" else "loop" if kind == "long_run" else kind


def _parts(key: str) -> tuple[str, str, str]:
    """(kind, tool, template) of a grouping key."""
    bits = key.split("|", 2)
    kind = kind_of(key)
    if bits[0] == "tool_error":
        return kind, bits[1] if len(bits) > 1 else "", bits[2] if len(bits) > 2 else ""
    if bits[0] == "explicit_failure":  # explicit_failure|label name|last tool
        return kind, bits[2] if len(bits) > 2 else "", bits[1] if len(bits) > 1 else ""
    if bits[0] in ("loop", "escalation") and len(bits) > 1:
        return kind, bits[1], ""
    return kind, "", "|".join(bits[1:])


def failure_key(col: Collected, index: int, sig: Signal | None) -> str:
    if sig is not None and sig.key:
        return sig.key
    s = col.summaries[index]
    if s.label:
        name = "label"
        for e in s.explicit:
            if e.name == "explicit_failure" and "|" in e.key:
                name = e.key.split("|", 1)[1]
        return f"explicit_failure|{name}|{s.last_tool or ''}"
    # an unlabelled failure that no single signal explains: its heaviest signal, else the run's length
    heaviest = max(s.implicit, key=lambda g: g.weight, default=None)
    return heaviest.key if heaviest is not None and heaviest.key else "long_run|long run"


def _merge(keys: Sequence[str], counts: Mapping[str, int]) -> dict[str, str]:
    """key → representative key: single-linkage over similar templates within one kind and tool."""
    from rapidfuzz import fuzz

    parent = {k: k for k in keys}

    def root(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    buckets: dict[tuple[str, str], list[str]] = {}
    for k in keys:
        kind, tool, _ = _parts(k)
        buckets.setdefault((kind, tool), []).append(k)
    for (kind, _), bucket in buckets.items():
        if kind == "explicit_failure":
            continue  # keyed by label and last action, nothing to compare
        prose = kind in ("refusal", "user_correction")
        ranked = sorted(bucket, key=lambda k: (-counts[k], k))[:MAX_COMPARED]
        for i, a in enumerate(ranked):
            ta = _parts(a)[2]
            for b in ranked[i + 1:]:
                tb = _parts(b)[2]
                if not ta or not tb:
                    continue
                similar = (fuzz.token_set_ratio(ta, tb) >= SIMILAR_PROSE if prose
                           else fuzz.ratio(ta, tb) >= SIMILAR)
                if similar:
                    ra, rb = root(a), root(b)
                    if ra != rb:
                        # the more frequent key (then the smaller) names the group
                        keep, drop = sorted((ra, rb), key=lambda k: (-counts[k], k))
                        parent[drop] = keep
    return {k: root(k) for k in keys}


_HINTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("timeout", re.compile(r"time[sd]?\s?out|deadline\s+exceeded", re.I)),
    ("rate_limit", re.compile(r"rate[\s_-]?limit|too\s+many\s+requests|\b429\b", re.I)),
    ("max_tokens", re.compile(r"context\s+(?:length|window)|maximum\s+context|max_tokens|token\s+limit",
                              re.I)),
    ("max_turns", re.compile(r"max(?:imum)?[\s_](?:turns|steps|iterations)|(?:turn|step|iteration)\s+"
                             r"limit", re.I)),
    ("max_results", re.compile(r"too\s+many\s+results|max_results|result\s+limit|results?\s+truncated",
                               re.I)),
    ("retries", re.compile(r"retr(?:y|ies)\s+exhausted|max_retries|too\s+many\s+retries", re.I)),
)
_KNOB = re.compile(r"\b[a-z]+(?:_[a-z]+)*_(?:limit|timeout|max|size)\b|\bmax_[a-z_]+\b")


def config_hint(kind: str, texts: Sequence[str]) -> str | None:
    """The config knob an error points at, if any (a timeout, a result cap, a turn limit, …)."""
    if kind == "max_turns":
        return "max_turns"
    joined = " ".join(texts)
    for name, rx in _HINTS:
        if rx.search(joined):
            return name
    knob = _KNOB.search(joined)
    return knob.group(0) if knob else None


def _pattern_id(kind: str, key: str) -> str:
    return f"{kind.replace('_', '-')}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def _title(kind: str, tool: str, template: str, key: str, n_keys: int) -> str:
    t = template.strip()
    if kind == "tool_error":
        return f"{tool} fails: {t}" if t else f"{tool} returns errors"
    if kind == "run_error":
        return f"runs end in an error: {t}" if t else "runs end in an error"
    if kind == "max_turns":
        return f"runs stop at a limit ({t})" if t else "runs stop at a limit"
    if kind == "loop":
        if key.startswith("long_run"):
            return "runs take far more turns than usual"
        if tool == "repeated reply":
            return "the agent repeats the same reply"
        return f"the agent calls {tool} again and again with the same arguments"
    if kind == "escalation":
        if tool == "user request":
            return "users ask for a human"
        if tool == "agent handoff":
            return "the agent hands the conversation to a human"
        return f"the agent escalates via {tool}"
    if kind == "refusal":
        return f"the agent declines: {t}" if t else "the agent declines the request"
    if kind == "user_correction":
        if key == "user_correction|rephrase" and n_keys == 1:
            return "users repeat or rephrase their request"
        return f"users correct the agent (\u201c{t}\u201d)" if t else "users correct the agent"
    if kind == "abandonment":
        return "users give up" if t == "gave up" else "conversations end on an unanswered user turn"
    if tool:
        return f"labelled failures where the agent's last action was {tool}"
    return "labelled failures with no clearer signal"


def group(col: Collected, outcomes: Sequence[Outcome], failing: Sequence[tuple[int, Signal | None]]
          ) -> list[Pattern]:
    """Failing traces → ranked patterns (by count, then kind, then id)."""
    keyed: dict[str, list[int]] = {}
    for index, sig in failing:
        keyed.setdefault(failure_key(col, index, sig), []).append(index)
    counts = {k: len(v) for k, v in keyed.items()}
    rep = _merge(sorted(keyed), counts)
    groups: dict[str, list[str]] = {}
    for k in sorted(keyed):
        groups.setdefault(rep[k], []).append(k)
    total = len(failing)
    patterns = []
    for head, keys in groups.items():
        members = sorted(i for k in keys for i in keyed[k])
        patterns.append(_build(col, outcomes, head, keys, members, total))
    order = {k: n for n, k in enumerate(KIND_ORDER)}
    patterns.sort(key=lambda p: (-p.count, order.get(p.kind, 99), p.id))
    return patterns


def _build(col: Collected, outcomes: Sequence[Outcome], head: str, keys: Sequence[str],
           members: Sequence[int], total: int) -> Pattern:
    kind, tool, template = _parts(head)
    member_set = set(members)
    signal_counts: Counter[str] = Counter()
    for i in members:
        signal_counts.update({s.name for s in outcomes[i].signals})
    samples: list[str] = []
    phrases: list[str] = []
    examples: list[tuple[int, dict[str, Any]]] = []
    users: list[str] = []
    seen_examples: set[int] = set()
    for k in sorted(keys, key=lambda k: (k != head, k)):
        ev = col.evidence.get(k)
        if ev is None:
            continue
        samples.extend(x for i, x in ev.samples if i in member_set and x not in samples)
        phrases.extend(x for i, x in ev.phrases if i in member_set and x not in phrases)
        for index, text, user in ev.examples:
            if index in member_set and index not in seen_examples:
                seen_examples.add(index)
                s = col.summaries[index]
                examples.append((index, {"trace_id": s.id, "source": s.source, "excerpt": text or user}))
                if user:
                    users.append(user)
    if len(examples) < MAX_EXAMPLES:
        for index in members:
            if index in seen_examples:
                continue
            s = col.summaries[index]
            detail = next((g.detail for g in s.explicit + s.implicit if g.detail), "")
            examples.append((index, {"trace_id": s.id, "source": s.source, "excerpt": detail}))
            seen_examples.add(index)
            if len(examples) >= MAX_EXAMPLES:
                break
    examples.sort(key=lambda e: e[0])
    evidence: dict[str, Any] = {"signals": dict(sorted(signal_counts.items()))}
    if tool and kind in ("tool_error", "loop", "escalation", "explicit_failure") and " " not in tool:
        evidence["tool"] = tool
    if kind in ("tool_error", "run_error", "refusal") and template:
        evidence["error_template"] = template
    if samples:
        evidence["error_samples"] = samples[:3]
    if phrases:
        evidence["user_phrases"] = phrases[:5]
    hint = config_hint(kind, [template, *samples])
    if hint:
        evidence["config_hint"] = hint
    demos = demonstrations(col.demos, tool if "tool" in evidence else None, users)
    if demos:
        evidence["demonstrations"] = demos
    return Pattern(
        id=_pattern_id(kind, head),
        title=_title(kind, tool, template, head, len(keys)),
        kind=kind,
        count=len(members),
        share=len(members) / total if total else 0.0,
        trace_ids=tuple(col.summaries[i].id for i in members),
        examples=tuple(e for _, e in examples[:MAX_EXAMPLES]),
        evidence=evidence,
        members=tuple(members),
    )


def demonstrations(pool: Sequence[Demo], tool: str | None, users: Sequence[str]) -> list[dict[str, str]]:
    """Successful conversations most like the failing ones: same tool first, then similar requests."""
    from rapidfuzz import fuzz

    if not pool or (not users and not tool):
        return []
    scored = []
    for n, demo in enumerate(pool):
        similarity = max((fuzz.token_sort_ratio(demo.user, u) for u in users[:5]), default=0.0)
        uses_tool = bool(tool) and tool in demo.tools
        if not uses_tool and similarity < 50:
            continue
        scored.append((-(100.0 if uses_tool else 0.0) - similarity, n, demo))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [{"trace_id": d.trace_id, "user": d.user, "assistant": d.assistant}
            for _, _, d in scored[:MAX_DEMOS]]
