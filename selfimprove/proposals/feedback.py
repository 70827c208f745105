"""Eval feedback for proposers: the dev cases a candidate failed, and a proposer that reads them.

Owns: `FailedCase` (what a proposer may learn from a failed dev case: its id, the user's input, the
agent's output, each failed assertion's reason, and what the failed positive assertions expected),
`failed_cases` (from an eval run), `relevant` (the failed cases about a pattern), and `feedback_rule`,
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
    from selfimprove.evals.runner import CaseResult
    from selfimprove.proposals.workspace import Workspace

_PHRASE_TYPES = {"contains", "icontains", "contains-any", "icontains-any", "contains-all", "icontains-all",
                 "starts-with"}
MAX_RULES = 2  # rules one feedback candidate adds


@dataclass(frozen=True)
class FailedCase:
    id: str
    input: str  # the last user message the case sends
    output: str  # what the agent answered
    reasons: tuple[str, ...]  # each failed assertion: "type: reason"
    expects: tuple[tuple[str, str], ...] = ()  # ("phrase" | "tool", value) of failed positive assertions

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
                if isinstance(name, str) and name.strip():
                    expects.append(("tool", name.strip()))
        out.append(FailedCase(result.case.id, _last_user(result.case.messages), last.output.text,
                              tuple(last.grade.failures), tuple(expects)))
    return out


def _last_user(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def _words(pattern: Mapping[str, Any]) -> frozenset[str]:
    """What a pattern is about: its title, tool, error and users' words."""
    from selfimprove.analysis.patterns import salient

    evidence = pattern.get("evidence") if isinstance(pattern.get("evidence"), Mapping) else {}
    parts = [str(pattern.get("title") or "")]
    assert isinstance(evidence, Mapping)
    for key in ("tool", "error_template", "root_cause"):
        if isinstance(evidence.get(key), str):
            parts.append(evidence[key])
    parts += [p for p in evidence.get("user_phrases") or () if isinstance(p, str)][:5]
    return salient(" ".join(parts))


def relevant(pattern: Mapping[str, Any] | None, cases: Sequence[FailedCase]) -> list[FailedCase]:
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


def feedback_rule(pattern: Mapping[str, Any] | None, ws: Workspace,
                  feedback: Sequence[FailedCase], skip: int = 0) -> Candidate | str | None:
    """A rule per expectation that failed cases share, scoped to the words their inputs share.

    `skip` passes over the most common expectations (a later round tries the next ones)."""
    from selfimprove.analysis.patterns import salient

    cases = [c for c in relevant(pattern, feedback) if c.expects and not looks_like_injection(c.input)]
    groups: dict[tuple[str, str], list[FailedCase]] = {}
    for case in cases:
        for expect in dict.fromkeys(case.expects):
            if not looks_like_injection(expect[1]):
                groups.setdefault(expect, []).append(case)
    if not groups:
        return None
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))[skip : skip + MAX_RULES]
    if not ranked:
        return None
    target = ws.rules_target()
    if target is None:
        return "the prompts declare no mutable section to add a rule to"
    path, section = target
    before = ws.body(path, section)
    rules: list[str] = []
    ids: list[str] = []
    for (kind, value), group in ranked:
        sets = [salient(c.input, numbers=False) for c in group]
        counts: dict[str, int] = {}
        for words in sets:
            for w in words:
                counts[w] = counts.get(w, 0) + 1
        need = 1 if len(sets) == 1 else max(2, len(sets) // 2)
        shared = sorted(w for w, n in counts.items() if n >= need)[:4]
        if shared:
            topic = "about " + ", ".join(f'"{w}"' for w in shared)
        else:
            topic = f'like "{quote(group[0].input, 60)}"'
        if kind == "tool":
            rules.append(f"When the user asks {topic}, call `{quote(value, 60)}`.")
        else:
            rules.append(f'When the user asks {topic}, the answer must say "{quote(value, 60)}".')
        ids += [c.id for c in group]
    after = append_lines(before, [bullet_for(before) + r for r in rules])
    expected = "; ".join(f"{k} {quote(v, 40)!r} ({len(g)} case{'s' if len(g) != 1 else ''})"
                         for (k, v), g in ranked)
    return Candidate(
        title=f"add {len(rules)} rule{'s' if len(rules) != 1 else ''} from failed dev cases",
        proposer="offline/eval-feedback",
        rationale=(f"Dev cases {', '.join(dict.fromkeys(ids))} failed expecting {expected}; a rule scoped "
                   "to what those requests ask about states it."),
        edits=(Edit(path, section, None, before, after),),
    )
