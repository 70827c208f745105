from __future__ import annotations

import json
from pathlib import Path

from selfimprove.analysis.patterns import config_hint, demonstrations, group
from selfimprove.analysis.pipeline import Demo, collect, score
from selfimprove.traces.model import Feedback

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
    assert [(p.kind, p.evidence.get("tool"), p.count, p.trace_ids) for p in pats] == [
        ("tool_error", "lookup", 4, ("f1", "f2", "f3", "f4")),
        ("tool_error", "fetch", 1, ("f6",)),
        ("tool_error", "lookup", 1, ("f5",)),
    ]
    assert pats[0].evidence["error_template"] == "Error: order <id> not found (took <n>ms)"
    assert pats[0].share == 4 / 6
    assert len(pats[0].examples) == 3 and len(pats[0].evidence["error_samples"]) == 3


def test_similar_templates_merge_by_text_similarity() -> None:
    traces = [failing_lookup(1, "Error: the upstream inventory service returned an invalid response"),
              failing_lookup(2, "Error: the upstream inventory service returned an invalid response body"),
              failing_lookup(3, "Error: the upstream inventory service returned an invalid response body")]
    pats = patterns_of(traces)
    assert [(p.count, p.evidence["error_template"]) for p in pats] == [
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
    assert pat.evidence["demonstrations"] == [
        {"trace_id": "ok", "user": "refund please now", "assistant": "Refunded, anything else?"}]


def test_config_hints() -> None:
    assert config_hint("tool_error", ["Error: request timed out after <n>s"]) == "timeout"
    assert config_hint("tool_error", ["429 Too Many Requests"]) == "rate_limit"
    assert config_hint("tool_error", ["query returned too many results (limit <n>)"]) == "max_results"
    assert config_hint("tool_error", ["value exceeds page_size_limit"]) == "page_size_limit"
    assert config_hint("max_turns", []) == "max_turns"
    assert config_hint("tool_error", ["user not found"]) is None


def test_demonstrations_prefer_the_same_tool_then_similar_requests() -> None:
    pool = [Demo("a", "what is the weather", "sunny", frozenset()),
            Demo("b", "where is my parcel 7", "on its way", frozenset({"track"})),
            Demo("c", "where is my order 12", "shipped", frozenset())]
    assert [d["trace_id"] for d in demonstrations(pool, "track", ["where is my order 99"])] == ["b", "c"]
    assert [d["trace_id"] for d in demonstrations(pool, None, ["where is my order 99"])] == ["c", "b"]
    assert demonstrations(pool, None, []) == []
