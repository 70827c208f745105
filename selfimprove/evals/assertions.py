"""Assertions: an explicit registry from type name to a small check, plus the llm-rubric judge.

Owns: what each assertion type of DESIGN §6 means, `not-` negation, promptfoo's `weight` and
`threshold` scoring, and the judge call for `llm-rubric`.

Must never: let a judge reply that cannot be parsed (or a judge call that failed) count as a pass, not
even under `not-llm-rubric`: an assertion that could not be decided fails closed.

Scoring (as promptfoo): each assertion scores 1 or 0 (a judge may give a fraction), weighted by
`weight` (default 1). A case with a `threshold` passes when its weighted score reaches it; without
one, every assertion of non-zero weight must pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from selfimprove.evals.suite import Assertion, Case
from selfimprove.traces.model import ToolCall


@dataclass(frozen=True)
class Output:
    """What a provider answered for one case."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class Check:
    type: str
    passed: bool
    score: float
    reason: str
    weight: float = 1.0


@dataclass(frozen=True)
class Grade:
    passed: bool
    score: float
    checks: tuple[Check, ...]

    @property
    def failures(self) -> list[str]:
        return [f"{c.type}: {c.reason}" for c in self.checks if not c.passed and c.weight > 0]


CheckFn = Callable[[Output, Any], tuple[bool, str]]


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _equals(out: Output, value: Any) -> tuple[bool, str]:
    expected = value if isinstance(value, str) else json.dumps(value)
    ok = out.text.strip() == expected.strip()
    return ok, f"output {'equals' if ok else 'does not equal'} {_short(expected)!r}"


def _contains(out: Output, value: Any) -> tuple[bool, str]:
    ok = str(value) in out.text
    return ok, f"output {'contains' if ok else 'does not contain'} {str(value)!r}"


def _icontains(out: Output, value: Any) -> tuple[bool, str]:
    ok = str(value).lower() in out.text.lower()
    return ok, f"output {'contains' if ok else 'does not contain'} {str(value)!r} (any case)"


def _any(fold: bool) -> CheckFn:
    def check(out: Output, value: Any) -> tuple[bool, str]:
        text = out.text.lower() if fold else out.text
        found = [v for v in value if (v.lower() if fold else v) in text]
        if found:
            return True, f"output contains {found[0]!r}"
        return False, f"output contains none of {list(value)!r}"

    return check


def _all(fold: bool) -> CheckFn:
    def check(out: Output, value: Any) -> tuple[bool, str]:
        text = out.text.lower() if fold else out.text
        missing = [v for v in value if (v.lower() if fold else v) not in text]
        if missing:
            return False, f"output lacks {missing!r}"
        return True, f"output contains all of {list(value)!r}"

    return check


def _starts_with(out: Output, value: Any) -> tuple[bool, str]:
    ok = out.text.lstrip().startswith(str(value))
    return ok, f"output {'starts' if ok else 'does not start'} with {str(value)!r}"


def _regex(out: Output, value: Any) -> tuple[bool, str]:
    ok = re.search(str(value), out.text) is not None
    return ok, f"output {'matches' if ok else 'does not match'} /{value}/"


_FENCED = re.compile(r"^```[A-Za-z]*\s*\n(.*)\n```$", re.S)


def _is_json(out: Output, value: Any) -> tuple[bool, str]:
    text = out.text.strip()
    fenced = _FENCED.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return False, f"output is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if isinstance(value, Mapping):
        import jsonschema

        errors = sorted(jsonschema.Draft202012Validator(value).iter_errors(doc), key=lambda e: e.json_path)
        if errors:
            return False, f"output JSON does not match the schema: {errors[0].json_path}: {errors[0].message}"
        return True, "output is JSON matching the schema"
    return True, "output is JSON"


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(k in actual and _subset(v, actual[k])
                                                   for k, v in expected.items())
    return bool(expected == actual)


def _arguments(call: ToolCall) -> Any:
    if isinstance(call.arguments, str):
        try:
            return json.loads(call.arguments)
        except ValueError:
            return call.arguments
    return call.arguments


def _tool_called(out: Output, value: Any) -> tuple[bool, str]:
    name = value if isinstance(value, str) else value["name"]
    arguments = None if isinstance(value, str) else value.get("arguments")
    called = [c for c in out.tool_calls if c.name == name]
    if not called:
        made = ", ".join(c.name for c in out.tool_calls) or "none"
        return False, f"tool {name!r} was not called (calls: {made})"
    if arguments is None:
        return True, f"tool {name!r} was called"
    if any(_subset(arguments, _arguments(c)) for c in called):
        return True, f"tool {name!r} was called with {json.dumps(arguments, sort_keys=True)}"
    got = json.dumps(_arguments(called[0]), sort_keys=True, default=str)
    return False, f"tool {name!r} was called with {_short(got)}, not {json.dumps(arguments, sort_keys=True)}"


def _max_length(out: Output, value: Any) -> tuple[bool, str]:
    ok = len(out.text) <= int(value)
    return ok, f"output has {len(out.text)} characters (max {int(value)})"


REGISTRY: dict[str, CheckFn] = {
    "equals": _equals,
    "contains": _contains,
    "icontains": _icontains,
    "contains-any": _any(False),
    "contains-all": _all(False),
    "icontains-any": _any(True),
    "icontains-all": _all(True),
    "starts-with": _starts_with,
    "regex": _regex,
    "is-json": _is_json,
    "tool-called": _tool_called,
    "max-length": _max_length,
}
JUDGED = frozenset({"llm-rubric"})


# -- llm-rubric -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """A judge's answer; `passed is None` when it could not be decided (fails closed)."""

    passed: bool | None
    score: float
    reason: str


Judge = Callable[[Assertion, Output, Sequence[Mapping[str, Any]]], Awaitable[Verdict]]

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "pass": {"type": "boolean"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string"},
    },
    "required": ["pass", "reason"],
}

JUDGE_SYSTEM = (
    "You grade one reply of an AI assistant against a rubric. Judge only what the rubric asks. "
    'Answer with only a JSON object: {"pass": true or false, "score": a number from 0 to 1, '
    '"reason": "one sentence"}.'
)


def judge_messages(rubric: str, output: Output,
                   messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    last_user = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
    reply = output.text
    if output.tool_calls:
        calls = "; ".join(f"{c.name}({json.dumps(_arguments(c), sort_keys=True, default=str)})"
                          for c in output.tool_calls)
        reply = f"{reply}\n[tool calls: {calls}]"
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": f"Rubric:\n{rubric}\n\nThe user's last message:\n{last_user}\n\n"
                                    f"The reply to grade:\n<reply>\n{reply}\n</reply>"},
    ]


def parse_verdict(doc: Any) -> Verdict:
    passed = bool(doc["pass"])
    score = float(doc.get("score", 1.0 if passed else 0.0))
    return Verdict(passed, score, str(doc.get("reason", "")))


# -- grading ----------------------------------------------------------------------------------------

async def grade(case: Case, output: Output, messages: Sequence[Mapping[str, Any]],
                judge: Judge | None) -> Grade:
    """Every assertion of `case` on `output`, then the case's verdict (weight/threshold as promptfoo)."""
    checks: list[Check] = []
    for assertion in case.asserts:
        if assertion.base_type in JUDGED:
            if judge is None:
                verdict = Verdict(None, 0.0, "no judge model configured")
            else:
                verdict = await judge(assertion, output, messages)
            if verdict.passed is None:  # undecided: fails closed, negated or not
                checks.append(Check(assertion.type, False, 0.0, f"judge failed: {verdict.reason}",
                                    assertion.weight))
                continue
            passed = verdict.passed if assertion.threshold is None else verdict.score >= assertion.threshold
            score = verdict.score
            reason = f"judge: {verdict.reason}"
        else:
            passed, reason = REGISTRY[assertion.base_type](output, assertion.value)
            score = 1.0 if passed else 0.0
        if assertion.negated:
            passed, score = not passed, 1.0 - score
        checks.append(Check(assertion.type, passed, score, reason, assertion.weight))
    total = sum(c.weight for c in checks)
    if total > 0:
        score = sum(c.weight * c.score for c in checks) / total
    else:
        score = float(all(c.passed for c in checks))
    if case.threshold is not None:
        ok = score >= case.threshold
    else:
        ok = all(c.passed for c in checks if c.weight > 0)
    return Grade(ok, score, tuple(checks))
