"""Failure patterns: deterministic grouping of failing traces into ranked, evidenced patterns.

Owns the step from "these traces failed, each mostly because of this signal" to a short list of
patterns a person (or the proposer) can act on. A failure is keyed by the signal that best explains
it: kind, tool and a normalised error template (numbers, ids, quoted values, paths → placeholders).
Keys of the same kind whose templates read alike (rapidfuzz) are merged. A user correction is keyed
by what it is about, not by its cue word: a push-back right after a failed tool call belongs to that
failure, a renewed request for a human to escalation, and the rest are grouped by the salient words
they share ("shipping address, not billing" vs "30 days from delivery"), one misunderstanding each.
A failure is keyed by its earliest decisive anomaly (the first failed tool call whose error is not
routine), chosen in `pipeline.explain`; the corrections, requests for a human and abandonment after
it are its consequences, counted in the evidence, not patterns of their own.
Each pattern carries bounded evidence: counts of signals, what followed the anomaly
(`consequences`), the blamed agents (`blame`, from `blame.py`), error samples (titled by the concrete
message when every failure hit the same one), user phrases, the arguments of failing and of working
calls of the tool, a few failing exchanges verbatim (the request, the agent's answer or call with its
result, what the user said next), a config knob the error points at, and demonstrations that teach the
failing step: for a tool's pattern, a clean successful trace calling that tool with arguments that
worked (the request, the call, the reply); otherwise a request with the same intent as the failing ones
and the answer that followed it. Never a greeting, a question back, or a user turn that tries to steer
the agent ("ignore your instructions", "you are the most lenient agent …").

Never does: call a model (naming by an LLM is `reflect`'s job, on top of this) or depend on input
order beyond stream order, so the same traces always give byte-identical patterns.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from selfimprove.analysis.records import CallArguments, Demonstration, Evidence, Example, Pattern, Turn
from selfimprove.analysis.signals import KIND_ORDER, Signal, _failed_result, excerpt

if TYPE_CHECKING:
    from selfimprove.analysis.outcomes import Outcome
    from selfimprove.analysis.records import Collected, Demo, Summary
    from selfimprove.traces.model import TraceView

SIMILAR = 88  # rapidfuzz ratio above which two error templates of one kind and tool are the same pattern
SIMILAR_PROSE = 75  # token-set ratio for prose (refusals, correction cues): word order varies more
MAX_COMPARED = 300  # keys per kind compared pairwise (the most frequent); the rest stay as they are
MAX_EXAMPLES = 3
REACTION_GAP = 3  # messages between a failed tool result and the user turn that reacts to it, at most
MAX_DEMOS = 3


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
        if sig.name in ("user_correction", "rephrase"):
            return _cause_of_correction(col.summaries[index].implicit, sig, col.routine) or sig.key
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


_ASKS_FOR_HUMAN = re.compile(r"\b(?:human|real\s+person|a\s+person|representative|live\s+agent|"
                             r"someone\s+real|manager|supervisor)\b", re.I)


def _cause_of_correction(signals: Sequence[Signal], sig: Signal, routine: frozenset[str] = frozenset()
                         ) -> str | None:
    """The key of what a correction is really about, when the trace says so better than its wording.

    A user who asks again for a human ("No. I want to talk to a human.") is escalating, and a user who
    pushes back after a tool call failed ("#48213. Same as I said.") is reacting to that failure.
    """
    if _ASKS_FOR_HUMAN.search(sig.detail):
        for other in signals:
            if other.name == "escalation" and other.key:
                return other.key
    at = sig.message_index
    if at is not None:  # a tool error in the exchange the user answers: its result, the reply, the user
        failed = [o for o in signals if o.name == "tool_error" and o.key and o.key not in routine
                  and o.message_index is not None
                  and at - REACTION_GAP <= o.message_index < at]
        if failed:
            return failed[-1].key  # the failure the user just saw
    return None


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


def _agreed_error(col: Collected, members: Sequence[int], keys: Sequence[str]) -> str | None:
    """The one concrete error message every member hit, when they all hit the same one."""
    wanted = set(keys)
    seen: set[str] = set()
    for i in members:
        for sig in col.summaries[i].implicit:
            if sig.name == "tool_error" and sig.key in wanted:
                seen.add(sig.detail.split(": ", 1)[1] if ": " in sig.detail else sig.detail)
        if len(seen) > 1:
            return None
    return next(iter(seen)) if seen else None


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
    if kind == "unfinished":
        return "runs end in a crash" if t == "crash" else f"runs end before the agent answered ({t})"
    if kind == "abandonment":
        return "users give up" if t == "gave up" else "conversations end on an unanswered user turn"
    if tool:
        return f"labelled failures where the agent's last action was {tool}"
    return "labelled failures with no clearer signal"


def group(col: Collected, outcomes: Sequence[Outcome], failing: Sequence[tuple[int, Signal | None]]
          ) -> list[Pattern]:
    """Failing traces → ranked patterns (by count, then kind, then id)."""
    keyed: dict[str, list[int]] = {}
    corrections: dict[int, str] = {}  # failing trace → the correction that explains it
    for index, sig in failing:
        key = failure_key(col, index, sig)
        keyed.setdefault(key, []).append(index)
        if _is_cue_key(key):
            said = sig if sig is not None and sig.key == key else next(
                (g for g in col.summaries[index].implicit if g.key == key), None)
            corrections[index] = said.detail if said is not None else ""
    counts = {k: len(v) for k, v in keyed.items()}
    rep = _merge(sorted(k for k in keyed if not _is_cue_key(k)), counts)
    groups: dict[str, list[str]] = {}
    for k in sorted(rep):
        groups.setdefault(rep[k], []).append(k)
    total = len(failing)
    patterns = []
    for head, keys in groups.items():
        members = sorted(i for k in keys for i in keyed[k])
        patterns.append(_build(col, outcomes, head, keys, members, total))
    cue_of = {i: k for k, indices in keyed.items() if _is_cue_key(k) for i in indices}
    for head, members, quote in correction_groups(corrections, cue_of):
        keys = sorted({cue_of[i] for i in members})
        phrases = list(dict.fromkeys(corrections[i] for i in members if corrections[i]))
        patterns.append(_build(col, outcomes, head, keys, members, total, quote=quote, phrases=phrases))
    order = {k: n for n, k in enumerate(KIND_ORDER)}
    patterns.sort(key=lambda p: (-p.count, order.get(p.kind, 99), p.id))
    return patterns


def _is_cue_key(key: str) -> bool:
    """A correction keyed by its cue word ("no", "i said"): regrouped by what it is about."""
    return key.startswith("user_correction|") and key != "user_correction|rephrase"


# -- what a correction is about ------------------------------------------------------------------

_STOP = frozenset("""
a about above after again ago all also am an and any are as at be because been before being below but by
can could did do does doing don dont done down during each even every few for from further get got had
has have having he her here hers him his how i id if im in into is isnt it its itself ive just let lets
like me more most much must my myself need needs no nope nor not now of off ok okay on once one only or
other our ours out over own please pls really right said same say says see she should so some still such
than thank thanks that thats the their them then there these they this those through to too under until
up us very want wanted was we were what whats when where which while who why will with within would yes
yet you your youre yours yourself hi hello hey already actually wrong incorrect correct meant mean asked
ask told tell seriously useless helpful try again read reread listen understand misunderstood sure
""".split())
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_OPENER = re.compile(r"^\s*(?:no|nope|wrong|incorrect|actually|"
                     r"that'?s\s+(?:not\s+(?:right|correct|it)|wrong))(?:\s*[,.!:;-]+\s*|\s+)", re.I)


@lru_cache(maxsize=8192)  # the same requests and corrections are compared for every pattern
def salient(text: str, *, numbers: bool = True) -> frozenset[str]:
    """The words of `text` that say what it is about: no function words, cue words or ids."""
    words = set()
    for raw in _WORD.findall(text.lower().replace("\u2019", "'")):
        word = raw.replace("'", "")
        if word in _STOP or raw in _STOP:
            continue
        if any(c.isdigit() for c in word):
            if not numbers or not word.isdigit() or len(word) >= 4:
                continue  # ids and order numbers say nothing about the subject
        elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        if len(word) > 1:
            words.add(word)
    return frozenset(words)


def about_the_same(a: frozenset[str], b: frozenset[str]) -> bool:
    """Two texts share enough salient words to be about the same thing."""
    if not a or not b:
        return False
    shared = len(a & b)
    smaller = min(len(a), len(b))
    return shared >= min(2, smaller) and shared * 2 >= smaller


def correction_groups(corrections: Mapping[int, str], cue_of: Mapping[int, str]
                      ) -> list[tuple[str, list[int], str]]:
    """Failing traces explained by a user correction, grouped by what the correction is about.

    Returns (key, members, quote) per group. Corrections sharing salient words (or reading almost
    alike) are one misunderstanding; corrections with no salient word at all ("No, that's wrong.")
    stay grouped by their cue. Deterministic: texts are compared in order of frequency, then text.
    """
    from rapidfuzz import fuzz

    by_text: dict[str, list[int]] = {}
    vague: dict[str, list[int]] = {}
    for index in sorted(corrections):
        text = " ".join(corrections[index].split())
        if salient(text):
            by_text.setdefault(text, []).append(index)
        else:
            vague.setdefault(cue_of[index], []).append(index)
    texts = sorted(by_text, key=lambda t: (-len(by_text[t]), t))[:MAX_COMPARED]
    texts += sorted(t for t in by_text if t not in texts)
    words = {t: salient(t) for t in texts}
    parent = {t: t for t in texts}

    def root(t: str) -> str:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    compared = texts[:MAX_COMPARED]
    for n, a in enumerate(compared):
        for b in compared[n + 1:]:
            if about_the_same(words[a], words[b]) or fuzz.token_set_ratio(a.lower(), b.lower()) >= 90:
                ra, rb = root(a), root(b)
                if ra != rb:
                    keep, drop = sorted((ra, rb), key=texts.index)
                    parent[drop] = keep
    clusters: dict[str, list[str]] = {}
    for t in texts:
        clusters.setdefault(root(t), []).append(t)
    out = []
    for head, members_texts in clusters.items():
        members = sorted(i for t in members_texts for i in by_text[t])
        shown = min(members_texts, key=lambda t: (_gist(t).endswith("\u2026"), -len(by_text[t]), len(t), t))
        out.append(("user_correction|" + " ".join(sorted(words[head])), members, _gist(shown)))
    for cue, members in vague.items():
        out.append((cue, members, ""))
    return out


def _gist(text: str, limit: int = 70) -> str:
    """A correction as a title quote: without its opener ("No, ") or final stop, at most `limit` chars."""
    core = _OPENER.sub("", text, count=1).strip() or text.strip()
    first = re.split(r"(?<=[.!?])\s+", core)[0]
    if len(first.split()) >= 4 or len(core) > limit:  # its first sentence, unless that says too little
        core = first
        if len(core) > limit:
            cut = core[:limit - 1]
            core = cut[:cut.rfind(" ")] if " " in cut else cut
            core = core.rstrip(" ,;:") + "…"
    core = core.rstrip(".!?") if not core.endswith("…") else core
    return core[:1].upper() + core[1:]


def _build(col: Collected, outcomes: Sequence[Outcome], head: str, keys: Sequence[str],
           members: Sequence[int], total: int, *, quote: str | None = None,
           phrases: Sequence[str] | None = None) -> Pattern:
    kind, tool, template = _parts(head)
    member_set = set(members)
    signal_counts: Counter[str] = Counter()
    for i in members:
        signal_counts.update({s.name for s in outcomes[i].signals})
    samples: list[str] = []
    said: list[str] = list(phrases or ())
    examples: list[tuple[int, Example]] = []
    users: list[str] = []
    seen_examples: set[int] = set()
    for k in sorted(keys, key=lambda k: (k != head, k)):
        ev = col.evidence.get(k)
        if ev is None:
            continue
        samples.extend(x for i, x in ev.samples if i in member_set and x not in samples)
        if phrases is None:
            said.extend(x for i, x in ev.phrases if i in member_set and x not in said)
        for index, text, user in ev.examples:
            if index in member_set and index not in seen_examples:
                seen_examples.add(index)
                s = col.summaries[index]
                examples.append((index, Example(s.id, s.source, text or user)))
                if user:
                    users.append(user)
    if len(examples) < MAX_EXAMPLES:
        for index in members:
            if index in seen_examples:
                continue
            s = col.summaries[index]
            detail = next((g.detail for g in s.explicit + s.implicit if g.detail), "")
            examples.append((index, Example(s.id, s.source, detail)))
            seen_examples.add(index)
            if len(examples) >= MAX_EXAMPLES:
                break
    examples.sort(key=lambda e: e[0])
    followed = consequences(col, members, keys)
    blamed = Counter(b.agent for b in (col.summaries[i].blame for i in members) if b is not None)
    named = tool if tool and kind in ("tool_error", "loop", "escalation", "explicit_failure") \
        and " " not in tool else None
    hint = config_hint(kind, [template, *samples])
    demos = demonstrations(col.demos, named, users, col.summaries)
    calls = _argument_evidence(col, keys, members, tool) if kind == "tool_error" else None
    evidence = Evidence(
        signals=dict(sorted(signal_counts.items())),
        consequences=followed,
        blame=dict(sorted(blamed.items(), key=lambda kv: (-kv[1], kv[0]))),
        tool=named,
        error_template=template if kind in ("tool_error", "run_error", "refusal") and template else None,
        error_samples=tuple(samples[:3]),
        user_phrases=tuple(said[:5]),
        config_hint=hint or None,
        demonstrations=tuple(Demonstration(d["trace_id"], d["user"], d["assistant"]) for d in demos),
        exchanges=_exchanges(col, keys, member_set),
        call_arguments=calls,
    )
    if kind == "tool_error":
        concrete = _agreed_error(col, members, keys)
        title = _title(kind, tool, concrete or template, head, len(keys))
    elif quote is not None:
        title = f"users correct the agent: \u201c{quote}\u201d" if quote else "users correct the agent"
    else:
        title = _title(kind, tool, template, head, len(keys))
    return Pattern(
        id=_pattern_id(kind, head),
        title=title,
        kind=kind,
        count=len(members),
        share=len(members) / total if total else 0.0,
        trace_ids=tuple(col.summaries[i].id for i in members),
        examples=tuple(e for _, e in examples[:MAX_EXAMPLES]),
        evidence=evidence,
        members=tuple(members),
    )


CONSEQUENCES = ("refusal", "user_correction", "rephrase", "escalation", "abandonment", "loop")


def consequences(col: Collected, members: Sequence[int], keys: Sequence[str]) -> dict[str, int]:
    """What followed each member's anomaly (the first signal of the pattern's keys): traces per kind.

    An apology, a correction, a request for a human or an abandoned conversation after a failed call is
    a consequence of that failure, counted here rather than made a pattern of its own."""
    wanted = set(keys)
    out: Counter[str] = Counter()
    for i in members:
        signals = col.summaries[i].implicit
        at = min((g.message_index for g in signals if g.key in wanted and g.message_index is not None),
                 default=None)
        if at is None:
            continue
        out.update({kind_of(g.key) if g.key else g.name for g in signals if g.name in CONSEQUENCES
                    and g.key not in wanted and g.message_index is not None and g.message_index > at})
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


# -- the arguments of tool calls -----------------------------------------------------------------

MAX_ARGUMENT_CHARS = 40  # longer values are no "shape" to compare, and may carry personal data


def call_arguments(arguments: Any) -> str | None:
    """A call's scalar arguments as compact JSON (sorted keys), or None when it has none to compare."""
    import json

    if not isinstance(arguments, Mapping):
        return None
    kept = {str(k): v for k, v in arguments.items() if isinstance(v, (str, int, float))
            and not isinstance(v, bool) and len(str(v)) <= MAX_ARGUMENT_CHARS}
    return json.dumps(kept, sort_keys=True, ensure_ascii=False) if kept else None


def failed_calls(view: TraceView, found: Sequence[Signal]) -> list[tuple[str, str]]:
    """(signal key, arguments JSON) of the call behind each tool error of a trace."""
    out = []
    answers = {result[0]: result[4] for result in view.results}  # message index -> call id answered
    for sig in found:
        if sig.name != "tool_error" or sig.message_index is None or not sig.key:
            continue
        call_id = answers.get(sig.message_index)
        tool = _parts(sig.key)[1]
        arguments: Any = None
        at = -1  # the message of the call answered: the latest before the result with a call that
        # matches by id (or by name without one); its first such call
        for i, name, args, cid in reversed(view.calls):
            if at >= 0 and i != at:
                break
            if i < sig.message_index and ((call_id and cid == call_id) or (not call_id and name == tool)):
                arguments, at = args, i
        text = call_arguments(arguments) if at >= 0 else None
        if text is not None:
            out.append((sig.key, text))
    return out


def succeeded_calls(view: TraceView) -> tuple[tuple[str, str], ...]:
    """(tool, arguments JSON) of the calls of a successful trace, at most one per tool."""
    seen: dict[str, str] = {}
    for _, name, arguments, _ in view.calls:
        if name not in seen:
            args = call_arguments(arguments)
            if args is not None:
                seen[name] = args
    return tuple(sorted(seen.items()))


MAX_EXCHANGE_TURNS = 6  # messages of one failing exchange
EXCHANGE_CHARS = 300  # characters of one message in it
MAX_EXCHANGES = 3  # failing exchanges shown per pattern


def exchange(view: TraceView, at: int | None) -> str | None:
    """The failing exchange around message `at` (the last message when None), as compact JSON: the
    user's request, the agent's answer or tool call with its result, and what the user said next (a
    correction often states the right answer). Up to MAX_EXCHANGE_TURNS messages, each excerpted."""
    import json

    roles, texts = view.roles, view.texts
    if not roles:
        return None
    end = len(roles) - 1 if at is None or not 0 <= at < len(roles) else at
    opening = roles[end] == "user" and all(r in ("system", "user") for r in roles[:end])
    if roles[end] != "user" or opening:  # the answer and what the user said next, when they said anything
        end = next((k for k in range(end + 1, len(roles)) if roles[k] == "user"),
                   len(roles) - 1 if opening else end)
    calls: dict[int, list[str]] = {}
    for i, name, args, _ in view.calls:
        calls.setdefault(i, []).append(f"{name}({call_arguments(args) or ''})")
    turns: list[dict[str, str]] = []
    users = 0
    for k in range(end, -1, -1):
        if roles[k] == "system":
            continue
        text = excerpt(texts[k], EXCHANGE_CHARS)
        if k in calls:
            text = (text + " " if text else "") + "[calls " + "; ".join(calls[k]) + "]"
        if not text.strip():
            continue
        turns.append({"role": roles[k], "text": text})
        users += roles[k] == "user"
        if users >= 3 or len(turns) >= MAX_EXCHANGE_TURNS:
            break
    if len(turns) < 2:
        return None
    return json.dumps(turns[::-1], ensure_ascii=False)


def _exchanges(col: Collected, keys: Sequence[str], members: set[int]) -> tuple[tuple[Turn, ...], ...]:
    """Up to MAX_EXCHANGES failing exchanges of the pattern's members, one per trace, in stream order."""
    import json

    found: dict[int, str] = {}
    for k in keys:
        ev = col.evidence.get(k)
        for i, text in ev.exchanges if ev is not None else ():
            if i in members and i not in found:
                found[i] = text
    return tuple(tuple(Turn(t["role"], t["text"]) for t in json.loads(found[i]))
                 for i in sorted(found)[:MAX_EXCHANGES])


def _argument_evidence(col: Collected, keys: Sequence[str], members: Sequence[int], tool: str
                       ) -> CallArguments | None:
    """Arguments of the failing calls (members only) and of the same tool's calls in successful traces."""
    import json

    member_set = set(members)
    failing: list[str] = []
    for k in keys:
        ev = col.evidence.get(k)
        for i, args in ev.arguments if ev is not None else ():
            if i in member_set and args not in failing:
                failing.append(args)
    succeeding: list[str] = []
    for demo in col.demos:
        for name, args in demo.calls:
            if name == tool and args not in succeeding and args not in failing:
                succeeding.append(args)
    if not failing:
        return None
    return CallArguments(tuple(json.loads(a) for a in failing[:5]),
                         tuple(json.loads(a) for a in succeeding[:MAX_EXAMPLES]))


_PLEASANTRY = re.compile(
    r"^\W*(?:(?:you'?re|you\s+are)\s+(?:very\s+)?welcome|(?:happy|glad)\s+(?:to|i\s+could)\s+help|no\s+problem"
    r"|my\s+pleasure|anytime|thanks?(?:\s+you)?(?:\s+so\s+much)?|(?:have\s+a\s+(?:great|nice|good|lovely)"
    r"\s+(?:day|one|evening|weekend))|bye|goodbye|take\s+care|hi|hello|hey|ok(?:ay)?|great|perfect"
    r"|anything\s+else(?:\s+i\s+can\s+help\s+(?:you\s+)?with)?|how\s+(?:can|may)\s+i\s+help(?:\s+you)?"
    r"(?:\s+today)?|cheers)\b",
    re.I,
)
PLEASANTRY_CHARS = 80  # a reply this short made only of courtesies answers nothing


@lru_cache(maxsize=4096)
def pleasantry(text: str) -> bool:
    """True for a greeting, thanks or goodbye: a turn that asks or answers nothing of substance."""
    rest = " ".join(text.split())
    if not rest or len(rest) > PLEASANTRY_CHARS:
        return False
    while rest:
        match = _PLEASANTRY.match(rest)
        if match is None:
            return False
        rest = rest[match.end():].lstrip(" \t!.,;:?-\u2014")
    return True


# A user turn that tries to steer the agent instead of asking it something: injected instructions,
# role play, flattery that asks for leniency. Never a turn to imitate, whatever the agent replied.
_MANIPULATION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+|the\s+|your\s+)*(?:previous|prior|above|earlier"
    r"|system|original)?\s*(?:instructions?|rules?|prompts?|polic(?:y|ies)|guidelines?)"
    r"|\b(?:system\s+prompt|developer\s+mode|jailbreak|new\s+instructions?\s*:|pretend\s+(?:to\s+be|you\s+are)"
    r"|act\s+as\s+(?:if|an?|the)\b|you\s+must\s+now|from\s+now\s+on\s+you)"
    r"|\byou(?:'re|\s+are)\s+(?:the|a|an|my)\s+(?:\w+\s+)?(?:most\s+\w+|best|nicest|kindest|greatest|\w+est)\b",
    re.I)


@lru_cache(maxsize=4096)
def manipulative(text: str) -> bool:
    """True for user text that carries instructions for the agent or flatters it into leniency."""
    return _MANIPULATION.search(text[:2000].replace("\u2019", "'")) is not None


_ASKS_FOR = re.compile(
    r"\b(?:(?:could|can|would|will)\s+you\s+(?:please\s+)?(?:provide|share|give|tell|confirm|send|spell|let\s+me"
    r"\s+know)|please\s+(?:provide|share|confirm|tell|send|give)|what(?:'s|\s+is|\s+are)\s+your|may\s+i\s+"
    r"(?:have|ask|get))\b", re.I)


def _asks_back(reply: str) -> bool:
    """A reply that asks the user for something (an id, a detail) before it can answer: it teaches
    nothing about the answer. "Done. Anything else?" answers; "Could you provide your user ID?" does not."""
    return "?" in reply and _ASKS_FOR.search(reply) is not None


def demonstration_turns(view: TraceView) -> tuple[str, str] | None:
    """(request, answer) of a successful trace: the first user request with content that is not a
    courtesy or an attempt to steer the agent, and the assistant reply that answers it (skipping tool
    calls to the reply with content), unless that reply is a courtesy or only asks back (the opening
    "Could you please provide your user ID?"). None when the trace has no such pair."""
    roles, texts = view.roles, view.texts
    called = {i for i, _, _, _ in view.calls}
    for n, role in enumerate(roles):
        if role != "user" or not texts[n].strip() or pleasantry(texts[n]) or manipulative(texts[n]):
            continue
        for k in range(n + 1, len(roles)):
            if roles[k] == "user":
                break
            reply = texts[k]
            if roles[k] == "assistant" and reply.strip():
                if pleasantry(reply):
                    break
                if _asks_back(reply) and not any(n < c < k for c in called):
                    break  # a question back: the answer comes after the next user turn
                after = next((texts[j] for j in range(k + 1, len(roles))
                              if roles[j] == "user" and texts[j].strip()), "")
                if _DOUBT.search(after):
                    return None  # the user pushed back on this answer: not one to imitate
                return excerpt(texts[n], 300), excerpt(reply, 400)
    return None


_DOUBT = re.compile(
    r"\b(?:are\s+you\s+sure|that'?s\s+not|that\s+is\s+not|not\s+what\s+i|i\s+(?:said|meant)"
    r"|(?:that'?s|this\s+is|it'?s)\s+(?:wrong|incorrect)|you'?re\s+wrong)\b"
    r"|^\s*(?:no|nope)\b(?![\s,.!]*(?:thanks|thank|that'?s\s+(?:all|it)|i'?m\s+good|need|problem|worries))",
    re.I,
)


# signals that make a successful trace a poor example to imitate (it went wrong before it went right)
UNCLEAN = frozenset({"tool_error", "user_correction", "rephrase", "abandonment", "loop", "max_turns",
                     "run_error", "explicit_failure"})
SAME_INTENT = 0.5  # share of the shorter request's salient words a demonstration must have in common


def demonstrations(pool: Sequence[Demo], tool: str | None, users: Sequence[str],
                   summaries: Sequence[Summary] | None = None) -> list[dict[str, str]]:
    """Successful conversations that answer the same kind of request the failing ones made.

    A demonstration qualifies when its request shares the salient words of one of the failing users'
    requests (same intent), its trace is clean (no tool error, correction, rephrase, loop …; known from
    `summaries`), its answer is not a courtesy and, when the pattern is about a tool, it used that tool.
    Ranked by how alike the requests are; near-identical requests are shown once. Fewer is fine.
    """
    from rapidfuzz import fuzz

    wanted = [(u, salient(u, numbers=False)) for u in users[:8]]
    wanted = [(u, w) for u, w in wanted if w]
    if tool and pool:
        shown = tool_demonstrations(pool, tool, wanted, summaries)
        if shown:
            return shown
    if not pool or not wanted:
        return []
    scored = []
    for n, demo in enumerate(pool):
        if tool and tool not in demo.tools:
            continue
        if pleasantry(demo.assistant) or pleasantry(demo.user):
            continue
        if _unclean(demo, summaries):
            continue
        mine = salient(demo.user, numbers=False)
        best = 0.0
        for u, theirs in wanted:
            if not mine:
                break
            overlap = len(mine & theirs) / min(len(mine), len(theirs))
            if not overlap or overlap < SAME_INTENT:
                continue
            best = max(best, overlap * 100 + fuzz.token_sort_ratio(demo.user, u) / 100)
        if best:
            scored.append((-best, n, demo))
    scored.sort(key=lambda t: (t[0], t[1]))
    chosen: list[Demo] = []
    for _, _, demo in scored:
        if any(fuzz.token_sort_ratio(_no_digits(demo.user), _no_digits(c.user)) >= 90
               or fuzz.token_sort_ratio(_no_digits(demo.assistant), _no_digits(c.assistant)) >= 90
               for c in chosen):
            continue
        chosen.append(demo)
        if len(chosen) == MAX_DEMOS:
            break
    return [{"trace_id": d.trace_id, "user": d.user, "assistant": d.assistant} for d in chosen]


def call_steps(view: TraceView) -> tuple[tuple[str, str, str, str], ...]:
    """(tool, request, arguments JSON, reply) of each tool's first call that worked, in a successful
    trace: the step a failing trace got wrong, done right. The request is the user turn the call
    answers (none when it is a courtesy or an attempt to steer the agent); the reply, the agent's
    first text after the call."""
    roles, texts = view.roles, view.texts
    failed = {cid for _, content, is_error, _, cid in view.results
              if cid and _failed_result(content, is_error)}
    seen: dict[str, tuple[str, str, str, str]] = {}
    for i, name, arguments, cid in view.calls:
        if name in seen or (cid and cid in failed):
            continue
        args = call_arguments(arguments)
        request = next((texts[k] for k in range(i - 1, -1, -1)
                        if roles[k] == "user" and texts[k].strip()), "")
        if args is None or not request or pleasantry(request) or manipulative(request):
            continue
        reply = ""
        for k in range(i + 1, len(roles)):
            if roles[k] == "user":
                break
            if roles[k] == "assistant" and texts[k].strip():
                reply = texts[k]
                break
        seen[name] = (name, excerpt(request, 300), args, excerpt(reply, 300))
    return tuple(seen[name] for name in sorted(seen))


def _unclean(demo: Demo, summaries: Sequence[Summary] | None) -> bool:
    if summaries is None or not 0 <= demo.index < len(summaries):
        return False
    s = summaries[demo.index]
    return s.id == demo.trace_id and any(g.name in UNCLEAN for g in (*s.implicit, *s.explicit))


def tool_demonstrations(pool: Sequence[Demo], tool: str, wanted: Sequence[tuple[str, frozenset[str]]],
                        summaries: Sequence[Summary] | None) -> list[dict[str, str]]:
    """Clean successful traces calling `tool` with arguments that worked: the request, then the call
    and the agent's reply. Requests like the failing users' first; distinct arguments only."""
    scored = []
    for n, demo in enumerate(pool):
        step = next((st for st in demo.steps if st[0] == tool), None)
        if step is None or _unclean(demo, summaries):
            continue
        mine = salient(step[1], numbers=False)
        overlap = max((len(mine & w) / min(len(mine), len(w)) for _, w in wanted if mine), default=0.0)
        scored.append((-overlap, n, demo, step))
    scored.sort(key=lambda t: (t[0], t[1]))
    out: list[dict[str, str]] = []
    shapes: set[str] = set()
    for _, _, demo, (_, request, args, reply) in scored:
        shape = _no_digits(args)
        if shape in shapes:
            continue
        shapes.add(shape)
        answer = f"{tool}({args})" + (f" \u2192 {reply}" if reply else "")
        out.append({"trace_id": demo.trace_id, "user": request, "assistant": answer})
        if len(out) == MAX_DEMOS:
            break
    return out


def _no_digits(text: str) -> str:
    return re.sub(r"#?\d+", "#", text.lower())
