"""propose(): the order of checks, git guarantees, dedupe, idempotence, redaction of commit messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from selfimprove.config import load_settings
from selfimprove.errors import SelfImproveError
from selfimprove.gitrepo import Repo
from selfimprove.proposals import ProposeResult, load_analysis, propose
from tests.proposals.conftest import DATA, git

RULE = ('- When `lookup_order` fails with "Order <id> not found", do not repeat the same call: check the '
        "arguments you passed, and if it still fails, tell the user plainly what went wrong.")


def run(repo_path: Path, doc: dict[str, Any] | str, **kwargs: Any) -> ProposeResult:
    if isinstance(doc, str):
        doc = load_analysis(DATA / doc)
    settings = load_settings(repo_path)
    with Repo.open(repo_path) as repo:
        return propose(settings, repo, doc, **kwargs)


def branches(repo: Path) -> list[str]:
    return git(repo, "branch", "--format=%(refname:short)").split()


def test_tool_error_becomes_one_branch_with_one_rule(prompt_repo: Path):
    head = git(prompt_repo, "rev-parse", "HEAD").strip()
    result = run(prompt_repo, "tool_error.json")
    (p,) = result.proposals
    assert result.rejected == ()
    assert p.status == "created" and p.base == head and p.pattern == "tool-error-5d0c7a21"
    assert p.branch.startswith("selfimprove/lookup-order-")
    assert len(p.branch.rsplit("-", 1)[1]) == 8
    assert git(prompt_repo, "rev-parse", p.branch).strip() == p.commit
    assert git(prompt_repo, "rev-parse", f"{p.branch}^").strip() == head
    diff = git(prompt_repo, "diff", "--unified=0", head, p.branch)
    added = [line for line in diff.splitlines()
             if line.startswith(("+", "-")) and line[:3] not in ("+++", "---")]
    assert added == ["+" + RULE]
    assert git(prompt_repo, "diff", "--name-only", head, p.branch).split() == ["prompts/support_agent.md"]


def test_commit_message_carries_evidence_and_trailers(prompt_repo: Path):
    (p,) = run(prompt_repo, "tool_error.json").proposals
    message = git(prompt_repo, "log", "-1", "--format=%B", p.branch)
    head = git(prompt_repo, "rev-parse", "HEAD").strip()
    assert message == (
        'selfimprove: add a rule for lookup_order failing with "Order <id> not found"\n\n'
        "Pattern tool-error-5d0c7a21 (tool_error): lookup_order fails: Order <id> not found\n"
        "Seen in 9 failing traces (75% of failures).\n"
        "Trace ids: t-003, t-007, t-011, t-014, t-019, t-022, t-028, t-031, t-036\n"
        "Signals: tool_error=9, user_correction=2\n"
        "Tool: lookup_order\n"
        "Error: Order <id> not found\n\n"
        "Change:\n"
        "- prompts/support_agent.md section learned-rules\n\n"
        "Why: 9 failing traces (75% of failures) hit this error from the `lookup_order` tool. A rule naming "
        "the tool and its error tells the agent to check its arguments and explain the failure instead of "
        "retrying the same call or carrying on as if it had worked.\n\n"
        "Selfimprove-Pattern: tool-error-5d0c7a21\n"
        f"Selfimprove-Base: {head}\n"
        "Selfimprove-Proposer: offline/tool-error-rule\n\n"
    )
    with Repo.open(prompt_repo) as repo:
        (commit,) = repo.log(p.branch, max_count=1)
    assert commit.trailers == {"Selfimprove-Pattern": ("tool-error-5d0c7a21",), "Selfimprove-Base": (head,),
                               "Selfimprove-Proposer": ("offline/tool-error-rule",)}


def test_secrets_in_evidence_are_redacted_from_the_commit_message(prompt_repo: Path):
    doc = load_analysis(DATA / "tool_error.json")
    doc["patterns"][0]["trace_ids"] = ["call +1 415 555 0100"]
    doc["patterns"][0]["evidence"]["user_phrases"] = ["mail me at jane.doe@example.com"]
    (p,) = run(prompt_repo, doc).proposals
    message = git(prompt_repo, "log", "-1", "--format=%B", p.branch)
    assert "555 0100" not in message and "jane.doe@example.com" not in message
    assert "Trace ids: call [REDACTED:phone]" in message


def test_a_rule_that_would_quote_redacted_text_is_refused(prompt_repo: Path):
    """The error quoted into the rule held secrets: the rule would carry redaction markers into the
    prompt, so it is refused, never written."""
    doc = load_analysis(DATA / "tool_error.json")
    evidence = doc["patterns"][0]["evidence"]
    evidence["error_template"] = "Order <id> not found for jane.doe@example.com (key sk-abcdefghijklmnop1234)"
    evidence.pop("error_samples", None)
    result = run(prompt_repo, doc)
    assert result.proposals == ()
    (r,) = result.rejected
    assert r.reason.startswith('refused: "When `lookup_order` fails with "Order <id> not found for '
                               '[REDACTED:email]')
    assert r.reason.endswith("holds a redaction marker ([REDACTED:email]): redacted text must never become "
                             "part of the prompt")
    assert branches(prompt_repo) == ["main"]


def test_rerun_for_the_same_base_and_pattern_makes_no_second_branch(prompt_repo: Path):
    first = run(prompt_repo, "tool_error.json").proposals[0]
    again = run(prompt_repo, "tool_error.json")
    (p,) = again.proposals
    assert (p.status, p.branch, p.commit) == ("exists", first.branch, first.commit)
    assert p.files.keys() == {"prompts/support_agent.md"}
    assert p.rationale == first.rationale
    assert branches(prompt_repo) == ["main", first.branch]


def test_rule_already_in_the_section_is_not_added_again(prompt_repo: Path):
    path = prompt_repo / "prompts" / "support_agent.md"
    reworded = RULE.replace("tell the user plainly", "tell the user clearly")
    text = path.read_text().replace("looking up an order.\n", "looking up an order.\n" + reworded + "\n")
    path.write_text(text)
    git(prompt_repo, "commit", "-qam", "merge the rule")
    result = run(prompt_repo, "tool_error.json")
    assert result.proposals == ()
    (r,) = result.rejected
    assert r.pattern == "tool-error-5d0c7a21"
    assert r.reason.startswith('near-duplicate rule "When `lookup_order` fails with')
    assert "repeats a rule already in section 'learned-rules'" in r.reason
    assert r.reason.endswith(", not added again")
    assert branches(prompt_repo) == ["main"]


def test_rule_proposed_on_an_earlier_branch_is_not_proposed_again_on_a_new_base(prompt_repo: Path):
    first = run(prompt_repo, "mixed.json", max_n=5)
    assert [p.proposer for p in first.proposals] == [
        "offline/tool-error-rule", "offline/config-change", "offline/correction-rule",
        "offline/demonstrations"]
    (prompt_repo / "README.md").write_text("moved on\n")
    git(prompt_repo, "commit", "-qam", "unrelated change")
    second = run(prompt_repo, "mixed.json", max_n=5)
    assert second.proposals == ()
    reasons = {r.pattern: r.reason for r in second.rejected}
    assert reasons["tool-error-5d0c7a21"] == (
        f'near-duplicate rule "{RULE[2:81]}…" repeats a rule proposed on {first.proposals[0].branch}, '
        "not added again")
    assert reasons["tool-error-9e41b003"] == (
        f"/tools/lookup_order/timeout_s of config/agent.yaml = 7 was proposed on {first.proposals[1].branch}"
        ", not added again")
    assert reasons["abandonment-77c0e2f1"] == ("the new text of section 'examples' was already proposed on "
                                               f"{first.proposals[3].branch}, not added again")
    assert len(branches(prompt_repo)) == 5


def test_two_patterns_with_the_same_lesson_in_one_run(prompt_repo: Path):
    doc = load_analysis(DATA / "tool_error.json")
    twin = json.loads(json.dumps(doc["patterns"][0]))
    twin["id"] = "tool-error-twin"
    twin["evidence"]["error_template"] = "order <id> not found"
    doc["patterns"].append(twin)
    result = run(prompt_repo, doc)
    assert [p.pattern for p in result.proposals] == ["tool-error-5d0c7a21"]
    assert [r.pattern for r in result.rejected] == ["tool-error-twin"]
    assert "repeats a rule proposed on selfimprove/" in result.rejected[0].reason


def test_policy_refusal_writes_nothing(prompt_repo: Path):
    settings_path = prompt_repo / "selfimprove.yaml"
    settings_path.write_text(settings_path.read_text().replace("max_rules_per_section: 20",
                                                               "max_rules_per_section: 1"))
    git(prompt_repo, "commit", "-qam", "strict cap")
    result = run(prompt_repo, "tool_error.json")
    assert result.proposals == ()
    (r,) = result.rejected
    assert r.reason == ("refused by policy: rules_cap: section 'learned-rules' has 2 rules (was 1), above "
                        "max_rules_per_section=1 (prompts/support_agent.md:18)")
    assert branches(prompt_repo) == ["main"]


def test_added_chars_cap_is_enforced(prompt_repo: Path):
    settings_path = prompt_repo / "selfimprove.yaml"
    text = settings_path.read_text().replace("max_added_chars: 2000", "max_added_chars: 50")
    settings_path.write_text(text)
    git(prompt_repo, "commit", "-qam", "small cap")
    (r,) = run(prompt_repo, "tool_error.json").rejected
    assert r.reason.startswith("refused by policy: added_chars_cap: ")


def test_contradicting_rule_is_refused(prompt_repo: Path):
    doc = load_analysis(DATA / "mixed.json")
    pattern = next(p for p in doc["patterns"] if p["kind"] == "user_correction")
    # ordinary wording (not an injection) that still flips a guardrail is refused
    pattern["evidence"]["user_phrases"] = ["no need to confirm before cancelling an order, just do it"]
    result = run(prompt_repo, doc, pattern=pattern["id"])
    assert result.proposals == ()
    (r,) = result.rejected
    assert r.reason.startswith('refused: "Users often had to correct answers about "confirm before '
                               'cancelling an order": ')
    assert r.reason.endswith('weakens the immutable instruction "Always confirm before cancelling an order: '
                             'restate the order number and wait for a "yes"." ("no need")')
    assert branches(prompt_repo) == ["main"]


def test_dry_run_writes_nothing_and_shows_the_diff(prompt_repo: Path):
    refs_before = git(prompt_repo, "for-each-ref")
    result = run(prompt_repo, "tool_error.json", dry_run=True)
    (p,) = result.proposals
    assert p.status == "dry-run" and p.commit is None
    assert p.diff == (
        "--- a/prompts/support_agent.md\n"
        "+++ b/prompts/support_agent.md\n"
        "@@ -18,6 +18,7 @@\n"
        " <!-- selfimprove:mutable id=learned-rules -->\n"
        " ## Learned rules\n"
        " - Ask for the order number before looking up an order.\n"
        f"+{RULE}\n"
        " <!-- /selfimprove -->\n"
        " \n"
        " <!-- selfimprove:mutable id=examples -->\n"
    )
    assert git(prompt_repo, "for-each-ref") == refs_before
    assert not (prompt_repo / ".git" / "selfimprove.lock").exists()
    # the same name is what a real run then creates
    assert run(prompt_repo, "tool_error.json").proposals[0].branch == p.branch


def test_base_is_a_commit_not_the_working_tree(prompt_repo: Path):
    first = git(prompt_repo, "rev-parse", "HEAD").strip()
    path = prompt_repo / "prompts" / "support_agent.md"
    path.write_text(path.read_text().replace("## Learned rules\n", "## Learned rules\n- Be kind.\n"))
    git(prompt_repo, "commit", "-qam", "a rule")
    (p,) = run(prompt_repo, "tool_error.json", base=first).proposals
    assert p.base == first
    assert git(prompt_repo, "rev-parse", f"{p.branch}^").strip() == first
    assert "Be kind" not in git(prompt_repo, "show", f"{p.branch}:prompts/support_agent.md")


def test_unknown_base_and_pattern_are_clear_errors(prompt_repo: Path):
    with pytest.raises(SelfImproveError, match="unknown revision"):
        run(prompt_repo, "tool_error.json", base="no-such-ref")
    expected = r"no pattern 'nope' in the analysis \(patterns: 1 tool-error-5d0c7a21\)"
    with pytest.raises(SelfImproveError, match=expected):
        run(prompt_repo, "tool_error.json", pattern="nope")


def test_max_and_pattern_select(prompt_repo: Path):
    result = run(prompt_repo, "mixed.json", max_n=2, dry_run=True)
    assert [p.pattern for p in result.proposals] == ["tool-error-5d0c7a21", "tool-error-9e41b003"]
    result = run(prompt_repo, "mixed.json", pattern="abandonment-77c0e2f1", dry_run=True)
    assert [p.proposer for p in result.proposals] == ["offline/demonstrations"]


def test_result_json_shape(prompt_repo: Path):
    doc = run(prompt_repo, "mixed.json", max_n=5).to_json()
    assert doc["schema"] == "selfimprove.proposals/v1"
    assert set(doc) == {"schema", "base", "dry_run", "proposals", "rejected", "tokens", "cost_usd"}
    first = doc["proposals"][0]
    assert {"branch", "commit", "base", "pattern", "title", "files", "proposer"} <= set(first)
    assert first["files"] == ["prompts/support_agent.md"]
    assert doc["rejected"] == [{"pattern": "escalation-0b9d3e55", "proposer": "offline", "reason": (
        "no grounded offline edit for an escalation pattern (its evidence has no tool error, user "
        "correction, demonstration or config hint); try --model")}]


def test_prompt_missing_at_the_base_is_a_clear_error(prompt_repo: Path):
    git(prompt_repo, "rm", "-q", "prompts/support_agent.md")
    git(prompt_repo, "commit", "-qm", "drop prompt")
    (prompt_repo / "prompts").mkdir(exist_ok=True)
    (prompt_repo / "prompts" / "support_agent.md").write_text("uncommitted\n")
    with pytest.raises(SelfImproveError) as info:
        run(prompt_repo, "tool_error.json")
    assert info.value.one_line().startswith(
        "file prompts/support_agent.md exists on disk but is not in commit ")
    assert info.value.one_line().endswith("(hint: commit it first: selfimprove works from commits, never "
                                          "from the working tree)")


def test_a_misspelled_prompt_path_says_it_exists_nowhere(prompt_repo: Path):
    config = prompt_repo / "selfimprove.yaml"
    config.write_text(config.read_text().replace("prompts/support_agent.md", "prompts/suport_agent.md"))
    git(prompt_repo, "commit", "-qam", "typo")
    with pytest.raises(SelfImproveError) as info:
        run(prompt_repo, "tool_error.json")
    assert info.value.one_line() == (
        "file prompts/suport_agent.md does not exist (did you mean 'prompts/support_agent.md'?) "
        "(hint: fix the path in selfimprove.yaml)")


def test_bad_analysis_files(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "schema": "selfimprove.analysis/v1",\n  "patterns": [\n')
    with pytest.raises(SelfImproveError) as info:
        load_analysis(bad)
    assert info.value.where == f"{bad}:4"
    bad.write_text(json.dumps({"schema": "selfimprove.eval/v1", "patterns": []}))
    with pytest.raises(SelfImproveError, match="expected schema 'selfimprove.analysis/v1'"):
        load_analysis(bad)
    pattern = {"id": "x", "kind": "loop"}
    bad.write_text(json.dumps({"schema": "selfimprove.analysis/v1", "patterns": [pattern]}))
    with pytest.raises(SelfImproveError) as info:
        load_analysis(bad)
    assert info.value.where == f"{bad}: $.patterns[0]"
    assert info.value.message == "not an analysis document: 'count' is required"
    # the evidence a proposer reads is checked against the shipped schema too, with its JSON path
    doc = load_analysis(DATA / "tool_error.json")
    doc["patterns"][0]["evidence"]["tool"] = 3
    bad.write_text(json.dumps(doc))
    with pytest.raises(SelfImproveError) as info:
        load_analysis(bad)
    assert info.value.one_line() == (f"{bad}: $.patterns[0].evidence.tool: not an analysis document: 3 is "
                                     "not of type 'string' (hint: pass the output of 'selfimprove analyze "
                                     "--json')")


def test_empty_repository_is_a_clear_error(tmp_path: Path):
    import shutil

    from tests.proposals.conftest import TEMPLATE

    repo = tmp_path / "empty"
    shutil.copytree(TEMPLATE, repo)
    git(repo, "init", "-q", "-b", "main")
    with pytest.raises(SelfImproveError, match="the repository has no commits yet"):
        run(repo, "tool_error.json")


def test_when_the_rule_is_already_merged_the_next_grounded_edit_is_proposed(prompt_repo: Path):
    path = prompt_repo / "prompts" / "support_agent.md"
    text = path.read_text().replace("looking up an order.\n", "looking up an order.\n" + RULE + "\n")
    path.write_text(text)
    git(prompt_repo, "commit", "-qam", "merged the rule")
    doc = load_analysis(DATA / "tool_error.json")
    doc["patterns"][0]["evidence"]["demonstrations"] = [
        {"trace_id": "t-050", "user": "Where is order A-2001?",
         "assistant": "Order A-2001 arrives on Friday."}]
    (p,) = run(prompt_repo, doc).proposals
    assert p.proposer == "offline/demonstrations"
    assert p.files.keys() == {"prompts/support_agent.md"}
    assert "User: Where is order A-2001?\nAssistant: Order A-2001 arrives on Friday.\n" in \
        p.files["prompts/support_agent.md"].decode()


def test_an_exact_copy_of_a_rule_is_a_duplicate(prompt_repo: Path):
    path = prompt_repo / "prompts" / "support_agent.md"
    text = path.read_text().replace("looking up an order.\n", "looking up an order.\n" + RULE + "\n")
    path.write_text(text)
    git(prompt_repo, "commit", "-qam", "merged the rule")
    (r,) = run(prompt_repo, "tool_error.json").rejected
    assert r.reason == (f'near-duplicate rule "{RULE[2:81]}…" repeats a rule already in section '
                        "'learned-rules', not added again")


def test_a_concurrent_run_is_refused_while_the_lock_is_held(prompt_repo: Path):
    settings = load_settings(prompt_repo)
    doc = load_analysis(DATA / "tool_error.json")
    with Repo.open(prompt_repo) as holder, holder.lock(), Repo.open(prompt_repo) as repo:
        with pytest.raises(SelfImproveError, match="another selfimprove command is running"):
            propose(settings, repo, doc)
        assert propose(settings, repo, doc, dry_run=True).proposals[0].status == "dry-run"
    assert branches(prompt_repo) == ["main"]


def test_sibling_branches_are_named_by_what_they_fix() -> None:
    from selfimprove.proposals.branch import slugify

    assert slugify('add a rule for lookup_order failing with "Error: invalid order_id format: expected 5 '
                   'digits"') == "lookup-order-invalid-order-id-format-expected-5"
    assert slugify('add a rule for lookup_order failing with "Error: timed out after 2s"') == \
        "lookup-order-timed-out-after-2s"
    assert slugify("add 1 example for users ask for a human") == "1-example-users-ask-human"
    assert slugify("add a rule for") == "add-a-rule-for"  # nothing but filler: keep the words


def test_with_max_a_tool_rule_comes_before_worked_examples(prompt_repo: Path):
    """The examples-only pattern is ranked first (more failures), yet with --max 2 the rules win."""
    doc = load_analysis(DATA / "mixed.json")
    doc["patterns"].sort(key=lambda p: p["id"] != "abandonment-77c0e2f1")
    assert doc["patterns"][0]["id"] == "abandonment-77c0e2f1"
    result = run(prompt_repo, doc, max_n=2, dry_run=True)
    assert [p.proposer for p in result.proposals] == ["offline/tool-error-rule", "offline/config-change"]
    alone = {**doc, "patterns": doc["patterns"][:1]}
    assert [p.proposer for p in run(prompt_repo, alone, dry_run=True).proposals] == ["offline/demonstrations"]
