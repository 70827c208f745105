from __future__ import annotations

import hashlib
import json
from pathlib import Path

from selfimprove.analysis.collect import collect
from selfimprove.analysis.patterns import (
    config_hint,
    demonstration_turns,
    demonstrations,
    exchange,
    group,
    pleasantry,
)
from selfimprove.analysis.pipeline import score
from selfimprove.analysis.records import Demo
from selfimprove.traces.model import Feedback, view_of

from .helpers import assistant, call, tool, trace, user

DATA = Path(__file__).resolve().parents[1] / "data" / "analysis"
DOWN = (Feedback("thumbs", -1),)
UP = (Feedback("thumbs", 1),)


def patterns_of(traces):  # type: ignore[no-untyped-def]
    col = collect(traces)
    outcomes, _, failing = score(col)
    return group(col, outcomes, failing)


def failing_lookup(n: int, error: str, tool_name: str = "lookup") -> object:
    return trace(f"f{n}", user(f"where is order {n}?"), assistant("", call(tool_name, {"id": n}, f"c{n}")),
                 tool(error, cid=f"c{n}", name=tool_name), assistant("sorry"), feedback=DOWN)


def test_golden_grouping_of_the_support_fixture(run) -> None:  # type: ignore[no-untyped-def]
    result = run("analyze", "support.jsonl", "--json", cwd=DATA)
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    golden = json.loads((DATA / "support.golden.json").read_text(encoding="utf-8"))
    assert {"traces": doc["traces"], "patterns": doc["patterns"], "versions": doc["versions"]} == golden


def test_error_templates_merge_ids_and_numbers_but_not_tools_or_different_errors() -> None:
    traces = [failing_lookup(n, f"Error: order #A{n}{n}9 not found (took {n}ms)") for n in range(1, 5)]
    traces.append(failing_lookup(5, "Error: permission denied for user 55", "lookup"))
    traces.append(failing_lookup(6, "Error: order #A669 not found (took 6ms)", "fetch"))
    pats = patterns_of(traces)
    assert [(p.kind, p.evidence.to_json().get("tool"), p.count, p.trace_ids) for p in pats] == [
        ("tool_error", "lookup", 4, ("f1", "f2", "f3", "f4")),
        ("tool_error", "fetch", 1, ("f6",)),
        ("tool_error", "lookup", 1, ("f5",)),
    ]
    assert pats[0].evidence.to_json()["error_template"] == "Error: order <id> not found (took <n>ms)"
    assert pats[0].share == 4 / 6
    assert len(pats[0].examples) == 3 and len(pats[0].evidence.to_json()["error_samples"]) == 3


def test_similar_templates_merge_by_text_similarity() -> None:
    traces = [failing_lookup(1, "Error: the upstream inventory service returned an invalid response"),
              failing_lookup(2, "Error: the upstream inventory service returned an invalid response body"),
              failing_lookup(3, "Error: the upstream inventory service returned an invalid response body")]
    pats = patterns_of(traces)
    assert [(p.count, p.evidence.to_json()["error_template"]) for p in pats] == [
        (3, "Error: the upstream inventory service returned an invalid response body")]


def test_ranking_is_by_count_then_kind_and_stable_under_reruns() -> None:
    traces = [
        trace("c1", user("a"), assistant("red"), user("No, I said blue"), assistant("ok"), feedback=DOWN),
        trace("c2", user("b"), assistant("red"), user("no, i said blue!!"), assistant("ok"), feedback=DOWN),
        failing_lookup(3, "Error: timed out after 30s"),
        failing_lookup(4, "Error: timed out after 31s"),
    ]
    first = [p.to_json() for p in patterns_of(traces)]
    assert [(p["kind"], p["count"]) for p in first] == [("tool_error", 2), ("user_correction", 2)]
    assert first[0]["evidence"]["config_hint"] == "timeout"
    assert first[1]["evidence"]["user_phrases"] == ["No, I said blue", "no, i said blue!!"]
    assert first == [p.to_json() for p in patterns_of(traces)]


def test_labelled_failures_without_a_clear_signal_group_by_last_action() -> None:
    traces = [trace(f"x{n}", user("refund please"), assistant("", call("refund", {"n": n})),
                    tool("ok", name="refund"), assistant("done"), feedback=(Feedback("reward", 0.0),))
              for n in range(2)]
    traces.append(trace("ok", user("refund please now"), assistant("", call("refund", {"n": 9})),
                        tool("ok", name="refund"), assistant("Refunded, anything else?"), feedback=UP))
    (pat,) = patterns_of(traces)
    assert (pat.kind, pat.count, pat.title) == ("explicit_failure", 2,
                                                "labelled failures where the agent's last action was refund")
    assert pat.evidence.to_json()["demonstrations"] == [
        {"trace_id": "ok", "user": "refund please now",
         "assistant": 'refund({"n": 9}) \u2192 Refunded, anything else?'}]


def test_config_hints() -> None:
    assert config_hint("tool_error", ["Error: request timed out after <n>s"]) == "timeout"
    assert config_hint("tool_error", ["429 Too Many Requests"]) == "rate_limit"
    assert config_hint("tool_error", ["query returned too many results (limit <n>)"]) == "max_results"
    assert config_hint("tool_error", ["value exceeds page_size_limit"]) == "page_size_limit"
    assert config_hint("max_turns", []) == "max_turns"
    assert config_hint("tool_error", ["user not found"]) is None


def test_demonstrations_need_the_same_intent_and_the_tool_and_skip_courtesies() -> None:
    pool = [Demo("a", "what is the weather", "sunny", frozenset()),
            Demo("b", "where is my order 7", "It is on its way and arrives on Friday.", frozenset({"track"})),
            Demo("c", "has my order shipped yet", "Yes, it shipped yesterday.", frozenset()),
            Demo("d", "where is my order 8", "Happy to help. Have a great day!", frozenset({"track"})),
            Demo("e", "where is my parcel", "It arrives on Monday.", frozenset({"track"}))]
    assert [d["trace_id"] for d in demonstrations(pool, "track", ["where is my order 99"])] == ["b"]
    assert [d["trace_id"] for d in demonstrations(pool, None, ["where is my order 99"])] == ["b", "c"]
    assert demonstrations(pool, None, ["can I speak to a real person"]) == []
    assert demonstrations(pool, None, []) == []


def test_a_demonstration_is_a_request_and_the_answer_to_it() -> None:
    t = trace("ok", user("hi"), assistant("Hello! How can I help you today?"), user("Where is my order 12?"),
              assistant("", call("track", {"id": 12})), tool("shipped", name="track"),
              assistant("Order 12 shipped and arrives on Friday."), user("thanks"),
              assistant("Happy to help. Have a great day!"), feedback=UP)
    assert demonstration_turns(view_of(t)) == ("Where is my order 12?",
                                               "Order 12 shipped and arrives on Friday.")
    doubted = trace("d", user("Can I return my boots?"), assistant("Yes, any time."),
                    user("Are you sure? The website says 30 days."), assistant("You're right, 30 days."))
    assert demonstration_turns(view_of(doubted)) is None
    closing = trace("c", user("thanks a lot"), assistant("You're welcome! Anything else I can help with?"))
    assert demonstration_turns(view_of(closing)) is None
    assert pleasantry("You're welcome! Anything else I can help with?")
    assert pleasantry("Happy to help. Have a great day!")
    assert not pleasantry("Happy to help: your refund is on its way.")


def test_a_corrected_success_is_no_demonstration() -> None:
    traces = [trace("f1", user("Can I return my boots?"), assistant("Yes, any time."),
                    user("No, your refund policy says 30 days from delivery."), assistant("Sorry."),
                    feedback=DOWN),
              trace("s1", user("Can I return my scarf?"), assistant("Yes, any time."),
                    user("No, the refund policy says 30 days from delivery."), assistant("Right, 30 days."),
                    feedback=UP),
              trace("s2", user("Can I still return my jacket?"),
                    assistant("Yes, within our 30-day refund window."), feedback=UP)]
    (pat,) = patterns_of(traces)
    assert pat.evidence.to_json()["demonstrations"] == [
        {"trace_id": "s2", "user": "Can I still return my jacket?",
         "assistant": "Yes, within our 30-day refund window."}]


def correction_traces() -> list[object]:
    refund = [trace(f"r{n}", user("Can I return my boots?"), assistant("Yes, any time."),
                    user("No, your refund policy says 30 days from delivery."), assistant("Sorry."),
                    feedback=DOWN) for n in (1, 2)]
    refund.append(trace("r3", user("Can I return a scarf?"), assistant("Sure, there is no time limit."),
                        user("That's not right, your website says returns are only accepted within 30 days "
                             "of delivery."), assistant("Sorry."), feedback=DOWN))
    address = [trace(f"a{n}", user(f"Please change my address for order 1234{n}."),
                     assistant("What is the new billing address?"),
                     user("No, I meant the shipping address, not billing."), assistant("Sorry."),
                     feedback=DOWN) for n in (1, 2)]
    human = trace("h1", user("Hi, my parcel is late."), assistant("I can help! What is the issue?"),
                  user("No. I want to talk to a human."), assistant("What do you need?"), feedback=DOWN)
    failed = trace("t1", user("where is order #12345?"),
                   assistant("", call("lookup", {"id": "#12345"}, "c1")),
                   tool("Error: invalid id: expected 5 digits", cid="c1", name="lookup"),
                   assistant("Sorry, I could not find it."), user("#12345. Same as I said."),
                   assistant("Sorry."), feedback=DOWN)
    return [*refund, *address, human, failed]


CORRECT = "users correct the agent: "


def test_corrections_group_by_what_they_are_about_not_by_their_cue_word() -> None:
    pats = patterns_of(correction_traces())
    assert [(p.kind, p.count, p.title, p.trace_ids) for p in pats] == [
        ("user_correction", 3, f"{CORRECT}\u201cYour refund policy says 30 days from delivery\u201d",
         ("r1", "r2", "r3")),
        ("user_correction", 2, f"{CORRECT}\u201cI meant the shipping address, not billing\u201d",
         ("a1", "a2")),
        ("tool_error", 1, "lookup fails: Error: invalid id: expected 5 digits", ("t1",)),
        ("escalation", 1, "users ask for a human", ("h1",)),
    ]
    assert pats[0].evidence.to_json()["user_phrases"] == [
        "No, your refund policy says 30 days from delivery.",
        "That's not right, your website says returns are only accepted within 30 days of delivery."]
    assert pats[0].id == "user-correction-" + hashlib.sha1(b"user_correction|30 day delivery policy refund"
                                                           ).hexdigest()[:8]
    # stable: the same traces in another order give the same patterns
    again = patterns_of(list(reversed(correction_traces())))
    assert sorted((p.id, p.title, p.count) for p in again) == sorted((p.id, p.title, p.count) for p in pats)


def test_the_title_quotes_the_concrete_error_when_every_failure_agrees() -> None:
    same = [failing_lookup(n, "Error: invalid order_id format: expected 5 digits") for n in range(1, 4)]
    (pat,) = patterns_of(same)
    assert pat.title == "lookup fails: Error: invalid order_id format: expected 5 digits"
    assert pat.evidence.to_json()["error_template"] == "Error: invalid order_id format: expected <n> digits"
    assert pat.evidence.error_samples == ("lookup: Error: invalid order_id format: expected 5 digits",)
    varied = [failing_lookup(n, f"Error: invalid order_id format: expected {n + 4} digits")
              for n in range(1, 3)]
    (pat,) = patterns_of(varied)
    assert pat.title == "lookup fails: Error: invalid order_id format: expected <n> digits"
    assert len(pat.evidence.to_json()["error_samples"]) == 2


def test_tool_errors_carry_the_arguments_of_failing_and_of_working_calls() -> None:
    def lookup(n: int, order: str, error: str | None) -> object:
        result = tool(error or f"order {order}: shipped", cid=f"c{n}", name="lookup")
        return trace(f"t{n}", user(f"where is order {order}?"),
                     assistant("", call("lookup", {"order_id": order, "verbose": True}, f"c{n}")), result,
                     assistant(f"Order {order} shipped on Monday." if error is None else "Sorry."),
                     feedback=UP if error is None else DOWN)

    error = "Error: expected 5 digits"
    traces = [lookup(1, "#12345", error), lookup(2, "#23456", error), lookup(3, "34567", None),
              lookup(4, "45678", None)]
    (pat,) = patterns_of(traces)
    assert pat.evidence.to_json()["call_arguments"] == {
        "failing": [{"order_id": "#12345"}, {"order_id": "#23456"}],
        "succeeding": [{"order_id": "34567"}, {"order_id": "45678"}]}


CORRECTION = "No, your policy says refunds for purchase returns are accepted within 30 days."


def test_a_failing_exchange_holds_the_request_the_answer_and_what_the_user_said_next() -> None:
    t = trace("x", user("Can I return a coat I bought 45 days ago?"), assistant("Yes, any time."),
              user(CORRECTION),
              assistant("Sorry."), user("Please get it right next time."))
    # abandonment at the last turn: the exchange reaches back to the request and the correction
    assert json.loads(exchange(view_of(t), 4) or "") == [
        {"role": "user", "text": "Can I return a coat I bought 45 days ago?"},
        {"role": "assistant", "text": "Yes, any time."},
        {"role": "user", "text": CORRECTION},
        {"role": "assistant", "text": "Sorry."},
        {"role": "user", "text": "Please get it right next time."}]
    # a tool call and its result, up to the user's reaction, from a signal on the call
    lookup = call("lookup_order", {"order_id": "#54822"}, "c1")
    t = trace("y", user("Where is #54822?"), assistant("", lookup),
              tool("Error: invalid order_id format", cid="c1", name="lookup_order", is_error=True),
              assistant("I couldn't find it."), user("It's definitely #54822."), assistant("Let me retry."))
    assert json.loads(exchange(view_of(t), 1) or "") == [
        {"role": "user", "text": "Where is #54822?"},
        {"role": "assistant", "text": '[calls lookup_order({"order_id": "#54822"})]'},
        {"role": "tool", "text": "Error: invalid order_id format"},
        {"role": "assistant", "text": "I couldn't find it."},
        {"role": "user", "text": "It's definitely #54822."}]
    # a signal on the opening request: the answer that followed it
    t = trace("z", user("Can I speak to a real person?"), assistant("Connecting you now."))
    assert json.loads(exchange(view_of(t), 0) or "") == [
        {"role": "user", "text": "Can I speak to a real person?"},
        {"role": "assistant", "text": "Connecting you now."}]
    assert exchange(view_of(trace("w", user("hello"))), 0) is None  # nothing was exchanged
