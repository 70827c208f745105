"""`selfimprove eval` end to end: real git, real litellm, a stub OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from tests.evals.helpers import (
    ORDER_RULE,
    PROMPT,
    REFUND_RULE,
    EvalRepo,
    git,
    make_eval_repo,
    support_reply,
    with_rule,
)


@pytest.fixture
def eval_repo(tmp_path) -> EvalRepo:
    return make_eval_repo(tmp_path)


def test_a_fixing_candidate_passes_and_prints_its_diff(eval_repo, stub_openai, run):
    stub_openai.reply = support_reply
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    result = run("eval", "fix-refunds", cwd=eval_repo.root)
    assert result.exit_code == 0, result.stderr
    assert ("5 cases × 1 repeat × base and candidate: 10 calls to make, 0 cached; "
            "estimated cost unknown (no price for this model)\n") == result.stderr  # the report is on stdout
    err = result.stdout
    assert "│ refunds │     2 │   0.0% │    100.0% │   +100.0 │" in err
    assert "│ refund-45-days │ fixed │ Let me check that for you. │" in err
    assert "p = 0.5 (paired exact McNemar test, 0 regressed / 2 fixed)" in err
    assert "calls: 10 made, 0 cached" in err
    assert "verdict: PASS" in err
    assert "+- The refund window is 30 days from delivery; say so when asked about returns." in err


def test_a_regressing_candidate_fails_with_exit_1_and_lists_cases(eval_repo, stub_openai, run):
    stub_openai.reply = support_reply
    sha = eval_repo.branch("drop-rule", {"prompts/agent.md": PROMPT.replace(ORDER_RULE, "")})
    result = run("eval", "drop-rule", "--json", cwd=eval_repo.root)
    assert result.exit_code == 1
    doc = result.json()
    assert doc["schema"] == "selfimprove.eval/v1"
    assert doc["verdict"] == "fail"
    assert doc["regressed"] == ["where-is-order", "order-status"]
    assert doc["candidate"]["sha"] == sha
    assert set(doc) >= {"schema", "verdict", "reasons", "base", "candidate", "regressed", "fixed", "p_value",
                        "slices", "calls", "cost_usd"}
    assert result.stderr.startswith("eval gate failed for drop-rule: 2 regressed cases (max_regressions 0): "
                                    "where-is-order, order-status")
    assert "prompt diff" not in result.stdout  # the diff is only printed when the gate passes
    note = json.loads(git(eval_repo.root, "notes", "--ref=refs/notes/selfimprove", "show", sha))
    assert note["verdict"] == "fail" and note["regressed"] == doc["regressed"]


def test_an_immutable_edit_fails_without_calls(eval_repo, stub_openai, run):
    stub_openai.reply = support_reply
    edited = with_rule(PROMPT, REFUND_RULE).replace("## Guardrails\n", "## Guardrails (relaxed)\n")
    eval_repo.branch("sneaky", {"prompts/agent.md": edited})
    result = run("eval", "sneaky", cwd=eval_repo.root)
    assert result.exit_code == 1
    assert "policy violations (the candidate is refused whatever its scores):" in result.stdout
    assert "verdict: FAIL" in result.stdout
    assert stub_openai.requests == []


def test_candidate_defaults_to_the_current_branch(eval_repo, stub_openai, run):
    stub_openai.reply = support_reply
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    git(eval_repo.root, "checkout", "-q", "fix-refunds")
    result = run("eval", "--json", "--repeat", "2", "--concurrency", "3", cwd=eval_repo.root)
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["candidate"]["ref"] == "fix-refunds" and doc["base"]["ref"] == "main"
    assert doc["repeats"] == 2 and doc["calls"] == {"made": 20, "cached": 0}
    again = run("eval", "--json", "--repeat", "2", cwd=eval_repo.root).json()
    assert again["calls"] == {"made": 0, "cached": 20}
    fresh = run("eval", "--json", "--repeat", "2", "--no-cache", cwd=eval_repo.root).json()
    assert fresh["calls"] == {"made": 20, "cached": 0}


def test_junit_and_markdown_reports(eval_repo, stub_openai, run, tmp_path):
    stub_openai.reply = support_reply
    eval_repo.branch("drop-rule", {"prompts/agent.md": PROMPT.replace(ORDER_RULE, "")})
    junit, markdown = tmp_path / "eval.xml", tmp_path / "eval.md"
    result = run("eval", "drop-rule", "--junit", str(junit), "--markdown", str(markdown), cwd=eval_repo.root)
    assert result.exit_code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "6" and suite.get("failures") == "5"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["greeting"].find("failure") is None
    failure = cases["where-is-order"].find("failure")
    assert failure is not None
    assert failure.get("message") == "icontains: output does not contain 'order number' (any case)"
    assert "(regressed)" in (failure.text or "")
    gate = cases["gate"].find("failure")
    assert gate is not None and gate.get("message", "").startswith("2 regressed cases")
    md = markdown.read_text()
    assert md.startswith("## selfimprove eval: ❌ fail\n")
    assert "| orders | 2 | 100.0% | 0.0% | -100.0 |" in md
    assert ("| `where-is-order` | regressed | Could you give me your order number? | "
            "Your order is on its way. |") in md
    assert "Prompt diff" not in md

    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    assert run("eval", "fix-refunds", "--markdown", str(markdown), cwd=eval_repo.root).exit_code == 0
    md = markdown.read_text()
    assert md.startswith("## selfimprove eval: ✅ pass\n")
    assert "```diff\n" in md and "+- The refund window is 30 days" in md


def test_no_model_exits_2_with_a_clear_message(eval_repo, run):
    settings = eval_repo.root / "selfimprove.yaml"
    settings.write_text(settings.read_text().replace("  model: openai/stub-model\n", ""))
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    result = run("eval", "fix-refunds", cwd=eval_repo.root)
    assert result.exit_code == 2
    assert result.stderr == ("error: no model configured for eval (hint: set eval.model in selfimprove.yaml, "
                             "'providers:' in the suite, or pass --model (a litellm model string, or "
                             "exec:COMMAND))\n")


def test_model_flag_max_cost_and_offline(eval_repo, stub_openai, run):
    stub_openai.reply = support_reply
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    result = run("eval", "fix-refunds", "--model", "openai/gpt-4o-mini", "--max-cost", "0.0001",
                 cwd=eval_repo.root)
    assert result.exit_code == 2
    assert "estimated cost $0.0017" in result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        "error: estimated cost $0.0017 is above --max-cost $0.0001")
    assert stub_openai.requests == []
    offline = run("eval", "fix-refunds", "--offline", cwd=eval_repo.root)
    assert offline.exit_code == 2 and "--offline forbids calling one" in offline.stderr


def test_unknown_ref_and_bad_suite_are_one_line(eval_repo, stub_openai, run):
    result = run("eval", "no-such-branch", cwd=eval_repo.root)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: unknown revision 'no-such-branch'")
    assert len(result.stderr.splitlines()) == 1
    bad = "tests:\n  - input: hi\n    assert: [{type: nope}]\n"
    eval_repo.branch("bad-suite", {"evals/support.yaml": bad,
                                   "prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    result = run("eval", "bad-suite", cwd=eval_repo.root)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: evals/support.yaml:3: $.tests[0].assert[0].type: "
                                    "unknown assertion type 'nope'")
    assert stub_openai.requests == []


def test_every_seventh_request_failing_through_the_cli(eval_repo, stub_openai, run, monkeypatch):
    import selfimprove.llm as llm

    # the default backoff is one second; keep this test quick while still going through our retry loop
    original = llm.LiteLLMCompleter.__init__

    def quick(self, **kwargs):
        original(self, **{**kwargs, "backoff": 0.01})

    monkeypatch.setattr(llm.LiteLLMCompleter, "__init__", quick)
    stub_openai.reply = support_reply
    stub_openai.fail_every = 7
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    result = run("eval", "fix-refunds", "--json", "--repeat", "2", cwd=eval_repo.root)
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert stub_openai.statuses.count(500) >= 2
    assert doc["fixed"] == ["refund-45-days", "refund-10-days"] and doc["calls"]["made"] == 20


def test_the_prompt_diff_is_never_hard_wrapped(eval_repo, stub_openai, run):
    stub_openai.reply = support_reply
    long_rule = REFUND_RULE.rstrip() + " Quote the policy page, name the delivery date, offer a label."
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, long_rule + "\n")})
    result = run("eval", "fix-refunds", cwd=eval_repo.root)
    assert result.exit_code == 0, result.stderr
    diff = result.stdout.split("prompt diff (base → candidate):\n", 1)[1].splitlines()
    assert f"+{long_rule}" in diff and len(long_rule) > 120
    hunks = diff[next(i for i, line in enumerate(diff) if line.startswith("@@")):]
    assert all(line[:1] in " +-@\\" for line in hunks), hunks  # a marker on every line
