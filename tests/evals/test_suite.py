from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfimprove.errors import SelfImproveError
from selfimprove.evals.suite import fill, load_suite, parse_suite_file, render_messages

DATA = Path(__file__).resolve().parents[1] / "data" / "evals"


def error_of(text: str, path: str = "evals/s.yaml") -> str:
    with pytest.raises(SelfImproveError) as info:
        parse_suite_file(text, path, default_prompt="prompts/a.md")
    return info.value.one_line()


def test_a_yaml_suite_with_default_test_merged():
    cases = parse_suite_file("""\
prompt: prompts/agent.md
config: {temperature: 0}
defaultTest:
  vars: {tier: silver, shop: Acme}
  assert:
    - {type: not-icontains, value: "internal note"}
tests:
  - description: refund outside window
    vars: {tier: gold}
    input: "Can I return shoes bought 45 days ago, {{tier}} member?"
    tags: [refunds]
    assert:
      - {type: icontains, value: "30 days", weight: 2}
    threshold: 0.5
  - id: by-messages
    messages:
      - {role: user, content: hi}
      - role: assistant
        content: ""
        tool_calls: [{id: c1, type: function, function: {name: f, arguments: "{}"}}]
      - {role: tool, tool_call_id: c1, content: "ok"}
    config: {max_tokens: 50}
""", "evals/support.yaml", default_prompt="prompts/other.md")
    first, second = cases
    assert first.id == "evals/support.yaml:8"
    assert first.where == "evals/support.yaml:8"
    assert first.prompt == "prompts/agent.md"
    assert first.vars == {"tier": "gold", "shop": "Acme"}
    question = "Can I return shoes bought 45 days ago, {{tier}} member?"
    assert first.messages == ({"role": "user", "content": question},)
    assert [a.type for a in first.asserts] == ["not-icontains", "icontains"]
    assert first.asserts[1].weight == 2.0
    assert first.threshold == 0.5 and first.tags == ("refunds",)
    assert first.config == {"temperature": 0}
    assert second.id == "by-messages" and len(second.messages) == 3
    assert second.config == {"temperature": 0, "max_tokens": 50}
    assert render_messages(first, "Hi {{shop}} agent, tier {{tier}}.") == [
        {"role": "system", "content": "Hi Acme agent, tier gold."},
        {"role": "user", "content": "Can I return shoes bought 45 days ago, gold member?"},
    ]


def test_jsonl_one_case_a_line():
    text = (json.dumps({"input": "a", "assert": [{"type": "contains", "value": "x"}]}) + "\n\n"
            + json.dumps({"id": "two", "input": "b", "tags": ["t"], "assert": [{"type": "is-json"}]}) + "\n")
    cases = parse_suite_file(text, "evals/cases.jsonl", default_prompt="prompts/a.md")
    assert [c.id for c in cases] == ["evals/cases.jsonl:1", "two"]
    assert cases[0].prompt == "prompts/a.md"
    bad = json.dumps({"input": "a", "assert": [{"type": "containz", "value": "x"}]})
    assert error_of("\n" + bad + "\n", "evals/cases.jsonl") == (
        "evals/cases.jsonl:2: $.assert[0].type: unknown assertion type 'containz' (did you mean 'contains'?) "
        "(hint: see 'Eval suites' in the README)")
    assert error_of("{nope\n", "evals/cases.jsonl").startswith("evals/cases.jsonl:1: invalid JSON: ")


@pytest.mark.parametrize(("text", "expected"), [
    ("tests:\n  - input: hi\n    assert:\n      - {type: contans, value: x}\n",
     "evals/s.yaml:4: $.tests[0].assert[0].type: unknown assertion type 'contans' "
     "(did you mean 'contains'?)"),
    ("tests:\n  - input: hi\n    assert:\n      - {type: not-icontans, value: x}\n",
     "evals/s.yaml:4: $.tests[0].assert[0].type: unknown assertion type 'not-icontans' "
     "(did you mean 'not-icontains'?)"),
    ("tests:\n  - input: hi\n    assert:\n      - {type: sentiment, value: x}\n",
     "evals/s.yaml:4: $.tests[0].assert[0].type: unknown assertion type 'sentiment' (hint: "),
    ("tests:\n  - input: hi\n    asert: []\n",
     "evals/s.yaml:3: $.tests[0]: unknown key 'asert' (did you mean 'assert'?)"),
    ("tests:\n  - input: hi\n    assert:\n      - {type: contains-any, value: x}\n",
     "evals/s.yaml:4: $.tests[0].assert[0].value: expected array, got str"),
    ("tests:\n  - input: hi\n    assert:\n      - {type: icontains}\n",
     "evals/s.yaml:4: $.tests[0].assert[0]: 'value' is required"),
    ("tests:\n  - input: hi\n    messages: [{role: user, content: x}]\n    assert: [{type: is-json}]\n",
     "evals/s.yaml:2: $.tests[0]: a case has either input or messages, not both"),
    ("prompt: /etc/passwd\ntests: []\n",
     "evals/s.yaml:1: $.prompt: '/etc/passwd' must be a path relative to the repo root, inside it"),
    ("tests:\n  - input: hi\n", "evals/s.yaml:2: $.tests[0]: the case has no assertions"),
    ("tests:\n  - input: hi\n    assert: [{type: regex, value: '(unclosed'}]\n",
     "evals/s.yaml:3: $.tests[0].assert[0]: invalid regex '(unclosed'"),
    ("tests:\n  - input: hi\n    assert: [{type: is-json, value: {type: 12}}]\n",
     "evals/s.yaml:3: $.tests[0].assert[0]: is-json value is not a valid JSON Schema"),
    ("tests:\n  - input: hi\n    assert: [{type: tool-called, value: {arguments: {}}}]\n",
     "evals/s.yaml:3: $.tests[0].assert[0].value: tool-called takes a tool name or {name, arguments}"),
    ("tests: [\n", "evals/s.yaml:2: invalid YAML"),
    ("", "evals/s.yaml: empty suite file"),
])
def test_validation_errors_name_file_line_and_json_path(text, expected):
    assert error_of(text).startswith(expected)


def test_duplicate_ids_and_missing_prompt():
    text = (b"tests:\n  - {id: a, input: x, assert: [{type: is-json}]}\n"
            b"  - {id: a, input: y, assert: [{type: is-json}]}\n")
    with pytest.raises(SelfImproveError) as info:
        load_suite({"evals/s.yaml": text}, default_prompt="p.md")
    assert info.value.one_line().startswith("evals/s.yaml:3: duplicate case id 'a' (first at evals/s.yaml:2)")
    with pytest.raises(SelfImproveError, match="no prompt for this case"):
        load_suite({"evals/s.yaml": b"tests:\n  - {input: x, assert: [{type: is-json}]}\n"},
                   default_prompt=None)
    with pytest.raises(SelfImproveError, match="the eval suite has no cases"):
        load_suite({"evals/s.yaml": b"tests: []\n"}, default_prompt="p.md")


def test_cases_exported_by_analyze_load_unchanged():
    files = {"evals/exported.yaml": (DATA / "exported_cases.yaml").read_bytes()}
    suite = load_suite(files, default_prompt="prompts/agent.md")
    assert len(suite.cases) == 3
    kinds = [[a.type for a in c.asserts] for c in suite.cases]
    assert kinds == [["not-tool-called"], ["llm-rubric"], ["not-icontains"]]
    first = suite.cases[0]
    assert first.prompt == "prompts/agent.md"
    assert first.tags == ("tool_error", "p1")
    assert first.messages[1]["tool_calls"][0]["function"]["name"] == "lookup_order"
    assert suite.tags == ("escalation", "p1", "p2", "p3", "refusal", "tool_error", "user_correction")


def test_fill_leaves_unknown_placeholders_and_serialises_values():
    assert fill("{{ a }} {{b.c}} {{missing}} {{n}}", {"a": "x", "b": {"c": "y"}, "n": [1, 2]}) == (
        "x y {{missing}} [1, 2]")


def test_a_case_without_a_conversation_sends_the_prompt_as_the_user_turn():
    only_vars, = parse_suite_file("prompt: prompts/q.md\ntests:\n  - vars: {city: Paris}\n"
                                  "    assert: [{type: icontains, value: France}]\n",
                                  "evals/s.yaml", default_prompt=None)
    assert render_messages(only_vars, "Which country is {{city}} in?") == [
        {"role": "user", "content": "Which country is Paris in?"}]
