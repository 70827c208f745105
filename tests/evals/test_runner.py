from __future__ import annotations

import json
import sys

import pytest

from selfimprove.errors import SelfImproveError
from selfimprove.evals.runner import run_eval
from selfimprove.llm import LiteLLMCompleter, LLMError
from tests.evals.helpers import ORDER_RULE, PROMPT, REFUND_RULE, git, support_reply, with_rule
from tests.stub_openai import Reply


def fast_completer() -> LiteLLMCompleter:
    return LiteLLMCompleter(timeout=10, retries=4, backoff=0.02)


def evaluate(eval_repo, candidate, **kwargs):
    kwargs.setdefault("completer", fast_completer())
    with eval_repo.open() as repo:
        return run_eval(eval_repo.settings(), repo, candidate=candidate, base=kwargs.pop("base", None),
                        **kwargs)


def test_adding_a_rule_that_fixes_cases_passes_with_its_diff(eval_repo, stub_openai):
    stub_openai.reply = support_reply
    sha = eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    result = evaluate(eval_repo, "fix-refunds")
    doc = result.to_json()
    assert doc["verdict"] == "pass", doc["reasons"]
    assert doc["reasons"] == []
    assert doc["fixed"] == ["refund-45-days", "refund-10-days"]
    assert doc["regressed"] == []
    assert doc["base"] == {"ref": "main", "sha": git(eval_repo.root, "rev-parse", "main"), "pass_rate": 0.6}
    assert doc["candidate"] == {"ref": "fix-refunds", "sha": sha, "pass_rate": 1.0}
    assert doc["slices"]["refunds"] == {"cases": 2, "base": 0.0, "candidate": 1.0, "delta": 1.0}
    assert doc["slices"]["orders"] == {"cases": 2, "base": 1.0, "candidate": 1.0, "delta": 0.0}
    assert doc["calls"] == {"made": 10, "cached": 0}
    assert doc["p_value"] == 0.5
    assert doc["ci"][0] < 0.4 < doc["ci"][1]
    assert "+- The refund window is 30 days from delivery" in result.diff
    assert len(stub_openai.requests) == 10
    # the system message is the prompt rendered at each commit: markers stripped, vars filled
    systems = {r["messages"][0]["content"] for r in stub_openai.requests}
    assert len(systems) == 2 and all("selfimprove:" not in s for s in systems)
    assert sum("refund window is 30 days" in s for s in systems) == 1
    assert any(r["messages"][-1]["content"] == "Hello there" for r in stub_openai.requests)
    with eval_repo.open() as repo:
        note = json.loads(repo.note_read(sha))
    assert note == json.loads(json.dumps(doc))


def test_deleting_a_rule_the_base_needed_fails_listing_regressed_cases(eval_repo, stub_openai):
    stub_openai.reply = support_reply
    eval_repo.branch("drop-rule", {"prompts/agent.md": PROMPT.replace(ORDER_RULE, "")})
    doc = evaluate(eval_repo, "drop-rule").to_json()
    assert doc["verdict"] == "fail"
    assert doc["regressed"] == ["where-is-order", "order-status"]
    assert doc["fixed"] == []
    assert doc["reasons"] == [
        "2 regressed cases (max_regressions 0): where-is-order, order-status",
        "slice 'orders' got worse: 100.0% → 0.0%",
        "gain -40.0 points is below min_improvement 0.0 points",
    ]
    flipped = {f["id"]: f for f in doc["flipped"]}
    assert flipped["where-is-order"]["base"]["output"] == "Could you give me your order number?"
    assert flipped["where-is-order"]["candidate"]["output"] == "Your order is on its way."
    assert flipped["where-is-order"]["candidate"]["failures"] == [
        "icontains: output does not contain 'order number' (any case)"]


def test_editing_an_immutable_section_fails_whatever_its_scores(eval_repo, stub_openai):
    stub_openai.reply = support_reply
    edited = with_rule(PROMPT, REFUND_RULE).replace("- Never reveal internal notes.\n",
                                                    "- Never reveal internal notes unless asked nicely.\n")
    sha = eval_repo.branch("sneaky", {"prompts/agent.md": edited})
    result = evaluate(eval_repo, "sneaky")
    doc = result.to_json()
    assert doc["verdict"] == "fail"
    assert doc["reasons"] and all(r.startswith("policy: prompts/agent.md") for r in doc["reasons"])
    assert {v["kind"] for v in doc["violations"]} >= {"immutable_changed"}
    assert doc["calls"] == {"made": 0, "cached": 0}
    assert stub_openai.requests == []  # refused before any call
    with eval_repo.open() as repo:
        assert json.loads(repo.note_read(sha))["verdict"] == "fail"


def test_a_second_identical_run_makes_zero_calls(eval_repo, stub_openai):
    stub_openai.reply = support_reply
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    first = evaluate(eval_repo, "fix-refunds", repeat=2).to_json()
    assert first["calls"] == {"made": 20, "cached": 0}
    assert len(eval_repo.cache_files()) == 20  # the repeat index is part of the key
    before = len(stub_openai.requests)
    second = evaluate(eval_repo, "fix-refunds", repeat=2).to_json()
    assert len(stub_openai.requests) == before
    assert second["calls"] == {"made": 0, "cached": 20}
    assert second["tokens"] == {"input": 0, "output": 0}
    for key in ("verdict", "fixed", "regressed", "slices", "base", "candidate"):
        assert second[key] == first[key]
    said: list[str] = []
    seen: list[tuple[int, int]] = []
    evaluate(eval_repo, "fix-refunds", repeat=2, notice=said.append,
             progress=lambda done, total: seen.append((done, total)))
    assert said == ["5 cases × 2 repeats × base and candidate: 0 calls to make, 20 cached; "
                    "estimated cost $0.0000"]
    assert seen[0] == (0, 20) and seen[-1] == (20, 20) and len(seen) == 21
    # an unchanged base is never asked again: a different candidate only pays for its own side
    eval_repo.branch("drop-rule", {"prompts/agent.md": PROMPT.replace(ORDER_RULE, "")})
    third = evaluate(eval_repo, "drop-rule", repeat=2).to_json()
    assert third["calls"] == {"made": 10, "cached": 10}
    # --no-cache asks everything again
    fourth = evaluate(eval_repo, "drop-rule", repeat=2, use_cache=False).to_json()
    assert fourth["calls"] == {"made": 20, "cached": 0}


def test_every_seventh_request_failing_still_gives_correct_results(eval_repo, stub_openai):
    stub_openai.reply = support_reply
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    stub_openai.fail_every = 7
    doc = evaluate(eval_repo, "fix-refunds", repeat=3).to_json()
    assert stub_openai.statuses.count(500) >= 4
    assert stub_openai.statuses.count(200) == 30
    assert doc["verdict"] == "pass"
    assert doc["calls"] == {"made": 30, "cached": 0}
    assert doc["fixed"] == ["refund-45-days", "refund-10-days"]
    assert doc["base"]["pass_rate"] == 0.6 and doc["candidate"]["pass_rate"] == 1.0


def test_errors_are_never_cached_and_a_rerun_resumes(eval_repo, stub_openai):
    stub_openai.reply = support_reply
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    stub_openai.enqueue(Reply(status=400))  # not retryable: the run stops with one line
    with pytest.raises(LLMError) as info:
        evaluate(eval_repo, "fix-refunds", concurrency=1)
    assert info.value.one_line().startswith("model call to openai/stub-model failed: ")
    cached = len(eval_repo.cache_files())
    assert cached < 10
    doc = evaluate(eval_repo, "fix-refunds").to_json()
    assert doc["calls"] == {"made": 10 - cached, "cached": cached}
    assert doc["verdict"] == "pass"


def test_max_cost_refuses_before_any_call_and_the_estimate_is_printed(eval_repo, stub_openai):
    stub_openai.reply = support_reply
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    said: list[str] = []
    with pytest.raises(SelfImproveError) as info:
        evaluate(eval_repo, "fix-refunds", model="openai/gpt-4o-mini", max_cost=0.0001, notice=said.append)
    assert info.value.one_line().startswith("estimated cost $0.0017 is above --max-cost $0.0001")
    assert said == ["5 cases × 1 repeat × base and candidate: 10 calls to make, 0 cached; "
                    "estimated cost $0.0017"]
    assert stub_openai.requests == []
    doc = evaluate(eval_repo, "fix-refunds", model="openai/gpt-4o-mini", max_cost=0.01).to_json()
    assert doc["verdict"] == "pass" and doc["cost_usd"] > 0


def test_no_model_is_a_clear_error(eval_repo):
    settings_file = eval_repo.root / "selfimprove.yaml"
    settings_file.write_text(settings_file.read_text().replace("  model: openai/stub-model\n", ""))
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    with pytest.raises(SelfImproveError) as info:
        evaluate(eval_repo, "fix-refunds")
    assert info.value.one_line() == ("no model configured for eval (hint: set eval.model in "
                                     "selfimprove.yaml, 'providers:' in the suite, or pass --model (a "
                                     "litellm model string, or exec:COMMAND))")


def test_base_from_the_selfimprove_base_trailer_then_merge_base(eval_repo, stub_openai):
    stub_openai.reply = support_reply
    first = git(eval_repo.root, "rev-parse", "main")
    # the proposal was made on a later commit, but its trailer names the base it was measured against
    with eval_repo.open() as repo:
        later = repo.commit_files(branch="later", base="main", files={"README.md": b"x\n"}, message="later")
    eval_repo.branch("proposal", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)}, base="later",
                     message=f"selfimprove: refunds\n\nbody\n\nSelfimprove-Base: {first}\n")
    doc = evaluate(eval_repo, "proposal").to_json()
    assert doc["base"]["ref"] == first and doc["base"]["sha"] == first
    eval_repo.branch("plain", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)}, base="later")
    doc = evaluate(eval_repo, "plain").to_json()
    assert doc["base"]["ref"] == "main" and doc["base"]["sha"] == first
    doc = evaluate(eval_repo, "plain", base=later).to_json()
    assert doc["base"]["sha"] == later
    with pytest.raises(SelfImproveError, match="base and candidate are the same commit"):
        evaluate(eval_repo, "main")


def test_files_come_from_git_objects_and_the_working_tree_is_untouched(eval_repo, stub_openai):
    stub_openai.reply = support_reply
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    # uncommitted edits in the working tree must not leak into either side
    (eval_repo.root / "prompts" / "agent.md").write_text("BROKEN WORKING COPY\n")
    (eval_repo.root / "evals" / "support.yaml").write_text("tests: nonsense\n")
    status = git(eval_repo.root, "status", "--porcelain")
    head = git(eval_repo.root, "rev-parse", "HEAD")
    doc = evaluate(eval_repo, "fix-refunds").to_json()
    assert doc["verdict"] == "pass"
    assert all("BROKEN" not in r["messages"][0]["content"] for r in stub_openai.requests)
    assert git(eval_repo.root, "status", "--porcelain") == status
    assert git(eval_repo.root, "rev-parse", "HEAD") == head
    assert git(eval_repo.root, "rev-parse", "--abbrev-ref", "HEAD") == "main"


def test_deleting_a_managed_prompt_is_refused_by_the_policy(eval_repo, stub_openai):
    with eval_repo.open() as repo:
        repo.commit_files(branch="gone", base="main", files={"prompts/agent.md": None}, message="rm")
    doc = evaluate(eval_repo, "gone").to_json()
    assert doc["verdict"] == "fail"
    assert all(r.startswith("policy: prompts/agent.md") for r in doc["reasons"])
    assert stub_openai.requests == []


def test_a_suite_prompt_missing_at_a_commit_is_a_clear_error(eval_repo, stub_openai):
    suite = (eval_repo.root / "evals" / "support.yaml").read_text()
    eval_repo.branch("other", {"evals/support.yaml": suite.replace("prompts/agent.md", "prompts/other.md")})
    with pytest.raises(SelfImproveError) as info:
        evaluate(eval_repo, "other")
    assert info.value.one_line() == ("evals/support.yaml:6: prompt prompts/other.md does not exist "
                                     "(hint: fix the path in evals/support.yaml:6)")
    assert stub_openai.requests == []


# -- exec provider ----------------------------------------------------------------------------------

HARNESS = r"""
import json, sys
case = json.load(sys.stdin)
user = case["messages"][-1]["content"]
if "order" in user.lower():
    out = "Please share your order number." if "Ask for the order number" in case["system"] else "On its way."
    calls = [{"name": "lookup", "arguments": {"q": user}}]
    print(json.dumps({"output": out, "tool_calls": calls, "cost": 0.5}))
else:
    print(json.dumps({"output": "refund window is 30 days" if "30 days" in case["system"] else "hmm"}))
"""


def write_harness(eval_repo, body: str = HARNESS) -> str:
    (eval_repo.root / "harness.py").write_text(body)
    return f"exec:{sys.executable} harness.py"


def test_exec_provider_runs_the_users_harness(eval_repo):
    model = write_harness(eval_repo)
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    doc = evaluate(eval_repo, "fix-refunds", model=model, completer=None).to_json()
    assert doc["fixed"] == ["refund-45-days", "refund-10-days"]
    # greeting: the harness says "hmm", which does not start with "Hello"
    assert doc["base"]["pass_rate"] == 0.4 and doc["candidate"]["pass_rate"] == 0.8
    assert doc["cost_usd"] == 2.0  # 2 order cases × 2 sides × 0.5 reported by the harness
    assert doc["verdict"] == "pass"
    again = evaluate(eval_repo, "fix-refunds", model=model, completer=None).to_json()
    assert again["calls"] == {"made": 0, "cached": 10}
    # editing the harness invalidates its cached answers
    write_harness(eval_repo, HARNESS + "\n# changed\n")
    third = evaluate(eval_repo, "fix-refunds", model=model, completer=None).to_json()
    assert third["calls"]["made"] == 10


@pytest.mark.parametrize(("body", "message"), [
    ("import sys; print('boom', file=sys.stderr); sys.exit(3)", "exited with status 3: boom"),
    ("print('not json')", "printed 'not json', not a JSON object"),
    ("import json; print(json.dumps({'answer': 1}))", 'printed JSON without a string "output"'),
    ("import time; time.sleep(5)", "timed out after 1s"),
])
def test_a_failing_exec_command_is_one_clear_line(eval_repo, body, message):
    model = write_harness(eval_repo, body)
    settings_file = eval_repo.root / "selfimprove.yaml"
    text = settings_file.read_text().replace("  repeats: 1\n", "  repeats: 1\n  timeout: 1\n")
    settings_file.write_text(text)
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    with pytest.raises(SelfImproveError) as info:
        evaluate(eval_repo, "fix-refunds", model=model, completer=None, concurrency=2)
    line = info.value.one_line()
    assert line.startswith(f"exec provider '{sys.executable} harness.py' {message}"), line
    assert "\n" not in line
    assert eval_repo.cache_files() == []


def test_exec_command_that_does_not_exist(eval_repo):
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    with pytest.raises(SelfImproveError, match="exec provider 'no-such-harness-xyz' could not start"):
        evaluate(eval_repo, "fix-refunds", model="exec:no-such-harness-xyz", completer=None)


def test_llm_rubric_with_an_exec_provider_needs_a_judge(eval_repo):
    model = write_harness(eval_repo)
    suite = eval_repo.root / "evals" / "support.yaml"
    text = suite.read_text().replace('      - {type: starts-with, value: "Hello"}',
                                     '      - {type: llm-rubric, value: "is friendly"}')
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE),
                                     "evals/support.yaml": text})
    with pytest.raises(SelfImproveError, match="llm-rubric needs a judge model"):
        evaluate(eval_repo, "fix-refunds", model=model, completer=None)


# -- structured configs reach exec harnesses ----------------------------------------------------------

CONFIG = "# runtime settings\ngreeting: Hello\ntools:\n  lookup:\n    timeout_s: 2.0\n"

ECHO_HARNESS = r"""
import json, sys
case = json.load(sys.stdin)
print(json.dumps({"output": json.dumps({"keys": sorted(case), "configs": case["configs"]})}))
"""


def with_config(eval_repo) -> None:
    """List config/agent.yaml in selfimprove.yaml (only /tools/lookup/timeout_s may change), on main."""
    (eval_repo.root / "config").mkdir()
    (eval_repo.root / "config" / "agent.yaml").write_text(CONFIG)
    settings = eval_repo.root / "selfimprove.yaml"
    listed = 'configs:\n  - path: config/agent.yaml\n    mutable: ["/tools/lookup/timeout_s"]\n'
    settings.write_text(settings.read_text().replace("eval:\n", listed + "eval:\n"))
    git(eval_repo.root, "add", "-A")
    git(eval_repo.root, "commit", "-q", "-m", "add a config")


def seen(result, side: str) -> list[dict]:
    return [json.loads(getattr(r, side)[0].output.text) for r in result.cases]


def test_exec_harness_receives_each_sides_configs_and_they_key_the_cache(eval_repo):
    with_config(eval_repo)
    model = write_harness(eval_repo, ECHO_HARNESS)
    eval_repo.branch("raise-timeout", {"config/agent.yaml": CONFIG.replace("2.0", "3.0")})
    result = evaluate(eval_repo, "raise-timeout", model=model, completer=None)
    base = {"config/agent.yaml": {"greeting": "Hello", "tools": {"lookup": {"timeout_s": 2.0}}}}
    candidate = {"config/agent.yaml": {"greeting": "Hello", "tools": {"lookup": {"timeout_s": 3.0}}}}
    assert seen(result, "base") == [{"keys": ["configs", "messages", "system", "tools", "vars"],
                                     "configs": base}] * 5
    assert seen(result, "candidate") == [{"keys": ["configs", "messages", "system", "tools", "vars"],
                                          "configs": candidate}] * 5
    # same prompt on both sides, different configs: nothing is shared
    assert result.to_json()["calls"] == {"made": 10, "cached": 0}
    assert evaluate(eval_repo, "raise-timeout", model=model, completer=None).to_json()["calls"] == {
        "made": 0, "cached": 10}
    # a prompt-only change keeps the base's configs: the base's answers are reused, the candidate's
    # (new prompt, base configs) are asked
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    prompt_only = evaluate(eval_repo, "fix-refunds", model=model, completer=None)
    assert prompt_only.to_json()["calls"] == {"made": 5, "cached": 5}
    assert seen(prompt_only, "candidate") == seen(result, "base")


def test_configs_are_read_from_git_not_the_working_tree(eval_repo):
    with_config(eval_repo)
    model = write_harness(eval_repo, ECHO_HARNESS)
    eval_repo.branch("raise-timeout", {"config/agent.yaml": CONFIG.replace("2.0", "3.0")})
    (eval_repo.root / "config" / "agent.yaml").write_text("greeting: [unclosed\n")  # uncommitted
    result = evaluate(eval_repo, "raise-timeout", model=model, completer=None)
    timeouts = {side: {s["configs"]["config/agent.yaml"]["tools"]["lookup"]["timeout_s"]
                       for s in seen(result, side)} for side in ("base", "candidate")}
    assert timeouts == {"base": {2.0}, "candidate": {3.0}}


def test_a_model_never_sees_configs_so_a_config_only_change_shares_every_answer(eval_repo, stub_openai):
    stub_openai.reply = support_reply
    with_config(eval_repo)
    eval_repo.branch("raise-timeout", {"config/agent.yaml": CONFIG.replace("2.0", "3.0")})
    doc = evaluate(eval_repo, "raise-timeout").to_json()
    assert doc["calls"] == {"made": 5, "cached": 5}
    assert len(stub_openai.requests) == 5
    assert all("configs" not in r and "timeout_s" not in json.dumps(r) for r in stub_openai.requests)
    assert doc["fixed"] == [] and doc["regressed"] == []
    assert doc["base"]["pass_rate"] == doc["candidate"]["pass_rate"] == 0.6


def test_a_listed_config_absent_at_a_side_reaches_the_harness_as_null(eval_repo):
    settings = eval_repo.root / "selfimprove.yaml"
    settings.write_text(settings.read_text().replace(
        "eval:\n", 'configs:\n  - path: config/absent.json\n    mutable: ["/x"]\neval:\n'))
    git(eval_repo.root, "commit", "-q", "-am", "list a config not written yet")
    model = write_harness(eval_repo, ECHO_HARNESS)
    eval_repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    result = evaluate(eval_repo, "fix-refunds", model=model, completer=None)
    assert {json.dumps(s["configs"]) for side in ("base", "candidate") for s in seen(result, side)} == {
        '{"config/absent.json": null}'}
