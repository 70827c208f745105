"""Assertions: an explicit registry from type name to a small check, plus the llm-rubric judge.

Owns: what each assertion type of DESIGN §6 means, `not-` negation, promptfoo's `weight` and
`threshold` scoring, the judge call for `llm-rubric`, and `python` assertions, run as promptfoo runs
them: the code in a separate Python process (`get_assert(output, context)` from a file, or inline an
expression or a function body), its answer a bool, a score, or `{pass, score, reason}`.

Must never: let a judge reply that cannot be parsed (or a judge call that failed) count as a pass, not
even under `not-llm-rubric`: an assertion that could not be decided fails closed.

Scoring (as promptfoo): each assertion scores 1 or 0 (a judge may give a fraction), weighted by
`weight` (default 1). A case with a `threshold` passes when its weighted score reaches it; without
one, every assertion of non-zero weight must pass.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
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
    latency_ms: float = 0.0  # measured when asked (a cached answer keeps the latency it was asked with)


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


def _json_values(text: str) -> list[Any]:
    """Every JSON object or array embedded in `text`, in order (promptfoo's contains-json)."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    index = 0
    while True:
        starts = [i for i in (text.find("{", index), text.find("[", index)) if i >= 0]
        if not starts:
            return found
        start = min(starts)
        try:
            doc, end = decoder.raw_decode(text, start)
        except ValueError:
            index = start + 1
            continue
        found.append(doc)
        index = end


def _contains_json(out: Output, value: Any) -> tuple[bool, str]:
    docs = _json_values(out.text)
    if not docs:
        return False, "output contains no JSON"
    if isinstance(value, Mapping):
        import jsonschema

        validator = jsonschema.Draft202012Validator(value)
        for doc in docs:
            if not any(True for _ in validator.iter_errors(doc)):
                return True, "output contains JSON matching the schema"
        first = min(validator.iter_errors(docs[0]), key=lambda e: e.json_path)
        return False, f"no JSON in the output matches the schema ({first.json_path}: {first.message})"
    return True, "output contains JSON"


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
    "contains-json": _contains_json,
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


# -- checks that read the case or the assertion's threshold ------------------------------------------

Measured = Callable[[Output, Assertion, Case], tuple[bool, float, str]]


def _levenshtein(out: Output, assertion: Assertion, case: Case) -> tuple[bool, float, str]:
    from rapidfuzz.distance import Levenshtein

    limit = assertion.threshold if assertion.threshold is not None else 5  # promptfoo's default
    distance = Levenshtein.distance(out.text, str(assertion.value))
    ok = distance <= limit
    return ok, float(ok), f"edit distance {distance} (max {limit:g})"


def _latency(out: Output, assertion: Assertion, case: Case) -> tuple[bool, float, str]:
    limit = float(assertion.threshold or 0)
    ok = out.latency_ms <= limit
    return ok, float(ok), f"answered in {out.latency_ms:.0f} ms (max {limit:g} ms)"


def _cost(out: Output, assertion: Assertion, case: Case) -> tuple[bool, float, str]:
    limit = float(assertion.threshold or 0)
    ok = out.cost_usd <= limit
    return ok, float(ok), f"cost ${out.cost_usd:.6f} (max ${limit:g})"


def _valid_tools_call(out: Output, assertion: Assertion, case: Case) -> tuple[bool, float, str]:
    """Every tool call names a declared tool and its arguments satisfy that tool's parameter schema."""
    import jsonschema

    declared = {}
    for tool in case.config.get("tools") or ():
        function = tool.get("function", tool) if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            declared[function["name"]] = function.get("parameters") or {}
    if not out.tool_calls:
        return False, 0.0, "the output has no tool calls"
    if not declared:
        return False, 0.0, "no tools are declared for this case (tools: in the suite or selfimprove.yaml)"
    for call in out.tool_calls:
        if call.name not in declared:
            return False, 0.0, f"tool {call.name!r} is not declared (declared: {', '.join(sorted(declared))})"
        arguments = _arguments(call)
        if not isinstance(arguments, Mapping):
            return False, 0.0, f"tool {call.name!r} was called with arguments that are not a JSON object"
        errors = sorted(jsonschema.Draft202012Validator(declared[call.name]).iter_errors(arguments),
                        key=lambda e: e.json_path)
        if errors:
            return False, 0.0, f"tool {call.name!r}: {errors[0].json_path}: {errors[0].message}"
    return True, 1.0, f"{len(out.tool_calls)} valid tool call(s)"


MEASURED: dict[str, Measured] = {
    "levenshtein": _levenshtein,
    "latency": _latency,
    "cost": _cost,
    "is-valid-openai-tools-call": _valid_tools_call,
}


# -- python -----------------------------------------------------------------------------------------

_PYTHON_RUNNER = r"""
import json, math, re, sys
request = json.load(sys.stdin)
code, output, context = request["code"], request["output"], request["context"]
namespace = {"__name__": "__selfimprove_assert__", "json": json, "math": math, "re": re}
try:
    if request["file"] is not None:
        exec(compile(code, request["file"], "exec"), namespace)
        result = namespace[request["function"] or "get_assert"](output, context)
    elif "\n" in code.strip():
        body = "".join("    " + line + "\n" for line in code.strip("\n").splitlines())
        exec(compile("def __check(output, context):\n" + body, "<assertion>", "exec"), namespace)
        result = namespace["__check"](output, context)
    else:
        result = eval(compile(code.strip(), "<assertion>", "eval"), {**namespace, "output": output,
                                                                   "context": context})
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
else:
    print(json.dumps({"result": result}, default=str))
"""
PYTHON_TIMEOUT = 60.0
_PYTHON_AT_ONCE = 4  # processes started together: a suite of hundreds of cases must not fork hundreds
_python_limits: dict[int, asyncio.Semaphore] = {}


def _python_limit() -> asyncio.Semaphore:
    """One limit per event loop (each eval run has its own loop)."""
    loop = asyncio.get_running_loop()
    if id(loop) not in _python_limits:
        _python_limits.clear()  # the runs before this one are over
        _python_limits[id(loop)] = asyncio.Semaphore(_PYTHON_AT_ONCE)
    return _python_limits[id(loop)]


def _python_output(out: Output) -> Any:
    """What promptfoo hands a python assertion: the text, or the tool calls when that is all there is."""
    if out.text or not out.tool_calls:
        return out.text
    return [{"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(_arguments(c), default=str)}}
            for c in out.tool_calls]


async def _python(out: Output, assertion: Assertion, case: Case,
                  messages: Sequence[Mapping[str, Any]]) -> tuple[bool, float, str]:
    prompt = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
    context = {"prompt": prompt, "vars": dict(case.vars), "config": dict(assertion.config),
               "test": {"description": case.description, "vars": dict(case.vars),
                        "metadata": dict(case.metadata)}}
    from_file = assertion.function is not None or (isinstance(assertion.value, str)
                                                   and assertion.value.startswith("file://"))
    request = json.dumps({"code": assertion.script or "", "output": _python_output(out), "context": context,
                          "file": str(assertion.value).removeprefix("file://") if from_file else None,
                          "function": assertion.function}, ensure_ascii=False, default=str)
    async with _python_limit():
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-c", _PYTHON_RUNNER, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(request.encode("utf-8")),
                                                    PYTHON_TIMEOUT)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            return False, 0.0, f"python assertion timed out after {PYTHON_TIMEOUT:g}s"
        except BaseException:
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
    try:
        answer = json.loads(stdout.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        last = stderr.decode("utf-8", "replace").strip().splitlines()
        return False, 0.0, f"python assertion failed: {last[-1] if last else 'no answer'}"
    if "error" in answer:
        return False, 0.0, f"python assertion raised {answer['error']}"
    return _python_result(answer["result"], assertion.threshold)


def _python_result(result: Any, threshold: float | None) -> tuple[bool, float, str]:
    """promptfoo's reading: a bool passes or not; a number is a score (passing at the threshold, or
    above 0 without one); a mapping gives pass, score and reason."""
    if isinstance(result, bool):
        return result, float(result), f"python returned {result}"
    if isinstance(result, (int, float)):
        ok = result >= threshold if threshold is not None else result > 0
        return ok, float(result), f"python scored {result:g}"
    if isinstance(result, Mapping) and "pass" in result:
        ok = bool(result["pass"])
        score = result.get("score", 1.0 if ok else 0.0)
        reason = str(result.get("reason") or f"python returned pass={ok}")
        return ok, float(score) if isinstance(score, (int, float)) else float(ok), reason
    shown = _short(json.dumps(result, default=str))
    return False, 0.0, f"python returned {shown}, not a bool, a score or a result"


# -- grading ----------------------------------------------------------------------------------------

async def grade(case: Case, output: Output, messages: Sequence[Mapping[str, Any]],
                judge: Judge | None) -> Grade:
    """Every assertion of `case` on `output`, then the case's verdict (weight/threshold as promptfoo)."""
    checks: list[Check] = []
    textual = output
    promptfoo_style = case.template is not None or case.template_file is not None
    if promptfoo_style and not output.text and output.tool_calls:
        # promptfoo's output for a reply made only of tool calls is those calls as JSON: its configs
        # grade them with is-json, equals, contains and the like
        textual = replace(output, text=json.dumps(_python_output(output), ensure_ascii=False))
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
        elif assertion.base_type == "python":
            passed, score, reason = await _python(output, assertion, case, messages)
        elif assertion.base_type in MEASURED:
            passed, score, reason = MEASURED[assertion.base_type](textual, assertion, case)
        else:
            passed, reason = REGISTRY[assertion.base_type](textual, assertion.value)
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
