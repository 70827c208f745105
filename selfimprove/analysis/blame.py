"""Blame: which agent, at which step, a failed trace first went wrong.

Owns `blame()`: one trace's columns (`TraceView`) and its signals → `Blame(agent, step, reason)`, the
earliest step that breaks a constraint checkable from the trace alone, else the agent output the
failure follows. `step` is a 0-based index into the trace's messages; `agent` is the name the log
gives the speaker (a multi-agent log's "Orchestrator (thought)" → "Orchestrator"), else its role.

Checked constraints, earliest first (each is what a domain's policy or tool schema says in general,
not a phrase of one log):
  - a tool call whose result is an error: the call is to blame, not the error message after it;
  - in a multi-agent log, a worker whose own output reports failure (an error page, "nothing to
    summarise", "unable to …"): its output plays the part of a tool result;
  - a coordinator that reports no progress or a loop after a worker's output that reports no failure:
    the worker did what it was told, so the coordinator's instruction it followed stalled the plan;
  - a consequential action (a call whose name says it changes something: cancel, modify, return, …)
    with no user confirmation since the agent last spoke, which policies of such agents require.
Only when none of these holds: the agent message the first symptom reacts to (a correction, a request
for a human, an abandoned conversation), else the last agent message.

Never does: decide that a trace failed (that is `outcomes`), read files or keep anything: it looks at
one trace while it streams past. Its keyword lists are generic verbs and phrases, not tuned to a log.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from selfimprove.analysis.signals import Signal, excerpt, first_line
from selfimprove.traces.model import TraceView

_NOT_AGENTS = frozenset({"user", "system", "tool"})
_STANDARD = frozenset({"user", "system", "tool", "assistant"})
_ANNOTATION = re.compile(r"\s*\(.*\)\s*$")


@dataclass(frozen=True)
class Blame:
    agent: str
    step: int
    reason: str

    def __reduce__(self) -> tuple[Any, ...]:  # analysis workers send one per failing trace
        return Blame, (self.agent, self.step, self.reason)

    def to_json(self) -> dict[str, Any]:
        return {"agent": self.agent, "step": self.step, "reason": self.reason}


def agent_of(role: str, name: str | None = None) -> str:
    """The speaker as the log names it: its name when given, else its role without annotations."""
    if name and role not in ("tool", "system"):
        return name
    return _bare(role)


@lru_cache(maxsize=4096)  # roles repeat
def _bare(role: str) -> str:
    return _ANNOTATION.sub("", role).strip() or role


def is_agent(role: str) -> bool:
    return role not in _NOT_AGENTS


# A consequential action: a tool whose name starts with (or contains, snake/camel case) a verb that
# changes state. Read-only tools (get, find, list, search, calculate, …) never match.
_WRITE_VERB = re.compile(
    r"(?:^|[_\-.])(?:cancel|modify|update|change|edit|delete|remove|return|exchange|refund|create|add|book"
    r"|place|send|submit|pay|charge|write|insert|purchase|reserve|approve)"
    r"(?:$|[_\-.A-Z])", re.I)
_AFFIRM = re.compile(r"\b(?:yes|yeah|yep|confirm(?:ed)?|go\s+ahead|proceed|please\s+do|do\s+it|sure|correct"
                     r"|that'?s\s+right|ok(?:ay)?|sounds\s+good)\b", re.I)
# A worker's output that says it failed (multi-agent logs, where outputs stand in for tool results).
_WORKER_FAILED = re.compile(
    r"\b(?:error\s+[45]\d\d|nothing\s+to\s+summari[sz]e|page\s+not\s+found|access\s+denied|just\s+a\s+moment"
    r"|verify\s+you\s+are\s+(?:a\s+)?human|i\s+(?:was|am)\s+(?:unable|not\s+able)|(?:could|can)\s*(?:no|')t"
    r"\s+(?:find|access|open|load|download|read)|failed\s+to|no\s+such\s+file|traceback\s+\(most\s+recent)",
    re.I)
_COORDINATOR = re.compile(r"orchestrat|planner|manager|supervisor|coordinat", re.I)
# A coordinator judging that the work does not advance.
_STALL = re.compile(
    r"\"is_progress_being_made\"\s*:\s*\{[^{}]*?\"answer\"\s*:\s*false|\"is_in_loop\"\s*:\s*\{[^{}]*?"
    r"\"answer\"\s*:\s*true|\b(?:no|not\s+(?:making|made))\s+(?:any\s+)?progress\b|\bstalled\b"
    r"|\b(?:stuck|going)\s+in\s+(?:a\s+)?(?:loop|circles)\b", re.I)
_STALL_WORDS = ("progress", "loop", "stall", "circles")
# Symptoms: signals that react to something the agent did before them.
SYMPTOMS = ("user_correction", "rephrase", "escalation", "abandonment", "refusal", "loop")
HEAD = 600  # characters of a message read for a worker's failure or a coordinator's verdict


def blame(view: TraceView, found: Sequence[Signal] = (), names: Sequence[str | None] | None = None
          ) -> Blame | None:
    """The earliest decisive anomaly of a failed trace, as (agent, step, reason); None without agents."""
    roles, texts = view.roles, view.texts
    if _NOT_AGENTS.issuperset(roles):  # no agent spoke
        return None

    def who(i: int) -> str:
        return agent_of(roles[i], names[i] if names is not None and i < len(names) else None)

    found_at: list[tuple[int, str]] = []
    first_error = _first_failed_call(view, found)
    if first_error is not None:
        found_at.append(first_error)
    if not _STANDARD.issuperset(roles):  # speakers named by the log: a multi-agent log
        found_at.extend(_multi_agent(roles, texts, first_error[0] if first_error else len(roles)))
    action = _unconfirmed_action(view)
    if action is not None:
        found_at.append(action)
    if found_at:
        step, reason = min(found_at, key=lambda t: t[0])
        return _shared(who(step), step, reason)
    symptom = min((s for s in found if s.name in SYMPTOMS and s.message_index is not None),
                  key=lambda s: s.message_index or 0, default=None)
    if symptom is not None and symptom.message_index is not None:
        at_symptom = symptom.message_index
        at = _agent_before(roles, at_symptom + (0 if roles[at_symptom] == "user" else 1))
        if at is not None:
            what = symptom.name.replace("_", " ")
            return _shared(who(at), at, f"the agent output the first {what} follows")
    at = _agent_before(roles, len(roles))
    return _shared(who(at), at, "the last agent output before the failure") if at is not None else None


_blames: dict[tuple[str, int, str], Blame] = {}


def _shared(agent: str, step: int, reason: str) -> Blame:
    """One object per distinct blame (they repeat across the runs of one agent): less to keep and to
    send back from analysis workers. Bounded."""
    key = (agent, step, reason)
    found = _blames.get(key)
    if found is None:
        found = Blame(agent, step, reason)
        if len(_blames) < 10_000:
            _blames[key] = found
    return found


def _agent_before(roles: Sequence[str], end: int) -> int | None:
    for i in range(min(end, len(roles)) - 1, -1, -1):
        if is_agent(roles[i]):
            return i
    return None


def _first_failed_call(view: TraceView, found: Sequence[Signal]) -> tuple[int, str] | None:
    """(the message of the call whose result failed first, reason), from the tool_error signals."""
    errors = [s for s in found if s.name == "tool_error" and s.message_index is not None]
    if not errors:
        return None
    sig = min(errors, key=lambda s: s.message_index or 0)
    at = sig.message_index or 0
    call_id = next((r[4] for r in view.results if r[0] == at), None)
    tool = sig.detail.split(": ", 1)[0]
    step = None
    for i, name, _, cid in reversed(view.calls):
        if i < at and ((call_id and cid == call_id) or (not call_id and name == tool)):
            step = i
            break
    if step is None:  # no call recorded: whoever spoke last before the result made it
        step = _agent_before(view.roles, at)
    return (at if step is None else step), f"tool call failed: {excerpt(sig.detail, 160)}"


def _multi_agent(roles: Sequence[str], texts: Sequence[str], before: int) -> list[tuple[int, str]]:
    """A worker reporting its own failure, and the output a coordinator judged a stall (earliest each)."""
    out: list[tuple[int, str]] = []
    worker_failed = stalled = False
    for i in range(min(before, len(roles))):
        role = roles[i]
        if not is_agent(role):
            continue
        head = texts[i][:HEAD]
        if not worker_failed and not _coordinating(role) and _WORKER_FAILED.search(head):
            out.append((i, f"{agent_of(role)} reports a failure: {excerpt(first_line(head), 120)}"))
            worker_failed = True
        if not stalled and _coordinating(role):
            low = texts[i][:4000].lower()
            if any(w in low for w in _STALL_WORDS) and _STALL.search(low):
                me = agent_of(role)
                prior = next((k for k in range(i - 1, -1, -1)
                              if is_agent(roles[k]) and agent_of(roles[k]) != me), None)
                if prior is not None:
                    # the worker did what it was told and nothing advanced: the instruction it followed
                    # (the coordinator's last message before its output) is the step that stalled
                    told = next((k for k in range(prior - 1, -1, -1) if agent_of(roles[k]) == me), prior)
                    out.append((told, f"{me} finds no progress after {agent_of(roles[prior])} followed "
                                      f"its instruction"))
                    stalled = True
        if worker_failed and stalled:
            break
    return out


def _coordinating(role: str) -> bool:
    """A speaker that plans and delegates (its role names whom it addresses or what it thinks)."""
    return "(" in role or _COORDINATOR.search(role) is not None


@lru_cache(maxsize=4096)  # tool names repeat
def _changes_state(name: str) -> bool:
    return _WRITE_VERB.search(name) is not None


def _unconfirmed_action(view: TraceView) -> tuple[int, str] | None:
    """The first consequential call made without a user confirmation since the agent last spoke."""
    roles, texts = view.roles, view.texts
    for i, name, _, _ in view.calls:
        if not _changes_state(name):
            continue
        confirmed = False
        for k in range(i - 1, -1, -1):
            if roles[k] == "user" and texts[k] and not texts[k].isspace():
                confirmed = _AFFIRM.search(texts[k][:500]) is not None
                break
        if not confirmed:
            return i, f"{name} called without the user's confirmation"
    return None
