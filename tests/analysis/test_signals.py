from __future__ import annotations

import pytest

from selfimprove.analysis.signals import REGISTRY, detect, explicit, normalize, verdict
from selfimprove.traces.model import Feedback, Message

from .helpers import assistant, call, tool, trace, user


def names(t):  # type: ignore[no-untyped-def]
    return [(s.name, s.message_index) for s in detect(t)]


@pytest.mark.parametrize(("raw", "template"), [
    ("Error: timeout after 30s contacting orders-db (request 8f3a9c2e1b)",
     "Error: timeout after <n>s contacting orders-db (request <id>)"),
    ("Error: new item 9127591879 not found or available", "Error: new item <n> not found or available"),
    ("KeyError: 'order_id' at /srv/app/x.py line 12", "KeyError: <str> at <path> line <n>"),
    ("order #W2378156 for user_42 at https://x.io/a?b=1 from bob@x.com",
     "order <id> for <id> at <url> from <email>"),
    ("Traceback (most recent call last):\n  File \"a.py\", line 3\nValueError: bad id 77",
     "ValueError: bad id <n>"),
    ("id 123e4567-e89b-12d3-a456-426614174000 failed", "id <id> failed"),
])
def test_normalize_replaces_variable_parts(raw: str, template: str) -> None:
    assert normalize(raw) == template


def test_registry_is_explicit_and_ordered() -> None:
    assert list(REGISTRY) == ["tool_error", "user_correction", "rephrase", "escalation", "abandonment",
                              "loop", "refusal", "max_turns", "unfinished"]


def test_tool_error_from_text_and_flag_with_tool_name_from_call_id() -> None:
    t = trace("a", user("hi"), assistant("", call("lookup", {"id": 1}, "c1")),
              tool("Error: user not found", cid="c1"), assistant("", call("ship", {}, "c2")),
              tool("nope", cid="c2", is_error=True), assistant("ok"))
    found = [s for s in detect(t) if s.name == "tool_error"]
    assert [(s.detail, s.message_index, s.key) for s in found] == [
        ("lookup: Error: user not found", 2, "tool_error|lookup|Error: user not found"),
        ("ship: nope", 4, "tool_error|ship|nope"),
    ]


def test_tool_results_that_mention_errors_in_passing_are_not_errors() -> None:
    t = trace("a", user("hi"), assistant("", call("search", {}, "c1")),
              tool('{"items": [{"name": "error-proof mug"}]}', cid="c1", name="search"), assistant("Here."))
    assert names(t) == []


def test_user_correction_needs_an_agent_turn_first_and_skips_polite_closings() -> None:
    t = trace("a", user("No, I want the red one"), assistant("Here is blue."),
              user("No, I said red!"), assistant("Done."), user("No, that's all, thanks."))
    found = [s for s in detect(t) if s.name == "user_correction"]
    assert [(s.message_index, s.key) for s in found] == [(2, "user_correction|no, i said")]


def test_rephrase_escalation_loop_refusal() -> None:
    t = trace(
        "a",
        user("Can you cancel my order 123 please"), assistant("Which order?"),
        user("can you cancel my order 123, please?"),
        assistant("", call("find", {"q": "x"})), tool("[]", name="find"),
        assistant("", call("find", {"q": "x"})), tool("[]", name="find"),
        assistant("", call("find", {"q": "x"})), tool("[]", name="find"),
        assistant("I'm sorry, but I can't help with that request."),
        user("Then let me speak to a human."),
    )
    assert names(t) == [("rephrase", 2), ("escalation", 10), ("abandonment", 10), ("loop", 3), ("refusal", 9)]


def test_abandonment_on_give_up_and_on_unanswered_turn_but_not_on_closing() -> None:
    gave_up = trace("a", user("help"), assistant("?"), user("forget it."))
    unanswered = trace("b", user("help"), assistant("?"), user("my order is late"))
    closing = trace("c", user("help"), assistant("done"), user("great, thanks ###STOP###"))
    assert [s.key for s in detect(gave_up)] == ["abandonment|gave up"]
    assert [s.key for s in detect(unanswered)] == ["abandonment|unanswered"]
    assert detect(closing) == []


def test_max_turns_from_metadata_and_from_run_error() -> None:
    a = trace("a", user("x"), assistant("y"), metadata={"finish_reason": "length"})
    b = trace("b", user("x"), feedback=(Feedback("error", "Max turns (10) exceeded"),))
    c = trace("c", user("x"), assistant("Maximum number of iterations reached."))
    assert [s.key for s in detect(a)] == ["max_turns|length"]
    assert [s.key for s in detect(b)] == ["max_turns|run limit"]
    assert [s.key for s in detect(c)] == ["max_turns|limit message"]


@pytest.mark.parametrize(("fb", "failed"), [
    (Feedback("reward", 0.0), True), (Feedback("reward", 1.0), False), (Feedback("reward", 0.5), True),
    (Feedback("score", 0.2), True), (Feedback("score", 0.9), False),
    (Feedback("score", 0.9, passed=False), True),
    (Feedback("success", False), True), (Feedback("success", True), False),
    (Feedback("thumbs", -1), True), (Feedback("thumbs", 1), False),
    (Feedback("status", "error"), True), (Feedback("status", "ok"), None),
    (Feedback("label", "I"), True), (Feedback("label", "C"), False), (Feedback("label", "meh"), None),
    (Feedback("label", "meh", passed=True), False),
    (Feedback("error", "boom"), True),
])
def test_verdict_of_each_feedback_kind(fb: Feedback, failed: bool | None) -> None:
    assert verdict(fb) is failed


def test_explicit_signals_name_failures_successes_and_run_errors() -> None:
    t = trace("a", feedback=(Feedback("reward", 0.0, name="tau"), Feedback("error", "Timeout: 30s"),
                             Feedback("thumbs", 1)))
    assert [(s.name, s.key) for s in explicit(t)] == [
        ("explicit_failure", "explicit_failure|tau"),
        ("run_error", "run_error|Timeout: <n>s"),
        ("explicit_success", ""),
    ]


@pytest.mark.parametrize(("content", "is_error"), [
    ("Error: user not found", True), ("  error: x", True), ("Traceback (most recent call last): ...", True),
    ('{"error": "boom"}', True), ('{"error": null, "ok": 1}', False), ('{"error":  {}}', False),
    ("KeyError: 'a'", True), ("HTTP status 503", True), ('{"status": 404}', True),
    ('{"status": "delivered"}', False), ("request timed out", True), ("bash: foo: command not found", True),
    ("all good", False), ('{"items": [{"name": "error-proof mug"}]}', False),
    # the OpenAI Agents SDK's default output for a tool that raised
    ("An error occurred while running the tool. Please try again. Error: order 7 not found", True),
])
def test_what_counts_as_a_tool_error(content: str, is_error: bool) -> None:
    from selfimprove.analysis.signals import looks_like_error
    from selfimprove.traces.model import Message

    assert looks_like_error(Message("tool", content)) is is_error


def test_a_failing_tool_in_plain_words_is_an_error() -> None:
    from selfimprove.analysis.signals import looks_like_error
    from selfimprove.traces.model import Message

    # provider-native/openai_chat_agno_failing_tool.json in the shared corpus
    assert looks_like_error(Message("tool", "Search service unavailable for: Python tutorials"))


def test_a_refusal_the_user_accepts_is_not_one_the_user_fights() -> None:
    accepted = trace("a", user("Refund to PayPal please"),
                     assistant("Unfortunately, I cannot refund to PayPal; it goes back to your card."),
                     user("Okay, the card is fine then."), assistant("Done."))
    fought = trace("b", user("Refund to PayPal please"),
                   assistant("Unfortunately, I cannot refund to PayPal; it goes back to your card."),
                   user("That's not what I asked for, this is ridiculous."), assistant("Sorry."))
    last_word = trace("c", user("Refund to PayPal please"),
                      assistant("Unfortunately, I cannot refund to PayPal."))
    assert [s.name for s in detect(accepted)] == ["accepted_refusal"]
    assert ("refusal", 1) in names(fought)
    assert "accepted_refusal" not in [n for n, _ in names(fought)]
    assert [s.name for s in detect(last_word)] == ["refusal"]


def test_a_demanded_human_is_an_escalation_not_a_correction_and_a_policy_transfer_is_a_handoff() -> None:
    demanded = trace("a", user("Refund order 7"),
                     assistant("", call("issue_refund", {"amount": "full"}, "c1")),
                     tool("Error: ValidationError: amount must be a number in USD, got 'full'", cid="c1"),
                     assistant("I'm sorry, something went wrong."),
                     user("That's not helpful. I want a human."))
    policy = trace("b", user("My flight was cancelled, rebook me"),
                   assistant("", call("transfer_to_human_agents", {"summary": "rebooking"}, "c1")),
                   tool("Transfer successful", cid="c1"), assistant("A colleague will take over."))
    found = detect(demanded)
    assert [(s.name, s.key) for s in found if s.name in ("escalation", "user_correction", "handoff")] == [
        ("escalation", "escalation|user request")]
    assert [(s.name, s.key) for s in detect(policy)] == [("handoff", "escalation|transfer_to_human_agents")]
    thanked = trace("c", *policy.messages, user("Thanks, a human agent is what I needed."))
    assert [s.name for s in detect(thanked)] == ["handoff"]  # asked for after the transfer: not demanded


def test_unfinished_runs_end_in_a_crash_or_on_a_helper_agent() -> None:
    # a log of one request ends on a tool result: not a sign of anything
    on_tool = trace("a", user("x"), assistant("", call("search", {}, "c1")), tool("[]", cid="c1"))
    crash = trace("b", user("x"),
                  assistant("Working.\nTraceback (most recent call last):\n  File ...\nKeyError: 1"))
    team = trace("c", user("find it"), Message("Orchestrator (thought)", "plan", name="Orchestrator"),
                 Message("WebSurfer", "I clicked 'Search'.", name="WebSurfer"))
    wrapped = trace("d", user("find it"), Message("Orchestrator (thought)", "plan", name="Orchestrator"),
                    Message("WebSurfer", "I clicked 'Search'.", name="WebSurfer"),
                    Message("Orchestrator (final)", "FINAL ANSWER: 42", name="Orchestrator"))
    assert detect(on_tool) == []
    assert [s.key for s in detect(crash)] == ["unfinished|crash"]
    assert [s.key for s in detect(team)] == ["unfinished|WebSurfer"]
    assert detect(wrapped) == []


def test_a_limit_announced_before_a_log_tail_is_found() -> None:
    t = trace("a", user("x"), assistant("Max rounds (30) reached.\n" + "warning: model mismatch\n" * 60))
    assert [s.key for s in detect(t)] == ["max_turns|limit message"]
