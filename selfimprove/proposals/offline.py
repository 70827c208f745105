"""Deterministic proposers: grounded edits built only from what the pattern's evidence says.

Owns: four proposers, tried in order for each pattern, the first that applies wins:
  config-change      the pattern points at a mutable config key (evidence "config_hint", e.g. a
                     timeout): raise it by a bounded factor, within the schema's maximum
  tool-error-rule    a rule naming the tool and its error (the concrete message when every sample
                     agrees), and what the calls that worked did differently (an argument's shape,
                     an argument they passed or left out, a value they all gave)
  correction-rule    a rule stating the point users corrected, in their words (only the corrections
                     about the same point as the most typical one)
  demonstrations     worked examples mined from similar successful traces, into the prompt's
                     mutable examples section (only when the prompt declares one)
Each candidate carries its evidence and why it should help.

Must never: invent a fact (every tool name, error and quote comes from the evidence), quote trace
text that reads like an instruction to the agent or about its prompt, or write anything. Whether a
candidate is allowed is decided afterwards, by the policy checker, for every proposer alike.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from selfimprove.analysis.records import Demonstration, Evidence, Pattern
from selfimprove.proposals.model import Candidate, Edit, Refusal, Why
from selfimprove.proposals.text import append_lines, bullet_for, gist, looks_like_injection, quote
from selfimprove.proposals.workspace import Workspace

MAX_DEMONSTRATIONS = 3
DEMO_LIMIT = 400  # characters of one demonstration turn; longer (or truncated) ones are skipped, never cut

Outcome = Candidate | Refusal | None  # a candidate, a reason it cannot be made, or "does not apply"


def _cannot(reason: str) -> Refusal:
    return Refusal(Why.NO_CANDIDATE, reason)


def candidates(pattern: Pattern, ws: Workspace) -> list[Candidate | Refusal]:
    """Every grounded candidate for `pattern` in order of preference, and the reasons of the proposers
    that applied but could not make one (a single reason when none applied at all). Failed eval cases
    do not change them: a search turns those into rules of its own (`feedback.feedback_rules`)."""
    out: list[Candidate | Refusal] = []
    for proposer in PROPOSERS:
        outcome = proposer(pattern, ws)
        if outcome:
            out.append(outcome)
    if out:
        return out
    kind = pattern.kind or "?"
    article = "an" if kind[:1] in "aeiou" else "a"
    return [_cannot(f"no grounded offline edit for {article} {kind} pattern (its evidence has no tool error, "
                    "user correction, demonstration or config hint); try --model")]


def _share(pattern: Pattern) -> str:
    count = pattern.count
    return f"{count} failing trace{'s' if count != 1 else ''} ({pattern.share:.0%} of failures)"


def _rule_candidate(ws: Workspace, rule: str, *, title: str, proposer: str, rationale: str) -> Outcome:
    target = ws.rules_target()
    if target is None:
        return _cannot("the prompts declare no mutable section to add a rule to")
    path, section = target
    before = ws.body(path, section)
    after = append_lines(before, [bullet_for(before) + rule])
    return Candidate(title=title, proposer=proposer, rationale=rationale,
                     edits=(Edit(path, section, None, before, after),))


# -- tool errors --------------------------------------------------------------------------------

_ERROR_PREFIX = re.compile(r"^(?:error|exception|fatal|failed)\s*[:\-]\s*", re.IGNORECASE)


def tool_error_rule(pattern: Pattern, ws: Workspace) -> Outcome:
    evidence = pattern.evidence
    tool = evidence.tool
    error = _concrete_error(evidence, tool) or evidence.error_template
    if not tool or not tool.strip() or not error or not error.strip():
        return None
    if looks_like_injection(error) or looks_like_injection(tool):
        return _cannot(f"the error text of tool {tool!r} reads like an instruction to the agent "
                       "(possible prompt injection); it is not quoted into the prompt")
    name = quote(tool, 60).replace(" ", "_")
    error = _ERROR_PREFIX.sub("", error.strip()) or error
    message = quote(error, 120)
    says = bool(_SAYS_WHAT_IT_WANTS.search(error))
    fix = "correct the arguments to what the error asks for" if says else "check the arguments you passed"
    seen = ""
    difference = _argument_difference(evidence)
    if difference is not None:
        fix, seen = difference

    rule = (f'When `{name}` fails with "{message}", do not repeat the same call: {fix}, and if it still '
            "fails, tell the user plainly what went wrong.")
    return _rule_candidate(
        ws, rule,
        title=f'add a rule for {name} failing with "{gist(error)}"',
        proposer="offline/tool-error-rule",
        rationale=(f"{_share(pattern)} hit this error from the `{name}` tool. A rule naming the tool and "
                   "its error tells the agent to check its arguments and explain the failure instead of "
                   f"retrying the same call or carrying on as if it had worked.{seen}"),
    )


# an error that states the valid input ("expected 5 digits", "must be an integer", "should match …")
_SAYS_WHAT_IT_WANTS = re.compile(
    r"\b(?:expect(?:ed|s)?|must|should|required?|only|valid\s+\w+\s+(?:is|are))\b", re.IGNORECASE)


def _shape(value: str) -> str:
    """What a value looks like: digits kept as 9s (their count matters), letters runs as one 'a'."""
    return re.sub(r"[^\W\d_]+", "a", re.sub(r"\d", "9", value))


def _argument_difference(evidence: Evidence) -> tuple[str, str] | None:
    """(what to do, what the evidence shows) from how the failing calls differ from the calls that
    worked, or None when the evidence shows no difference worth stating. In order: an argument whose
    values have one shape in every failing call and another in every working one; an argument every
    working call passed and no failing call did (or the reverse); an argument every working call gave
    the same value that no failing call gave. Values that differ call by call (ids, amounts) are no
    difference: a call that worked for another order says nothing about this one."""
    calls = evidence.call_arguments
    if calls is None:
        return None
    failing, working = list(calls.failing), list(calls.succeeding)
    if len(failing) < 2 or not working:
        return None
    shape = _argument_shape(failing, working)
    if shape is not None:
        arg, good, bad = shape
        return (f'pass `{arg}` the way calls that worked did (e.g. "{good}", not "{bad}")',
                f' The failing calls passed `{arg}` like "{bad}"; the calls that worked passed it like '
                f'"{good}".')
    in_all_working = set.intersection(*(set(c) for c in working))
    in_any_failing = set().union(*(set(c) for c in failing))
    in_all_failing = set.intersection(*(set(c) for c in failing))
    in_any_working = set().union(*(set(c) for c in working))
    missing = sorted(in_all_working - in_any_failing)
    extra = sorted(in_all_failing - in_any_working)
    if missing or extra:
        parts = ([f"also pass {_names(missing)}"] if missing else []) + (
            [f"leave out {_names(extra)}"] if extra else [])
        did = "; ".join(parts)
        return (f"{did}, as the calls that worked did",
                f" The calls that worked {'passed ' + _names(missing) if missing else ''}"
                f"{' and ' if missing and extra else ''}{'did not pass ' + _names(extra) if extra else ''}; "
                "the failing calls did not.")
    if len(working) >= 2:
        for arg in sorted(in_all_working & in_all_failing):
            agreed = {json.dumps(c[arg], sort_keys=True) for c in working}
            failed = {json.dumps(c[arg], sort_keys=True) for c in failing}
            if len(agreed) == 1 and not agreed & failed:
                value = str(working[0][arg])
                if looks_like_injection(value):
                    return None
                shown = quote(value, 40)
                name = quote(arg, 40)
                return (f'pass `{name}` as "{shown}", as every call that worked did',
                        f' Every call that worked passed `{name}` as "{shown}"; no failing call did.')
    return None


def _names(args: list[str]) -> str:
    return ", ".join(f"`{quote(a, 40)}`" for a in args)


def _argument_shape(failing: list[Mapping[str, Any]],
                    working: list[Mapping[str, Any]]) -> tuple[str, str, str] | None:
    """(argument, a value that worked, a value that failed) when every failing call gave that argument
    one shape and every call that worked gave it another: the visible difference between them."""
    for arg in sorted(set.intersection(*(set(c) for c in failing + working))):
        bad = {_shape(str(c[arg])) for c in failing}
        good = {_shape(str(c[arg])) for c in working}
        if len(bad) == 1 and len(good) == 1 and bad != good:
            values = (str(working[0][arg]), str(failing[0][arg]))
            if any(looks_like_injection(v) for v in values):
                return None
            return quote(arg, 40), quote(values[0], 40), quote(values[1], 40)
    return None


def _concrete_error(evidence: Evidence, tool: str | None) -> str | None:
    """The error message itself when every sample of the pattern agrees on it (its template's
    placeholders are only needed when the samples differ)."""
    samples = [s for s in evidence.error_samples if s.strip()]
    if tool:
        samples = [s.removeprefix(f"{tool}: ") for s in samples]
    distinct = {" ".join(s.split()) for s in samples}
    return next(iter(distinct)) if len(distinct) == 1 else None


# -- user corrections ---------------------------------------------------------------------------

def correction_rule(pattern: Pattern, ws: Workspace) -> Outcome:
    evidence = pattern.evidence
    phrases = [p for p in evidence.user_phrases if p.strip()]
    corrections = evidence.signals.get("user_correction", 0) + evidence.signals.get("rephrase", 0)
    if not phrases or (pattern.kind != "user_correction" and corrections * 2 < pattern.count):
        return None  # the phrases of an escalation or a refusal are not corrections
    safe = [p for p in phrases if not looks_like_injection(p)]
    if not safe:
        return _cannot("every user correction of this pattern reads like an instruction about the prompt "
                       "(possible prompt injection); none is quoted into the prompt")
    from selfimprove.analysis.patterns import about_the_same, salient

    short = [p for p in safe if len(" ".join(p.split())) <= 100] or safe
    first = _medoid(short)
    # only the corrections about the same point as the most typical one: one misunderstanding per rule
    same = [p for p in short if p == first or about_the_same(salient(p), salient(first))]
    topic = _topic(first, same)
    quotes = [first] + [p for p in same if p != first and similarity_of(p, first) < 90][:1]
    said = " and ".join(f'"{quote(p.strip().rstrip(".!"), 100)}"' for p in quotes)
    point = f'"{quote(topic, 60)}"' if topic else "the same point"
    about = f"about {point}" if topic else "on the same point"
    rule = (f"Users often had to correct answers {about}: {said}. Check answers on this point against "
            "these corrections before replying.")
    return _rule_candidate(
        ws, rule,
        title=(f'add a rule from user corrections about "{gist(topic)}"' if topic
               else f'add a rule from user corrections like "{gist(first)}"'),
        proposer="offline/correction-rule",
        rationale=(f"In {_share(pattern)} the user had to correct the agent; {len(same)} of the "
                   f"{len(phrases)} correction{'s' if len(phrases) != 1 else ''} in the evidence "
                   f"{'is' if len(same) == 1 else 'are'} about {point}. A rule that states "
                   "the point users corrected, in their words, addresses that misunderstanding."),
    )


def similarity_of(a: str, b: str) -> float:
    from rapidfuzz import fuzz

    return float(fuzz.token_set_ratio(a.lower(), b.lower()))


_TOKEN = re.compile(r"[\w']+")


def _topic(phrase: str, phrases: list[str]) -> str:
    """What the corrections are about, in the words of `phrase`: the span from the first to the last
    salient word most corrections share ("shipping address, not billing", "30 days from delivery")."""
    from selfimprove.analysis.patterns import salient

    sets = [salient(p) for p in phrases]
    counts: dict[str, int] = {}
    for words in sets:
        for w in words:
            counts[w] = counts.get(w, 0) + 1
    need = len(sets) if len(sets) <= 2 else len(sets) // 2 + 1
    shared = {w for w, n in counts.items() if n >= need}
    if not shared:
        return ""
    hits = [m for m in _TOKEN.finditer(phrase) if salient(m.group(0)) & shared]
    if not hits:
        return ""
    span = phrase[hits[0].start():hits[-1].end()]
    if len(span.split()) > 8:
        return ", ".join(dict.fromkeys(m.group(0).lower() for m in hits))
    return span


def _medoid(phrases: list[str]) -> str:
    """The correction most like the others (the pattern's most typical wording); first on ties."""
    if len(phrases) <= 2:
        return phrases[0]
    from rapidfuzz import fuzz

    scores = [sum(fuzz.token_set_ratio(p.lower(), q.lower()) for q in phrases if q is not p) for p in phrases]
    return phrases[scores.index(max(scores))]


# -- demonstrations -----------------------------------------------------------------------------

_USER_LINE = re.compile(r"^User:\s*(.*)$", re.MULTILINE)


def demonstrations(pattern: Pattern, ws: Workspace) -> Outcome:
    from selfimprove.proposals.dedupe import similarity

    demos = pattern.evidence.demonstrations
    if not demos:
        return None
    target = ws.examples_target()
    if target is None:
        return _cannot("the evidence has demonstrations but no prompt declares a mutable examples section "
                       "(an id such as 'examples' or 'few-shot')")
    path, section = target
    before = ws.body(path, section)
    present = _USER_LINE.findall(before)
    budget = ws.settings.policy.max_added_chars
    blocks: list[str] = []
    used: list[Demonstration] = []
    for demo in demos:
        user, assistant = demo.user, demo.assistant
        if not user.strip() or not assistant.strip():
            continue
        if len(user) > DEMO_LIMIT or len(assistant) > DEMO_LIMIT:
            continue
        if user.rstrip().endswith(("…", "...")) or assistant.rstrip().endswith(("…", "...")):
            continue  # cut short upstream: half an answer is no example
        if looks_like_injection(user) or looks_like_injection(assistant):
            continue
        u, a = quote(user, DEMO_LIMIT), quote(assistant, DEMO_LIMIT)
        if any(similarity(u, p) >= 90 for p in present):
            continue
        block = f"User: {u}\nAssistant: {a}"
        if sum(len(b) + 2 for b in blocks) + len(block) + 2 > budget:
            break
        blocks.append(block)
        present.append(u)
        used.append(demo)
        if len(blocks) == MAX_DEMONSTRATIONS:
            break
    if not blocks:
        return _cannot("no demonstration of this pattern can be used (already in the examples section, too "
                       "long, or reads like an instruction)")
    after = append_lines(before, ["\n\n".join(blocks)], blank_line_before=bool(before.strip()))
    ids = ", ".join(d.trace_id or "?" for d in used)
    name = gist(pattern.title or pattern.id or "this pattern")
    return Candidate(
        title=f"add {len(blocks)} example{'s' if len(blocks) != 1 else ''} for {name}",
        proposer="offline/demonstrations",
        rationale=(f"{_share(pattern)} resemble requests that succeeded elsewhere (traces {ids}). Showing "
                   "the agent those worked examples steers similar requests the same way."),
        edits=(Edit(path, section, None, before, after),),
    )


# -- structured config --------------------------------------------------------------------------

def config_change(pattern: Pattern, ws: Workspace) -> Outcome:
    from selfimprove.prompts.structured import get_pointer

    evidence = pattern.evidence
    hint = evidence.config_hint
    if not hint or not hint.strip():
        return None
    match = _match_pointer(hint, evidence.tool, ws)
    if match is None:
        return None  # the hint names no mutable key: another proposer may still apply
    path, pointer = match
    cfg = ws.configs[path]
    try:
        current = get_pointer(cfg.data, pointer)
    except Exception:  # absent at the base: nothing grounded to raise
        return _cannot(f"{pointer} is not set in {path} at the base commit")
    if isinstance(current, bool) or not isinstance(current, (int, float)):
        return _cannot(f"{pointer} in {path} is not a number ({current!r}); no bounded change can be made")
    sub = _subschema(cfg.schema, pointer) if cfg.schema else {}
    factor = ws.settings.policy.max_config_factor
    new = _raised(current, sub, factor)
    if new is None:
        return _cannot(f"{pointer} in {path} cannot be raised from {current} within its schema's maximum "
                       f"and the policy's bound (x{factor:g})")
    edit = Edit(path, None, pointer, json.dumps(current), json.dumps(new))
    samples = [quote(s, 80) for s in evidence.error_samples][:2]
    seen = f' (e.g. "{samples[0]}")' if samples else ""
    return Candidate(
        title=f"raise {pointer.rsplit('/', 1)[-1]} of {path} from {current} to {new}",
        proposer="offline/config-change",
        rationale=(f"{_share(pattern)} point at `{hint}`{seen}. Raising {pointer} from {current} to {new} "
                   f"(at most ×{factor:g}, within the schema's bounds) gives it room without changing "
                   "anything else."),
        edits=(edit,),
    )


def _tokens(text: str) -> set[str]:
    return {t for t in re.split(r"[^a-z0-9]+", text.lower()) if t}


def _match_pointer(hint: str, tool: str | None, ws: Workspace) -> tuple[str, str] | None:
    """The mutable pointer the hint names (its last segment), for the pattern's tool when it has one.

    With a tool, only a pointer under that tool's name or a top-level key qualifies: a timeout of
    `search` is never raised because `lookup_order` timed out.
    """
    key = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_")
    best: tuple[int, tuple[str, str]] | None = None
    for path, pointer in ws.mutable_pointers():
        segments = [s.lower() for s in pointer.strip("/").split("/")]
        if not segments or not segments[-1]:
            continue
        named = isinstance(tool, str) and bool(tool) and tool.lower() in segments[:-1]
        if isinstance(tool, str) and tool and not named and len(segments) > 1:
            continue
        last = re.sub(r"[^a-z0-9]+", "_", segments[-1])
        if last == key:
            score = 4
        elif last.startswith(key) or key in last or _tokens(key) <= _tokens(last):
            score = 3
        else:
            continue
        score += 2 if named else 0
        if best is None or score > best[0]:
            best = (score, (path, pointer))
    return best[1] if best else None


def _subschema(schema: Mapping[str, Any], pointer: str) -> Mapping[str, Any]:
    node: Any = schema
    for raw in pointer.strip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping):
            return {}
        props = node.get("properties")
        if isinstance(props, Mapping) and part in props:
            node = props[part]
        elif isinstance(node.get("items"), Mapping) and part.isdigit():
            node = node["items"]
        elif isinstance(node.get("additionalProperties"), Mapping):
            node = node["additionalProperties"]
        else:
            return {}
    return node if isinstance(node, Mapping) else {}


def _raised(current: int | float, sub: Mapping[str, Any], factor: float) -> int | float | None:
    """`current` raised by at most `factor` (the policy's bound, the same for every proposer), clipped to
    the schema's maximum; None when no larger value fits both."""
    integer = isinstance(current, int) or sub.get("type") == "integer"
    if current <= 0:
        return None  # a factor says nothing about zero or a negative value
    target: float = math.floor(current * factor) if integer else current * factor
    maximum = sub.get("maximum")
    if isinstance(maximum, (int, float)) and not isinstance(maximum, bool):
        target = min(target, maximum)
    exclusive = sub.get("exclusiveMaximum")
    if isinstance(exclusive, (int, float)) and not isinstance(exclusive, bool) and target >= exclusive:
        if not integer:
            return None  # no largest float below the bound worth proposing
        target = math.ceil(exclusive) - 1
    new: int | float = int(target) if integer else round(float(target), 6)
    if not integer and float(new).is_integer() and isinstance(current, int):
        new = int(new)
    return new if new > current else None


PROPOSERS: tuple[Callable[[Pattern, Workspace], Outcome], ...] = (
    config_change,
    tool_error_rule,
    correction_rule,
    demonstrations,
)
