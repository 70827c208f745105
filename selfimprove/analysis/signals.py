"""Signals: small, explicit detectors that say *why* a trace may have failed.

Owns `KINDS`, the one declaration of every kind of signal (where it comes from, its prior weight as a
feature of the outcome model, its rank among pattern kinds; `IMPLICIT`, `outcomes.FEATURES` and
`PRIOR`, and `KIND_ORDER` are derived from it), the registry of detectors (name → function over one
`Trace` and its `TraceView`, the columns of its messages, built once and shared by all detectors;
a detector's name must be a declared kind) and the text normalisation used to
turn raw error messages into templates that group well. Each detector looks at one trace only, in
one pass over its messages, and returns `Signal`s with a short human detail and the message index,
so that every outcome can be explained line by line.

Never does: decide an outcome or weigh signals against each other (that is `outcomes`), or keep
anything beyond the trace it is looking at (analysis must stream). Detectors are deliberately plain
regular expressions and counters: they run on every trace of a large log, must be deterministic, and
their meaning is calibrated later from labelled traces rather than trusted blindly.

Speed: most messages trigger nothing, so a detector first tests the texts it would search, joined
into one string per trace, for the words every match of its patterns must contain (`_ERROR_WORDS`,
`_CORRECTION_WORDS`, `_ESCALATE_WORDS`, `_REFUSAL_WORDS`, ...), and runs its regular expressions only
when one is there. Such a test may let a trace through needlessly, never hold one back: whoever adds
a phrase to a pattern must make sure one of those words is in it, or add one.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rapidfuzz import fuzz
from rapidfuzz.utils import default_process

from selfimprove.traces.model import Feedback, Message, Trace, TraceView, view_of


@dataclass(frozen=True)
class Signal:
    """One piece of evidence. `weight` is its contribution to the failure log-odds (set by outcomes)."""

    name: str
    weight: float = 0.0
    detail: str = ""
    message_index: int | None = None
    key: str = ""  # the grouping key patterns use (kind|tool|template); not part of the JSON contract

    def __reduce__(self) -> tuple[Any, ...]:  # analysis workers send many: as a plain tuple
        return Signal, (self.name, self.weight, self.detail, self.message_index, self.key)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "weight": round(self.weight, 4)}
        if self.detail:
            doc["detail"] = self.detail
        if self.message_index is not None:
            doc["message_index"] = self.message_index
        return doc


@dataclass(frozen=True)
class Kind:
    """One kind of signal, declared once; everything that lists kinds is derived from `KINDS`.

    `source`: "detector" (found in the messages by a registered detector: the implicit signals),
    "run" (a feature of the run as a whole: its length, its last word) or "label" (read from explicit
    feedback). `prior`: the prior log-odds weight of the kind as a feature of the outcome model (None:
    not a feature); the table's order is the order of the feature vector. `rank`: the kind's place
    among pattern kinds when two patterns have the same count (None: ranked after every ranked kind).
    """

    name: str
    source: str
    prior: float | None = None
    rank: int | None = None


# The prior weights say what each kind usually means when no label says otherwise. Hand-set, not fitted
# to any one log: bench/judgement.py scores them on every labelled domain at hand, next to weights fitted
# leaving that domain out (which move them little). A hand-off or a refusal the user accepted is often
# the agent following its policy: no weight until labels say otherwise.
KINDS: tuple[Kind, ...] = (
    Kind("tool_error", "detector", prior=1.0, rank=2),
    Kind("user_correction", "detector", prior=1.0, rank=6),
    Kind("rephrase", "detector", prior=0.8),  # its patterns are user corrections
    Kind("escalation", "detector", prior=1.5, rank=4),
    Kind("abandonment", "detector", prior=1.5, rank=7),
    Kind("loop", "detector", prior=2.0, rank=3),
    Kind("refusal", "detector", prior=1.0, rank=5),
    Kind("max_turns", "detector", prior=2.5, rank=1),
    Kind("long_run", "run", prior=1.0),  # how much longer than usual a run was; its patterns are loops
    Kind("handoff", "detector", prior=0.0),
    Kind("accepted_refusal", "detector", prior=0.0),
    Kind("unfinished", "detector", prior=1.5),
    Kind("claims_done", "run", prior=0.0),  # the agent's last word claims the task done
    Kind("short_run", "run", prior=0.0),  # how much shorter than usual a run was
    Kind("explicit_failure", "label", rank=8),
    Kind("explicit_success", "label"),
    Kind("run_error", "label", rank=0),
)
# The implicit signals, in the order of the feature vector (which also breaks ties between kinds).
IMPLICIT = tuple(k.name for k in KINDS if k.source == "detector")
EXPLICIT = tuple(k.name for k in KINDS if k.source == "label")
# The outcome model's generic features, with their prior weights (`outcomes.FEATURES`, `PRIOR`).
FEATURES = tuple(k.name for k in KINDS if k.prior is not None)
PRIOR_WEIGHTS: Mapping[str, float] = {k.name: k.prior for k in KINDS if k.prior is not None}
# Pattern kinds in the order that breaks ties of equal count (`patterns.group`).
KIND_ORDER = tuple(k.name for k in sorted(KINDS, key=lambda k: k.rank or 0) if k.rank is not None)

DETAIL_CHARS = 200

# --- text normalisation -------------------------------------------------------------------------

def _any_in(text: str, words: tuple[str, ...]) -> bool:
    for word in words:
        if word in text:
            return True
    return False


_DIGITS = ("<digit>",)


def _with_unit(match: re.Match[str]) -> str:
    return "<n>" + match.group(1)  # what r"<n>\1" gives, without expanding a template per match


# (pattern, placeholder, needles): a pattern can only match a line holding one of its needles, so it
# is not run on the others (_DIGITS: a line with a digit; placeholders never add digits; () = always).
_PLACEHOLDERS: tuple[tuple[re.Pattern[str], Any, tuple[str, ...]], ...] = (
    (re.compile(r"https?://\S+"), "<url>", ("://",)),
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "<email>", ("@",)),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>", ("-",)),
    (re.compile(r"(?<![\w/])(?:[A-Za-z]:\\|~?/)(?:[\w.@+-]+[/\\])*[\w.@+-]+"), "<path>", ("/", "\\")),
    (re.compile(r"'[^'\n]{1,200}'|\"[^\"\n]{1,200}\"|`[^`\n]{1,200}`|“[^”\n]{1,200}”"), "<str>",
     ("'", '"', "`", "“")),
    (re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{12,}\b", re.I), "<id>", ()),
    # quantities with a unit (30s, 250ms, 2.5MB) are numbers, not ids
    (re.compile(r"\b\d+(?:\.\d+)?(ms|s|sec|secs|m|min|mins|h|hrs|d|kb|mb|gb|tb|k|x|px)\b", re.I), _with_unit,
     _DIGITS),
    # identifiers mixing letters and digits (order #W2378156, call_ab12, user_42): ids, not words
    (re.compile(r"#?\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{3,}\b"), "<id>", _DIGITS),
    (re.compile(r"#\d+\b"), "<id>", ("#",)),
    (re.compile(r"[-+]?\b\d+(?:[.,:]\d+)*\b"), "<n>", _DIGITS),
)
_DIGIT = re.compile(r"\d")
_SPACE = re.compile(r"\s+")


def normalize(text: str, limit: int = DETAIL_CHARS) -> str:
    """An error template: numbers, ids, quoted values, paths, urls and emails become placeholders."""
    line = first_line(text, limit * 2)
    digits = _DIGIT.search(line) is not None
    for pattern, placeholder, needles in _PLACEHOLDERS:
        if needles is _DIGITS:
            if not digits:
                continue
        elif needles and not _any_in(line, needles):
            continue
        line = pattern.sub(placeholder, line)
    return _SPACE.sub(" ", line).strip()[:limit]


def first_line(text: str, limit: int = DETAIL_CHARS) -> str:
    """The first non-empty line of a text (a Python traceback's last line: that is where the error is)."""
    text = text.strip()
    if text.startswith("Traceback (most recent call last)"):
        lines = [ln for ln in text.splitlines() if ln.strip()]
        return lines[-1].strip()[:limit]
    for ln in text.splitlines():
        if ln.strip():
            return _SPACE.sub(" ", ln.strip())[:limit]
    return ""


def excerpt(text: str, limit: int = DETAIL_CHARS) -> str:
    text = _SPACE.sub(" ", text[: limit * 4]).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- detectors ------------------------------------------------------------------------------------

Detector = Callable[[Trace, TraceView], list[Signal]]
REGISTRY: dict[str, Detector] = {}


def detector(name: str) -> Callable[[Detector], Detector]:
    """Register a detector of the kind `name`, which `KINDS` must declare (with its prior and rank)."""
    if name not in IMPLICIT:
        raise ValueError(f"detector {name!r}: declare its kind in signals.KINDS first")

    def register(fn: Detector) -> Detector:
        REGISTRY[name] = fn
        return fn

    return register


def detect(trace: Trace, view: TraceView | None = None) -> list[Signal]:
    """Every signal of one trace, from every registered detector, in registry order."""
    view = view_of(trace) if view is None else view
    found: list[Signal] = []
    for fn in REGISTRY.values():
        found.extend(fn(trace, view))
    return found


# How a tool result says it failed. Checked on the lowercased head of the text with plain substring
# tests first (tool results are the bulk of a trace; a case-insensitive regex over each is too slow).
_ERROR_STARTS = ("error", "errors:", "exception", "traceback", "fatal", "failed", "failure:")
_ERROR_PHRASES = ("timeout", "timed out", "time out", "command not found", "no such file or directory",
                  "permission denied", "rate limit", "rate-limit", "unavailable", "forbidden", "unauthorized",
                  "could not ", "couldn't ", "unable to ", "failed to ", "invalid ",
                  "an error occurred")  # the OpenAI Agents SDK's default text for a tool that raised
_ERROR_JSON = re.compile(r'^\s*\{\s*"(?:error|exception|err)"\s*:\s*(?![\s,}]|null|false|""|\{\s*\}|\[\s*\])')
_ERROR_CLASS = re.compile(r"[a-z](?:error|exception)\b\s*:")
_ERROR_STATUS = re.compile(r'status"?\s*(?:code"?)?\s*[:=]?\s*"?[45]\d\d\b')


def _error_text(head: str) -> bool:
    low = head.lower()
    if low.lstrip(" \t\r\n\"'[(*#>:-").startswith(_ERROR_STARTS):
        return True
    if _any_in(low, _ERROR_PHRASES):
        return True
    if ("error" in low or "exception" in low) and (_ERROR_JSON.match(low) or _ERROR_CLASS.search(low)):
        return True
    return "status" in low and _ERROR_STATUS.search(low) is not None


def _tool_names(view: TraceView) -> dict[str, str]:
    return {call_id: name for _, name, _, call_id in view.calls if call_id}


def looks_like_error(message: Message) -> bool:
    return _failed_result(message.content, message.is_error)


def _failed_result(content: str, is_error: bool) -> bool:
    """A tool result the source marks as an error, or whose text says it failed."""
    return is_error or (bool(content) and _error_text(content[:400]))


# Every text `_error_text` accepts contains one of these words (or matches _ERROR_STATUS): a trace
# whose tool results, joined, contain none of them has no tool error, without a test per message.
# (Shortened: "fail" stands for failed/failure:/failed to, "time" for timeout/timed out/time out, ...)
_ERROR_WORDS = ("error", "exception", "traceback", "fatal", "fail", "time", "not found", "no such file",
                "denied", "limit", "una", "forbidden", "ould", "invalid")
# Joins the texts of a trace's messages for one cheap trace-wide test. Neither a word character nor
# whitespace, so no keyword or pattern can match across two messages by way of it.
_SEP = "\x00"



@detector("tool_error")
def tool_errors(trace: Trace, view: TraceView) -> list[Signal]:
    candidates = view.results
    if not candidates:
        return []
    flagged = False
    for result in candidates:
        if result[2]:
            flagged = True
            break
    if not flagged:
        joined = _SEP.join([result[1][:400] for result in candidates]).lower()
        if not _any_in(joined, _ERROR_WORDS) and not ("status" in joined and _ERROR_STATUS.search(joined)):
            return []
    names: dict[str, str] | None = None
    found = []
    for i, content, is_error, tool, call_id in candidates:
        if not _failed_result(content, is_error):
            continue
        if not tool and call_id:
            names = _tool_names(view) if names is None else names
            tool = names.get(call_id)
        tool = tool or "unknown"
        text = first_line(content) or "tool reported an error"
        found.append(Signal("tool_error", detail=f"{tool}: {text}", message_index=i,
                            key=f"tool_error|{tool}|{normalize(text)}"))
    return found


_CORRECTION = re.compile(
    r"""\b(?:that'?s\s+not\s+(?:what|right|correct|it)|that\s+is\s+not\s+(?:what|right|correct)
      |not\s+what\s+i\s+(?:asked|wanted|meant|said)|i\s+(?:said|meant|asked\s+for)\b
      |you\s+(?:misunderstood|got\s+it\s+wrong|are\s+wrong|didn'?t\s+(?:listen|understand|read))
      |(?:that'?s|this\s+is|it'?s)\s+(?:wrong|incorrect)|wrong\s+(?:answer|order|item|one|address|file)
      |(?:doesn'?t|does\s+not|didn'?t|did\s+not)\s+work|still\s+(?:not|doesn'?t|broken|wrong|failing)
      |try\s+again|please\s+re-?read|no,?\s+i\s+(?:want|need|meant|said)|useless|not\s+helpful
      |(?:this\s+is|that'?s|so|how)\s+(?:frustrating|annoying|ridiculous|unacceptable)|frustrat(?:ed|ing)
      |seriously\?|what\s+the\s+hell)""",
    re.X,
)
_CORRECTION_OPENERS = re.compile(r"^\s*(?:no|nope|wrong|incorrect|actually)\b[,.!]?")
# "No, thanks" closes a conversation and "No need to" declines an offer; "No, the blue one" corrects
_NOT_A_CORRECTION = re.compile(
    r"^\s*no\W*(?:thanks|thank|that'?s\s+(?:all|it|ok|okay|fine)|i'?m\s+(?:good|all)|need|problem|worries|"
    r"rush|,?\s*that\s+(?:is|will\s+be)\s+all|nothing|other|more|further)",
)
_CUE_SPACE = re.compile(r"[\s’']+")


def _cue(match: str) -> str:
    return _CUE_SPACE.sub(" ", match.lower().replace("’", "'")).strip(" ,.!")


# Every match of _CORRECTION or _CORRECTION_OPENERS contains one of these (lowercase) words.
_CORRECTION_WORDS = ("no", "said", "meant", "asked", "misunderstood", "wrong", "didn", "incorrect", "work",
                     "still", "again", "read", "useless", "frustrat", "ridiculous", "unacceptable",
                     "seriously", "hell", "actually")


@detector("user_correction")
def user_corrections(trace: Trace, view: TraceView) -> list[Signal]:
    found: list[Signal] = []
    roles = view.roles
    try:
        start = roles.index("assistant") + 1
    except ValueError:
        return found
    texts = view.texts
    candidates = [(i, texts[i]) for i in range(start, len(roles)) if roles[i] == "user" and texts[i]]
    if not candidates:
        return found
    joined = _SEP.join([content[:1000] for _, content in candidates]).replace("’", "'").lower()
    if not _any_in(joined, _CORRECTION_WORDS):
        return found
    for i, content in candidates:
        text = content[:1000].replace("’", "'")
        low = text.lower()  # the patterns are lowercase: cheaper than case-insensitive matching
        hit = _CORRECTION.search(low)
        cue = _cue(hit.group(0)) if hit else None
        if cue is None:
            opener = _CORRECTION_OPENERS.match(low)
            if opener and not _NOT_A_CORRECTION.match(low):
                cue = _cue(opener.group(0))
        if cue is None or _ESCALATE_USER.search(low):  # "Not helpful. I want a human": an escalation
            continue
        found.append(Signal("user_correction", detail=excerpt(text), message_index=i,
                            key=f"user_correction|{cue}"))
    return found


@detector("rephrase")
def rephrasings(trace: Trace, view: TraceView) -> list[Signal]:
    found = []
    previous: str | None = None
    texts = view.texts
    for i, role in enumerate(view.roles):
        if role != "user":
            continue
        content = texts[i]
        if not content.strip():
            continue
        text = content[:500]
        if previous is not None and len(text) >= 20 and \
                fuzz.token_set_ratio(previous, text, processor=default_process, score_cutoff=85) >= 85:
            found.append(Signal("rephrase", detail=excerpt(content), message_index=i,
                                key="user_correction|rephrase"))
        previous = text
    return found


_ESCALATE_USER = re.compile(
    r"""\b(?:(?:speak|talk|chat)\s+(?:to|with)\s+(?:a\s+|an\s+|the\s+|your\s+)?(?:real\s+|actual\s+|live\s+)?
          (?:human|person|manager|supervisor|representative|agent|someone)
      |(?:transfer|connect|escalate|put)\s+(?:me|this|it)\b.{0,40}?\b(?:human|person|manager|supervisor|
          representative|agent|someone|support)
      |(?:want|need|get\s+me)\s+(?:a\s+|an\s+|to\s+(?:speak|talk)\s+to\s+(?:a\s+)?)?(?:real\s+)?
          (?:human|person|manager|supervisor|representative|someone\s+real)\b
      |human\s+(?:agent|representative|support)|real\s+person|live\s+agent|escalate)""",
    re.X | re.S,
)
_ESCALATE_AGENT = re.compile(
    r"\b(?:transferr?(?:ing|ed)?\s+you\s+to|escalat(?:e|ing|ed)\s+(?:this|your)|hand(?:ing)?\s+(?:you\s+)?"
    r"(?:off|over)\s+to)\b.{0,40}?\b(?:human|agent|team|specialist|representative|supervisor)",
    re.S,
)
_ESCALATE_TOOL = re.compile(r"transfer|escalat|handoff|hand_off|human", re.I)
# every escalation phrase contains one of these words: a cheap test before the regexes
_ESCALATE_WORDS = ("human", "person", "manager", "supervisor", "representative", "agent", "someone",
                   "escalat", "transfer", "hand", "team", "specialist", "support")


@lru_cache(maxsize=4096)  # tool names repeat
def _escalating_tool(name: str) -> bool:
    return _ESCALATE_TOOL.search(name) is not None


@detector("escalation")
def escalations(trace: Trace, view: TraceView) -> list[Signal]:
    """A human demanded by the user (`escalation`), or a hand-off the agent chose on its own (`handoff`):
    a transfer the agent's policy calls for is often the right outcome, one the user had to ask for
    rarely is. The first of them counts; a user's request before the hand-off makes it demanded."""
    found: list[Signal] = []
    roles, texts = view.roles, view.texts
    spoken = [i for i, role in enumerate(roles) if (role == "user" or role == "assistant") and texts[i]]
    joined = _SEP.join([texts[i][:2000] for i in spoken])
    # the first call to an escalating tool: it counts before the text of its own message
    first_call = next(((i, name) for i, name, _, _ in view.calls if _escalating_tool(name)), None)
    if first_call is None and not _any_in(joined.lower(), _ESCALATE_WORDS):
        return found
    handoff: Signal | None = None
    for i in spoken:
        if first_call is not None and first_call[0] <= i:
            break  # asked for after the transfer: not what made it happen
        content = texts[i]
        low = content[:2000].lower()
        if not any(word in low for word in _ESCALATE_WORDS):
            continue
        if roles[i] == "user" and _ESCALATE_USER.search(low):
            found.append(Signal("escalation", detail=f"user asked: {excerpt(content, 160)}",
                                message_index=i, key="escalation|user request"))
            return found
        if handoff is None and roles[i] == "assistant" and _ESCALATE_AGENT.search(low):
            handoff = Signal("handoff", detail=f"agent: {excerpt(content, 160)}", message_index=i,
                             key="escalation|agent handoff")
    if handoff is None and first_call is not None:
        i, name = first_call
        handoff = Signal("handoff", detail=f"agent called {name}", message_index=i, key=f"escalation|{name}")
    return [handoff] if handoff is not None else found


_GIVE_UP = re.compile(
    r"\b(?:forget\s+(?:it|about\s+it)|never\s*mind|i\s+give\s+up|(?:this\s+is\s+)?pointless|waste\s+of\s+"
    r"(?:my\s+)?time|i'?ll\s+(?:do\s+it\s+myself|go\s+elsewhere|figure\s+it\s+out)|not\s+worth\s+it)\b",
)
_CLOSING = re.compile(
    r"thank|\bthanks\b|that'?s\s+(?:all|it|everything)|\bbye\b|all\s+set|\bperfect\b|\bgreat\b|###stop###"
    r"|\bdone\b|\bgood\b|appreciate",
)


@detector("abandonment")
def abandonment(trace: Trace, view: TraceView) -> list[Signal]:
    roles, texts = view.roles, view.texts
    last = -1  # the last user, assistant or tool message
    i = -1  # the last user message with text
    more_users = False  # another user message with text before it
    for k in range(len(roles) - 1, -1, -1):
        role = roles[k]
        if role == "user" or role == "assistant" or role == "tool":
            if last < 0:
                last = k
            if role == "user" and texts[k].strip():
                if i >= 0:
                    more_users = True
                    break
                i = k
    if i < 0:
        return []
    text = texts[i].replace("’", "'")[:1000]
    low = text.lower()
    if _GIVE_UP.search(low):
        return [Signal("abandonment", detail=f"user gave up: {excerpt(text, 160)}", message_index=i,
                       key="abandonment|gave up")]
    if last == i and more_users and not _CLOSING.search(low):
        return [Signal("abandonment", detail=f"conversation ends on an unanswered user turn: "
                                             f"{excerpt(text, 120)}", message_index=i,
                       key="abandonment|unanswered")]
    return []


_CALL_ENCODER = json.JSONEncoder(sort_keys=True, default=str)  # json.dumps(..., sort_keys=True, default=str)


def _call_key(name: str, arguments: Any) -> str:
    if isinstance(arguments, (dict, list)):
        try:
            return name + _CALL_ENCODER.encode(arguments)
        except (TypeError, ValueError):
            return name + repr(arguments)
    return f"{name}{arguments!r}"


@detector("loop")
def loops(trace: Trace, view: TraceView) -> list[Signal]:
    called = [name for _, name, _, _ in view.calls]
    texts = view.texts
    replies = [texts[i] for i, role in enumerate(view.roles) if role == "assistant" and len(texts[i]) >= 40]
    if len(called) < 3 and len(replies) < 3:  # nothing can repeat three times
        return []
    names: dict[str, int] = {}
    for name in called:
        names[name] = names.get(name, 0) + 1
    repeated: Counter[str] = Counter(text.strip()[:500] for text in replies) if len(replies) >= 3 \
        else Counter()
    found = []
    if names and max(names.values()) >= 3:  # only then is it worth comparing arguments
        calls: Counter[str] = Counter()
        first: dict[str, tuple[int, str]] = {}
        for i, name, arguments, _ in view.calls:
            if names[name] >= 3:
                key = _call_key(name, arguments)
                calls[key] += 1
                first.setdefault(key, (i, name))
        for key, n in calls.items():
            if n >= 3:
                i, name = first[key]
                found.append(Signal("loop", detail=f"{name} called {n} times with the same arguments",
                                    message_index=i, key=f"loop|{name}"))
    for text, n in repeated.items():
        if n >= 3:
            found.append(Signal("loop", detail=f"the same reply {n} times: {excerpt(text, 100)}",
                                key="loop|repeated reply"))
    return found[:3]


_REFUSAL = re.compile(
    r"\b(?:i'?m\s+(?:sorry|afraid),?\s+(?:but\s+)?i\s+(?:can(?:no|')?t|am\s+unable|am\s+not\s+able|won'?t)"
    r"|i\s+(?:can(?:no|')?t|am\s+unable\s+to|am\s+not\s+able\s+to|won'?t\s+be\s+able\s+to|won'?t)\s+"
    r"(?:help|assist|do|provide|comply|process|proceed|complete|make|change|modify|cancel|fulfil|fulfill)"
    r"|unfortunately,?\s+(?:\w+\s+){0,12}?(?:can(?:no|')?t|unable|not\s+(?:possible|able|eligible|allowed))"
    r"|i\s+(?:must|have\s+to)\s+decline|as\s+an\s+ai(?:\s+language\s+model)?,?\s+i)",
)


# Every match of _REFUSAL contains one of these words, or "as an ai" (spaced any way).
_REFUSAL_WORDS = ("cannot", "can't", "cant", "able", "won't", "wont", "unfortunately", "decline")
_AS_AN_AI = re.compile(r"as\s+an\s+ai")


@detector("refusal")
def refusals(trace: Trace, view: TraceView) -> list[Signal]:
    """The agent declining or being unable to do what was asked (a policy refusal may be correct)."""
    found: list[Signal] = []
    texts = view.texts
    candidates = [(i, texts[i]) for i, role in enumerate(view.roles) if role == "assistant" and texts[i]]
    if not candidates:
        return found
    joined = _SEP.join([content[:2000] for _, content in candidates]).replace("’", "'").lower()
    if not _any_in(joined, _REFUSAL_WORDS) and not ("ai" in joined and _AS_AN_AI.search(joined)):
        return found
    for i, content in candidates:
        text = content[:2000].replace("’", "'")
        low = text.lower()
        hit = _REFUSAL.search(low)
        if hit:
            sentence = _sentence_at(text if len(low) == len(text) else low, hit.start())
            name = "accepted_refusal" if _accepted(view, i) else "refusal"
            found.append(Signal(name, detail=excerpt(sentence, 160), message_index=i,
                                key=f"refusal|{normalize(sentence, 80)}"))
    return found


def _accepted(view: TraceView, i: int) -> bool:
    """Whether the user went on after the agent declined at message i, rather than fighting it (a
    correction, a demand for a human, giving up) or leaving the refusal as the last word: a policy
    explained and accepted is usually the agent doing its job."""
    roles, texts = view.roles, view.texts
    for j in range(i + 1, len(roles)):
        if roles[j] == "user" and texts[j].strip():
            low = texts[j][:1000].replace("\u2019", "'").lower()
            return not (_CORRECTION.search(low) or _ESCALATE_USER.search(low) or _GIVE_UP.search(low)
                        or (_CORRECTION_OPENERS.match(low) and not _NOT_A_CORRECTION.match(low)))
    return False


def _sentence_at(text: str, start: int) -> str:
    end = re.search(r"[.!?\n]", text[start:])
    return text[start: start + end.start() if end else start + 120]


_LIMIT_VALUES = re.compile(
    r"^(?:length|max_tokens|max_turns|max_steps|max_iterations|message_limit|token_limit|time_limit|"
    r"working_limit|context(?:_length)?(?:_exceeded)?|exit_cost|exit_context|exit_format|limit|"
    r"max_output_tokens|model_length|turn_limit|iteration_limit)$",
    re.I,
)
_LIMIT_KEYS = frozenset({"finish_reason", "stop_reason", "exit_status", "limit", "termination_reason",
                         "status", "incomplete_reason", "reason"})
_LIMIT_TEXT = re.compile(
    r"\b(?:max(?:imum)?\s+(?:number\s+of\s+)?(?:turns|steps|iterations|tokens|messages|rounds|time)|"
    r"(?:turn|step|iteration|token|context|round|time)\s+limit)\s*(?:\(?\d+\w{0,3}\)?\s*)?(?:was\s+|has\s+been\s+)?(?:reached|exceeded|hit)\b"
    r"|\bcontext\s+length\s+exceeded\b",
)


def _limit_in(metadata: Mapping[str, Any], depth: int = 0) -> str | None:
    for key, value in metadata.items():
        if isinstance(value, str) and key in _LIMIT_KEYS:
            if _LIMIT_VALUES.match(value.strip()):
                return f"{key}={value}"
            if _LIMIT_TEXT.search(value.lower()):  # AutoGen: "Maximum number of turns 10 reached."
                return f"{key}={excerpt(value, 80)}"
        if isinstance(value, Mapping) and depth < 2:
            found = _limit_in(value, depth + 1)
            if found:
                return found
    return None


@detector("max_turns")
def max_turns(trace: Trace, view: TraceView) -> list[Signal]:
    found = _limit_in(trace.metadata)
    if found:
        return [Signal("max_turns", detail=f"stopped at a limit ({found})",
                       key=f"max_turns|{normalize(found.split('=', 1)[1]).lower()}")]
    for fb in trace.feedback:
        text = f"{fb.value} {fb.comment or ''}" if fb.kind == "error" else ""
        if text and _LIMIT_TEXT.search(text.lower()):
            return [Signal("max_turns", detail=excerpt(text, 160), key="max_turns|run limit")]
    texts = view.texts
    for i in range(len(texts) - 1, max(-1, len(texts) - 3), -1):
        content = texts[i]
        # a limit is announced at the end of a message, or at its start before a log tail
        tail = (content[-500:] if len(content) <= 800 else content[:300] + _SEP + content[-500:]).lower()
        if ("max" in tail or "limit" in tail or "exceeded" in tail) and _LIMIT_TEXT.search(tail):
            return [Signal("max_turns", detail=excerpt(content[-200:], 160), message_index=i,
                           key="max_turns|limit message")]
    return []


_STANDARD_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_CRASH = re.compile(r"traceback \(most recent call last\)|unhandled exception")


@detector("unfinished")
def unfinished(trace: Trace, view: TraceView) -> list[Signal]:
    """The run stops before the agent answered: its last message is a crash or, in a multi-agent log,
    another agent's work that the lead (the first agent to speak) never wrapped up."""
    roles, texts = view.roles, view.texts
    last = len(roles) - 1
    while last >= 0 and (roles[last] == "system" or not texts[last].strip()):
        last -= 1
    if last < 0 or roles[last] == "user":
        return []  # a user's last word is abandonment's business
    text = texts[last]
    low = text[:300].lower() + _SEP + text[-1500:].lower()
    # a tool's traceback is a tool error, the agent's own is a crash
    crash = _CRASH.search(low) if roles[last] != "tool" and ("traceback" in low or "exception" in low) \
        else None
    if crash:
        return [Signal("unfinished", detail=f"ends in a crash: {excerpt(low[crash.start():], 120)}",
                       message_index=last, key="unfinished|crash")]
    if roles[last] in _STANDARD_ROLES:  # a log of one request ends on a tool result: that proves nothing
        return []
    messages = trace.messages  # a multi-agent log: who spoke, by name
    speakers = [m.name or m.role for m in messages if m.role not in _STANDARD_ROLES or m.role == "assistant"]
    if speakers and speakers[-1] != speakers[0]:
        return [Signal("unfinished", detail=f"ends on {speakers[-1]}'s message; {speakers[0]} never answered",
                       message_index=last, key=f"unfinished|{speakers[-1]}")]
    return []


# --- explicit labels --------------------------------------------------------------------------------

_PASS_LABELS = frozenset({"pass", "passed", "correct", "c", "yes", "y", "good", "success", "succeeded",
                          "successful", "true", "ok", "positive", "resolved", "accepted", "thumbs_up", "up",
                          "helpful", "complete", "completed", "solved", "1"})
_FAIL_LABELS = frozenset({"fail", "failed", "failure", "incorrect", "i", "no", "n", "bad", "wrong", "false",
                          "error", "negative", "unresolved", "rejected", "thumbs_down", "down", "unhelpful",
                          "partial", "p", "incomplete", "unsolved", "0", "cancelled", "canceled"})


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def verdict(fb: Feedback) -> bool | None:
    """True = the feedback says failure, False = success, None = it does not say."""
    if fb.passed is not None and fb.kind != "error":
        return not fb.passed
    kind = fb.kind
    value = fb.value
    if kind == "error":
        return bool(value or fb.comment) if fb.passed is None else not fb.passed
    if kind == "status":
        text = str(value).strip().lower()
        if text in ("error", "failed", "failure", "cancelled", "canceled", "timeout", "crashed"):
            return True
        return None  # "ok" says the run did not crash, not that the agent succeeded
    if kind == "success":
        num = _number(value)
        return None if num is None else num < 0.5
    if kind == "thumbs":
        num = _number(value)
        if num is None:
            text = str(value).strip().lower()
            return True if text in _FAIL_LABELS else False if text in _PASS_LABELS else None
        return None if num == 0 else num < 0
    if kind == "reward":
        num = _number(value)
        return None if num is None else num < 1.0
    if kind == "score":
        num = _number(value)
        if num is not None:
            return num < 0.5
    text = str(value).strip().lower() if value is not None else ""
    if text in _FAIL_LABELS:
        return True
    if text in _PASS_LABELS:
        return False
    return None


def _describe(fb: Feedback) -> str:
    name = f"{fb.name} " if fb.name else ""
    text = f"{fb.kind} {name}= {fb.value!r}" if fb.value is not None else fb.kind
    if fb.comment:
        text += f" ({excerpt(fb.comment, 120)})"
    return excerpt(text, DETAIL_CHARS)


def explicit(trace: Trace) -> list[Signal]:
    """The explicit labels of a trace: failures, successes and run errors, each as a signal."""
    found = []
    for fb in trace.feedback:
        said = verdict(fb)
        if said is None:
            continue
        if said and (fb.kind == "error" or (fb.kind == "status")):
            text = first_line(str(fb.comment or fb.value or "error"))
            found.append(Signal("run_error", weight=1.0, detail=_describe(fb),
                                key=f"run_error|{normalize(text)}"))
        elif said:
            found.append(Signal("explicit_failure", weight=1.0, detail=_describe(fb),
                                key=f"explicit_failure|{fb.name or fb.kind}"))
        else:
            found.append(Signal("explicit_success", weight=-1.0, detail=_describe(fb)))
    return found
