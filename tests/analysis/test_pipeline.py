"""`pipeline`: scoring, explaining and the `analyze()` entry point, with exact outputs on small traces."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from selfimprove.analysis import pipeline as pl
from selfimprove.analysis.collect import collect
from selfimprove.analysis.records import Collected, Summary
from selfimprove.analysis.signals import Signal
from selfimprove.errors import SelfImproveError
from selfimprove.traces.model import Feedback

from .helpers import assistant, call, tool, trace, user

DOWN = (Feedback("thumbs", -1),)
UP = (Feedback("thumbs", 1),)
ERROR = "Error: order service timed out"


def four_traces():  # type: ignore[no-untyped-def]
    return [
        trace("ok", user("What are your hours?"), assistant("We are open 9 to 5."), feedback=UP,
              prompt_version="v1"),
        trace("err", user("Where is order 123?"), assistant("", call("lookup", {"id": 123}, "c1")),
              tool(ERROR, cid="c1", name="lookup"), assistant("Sorry, something went wrong."),
              feedback=DOWN, prompt_version="v1"),
        trace("fix", user("Cancel my order"), assistant("Your order is cancelled."),
              user("No, I said cancel the subscription, not the order."), assistant("Done."),
              prompt_version="v2"),
        trace("quiet", user("hi"), assistant("Hello! How can I help?"), prompt_version="v2"),
    ]


def test_score_decides_every_trace_and_explains_each_failure() -> None:
    col = collect(four_traces())
    outcomes, fit, failing = pl.score(col)
    assert [(o.trace_id, o.outcome) for o in outcomes] == [
        ("ok", "success"), ("err", "failure"), ("fix", "failure"), ("quiet", "success")]
    scores = [o.failure_score for o in outcomes]
    assert scores[:2] == [0.0, 1.0]  # explicit labels decide
    assert math.isclose(scores[2], 1 / (1 + math.exp(-(-1.5 + 1.0 + 0.8))))  # prior: correction + rephrase
    assert math.isclose(scores[3], 1 / (1 + math.exp(1.5)))  # nothing but the prior's bias
    assert [(s.name, s.weight, s.detail) for s in outcomes[1].signals] == [
        ("explicit_failure", 1.0, "thumbs = -1"), ("tool_error", 1.0, f"lookup: {ERROR}")]
    assert [(s.name, s.weight) for s in outcomes[2].signals] == [("user_correction", 1.0), ("rephrase", 0.8)]
    assert outcomes[0].signals == (Signal("explicit_success", -1.0, "thumbs = 1"),)
    assert outcomes[1].blame is not None and outcomes[0].blame is None  # blame for failures only
    assert [(i, sig.key if sig else None) for i, sig in failing] == [
        (1, f"tool_error|lookup|{ERROR}"), (2, "user_correction|no, i said")]
    assert (fit.method, fit.labelled) == ("prior", 2)


def test_versions_counts_outcomes_per_prompt_version_in_order_of_appearance() -> None:
    col = collect(four_traces())
    outcomes, _, _ = pl.score(col)
    assert pl.versions(col.summaries, outcomes) == (
        {"prompt_version": "v1", "traces": 2, "failure": 1, "success": 1, "unknown": 0, "failure_rate": 0.5},
        {"prompt_version": "v2", "traces": 2, "failure": 1, "success": 1, "unknown": 0, "failure_rate": 0.5},
    )


def test_medians_are_per_reader_and_only_with_enough_runs() -> None:
    def summary(kind: str, turns: int) -> Summary:
        return Summary("t", "s", None, (), (), {}, turns, None, None, kind)

    few = [summary("openai", 4), summary("openai", 8)]
    many = [summary("otlp", n) for n in (2, 4, 6, 8, 10, 12, 40, 3, 5, 7)]
    assert pl.medians_of(few + many) == {"openai": 0.0, "otlp": 6.5}


def _summary(*implicit: Signal, explicit: tuple[Signal, ...] = ()) -> Summary:
    return Summary("t", "s", None, explicit, implicit, {}, 4, None, None)


def test_explain_prefers_a_run_error_then_the_first_tool_error_that_is_not_routine() -> None:
    late = Signal("tool_error", detail="b", message_index=5, key="tool_error|b|x")
    early = Signal("tool_error", detail="a", message_index=2, key="tool_error|a|x")
    correction = Signal("user_correction", detail="no", message_index=1, key="user_correction|no")
    run_error = Signal("run_error", 1.0, "crashed", key="run_error|crashed")
    contrib = {"tool_error": 2.0, "user_correction": 1.0}
    assert pl.explain(_summary(late, early, explicit=(run_error,)), contrib) is run_error
    assert pl.explain(_summary(correction, late, early), contrib) is early
    assert pl.explain(_summary(correction, late, early), contrib, frozenset({early.key})) is late
    # no tool error: the heaviest implicit signal, when it weighs enough
    assert pl.explain(_summary(correction), contrib) is correction
    assert pl.explain(_summary(correction), {"user_correction": 0.1}) is correction  # earliest with weight
    assert pl.explain(_summary(correction), {"user_correction": -1.0}) is None


def test_routine_errors_are_as_common_in_labelled_successes_as_in_failures() -> None:
    col = Collected()
    col.labelled.update({True: 4, False: 4})
    col.labelled_errors.update({("tool_error|search|empty", True): 2, ("tool_error|search|empty", False): 2,
                                ("tool_error|pay|declined", True): 3, ("tool_error|pay|declined", False): 1})
    assert pl.routine_errors(col) == frozenset({"tool_error|search|empty"})
    assert pl.routine_errors(Collected()) == frozenset()  # no labels: nothing is known to be routine


def test_default_workers_reads_small_inputs_in_one_process() -> None:
    assert pl.default_workers(pl.PARALLEL_MIN_BYTES - 1) == 1
    assert 1 <= pl.default_workers(pl.PARALLEL_MIN_BYTES) <= 4


def _chat(path: Path, *records: dict) -> Path:  # type: ignore[type-arg]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_analyze_reads_scores_groups_and_redacts(tmp_path: Path) -> None:
    failing = [{"id": f"f{n}", "messages": [
        {"role": "user", "content": f"Where is order {n}? Mail me at jo{n}@example.com"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\": 1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Error: jo@example.com has no orders"},
        {"role": "assistant", "content": "Sorry."}], "feedback": {"thumbs": -1}} for n in (1, 2)]
    good = {"id": "s1", "messages": [{"role": "user", "content": "Hours?"},
                                     {"role": "assistant", "content": "9 to 5."}], "feedback": {"thumbs": 1}}
    path = _chat(tmp_path / "chat.jsonl", *failing, good, {"oops": True})
    result = pl.analyze([path], workers=1)
    assert result.counts == {"total": 3, "failure": 2, "success": 1, "unknown": 0, "skipped": 1,
                             "duplicates": 0}
    assert [p.id for p in result.patterns] == ["tool-error-2348691e"]
    pattern = result.patterns[0]
    assert (pattern.title, pattern.count, pattern.share, pattern.trace_ids) == (
        "lookup fails: Error: [REDACTED:email] has no orders", 2, 1.0, ("f1", "f2"))
    assert "example.com" not in json.dumps(result.to_json())
    assert [o.pattern for o in result.outcomes] == [pattern.id, pattern.id, None]
    assert result.sources[0].errors[0][0] == 4  # the bad record, by line
    assert (result.inputs, result.format) == ((str(path),), "auto")


def test_analyze_with_nothing_readable_is_one_clear_error(tmp_path: Path) -> None:
    path = _chat(tmp_path / "bad.jsonl", {"oops": True})
    with pytest.raises(SelfImproveError) as err:
        pl.analyze([path], workers=1)
    assert err.value.message == (f"no traces could be read from {path}; first problem: {path}: no traces "
                                 "in 1 record (no messages)")
