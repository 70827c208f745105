from __future__ import annotations

import asyncio

import pytest

from selfimprove.evals.assertions import REGISTRY, Output, Verdict, grade
from selfimprove.evals.suite import Assertion, Case
from selfimprove.traces.model import ToolCall

OUT = Output(
    text='Sure! Your refund window is 30 days. {"x": 1}',
    tool_calls=(ToolCall("lookup_order", {"order_id": "A1", "verbose": True, "opts": {"a": 1, "b": 2}}),),
)


def run(case: Case, output: Output = OUT, judge=None):
    return asyncio.run(grade(case, output, [{"role": "user", "content": "refund?"}], judge))


def case(*asserts: Assertion, threshold: float | None = None) -> Case:
    return Case(id="c", where="s.yaml:1", prompt="p.md", asserts=asserts, threshold=threshold)


@pytest.mark.parametrize(("kind", "value", "text", "expected"), [
    ("equals", "hello", "  hello\n", True),
    ("equals", "hello", "hello there", False),
    ("equals", 42, "42", True),
    ("contains", "30 days", OUT.text, True),
    ("contains", "30 Days", OUT.text, False),
    ("icontains", "30 DAYS", OUT.text, True),
    ("icontains", "60 days", OUT.text, False),
    ("contains-any", ["nope", "refund"], OUT.text, True),
    ("contains-any", ["nope", "Refund"], OUT.text, False),
    ("contains-all", ["Sure", "refund"], OUT.text, True),
    ("contains-all", ["Sure", "nope"], OUT.text, False),
    ("icontains-any", ["NOPE", "REFUND"], OUT.text, True),
    ("icontains-all", ["SURE", "REFUND"], OUT.text, True),
    ("starts-with", "Sure", OUT.text, True),
    ("starts-with", "Your", OUT.text, False),
    ("regex", r"\b\d+ days\b", OUT.text, True),
    ("regex", r"^\d", OUT.text, False),
    ("is-json", None, '{"a": [1, 2]}', True),
    ("is-json", None, '```json\n{"a": 1}\n```', True),
    ("is-json", None, "{'a': 1}", False),
    ("is-json", {"type": "object", "required": ["a"]}, '{"a": 1}', True),
    ("is-json", {"type": "object", "required": ["a"]}, '{"b": 1}', False),
    ("max-length", 5, "12345", True),
    ("max-length", 5, "123456", False),
])
def test_text_assertions_and_their_negation(kind, value, text, expected):
    output = Output(text=text)
    assert run(case(Assertion(kind, value)), output).passed is expected
    assert run(case(Assertion(f"not-{kind}", value)), output).passed is (not expected)


@pytest.mark.parametrize(("value", "expected"), [
    ("lookup_order", True),
    ("cancel_order", False),
    ({"name": "lookup_order"}, True),
    ({"name": "lookup_order", "arguments": {"order_id": "A1"}}, True),
    ({"name": "lookup_order", "arguments": {"opts": {"b": 2}}}, True),
    ({"name": "lookup_order", "arguments": {"order_id": "B2"}}, False),
    ({"name": "lookup_order", "arguments": {"missing": 1}}, False),
])
def test_tool_called_with_an_argument_subset(value, expected):
    assert run(case(Assertion("tool-called", value))).passed is expected
    assert run(case(Assertion("not-tool-called", value))).passed is (not expected)


def test_tool_called_parses_string_arguments():
    output = Output(text="", tool_calls=(ToolCall("f", '{"a": 1, "b": 2}'),))
    assert run(case(Assertion("tool-called", {"name": "f", "arguments": {"a": 1}})), output).passed


def test_reasons_are_specific():
    result = run(case(Assertion("icontains", "60 days"), Assertion("tool-called", "cancel_order"),
                      Assertion("max-length", 10)))
    assert result.failures == [
        "icontains: output does not contain '60 days' (any case)",
        "tool-called: tool 'cancel_order' was not called (calls: lookup_order)",
        f"max-length: output has {len(OUT.text)} characters (max 10)",
    ]


def test_every_registered_type_is_in_the_schema():
    import json
    from importlib import resources

    schema = json.loads(resources.files("selfimprove.schemas").joinpath("suite.schema.json").read_text())
    pattern = schema["$defs"]["assertion"]["properties"]["type"]["pattern"]
    for name in [*REGISTRY, "llm-rubric"]:
        assert name in pattern


def test_weights_and_threshold_as_in_promptfoo():
    two = (Assertion("contains", "30 days", weight=3), Assertion("contains", "nope", weight=1))
    assert run(case(*two)).passed is False  # without a threshold every weighted assertion must pass
    assert run(case(*two)).score == 0.75
    assert run(case(*two, threshold=0.7)).passed is True
    assert run(case(*two, threshold=0.8)).passed is False
    zero = (Assertion("contains", "30 days"), Assertion("contains", "nope", weight=0))
    assert run(case(*zero)).passed is True  # a weight-0 assertion is informational


# -- llm-rubric -------------------------------------------------------------------------------------

def judge_returning(verdict: Verdict):
    seen = []

    async def judge(assertion, output, messages):
        seen.append((assertion.value, output.text, messages))
        return verdict

    judge.seen = seen  # type: ignore[attr-defined]
    return judge


def test_llm_rubric_pass_fail_and_negation():
    yes, no = judge_returning(Verdict(True, 0.9, "polite")), judge_returning(Verdict(False, 0.1, "rude"))
    rubric = Assertion("llm-rubric", "is polite")
    assert run(case(rubric), judge=yes).passed is True
    assert run(case(rubric), judge=no).passed is False
    assert run(case(Assertion("not-llm-rubric", "is polite")), judge=no).passed is True
    assert yes.seen[0][0] == "is polite" and yes.seen[0][1] == OUT.text
    # a threshold on the assertion uses the judge's score
    assert run(case(Assertion("llm-rubric", "x", threshold=0.95)), judge=yes).passed is False


def test_llm_rubric_fails_closed_when_undecided():
    undecided = judge_returning(Verdict(None, 0.0, "unparsable judge reply (not JSON)"))
    for kind in ("llm-rubric", "not-llm-rubric"):
        result = run(case(Assertion(kind, "is polite")), judge=undecided)
        assert result.passed is False
        assert result.failures == [f"{kind}: judge failed: unparsable judge reply (not JSON)"]
    assert run(case(Assertion("not-llm-rubric", "x")), judge=None).passed is False


# -- the assertions promptfoo configs bring --------------------------------------------------------

def checked(assertion: Assertion, output: Output = OUT, **fields) -> tuple[bool, float, str]:
    graded = run(Case(id="c", where="s.yaml:1", prompt="p.md", asserts=(assertion,), **fields), output)
    only = graded.checks[0]
    return only.passed, only.score, only.reason


@pytest.mark.parametrize(("code", "expected"), [
    ("'refund' in output", (True, 1.0, "python returned True")),
    ("len(output) > 1000", (False, 0.0, "python returned False")),
    ("0.25", (True, 0.25, "python scored 0.25")),  # a score passes above 0 without a threshold
    ("0", (False, 0.0, "python scored 0")),
    ("context['vars']['tier'] == 'gold' and context['prompt'] == 'refund?'",
     (True, 1.0, "python returned True")),
    ("if 'refund' in output:\n    return {'pass': True, 'score': 0.5, 'reason': 'mentions refunds'}\n"
     "return False\n", (True, 0.5, "mentions refunds")),
    ("json.loads(output[output.index('{'):])['x'] == 1", (True, 1.0, "python returned True")),
    ("1 / 0", (False, 0.0, "python assertion raised ZeroDivisionError: division by zero")),
    ("'text'", (False, 0.0, "python returned \"text\", not a bool, a score or a result")),
])
def test_python_assertions_run_as_promptfoo_runs_them(code, expected):
    assert checked(Assertion("python", code, script=code), vars={"tier": "gold"}) == expected


def test_a_python_file_assertion_calls_get_assert_or_the_named_function():
    source = "def get_assert(output, context):\n    return len(output)\n\ndef short(output, context):\n" \
             "    return {'pass': len(output) < 10, 'reason': 'length %d' % len(output)}\n"
    assert checked(Assertion("python", "file://checks.py", script=source, threshold=10)) == (
        True, float(len(OUT.text)), f"python scored {len(OUT.text)}")
    assert checked(Assertion("python", "file://checks.py:short", script=source, function="short")) == (
        False, 0.0, f"length {len(OUT.text)}")


def test_a_python_assertion_sees_tool_calls_when_there_is_no_text():
    calls_only = Output("", (ToolCall("lookup_order", {"order_id": "1"}, "c1"),))
    code = "output[0]['function']['name'] == 'lookup_order'"
    assert checked(Assertion("python", code, script=code), calls_only)[0]


@pytest.mark.parametrize(("assertion", "output", "expected"), [
    (Assertion("levenshtein", "hello world"), Output("helo world"), (True, 1.0, "edit distance 1 (max 5)")),
    (Assertion("levenshtein", "hello", threshold=0), Output("hallo"),
     (False, 0.0, "edit distance 1 (max 0)")),
    (Assertion("latency", threshold=500), Output("x", latency_ms=120.4),
     (True, 1.0, "answered in 120 ms (max 500 ms)")),
    (Assertion("latency", threshold=100), Output("x", latency_ms=120.4),
     (False, 0.0, "answered in 120 ms (max 100 ms)")),
    (Assertion("cost", threshold=0.01), Output("x", cost_usd=0.002),
     (True, 1.0, "cost $0.002000 (max $0.01)")),
    (Assertion("cost", threshold=0.001), Output("x", cost_usd=0.002),
     (False, 0.0, "cost $0.002000 (max $0.001)")),
    (Assertion("contains-json"), Output('The answer: {"a": [1, 2]} and more'),
     (True, 1.0, "output contains JSON")),
    (Assertion("contains-json"), Output("no {json here"), (False, 0.0, "output contains no JSON")),
    (Assertion("contains-json", {"type": "object", "required": ["b"]}), Output('x {"a": 1} y {"b": 2}'),
     (True, 1.0, "output contains JSON matching the schema")),
    (Assertion("contains-json", {"type": "object", "required": ["b"]}), Output('x {"a": 1}'),
     (False, 0.0, "no JSON in the output matches the schema ($: 'b' is a required property)")),
])
def test_measured_and_json_assertions(assertion, output, expected):
    assert checked(assertion, output) == expected


TOOLS = [{"type": "function", "function": {"name": "lookup_order", "parameters": {
    "type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}]


@pytest.mark.parametrize(("calls", "tools", "expected"), [
    ((ToolCall("lookup_order", '{"order_id": "1"}'),), TOOLS, (True, "1 valid tool call(s)")),
    ((ToolCall("lookup_order", {"id": 1}),), TOOLS,
     (False, "tool 'lookup_order': $: 'order_id' is a required property")),
    ((ToolCall("refund", {}),), TOOLS, (False, "tool 'refund' is not declared (declared: lookup_order)")),
    ((), TOOLS, (False, "the output has no tool calls")),
    ((ToolCall("lookup_order", {"order_id": "1"}),), [],
     (False, "no tools are declared for this case (tools: in the suite or selfimprove.yaml)")),
])
def test_is_valid_openai_tools_call_checks_calls_against_the_declared_tools(calls, tools, expected):
    passed, _, reason = checked(Assertion("is-valid-openai-tools-call"), Output("", calls),
                                config={"tools": tools})
    assert (passed, reason) == expected
