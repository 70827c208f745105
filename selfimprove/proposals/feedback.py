"""Eval feedback for proposers: the dev cases a candidate failed, and a proposer that reads them.

Owns: `FailedCase` (what a proposer may learn from a failed dev case: its id, the user's input, the
agent's output, each failed assertion's reason, and what the failed positive assertions expected),
`failed_cases` (from an eval run), `relevant` (the failed cases about a pattern), and `feedback_rules`,
the offline proposer that turns an expectation shared by failed cases ("the answer should contain
'30 days'", "`escalate_to_human` should be called") into a rule scoped to what those cases ask about.

Must never: see held-out cases (the search hands it dev cases only; nothing here reads a suite), quote
a case's text that reads like an instruction about the prompt, or decide whether a candidate is allowed
(every candidate goes through the same checks as any other proposer's).

Why: a proposer that never sees its eval results cannot learn from them. A failed assertion states
what the answer should have held, which the production evidence often does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from selfimprove.proposals.model import Candidate, Edit
from selfimprove.proposals.text import append_lines, bullet_for, looks_like_injection, quote

if TYPE_CHECKING:
    from selfimprove.analysis.records import Pattern
    from selfimprove.evals.runner import CaseResult
    from selfimprove.proposals.workspace import Workspace

_PHRASE_TYPES = {"contains", "icontains", "contains-any", "icontains-any", "contains-all", "icontains-all",
                 "starts-with"}


@dataclass(frozen=True)
class FailedCase:
    id: str
    input: str  # the last user message the case sends
    output: str  # what the agent answered
    reasons: tuple[str, ...]  # each failed assertion: "type: reason"
    # what failed positive assertions expected: ("phrase", text), ("tool", name), or ("argument",
    # "tool|arg|expected|given") when the tool was called with an argument of another shape
    expects: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "input": self.input, "output": self.output, "failed": list(self.reasons)}


def failed_cases(results: Iterable[CaseResult], side: str = "candidate") -> list[FailedCase]:
    """The cases whose last trial on `side` failed, with what their failed assertions expected."""
    out: list[FailedCase] = []
    for result in results:
        trials = getattr(result, side)
        if not trials or trials[-1].grade.passed:
            continue
        last = trials[-1]
        failed_types = {f.split(":", 1)[0] for f in last.grade.failures}
        expects: list[tuple[str, str]] = []
        for assertion in result.case.asserts:
            if assertion.type not in failed_types or assertion.type.startswith("not-"):
                continue
            value = assertion.value
            if assertion.type in _PHRASE_TYPES:
                first = value[0] if isinstance(value, list) and value else value
                if isinstance(first, str) and first.strip():
                    expects.append(("phrase", first.strip()))
            elif assertion.type == "tool-called":
                name = value.get("name") if isinstance(value, Mapping) else value
                if not isinstance(name, str) or not name.strip():
                    continue
                wanted = value.get("arguments") if isinstance(value, Mapping) else None
                made = [c for c in last.output.tool_calls if c.name == name]
                if made and isinstance(wanted, Mapping) and isinstance(made[0].arguments, Mapping):
                    for arg, want in wanted.items():
                        given = made[0].arguments.get(arg)
                        if given is not None and str(given) != str(want):
                            expects.append(("argument", f"{name}|{arg}|{want}|{given}"))
                elif not made:
                    expects.append(("tool", name.strip()))
        out.append(FailedCase(result.case.id, _last_user(result.case.messages), last.output.text,
                              tuple(last.grade.failures), tuple(expects)))
    return out


def _last_user(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def _words(pattern: Pattern) -> frozenset[str]:
    """What a pattern is about: its title, tool, error and users' words."""
    from selfimprove.analysis.patterns import salient

    evidence = pattern.evidence
    parts = [pattern.title, *(v for v in (evidence.tool, evidence.error_template) if v)]
    parts += list(evidence.user_phrases[:5])
    return salient(" ".join(parts))


def relevant(pattern: Pattern | None, cases: Sequence[FailedCase]) -> list[FailedCase]:
    """The failed cases about `pattern` (every one when there is no pattern: the suite's own search)."""
    if pattern is None:
        return list(cases)
    from selfimprove.analysis.patterns import salient

    words = _words(pattern)
    out = []
    for case in cases:
        about = salient(" ".join([case.input, *(v for _, v in case.expects)]))
        if len(about & words) >= 2 or (about & words and len(about) <= 3):
            out.append(case)
    return out


def _group_key(expect: tuple[str, str]) -> tuple[str, str]:
    """Expectations that one rule states: the same phrase or tool; for arguments, the same tool and
    argument with the same shapes of expected and given values (ids differ from case to case)."""
    kind, value = expect
    if kind != "argument":
        return expect
    from selfimprove.proposals.offline import _shape

    tool, arg, want, given = value.split("|", 3)
    return kind, f"{tool}|{arg}|{_shape(want)}|{_shape(given)}"


def _rule(kind: str, value: str, topic: str) -> str:
    if kind == "tool":
        return f"When the user asks {topic}, call `{quote(value, 60)}`."
    if kind == "argument":
        tool, arg, want, given = value.split("|", 3)
        return (f'When you call `{quote(tool, 60)}`, pass `{quote(arg, 40)}` like "{quote(want, 40)}", '
                f'not like "{quote(given, 40)}".')
    return f'When the user asks {topic}, the answer must say "{quote(value, 60)}".'


def feedback_rules(pattern: Pattern | None, ws: Workspace,
                   feedback: Sequence[FailedCase]) -> list[Candidate]:
    """One candidate per expectation that failed cases share (most shared first): a rule stating it,
    scoped to the words those cases' inputs share."""
    from selfimprove.analysis.patterns import salient

    cases = [c for c in relevant(pattern, feedback) if c.expects and not looks_like_injection(c.input)]
    groups: dict[tuple[str, str], list[tuple[FailedCase, str]]] = {}
    for case in cases:
        for expect in dict.fromkeys(case.expects):
            if not looks_like_injection(expect[1]):
                groups.setdefault(_group_key(expect), []).append((case, expect[1]))
    target = ws.rules_target()
    if not groups or target is None:
        return []
    path, section = target
    before = ws.body(path, section)
    out: list[Candidate] = []
    for (kind, _), members in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        group = [c for c, _ in members]
        sets = [salient(c.input, numbers=False) for c in group]
        counts: dict[str, int] = {}
        for words in sets:
            for w in words:
                counts[w] = counts.get(w, 0) + 1
        need = 1 if len(sets) == 1 else max(2, len(sets) // 2)
        shared = sorted(w for w, n in counts.items() if n >= need)[:4]
        topic = ("about " + ", ".join(f'"{w}"' for w in shared) if shared
                 else f'like "{quote(group[0].input, 60)}"')
        rule = _rule(kind, members[0][1], topic)
        ids = ", ".join(dict.fromkeys(c.id for c in group))
        what = {"tool": "a call of", "argument": "another argument to", "phrase": "the phrase"}[kind]
        out.append(Candidate(
            title=f"add a rule from {len(group)} failed dev case{'s' if len(group) != 1 else ''}: "
                  f"{quote(rule, 48)}",
            proposer="offline/eval-feedback",
            rationale=(f"Dev cases {ids} failed expecting {what} {quote(members[0][1].split('|')[0], 40)!r}; "
                       "a rule scoped to what those requests ask about states it."),
            edits=(Edit(path, section, None, before, append_lines(before, [bullet_for(before) + rule])),),
        ))
    return out
