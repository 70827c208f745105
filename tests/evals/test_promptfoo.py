"""promptfoo configs as eval suites, read unchanged from tests/data/evals/promptfoo/; tools, multi-turn
conversations and vars reaching providers (the stub OpenAI server, and exec: harnesses)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from selfimprove.errors import SelfImproveError
from selfimprove.evals.promptfoo import litellm_model
from selfimprove.evals.runner import run_eval
from selfimprove.llm import LiteLLMCompleter
from tests.evals.helpers import PROMPT, REFUND_RULE, EvalRepo, git, with_rule
from tests.stub_openai import Reply, last_user

DATA = Path(__file__).resolve().parents[1] / "data" / "evals" / "promptfoo"


def add_config(eval_repo: EvalRepo, name: str) -> str:
    """Commit tests/data/evals/promptfoo/<name>/ as pf/<name>/ on main; returns the config's path."""
    shutil.copytree(DATA / name, eval_repo.root / "pf" / name)
    git(eval_repo.root, "add", "-A")
    git(eval_repo.root, "commit", "-q", "-m", f"add the {name} promptfoo config")
    return f"pf/{name}/promptfooconfig.yaml"


def evaluate(eval_repo: EvalRepo, candidate: str, **kwargs: Any) -> Any:
    kwargs.setdefault("completer", LiteLLMCompleter(timeout=10, retries=2, backoff=0.02))
    kwargs.setdefault("allow_no_effect", True)  # these candidates test how a suite runs, not a fix
    with eval_repo.open() as repo:
        return run_eval(eval_repo.settings(), repo, candidate=candidate, base=None, **kwargs)


def unrelated_change(eval_repo: EvalRepo) -> str:
    return eval_repo.branch("candidate", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})


@pytest.mark.parametrize(("promptfoo", "litellm"), [
    ("openai:gpt-4.1", "openai/gpt-4.1"),
    ("openai:chat:gpt-4.1-mini", "openai/gpt-4.1-mini"),
    ("openai:responses:o4-mini", "openai/o4-mini"),
    ("anthropic:messages:claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"),
    ("anthropic:claude-3-haiku", "anthropic/claude-3-haiku"),
    ("azure:chat:my-deployment", "azure/my-deployment"),
    ("bedrock:anthropic.claude-3-haiku-20240307-v1:0", "bedrock/anthropic.claude-3-haiku-20240307-v1:0"),
    ("vertex:gemini-1.5-pro", "vertex_ai/gemini-1.5-pro"),
    ("google:gemini-2.0-flash", "gemini/gemini-2.0-flash"),
    ("ollama:chat:llama3.1:8b", "ollama_chat/llama3.1:8b"),
    ("mistral:mistral-large-latest", "mistral/mistral-large-latest"),
    ("groq:llama-3.1-8b-instant", "groq/llama-3.1-8b-instant"),
    ("openrouter:meta-llama/llama-3-70b", "openrouter/meta-llama/llama-3-70b"),
    ("litellm:openai/gpt-4o", "openai/gpt-4o"),
    ("openai/gpt-4o", "openai/gpt-4o"),
    ("exec:python agent.py", "exec:python agent.py"),
    ("openai:embedding:text-embedding-3", None),
    ("file://provider.js", None),
    ("python:provider.py", None),
    ("https://example.com/api", None),
    ("echo", None),
])
def test_promptfoo_provider_ids_map_to_litellm(promptfoo, litellm):
    assert litellm_model(promptfoo) == litellm


def translator(body: dict[str, Any]) -> str:
    text = last_user(body)
    for language, answer in (("French", "Bonjour le monde"), ("Spanish", "Hola mundo"),
                             ("FRENCH", "Bonjour le monde"), ("SPANISH", "Hola mundo"),
                             ("German", "Guten Morgen"), ("GERMAN", "Guten Morgen!")):
        if language in text:
            return answer
    return "?"


def test_a_promptfoo_config_runs_every_prompt_provider_and_var_combination(eval_repo, stub_openai):
    stub_openai.reply = translator
    suite = add_config(eval_repo, "translate")
    unrelated_change(eval_repo)
    result = evaluate(eval_repo, "candidate", suite_path=str(eval_repo.root / suite))
    doc = result.to_json()
    # 3 tests (the first expands into French and Spanish) × 2 prompts × 2 providers
    assert doc["cases"] == 12 and doc["verdict"] == "pass", doc["reasons"]
    assert doc["model"] == "openai/stub-large, openai/stub-small"
    ids = [r.case.id for r in result.cases]
    where = f"{suite}:26"
    assert ids[:4] == [f"{where} {{language=French}} (prompt 1) @openai/stub-small",
                       f"{where} {{language=French}} (prompt 1) @large",
                       f"{where} {{language=French}} (prompt 2) @openai/stub-small",
                       f"{where} {{language=French}} (prompt 2) @large"]
    # one slice per provider; the base and the candidate send the same requests, asked once
    assert sorted(doc["slices"]) == ["provider:large", "provider:openai/stub-small"]
    assert doc["slices"]["provider:large"]["cases"] == 6
    assert doc["calls"] == {"made": 12, "cached": 12}
    sent = {(r["model"], r["messages"][0]["content"]): r for r in stub_openai.requests}
    assert all(len(r["messages"]) == 1 and r["messages"][0]["role"] == "user" for r in stub_openai.requests)
    assert ("stub-small", 'Translate the following text to Spanish: "Hello world"') in sent
    german_prompt = "You are a translator. Reply with the GERMAN translation only.\nText: Good morning"
    large = sent[("stub-large", german_prompt)]
    assert large["temperature"] == 0 and large["max_tokens"] == 128
    assert "temperature" not in sent[("stub-small", 'Translate the following text to German: "Good morning"')]
    # '{{expected}}' in an assertion is filled from the vars; levenshtein allows 2 edits (the "!")
    german = next(r for r in result.cases if r.case.id == f"{suite}:33 (prompt 2) @large")
    assert german.base[0].grade.passed
    assert [c.reason for c in german.base[0].grade.checks][1:] == [
        "output contains 'Guten Morgen' (any case)", "edit distance 1 (max 2)"]


def test_model_overrides_the_providers_of_a_promptfoo_config(eval_repo, stub_openai):
    stub_openai.reply = translator
    suite = add_config(eval_repo, "translate")
    unrelated_change(eval_repo)
    result = evaluate(eval_repo, "candidate", suite_path=str(eval_repo.root / suite), model="openai/other")
    assert result.to_json()["cases"] == 6 and result.model == "openai/other"
    assert {r["model"] for r in stub_openai.requests} == {"other"}


def support_agent(body: dict[str, Any]) -> str:
    text = "\n".join(str(m.get("content")) for m in body["messages"])
    if "as JSON" in text:
        return 'Here it is: {"order": "48213", "status": "shipped"}'
    if "30 days" in text:
        return "Acme Outfitters: returns are accepted within 30 days of delivery."
    return "Acme Outfitters: let me check."


def test_chat_prompt_files_managed_prompts_file_vars_and_python_assertions(eval_repo, stub_openai):
    stub_openai.reply = support_agent
    suite = add_config(eval_repo, "support")
    managed = "pf/support/prompts/support.md"
    text = (eval_repo.root / managed).read_text()
    rule = "- Be brief.\n- Returns: 30 days.\n"
    eval_repo.branch("quote-window", {managed: text.replace("- Be brief.\n", rule)})
    result = evaluate(eval_repo, "quote-window", suite_path=suite)
    doc = result.to_json()
    assert doc["verdict"] == "pass", doc["reasons"]
    # the managed prompt differs between the sides: its refund case is fixed; the chat prompt's is not
    assert doc["fixed"] == ["pf/support/tests.yaml:1 (managed)"]
    assert doc["cases"] == 4 and doc["regressed"] == []
    assert "+- Returns: 30 days." in result.diff
    chat = next(r for r in stub_openai.requests if r["messages"][0]["role"] == "system")
    assert chat["messages"] == [
        {"role": "system", "content": "You answer for Acme Outfitters. Policy: Refunds are accepted within "
                                      "30 days of delivery."},
        {"role": "user", "content": "Can I return shoes I bought 45 days ago?"}]
    rendered = [r["messages"][0]["content"] for r in stub_openai.requests if len(r["messages"]) == 1]
    assert all("selfimprove:" not in m and m.startswith("# Acme Outfitters support\n") for m in rendered)
    checks = {c.type: c for c in result.cases[0].candidate[0].grade.checks}
    assert checks["python"].passed and checks["icontains"].weight == 2
    assert result.cases[0].case.asserts[1].metric == "accuracy"
    json_id = "pf/support/tests.yaml:13 (prompts/support_chat.json)"
    json_case = next(r for r in result.cases if r.case.id == json_id)
    assert [c.reason for c in json_case.base[0].grade.checks] == [
        "python returned True", "output contains JSON matching the schema", "order id"]


def test_a_managed_promptfoo_prompt_obeys_the_policy(eval_repo, stub_openai):
    suite = add_config(eval_repo, "support")
    managed = "pf/support/prompts/support.md"
    text = (eval_repo.root / managed).read_text()
    eval_repo.branch("rewrite", {managed: text.replace("Customer:", "Client:")})
    result = evaluate(eval_repo, "rewrite", suite_path=suite)
    assert result.verdict == "fail" and [v.path for v in result.violations] == [managed]
    assert stub_openai.requests == []


def test_javascript_is_refused_in_one_error_naming_every_item(eval_repo, stub_openai):
    suite = add_config(eval_repo, "unsupported")
    unrelated_change(eval_repo)
    with pytest.raises(SelfImproveError) as info:
        evaluate(eval_repo, "candidate", suite_path=suite)
    assert info.value.one_line() == (
        f"6 unsupported items in the suite: {suite}:4: a prompt function (file://prompts/build_prompt.js), "
        f"which promptfoo runs as code; {suite}:7: provider 'file://providers/custom_provider.js' "
        "(a script); "
        f"{suite}:15: options.transform (a JavaScript transform); {suite}:17: assertion type 'javascript' "
        f"(JavaScript); {suite}:21: transform on a 'icontains' assertion (JavaScript); {suite}:27: assertion "
        "type 'similar' (hint: rewrite them with supported types (see 'Eval suites' in the README), or pass "
        "--skip-unsupported to run the rest)")
    assert stub_openai.requests == []


def test_skip_unsupported_runs_the_rest_and_reports_what_it_skipped(eval_repo, stub_openai):
    stub_openai.reply = lambda body: "Returns are free for 30 days."
    suite = add_config(eval_repo, "unsupported")
    unrelated_change(eval_repo)
    said: list[str] = []
    result = evaluate(eval_repo, "candidate", suite_path=suite, skip_unsupported=True, notice=said.append)
    doc = result.to_json()
    assert [r.case.id for r in result.cases] == [f"{suite}:22"]
    assert doc["verdict"] == "pass" and len(doc["skipped"]) == 7
    assert f"{suite}:12: the whole case (its output is transformed before grading)" in doc["skipped"]
    assert said[:2] == [f"skipped (unsupported): {suite}:4: a prompt function "
                        "(file://prompts/build_prompt.js), which promptfoo runs as code",
                        f"skipped (unsupported): {suite}:7: provider 'file://providers/custom_provider.js' "
                        "(a script)"]
    assert [r["messages"] for r in stub_openai.requests] == [
        [{"role": "user", "content": "Summarize in one sentence: Returns are free for 30 days.\n"}]]


def tool_agent(body: dict[str, Any]) -> Reply:
    names = [t["function"]["name"] for t in body.get("tools") or []]
    if "lookup_order" in names:
        return Reply(content=None, tool_calls=[{"name": "lookup_order", "arguments": {"order_id": "48213"}}])
    return Reply(content="I cannot look that up.")


def test_tools_reach_the_model_and_its_tool_calls_are_graded(eval_repo, stub_openai):
    stub_openai.reply = tool_agent
    suite = add_config(eval_repo, "tools")
    unrelated_change(eval_repo)
    result = evaluate(eval_repo, "candidate", suite_path=suite)
    doc = result.to_json()
    assert doc["verdict"] == "pass" and doc["cases"] == 2
    agent = next(r for r in stub_openai.requests if r["model"] == "stub-agent")
    assert agent["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in agent["tools"]] == ["lookup_order", "cancel_order"]
    assert agent["tools"][1] == {"type": "function", "function": {
        "name": "cancel_order", "description": "Cancel an order (Anthropic's tool shape, converted)",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                       "required": ["order_id"]}}}
    checks = result.cases[0].base[0].grade.checks
    assert [(c.type, c.passed, c.reason) for c in checks] == [
        ("tool-called", True, 'tool \'lookup_order\' was called with {"order_id": "48213"}'),
        ("is-valid-openai-tools-call", True, "1 valid tool call(s)")]
    other = next(r for r in stub_openai.requests if r["model"] == "stub-other")
    assert "tools" not in other  # that test's own provider declares none


HARNESS = r"""
import json, sys
case = json.load(sys.stdin)
print(json.dumps({"output": case["vars"].get("lang", ""),
                  "tool_calls": [{"name": t["function"]["name"]} for t in case["tools"]],
                  "cost": 0}))
"""

VARS_SUITE = """\
prompt: prompts/agent.md
tests:
  - id: spanish
    vars: {lang: es}
    input: "Translate: good night"
    assert: [{type: equals, value: es}]
  - id: french
    vars: {lang: fr}
    input: "Translate: good night"
    assert: [{type: equals, value: fr}]
"""


@pytest.mark.parametrize("use_cache", [True, False])
def test_two_cases_differing_only_in_vars_reach_an_exec_harness_separately(eval_repo, use_cache):
    (eval_repo.root / "harness.py").write_text(HARNESS)
    eval_repo.branch("candidate", {"evals/support.yaml": VARS_SUITE,
                                   "prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    model = f"exec:{sys.executable} harness.py"
    result = evaluate(eval_repo, "candidate", model=model, use_cache=use_cache, completer=None)
    outputs = {r.case.id: (r.base[0].output.text, r.candidate[0].output.text) for r in result.cases}
    assert outputs == {"spanish": ("es", "es"), "french": ("fr", "fr")}
    assert result.to_json()["calls"] == {"made": 4, "cached": 0}


MULTI_TURN = """\
prompt: prompts/agent.md
tools: file://../agent/tools.yaml
tests:
  - id: after-a-tool-result
    messages:
      - {role: user, content: "Where is order 48213?"}
      - role: assistant
        content: null
        tool_calls:
          - {id: call_1, type: function, function: {name: lookup_order, arguments: '{"order_id": "48213"}'}}
      - {role: tool, tool_call_id: call_1, content: '{"status": "shipped"}'}
      - {role: user, content: "And when will it arrive?"}
    assert: [{type: tool-called, value: lookup_order}]
"""

TOOLS = """\
- type: function
  function:
    name: lookup_order
    parameters: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
"""


def test_multi_turn_conversations_and_tools_reach_a_model(eval_repo, stub_openai):
    stub_openai.reply = tool_agent
    eval_repo.branch("candidate", {"evals/support.yaml": MULTI_TURN, "agent/tools.yaml": TOOLS,
                                   "prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    result = evaluate(eval_repo, "candidate")
    assert result.verdict == "pass", result.gate.reasons
    request = stub_openai.requests[0]
    assert [m["role"] for m in request["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert request["messages"][2]["tool_calls"][0]["function"]["name"] == "lookup_order"
    assert request["messages"][3] == {"role": "tool", "tool_call_id": "call_1",
                                      "content": '{"status": "shipped"}'}
    assert [t["function"]["name"] for t in request["tools"]] == ["lookup_order"]


ECHO = r"""
import json, sys
case = json.load(sys.stdin)
print(json.dumps({"output": json.dumps([m["role"] for m in case["messages"]]),
                  "tool_calls": [{"name": t["function"]["name"]} for t in case["tools"]]}))
"""


def test_multi_turn_conversations_and_settings_tools_reach_an_exec_harness(eval_repo):
    (eval_repo.root / "harness.py").write_text(ECHO)
    (eval_repo.root / "tools.yaml").write_text(TOOLS)
    settings = eval_repo.root / "selfimprove.yaml"
    settings.write_text(settings.read_text().replace("eval:\n", "eval:\n  tools: file://tools.yaml\n"))
    git(eval_repo.root, "add", "-A")
    git(eval_repo.root, "commit", "-q", "-m", "declare the tools")
    suite = MULTI_TURN.replace("tools: file://../agent/tools.yaml\n", "")
    eval_repo.branch("candidate", {"evals/support.yaml": suite,
                                   "prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    result = evaluate(eval_repo, "candidate", model=f"exec:{sys.executable} harness.py", completer=None)
    assert result.verdict == "pass", result.gate.reasons
    assert json.loads(result.cases[0].base[0].output.text) == ["user", "assistant", "tool", "user"]


def test_a_promptfoo_config_outside_the_repo_is_read_from_disk(eval_repo, stub_openai, tmp_path):
    stub_openai.reply = translator
    outside = tmp_path / "elsewhere"
    shutil.copytree(DATA / "translate", outside)
    unrelated_change(eval_repo)
    result = evaluate(eval_repo, "candidate", suite_path=str(outside / "promptfooconfig.yaml"))
    assert result.to_json()["cases"] == 12
    assert result.cases[0].case.where == f"{(outside / 'promptfooconfig.yaml').as_posix()}:26"


# -- reading configs (no calls) ---------------------------------------------------------------------

def load(name: str, **kwargs: Any) -> Any:
    from selfimprove.evals.suite import Source, load_suite

    root = DATA / name

    def read(path: str) -> bytes | None:
        file = root / path
        return file.read_bytes() if file.is_file() else None

    config = (root / "promptfooconfig.yaml").read_bytes()
    source = Source(read=read, **kwargs)
    return load_suite({"promptfooconfig.yaml": config}, default_prompt=None, source=source)


def test_csv_tests_map_prompt_forms_and_txt_files_holding_several_prompts():
    from selfimprove.evals.suite import render_messages

    suite = load("csv")
    assert len(suite.cases) == 9  # 3 CSV rows × (2 prompts of the .txt file + 1 of the .jsonl file)
    first = suite.cases[0]
    assert first.id == "tests.csv:2 (plain#1)" and first.description == "arithmetic"
    assert first.metadata == {"area": "math"} and first.provider == "openai/stub-small"
    assert first.config == {"temperature": 0.2}
    assert [(a.type, a.value) for a in first.asserts] == [("contains", "4"), ("not-icontains", "five")]
    colours = suite.cases[3]
    assert [(a.type, a.value) for a in colours.asserts] == [("icontains-any", ["red", "blue"]),
                                                           ("llm-rubric", "names a colour")]
    assert [(a.type, a.value) for a in suite.cases[6].asserts] == [("equals", "hi")]
    assert [c.id for c in suite.cases[:3]] == ["tests.csv:2 (plain#1)", "tests.csv:2 (plain#2)",
                                               "tests.csv:2 (chat:1)"]
    second_prompt = (DATA / "csv" / "prompts" / "questions.txt").read_text().split("---\n")[1]
    assert render_messages(suite.cases[1], second_prompt) == [
        {"role": "user", "content": "You are terse. What is 2+2?\n"}]
    assert render_messages(suite.cases[2], suite.cases[2].template or "") == [
        {"role": "system", "content": "Answer as a clerk."}, {"role": "user", "content": "What is 2+2?"}]


def test_nunjucks_templates_render_with_jinja2():
    from selfimprove.evals.promptfoo import conversation, render

    values = {"name": "Ada", "order": {"id": 7, "items": ["a", "b"]}, "premium": True}
    assert render("Hi {{name}}{{missing}}!", values, "s:1") == "Hi Ada!"  # undefined renders as nothing
    assert render("{{ order | dump }}", values, "s:1") == '{"id": 7, "items": ["a", "b"]}'
    assert render("{{ order }}", values, "s:1") == '{"id": 7, "items": ["a", "b"]}'
    assert render("{% if premium %}VIP {% endif %}{{ name | upper }}", values, "s:1") == "VIP ADA"
    with pytest.raises(SelfImproveError) as info:
        render("{% if %}", values, "pf.yaml:4")
    assert info.value.one_line().startswith("pf.yaml:4: template error: ")
    chat = '[{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]'
    assert conversation(chat, False, "s:1") == [{"role": "system", "content": "x"},
                                                {"role": "user", "content": "y"}]
    assert conversation("[not json", False, "s:1") == [{"role": "user", "content": "[not json"}]
    assert conversation("- role: user\n  content: hi\n", True, "s:1") == [{"role": "user", "content": "hi"}]


def test_a_selfimprove_suite_error_points_at_the_line_of_the_unknown_key():
    from selfimprove.evals.suite import parse_suite_file

    text = ("# suite\n\nprompt: prompts/a.md\n\ntests:\n"
            "  - {input: hi, assert: [{type: contains, value: x}]}\npromt: oops\n")
    with pytest.raises(SelfImproveError) as info:
        parse_suite_file(text, "evals/s.yaml", default_prompt=None)
    assert info.value.one_line().startswith("evals/s.yaml:7: $: unknown key 'promt'")


def test_unknown_providers_and_options_are_listed_with_their_lines():
    from selfimprove.evals.suite import parse_suite_file

    text = """\
prompts: ['Q: {{q}}']
providers:
  - echo
  - id: openai:gpt-4.1
    config: {temperature: 0, showThinking: true}
tests:
  - vars: {q: hi}
    options: {rubricPrompt: grade it}
    assert: [{type: contains, value: hi}]
"""
    with pytest.raises(SelfImproveError) as info:
        parse_suite_file(text, "pf.yaml", default_prompt=None)
    assert info.value.message == ("3 unsupported items in the suite: pf.yaml:3: provider 'echo' (no litellm "
                                  "equivalent); pf.yaml:4: provider config key 'showThinking' (no litellm "
                                  "equivalent); pf.yaml:8: options.rubricPrompt")


def test_cli_eval_suite_refuses_then_skips_unsupported_items(eval_repo, stub_openai, run):
    stub_openai.reply = lambda body: "Returns are free for 30 days."
    suite = add_config(eval_repo, "unsupported")
    unrelated_change(eval_repo)
    refused = run("eval", "candidate", "--suite", suite, cwd=eval_repo.root)
    assert refused.exit_code == 2
    assert refused.stderr.startswith(f"error: 6 unsupported items in the suite: {suite}:4: ")
    assert stub_openai.requests == []
    skipped = run("eval", "candidate", "--suite", suite, "--skip-unsupported", "--allow-no-effect", "--json",
                  cwd=eval_repo.root)
    assert skipped.exit_code == 0, skipped.stderr
    doc = json.loads(skipped.stdout)
    assert doc["cases"] == 1 and len(doc["skipped"]) == 7
    assert doc["skipped"][-1] == f"{suite}:27: assertion type 'similar'"


def test_globs_of_prompt_and_test_files(eval_repo, stub_openai):
    stub_openai.reply = lambda body: last_user(body)
    suite = add_config(eval_repo, "globs")
    unrelated_change(eval_repo)
    result = evaluate(eval_repo, "candidate", suite_path=suite)
    assert [r.case.id for r in result.cases] == [
        "pf/globs/tests/first.yaml:1 (prompts/a.txt)", "pf/globs/tests/first.yaml:1 (prompts/b.txt)",
        "pf/globs/tests/more/second.yaml:1 (prompts/a.txt)",
        "pf/globs/tests/more/second.yaml:1 (prompts/b.txt)"]
    assert result.verdict == "pass" and all(r.base[0].grade.passed for r in result.cases)
    assert sorted(r["messages"][0]["content"] for r in stub_openai.requests) == [
        "Long answer: one\n", "Long answer: two\n", "Short answer: one\n", "Short answer: two\n"]


def test_a_tool_call_reply_is_graded_as_promptfoo_grades_it(eval_repo, stub_openai):
    stub_openai.reply = lambda body: Reply(content=None, tool_calls=[
        {"name": "lookup_order", "arguments": {"order_id": last_user(body).split()[-1].rstrip(".")}}])
    suite = add_config(eval_repo, "toolcalls")
    unrelated_change(eval_repo)
    with pytest.raises(SelfImproveError) as info:
        evaluate(eval_repo, "candidate", suite_path=suite)
    assert [item.split(": ", 1)[1] for item in info.value.message.split(": ", 1)[1].split("; ")] == [
        "provider config key 'verbosity' (no litellm equivalent)",
        "assertion type 'javascript' (JavaScript)", "options.transform (a JavaScript transform)",
        "assertion type 'similar'", "transform on a 'similar' assertion (JavaScript)"]
    result = evaluate(eval_repo, "candidate", suite_path=suite, skip_unsupported=True)
    assert [r.case.id for r in result.cases] == [f"{suite}:23", f"{suite}:41"]
    assert result.verdict == "pass" and all(r.base[0].grade.passed for r in result.cases)
    assert [c.reason for c in result.cases[0].base[0].grade.checks] == [
        "output is JSON", "1 valid tool call(s)", "output contains 'lookup_order'"]
    skipped = result.to_json()["skipped"]
    assert f"{suite}:33: the whole case (its output is transformed before grading)" in skipped
    assert skipped[0] == f"{suite}:50: a case with no assertions (nothing to grade)"
    assert "verbosity" not in stub_openai.requests[0]


def test_a_directory_suite_does_not_run_the_files_a_config_includes_on_their_own(eval_repo, stub_openai):
    stub_openai.reply = support_agent
    add_config(eval_repo, "support")
    settings = eval_repo.root / "selfimprove.yaml"
    settings.write_text(settings.read_text().replace("suite: evals/", "suite: pf/support/"))
    git(eval_repo.root, "commit", "-qam", "the promptfoo config's directory is the suite")
    unrelated_change(eval_repo)
    result = evaluate(eval_repo, "candidate")
    # tests.yaml is read through the config (× 2 prompts), not also as a suite of its own
    assert len(result.cases) == 4
    assert {r.case.id.split(" ")[0] for r in result.cases} == {"pf/support/tests.yaml:1",
                                                              "pf/support/tests.yaml:13"}


def test_the_judge_comes_from_the_assertion_then_the_test_options_then_default_test():
    from selfimprove.evals.suite import parse_suite_file

    text = """\
prompts: ['Q: {{q}}']
providers: [openai:gpt-4.1-mini]
defaultTest:
  options: {provider: anthropic:messages:claude-judge}
tests:
  - vars: {q: a}
    assert: [{type: llm-rubric, value: polite}]
  - vars: {q: b}
    options: {provider: {id: openai:chat:gpt-judge}}
    assert:
      - {type: llm-rubric, value: polite}
      - {type: llm-rubric, value: short, provider: google:gemini-judge}
"""
    first, second = parse_suite_file(text, "pf.yaml", default_prompt=None)
    assert [a.provider for a in first.asserts] == ["anthropic/claude-judge"]
    assert [a.provider for a in second.asserts] == ["openai/gpt-judge", "gemini/gemini-judge"]


def test_a_tests_vars_may_come_from_a_file(tmp_path):
    from selfimprove.evals.suite import Source, parse_suite_file

    files = {"vars/paris.yaml": b"city: Paris\nfacts: [old, big]\n"}
    text = ("prompts: ['{{city}}?']\ntests:\n  - vars: file://vars/paris.yaml\n"
            "    assert: [{type: contains, value: x}]\n")
    cases = parse_suite_file(text, "pf.yaml", default_prompt=None, source=Source(read=files.get))
    assert [c.vars for c in cases] == [{"city": "Paris", "facts": "old"}, {"city": "Paris", "facts": "big"}]
    with pytest.raises(SelfImproveError) as info:
        parse_suite_file(text.replace("paris", "rome"), "pf.yaml", default_prompt=None,
                         source=Source(read=files.get))
    assert info.value.one_line().startswith("pf.yaml:3: file://vars/rome.yaml not found (vars/rome.yaml)")
