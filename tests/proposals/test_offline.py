from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from selfimprove.analysis.records import Evidence, Pattern
from selfimprove.config import load_settings
from selfimprove.gitrepo import Repo
from selfimprove.proposals.model import Candidate, Refusal, Why
from selfimprove.proposals.offline import (
    candidates,
    config_change,
    correction_rule,
    demonstrations,
    tool_error_rule,
)
from selfimprove.proposals.workspace import Workspace, load_workspace
from tests.proposals.conftest import DATA, git

RULES_BEFORE = "## Learned rules\n- Ask for the order number before looking up an order.\n"


def patterns(name: str) -> dict[str, Pattern]:
    doc = json.loads((DATA / name).read_text())
    return {p["id"]: Pattern.from_json(p) for p in doc["patterns"]}


def cannot(reason: str) -> Refusal:
    return Refusal(Why.NO_CANDIDATE, reason)


@pytest.fixture
def ws(prompt_repo: Path) -> Workspace:
    settings = load_settings(prompt_repo)
    with Repo.open(prompt_repo) as repo:
        return load_workspace(settings, repo, repo.resolve("HEAD"))


def test_workspace_reads_the_base_commit_not_the_working_tree(prompt_repo: Path, ws: Workspace):
    (prompt_repo / "prompts" / "support_agent.md").write_text("uncommitted\n")
    assert ws.body("prompts/support_agent.md", "learned-rules") == RULES_BEFORE
    assert ws.rules_target() == ("prompts/support_agent.md", "learned-rules")
    assert ws.examples_target() == ("prompts/support_agent.md", "examples")
    assert ws.mutable_pointers() == [("config/agent.yaml", "/temperature"),
                                     ("config/agent.yaml", "/tools/lookup_order/timeout_s"),
                                     ("config/agent.yaml", "/tools/search/max_results")]


def test_tool_error_rule_names_the_tool_and_the_error(ws: Workspace):
    candidate = tool_error_rule(patterns("tool_error.json")["tool-error-5d0c7a21"], ws)
    assert isinstance(candidate, Candidate)
    assert candidate.proposer == "offline/tool-error-rule"
    assert candidate.title == 'add a rule for lookup_order failing with "Order <id> not found"'
    (edit,) = candidate.edits
    assert (edit.path, edit.section, edit.pointer) == ("prompts/support_agent.md", "learned-rules", None)
    assert edit.before == RULES_BEFORE
    assert edit.after == RULES_BEFORE + (
        '- When `lookup_order` fails with "Order <id> not found", do not repeat the same call: check the '
        "arguments you passed, and if it still fails, tell the user plainly what went wrong.\n"
    )
    assert candidate.rationale.startswith(
        "9 failing traces (75% of failures) hit this error from the `lookup_order` tool.")


def test_tool_error_rule_needs_a_tool_and_an_error(ws: Workspace):
    bare = Pattern.from_json({"id": "x", "kind": "tool_error", "count": 1, "evidence": {"signals": {}}})
    assert tool_error_rule(bare, ws) is None
    samples_only = Pattern.from_json({"id": "x", "kind": "tool_error", "count": 1,
                                      "evidence": {"tool": "search", "error_samples": ["index offline"]}})
    candidate = tool_error_rule(samples_only, ws)
    assert isinstance(candidate, Candidate)
    assert '`search` fails with "index offline"' in candidate.edits[0].after


def test_injected_error_text_is_never_quoted(ws: Workspace):
    reason = tool_error_rule(patterns("injection.json")["tool-error-bad00002"], ws)
    assert reason == cannot("the error text of tool 'search' reads like an instruction to the agent "
                      "(possible prompt injection); it is not quoted into the prompt")


def _order_format_pattern(samples: list[str], calls: dict | None = None) -> Pattern:
    evidence: dict = {"signals": {"tool_error": 9}, "tool": "lookup_order",
                      "error_template": "Error: invalid order_id format: expected <n> digits",
                      "error_samples": samples}
    if calls is not None:
        evidence["call_arguments"] = calls
    return Pattern.from_json({"id": "tool-error-1", "kind": "tool_error", "count": 9, "share": 0.5,
                              "evidence": evidence})


def _added_rule(candidate: object) -> str:
    assert isinstance(candidate, Candidate)
    return candidate.edits[0].after.removeprefix(RULES_BEFORE)


def test_tool_error_rule_quotes_the_concrete_error_when_the_samples_agree(ws: Workspace):
    agreed = _order_format_pattern(["lookup_order: Error: invalid order_id format: expected 5 digits"])
    assert _added_rule(tool_error_rule(agreed, ws)) == (
        '- When `lookup_order` fails with "invalid order_id format: expected 5 digits", do not repeat the '
        "same call: correct the arguments to what the error asks for, and if it still fails, tell the user "
        "plainly what went wrong.\n")
    differ = _order_format_pattern(["lookup_order: Error: invalid order_id format: expected 5 digits",
                                    "lookup_order: Error: invalid order_id format: expected 6 digits"])
    assert '"invalid order_id format: expected <n> digits"' in _added_rule(tool_error_rule(differ, ws))


def test_tool_error_rule_shows_the_argument_shape_that_worked(ws: Workspace):
    samples = ["lookup_order: Error: invalid order_id format: expected 5 digits"]
    calls = {"failing": [{"order_id": "#54822"}, {"order_id": "#61017"}],
             "succeeding": [{"order_id": "86386"}, {"order_id": "72603"}]}
    candidate = tool_error_rule(_order_format_pattern(samples, calls), ws)
    assert isinstance(candidate, Candidate) and candidate.rationale.endswith(
        'The failing calls passed `order_id` like "#54822"; the calls that worked passed it like "86386".')
    assert _added_rule(candidate) == (
        '- When `lookup_order` fails with "invalid order_id format: expected 5 digits", do not repeat the '
        'same call: pass `order_id` the way calls that worked did (e.g. "86386", not "#54822"), and if it '
        "still fails, tell the user plainly what went wrong.\n")
    # no visible difference (or failing calls that disagree among themselves): nothing is claimed
    for failing in ([{"order_id": "92866"}, {"order_id": "98079"}], [{"order_id": "#1"}, {"order_id": "22"}]):
        pattern = _order_format_pattern(samples, {"failing": failing, "succeeding": calls["succeeding"]})
        rule = _added_rule(tool_error_rule(pattern, ws))
        assert "correct the arguments to what the error asks for" in rule and "e.g." not in rule


def _payment_pattern(calls: dict) -> Pattern:
    evidence = {"signals": {"tool_error": 6}, "tool": "pay_order",
                "error_template": "Error: payment amount does not add up to the order total",
                "error_samples": ["pay_order: Error: payment amount does not add up to the order total"],
                "call_arguments": calls}
    return Pattern.from_json({"id": "tool-error-2", "kind": "tool_error", "count": 6, "share": 0.3,
                              "evidence": evidence})


def test_tool_error_rule_states_what_working_calls_did_differently(ws: Workspace):
    """An error that does not say what it wants ("does not add up") gets what the calls that worked did
    differently, where the evidence shows it, not a bare "check the arguments you passed"."""
    missing = {"failing": [{"order_id": "10001", "amount": 120}, {"order_id": "10002", "amount": 80}],
               "succeeding": [{"order_id": "10003", "amount": 95, "gift_card_id": "gc_1"},
                              {"order_id": "10004", "amount": 40, "gift_card_id": "gc_7"}]}
    rule = _added_rule(tool_error_rule(_payment_pattern(missing), ws))
    assert rule == ('- When `pay_order` fails with "payment amount does not add up to the order total", do '
                    "not repeat the same call: also pass `gift_card_id`, as the calls that worked did, and "
                    "if it still fails, tell the user plainly what went wrong.\n")
    agreed = {"failing": [{"order_id": "10001", "currency": "usd"}, {"order_id": "10002", "currency": "eur"}],
              "succeeding": [{"order_id": "10003", "currency": "USD"},
                             {"order_id": "10004", "currency": "USD"}]}
    assert 'pass `currency` as "USD", as every call that worked did' in _added_rule(
        tool_error_rule(_payment_pattern(agreed), ws))
    # values that differ call by call (ids, amounts) are no difference: nothing is claimed
    alike = {"failing": [{"order_id": "10001", "amount": 120}, {"order_id": "10002", "amount": 80}],
             "succeeding": [{"order_id": "10003", "amount": 95}]}
    assert "check the arguments you passed" in _added_rule(tool_error_rule(_payment_pattern(alike), ws))


def test_correction_rule_quotes_the_most_typical_correction(ws: Workspace):
    candidate = correction_rule(patterns("mixed.json")["user-correction-41aa90cc"], ws)
    assert isinstance(candidate, Candidate)
    assert candidate.proposer == "offline/correction-rule"
    # "no I meant the blue one" is another misunderstanding: neither quoted nor part of the topic
    assert candidate.edits[0].after == RULES_BEFORE + (
        '- Users often had to correct answers about "order from last week": "No, I meant the order from '
        "last week, not today\" and \"That's not what I asked, I meant the order from last week\". Check "
        "answers on this point against these corrections before replying.\n"
    )
    assert candidate.title == 'add a rule from user corrections about "order from last week"'
    assert '3 of the 4 corrections in the evidence are about "order from last week"' in candidate.rationale


def test_correction_rule_refuses_injected_corrections(ws: Workspace):
    reason = correction_rule(patterns("injection.json")["user-correction-bad00001"], ws)
    assert reason == cannot("every user correction of this pattern reads like an instruction about the "
                            "prompt (possible prompt injection); none is quoted into the prompt")


def test_demonstrations_go_into_the_examples_section(ws: Workspace):
    candidate = demonstrations(patterns("mixed.json")["abandonment-77c0e2f1"], ws)
    assert isinstance(candidate, Candidate)
    (edit,) = candidate.edits
    assert edit.section == "examples"
    assert edit.before == "## Examples\n"
    assert edit.after == (
        "## Examples\n\n"
        "User: Where is my parcel? Order A-2001.\n"
        "Assistant: I looked up order A-2001: it left our warehouse yesterday and should arrive on "
        "Friday.\n\n"
        "User: My delivery is late, order B-310.\n"
        "Assistant: Order B-310 is delayed by one day at the carrier; it should arrive tomorrow. "
        "I am sorry for the wait.\n"
    )
    assert candidate.title == "add 2 examples for users give up on delivery questions"
    assert "t-050, t-052" in candidate.rationale


def test_demonstrations_already_present_are_skipped(ws: Workspace):
    pattern = patterns("mixed.json")["abandonment-77c0e2f1"]
    (edit,) = demonstrations(pattern, ws).edits  # type: ignore[union-attr]
    prompts = dict(ws.prompts)
    doc = prompts["prompts/support_agent.md"]
    prompts["prompts/support_agent.md"] = doc.with_body("examples", edit.after)
    again = dataclasses.replace(ws, prompts=prompts)
    assert demonstrations(pattern, again) == cannot(
        "no demonstration of this pattern can be used (already in the examples section, too long, or reads "
        "like an instruction)"
    )


def test_demonstrations_need_an_examples_section(prompt_repo: Path):
    path = prompt_repo / "prompts" / "support_agent.md"
    path.write_text(path.read_text().replace("id=examples", "id=notes"))
    git(prompt_repo, "commit", "-qam", "rename examples")
    settings = load_settings(prompt_repo)
    with Repo.open(prompt_repo) as repo:
        ws = load_workspace(settings, repo, repo.resolve("HEAD"))
    reason = demonstrations(patterns("mixed.json")["abandonment-77c0e2f1"], ws)
    assert reason == cannot("the evidence has demonstrations but no prompt declares a mutable examples "
                      "section (an id such as 'examples' or 'few-shot')")
    # a rule goes to the rules section, not to the first mutable one
    assert ws.rules_target() == ("prompts/support_agent.md", "learned-rules")


def test_rule_goes_to_the_first_mutable_section_without_a_rules_section(prompt_repo: Path):
    path = prompt_repo / "prompts" / "support_agent.md"
    path.write_text(path.read_text().replace("id=learned-rules", "id=tips"))
    git(prompt_repo, "commit", "-qam", "rename rules")
    settings = load_settings(prompt_repo)
    with Repo.open(prompt_repo) as repo:
        ws = load_workspace(settings, repo, repo.resolve("HEAD"))
    assert ws.rules_target() == ("prompts/support_agent.md", "tips")


def test_config_change_raises_a_timeout_within_bounds(ws: Workspace):
    candidate = config_change(patterns("mixed.json")["tool-error-9e41b003"], ws)
    assert isinstance(candidate, Candidate)
    (edit,) = candidate.edits
    assert (edit.path, edit.section, edit.pointer, edit.before, edit.after) == (
        "config/agent.yaml", None, "/tools/lookup_order/timeout_s", "5", "7")
    assert candidate.title == "raise timeout_s of config/agent.yaml from 5 to 7"
    files = ws.apply(candidate.edits)
    assert files["config/agent.yaml"].decode() == (ws.before["config/agent.yaml"] or b"").decode().replace(
        "timeout_s: 5", "timeout_s: 7")


def test_config_change_stops_at_the_schema_maximum(prompt_repo: Path):
    path = prompt_repo / "config" / "agent.yaml"
    path.write_text(path.read_text().replace("timeout_s: 5", "timeout_s: 25"))
    git(prompt_repo, "commit", "-qam", "longer timeout")
    settings = load_settings(prompt_repo)
    with Repo.open(prompt_repo) as repo:
        ws = load_workspace(settings, repo, repo.resolve("HEAD"))
    pattern = patterns("mixed.json")["tool-error-9e41b003"]
    assert config_change(pattern, ws).edits[0].after == "30"  # type: ignore[union-attr]
    path.write_text(path.read_text().replace("timeout_s: 25", "timeout_s: 30"))
    git(prompt_repo, "commit", "-qam", "max timeout")
    with Repo.open(prompt_repo) as repo:
        ws = load_workspace(settings, repo, repo.resolve("HEAD"))
    assert config_change(pattern, ws) == cannot(
        "/tools/lookup_order/timeout_s in config/agent.yaml cannot be raised from 30 within its schema's "
        "maximum and the policy's bound (x1.5)")
    # the proposer chain then falls back to a rule naming the timeout
    candidate = first_candidate(pattern, ws)
    assert isinstance(candidate, Candidate) and candidate.proposer == "offline/tool-error-rule"


def test_config_hint_without_a_matching_pointer_does_not_apply(ws: Workspace):
    pattern = Pattern.from_json({"id": "x", "kind": "tool_error", "count": 2,
                                 "evidence": {"config_hint": "rate_limit"}})
    assert config_change(pattern, ws) is None


def test_no_grounded_edit_is_a_clear_reason(ws: Workspace):
    assert candidates(patterns("mixed.json")["escalation-0b9d3e55"], ws) == [cannot(
        "no grounded offline edit for an escalation pattern (its evidence has no tool error, user "
        "correction, demonstration or config hint); try --model")]


def test_config_hint_for_another_tool_does_not_touch_this_tools_setting(ws: Workspace):
    pattern = Pattern.from_json({"id": "x", "kind": "tool_error", "count": 2, "evidence": {
        "config_hint": "timeout", "tool": "search", "error_template": "timed out"}})
    assert config_change(pattern, ws) is None
    pattern = dataclasses.replace(pattern, evidence=Evidence(config_hint="max_results", tool="search"))
    candidate = config_change(pattern, ws)
    assert isinstance(candidate, Candidate)
    assert (candidate.edits[0].pointer, candidate.edits[0].after) == ("/tools/search/max_results", "7")


def test_escalation_phrases_are_not_corrections_and_cut_demos_are_skipped(ws: Workspace):
    pattern = Pattern.from_json({"id": "escalation-1", "kind": "escalation", "count": 4,
               "evidence": {"signals": {"escalation": 4, "user_correction": 1},
                            "user_phrases": ["I really need this sooner, can you escalate?"],
                            "demonstrations": [
                                {"trace_id": "t-1", "user": "Can I talk to a person?",
                                 "assistant": "Of course: I have handed you over to a colleague, who will…"},
                                {"trace_id": "t-2", "user": "I want a human.",
                                 "assistant": "I have handed you over; they reply within an hour."}]}})
    assert correction_rule(pattern, ws) is None
    candidate = first_candidate(pattern, ws)
    assert isinstance(candidate, Candidate) and candidate.proposer == "offline/demonstrations"
    assert candidate.edits[0].after == ("## Examples\n\nUser: I want a human.\n"
                                        "Assistant: I have handed you over; they reply within an hour.\n")


def first_candidate(pattern: Pattern, ws: Workspace) -> Candidate | None:
    """The candidate the offline proposers prefer for `pattern`, if they make one."""
    return next((c for c in candidates(pattern, ws) if isinstance(c, Candidate)), None)
