"""The fast lane for plain chat records (`raw_trace`, used by analysis) builds exactly the trace of the
general path (`trace_from_record`), and its view is exactly the view of that trace's messages."""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from selfimprove.analysis.pipeline import collect
from selfimprove.traces.formats._io import SourceReport, iter_records
from selfimprove.traces.formats._records import raw_trace, trace_from_record
from selfimprove.traces.model import Message, RawTrace, ToolCall, Trace, view_of
from selfimprove.traces.read import read_traces

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))


def same_as_general(record: Any) -> bool:
    """True when the fast lane took the record (and then built what the general path builds)."""
    fast = raw_trace(record, source="f.jsonl:3", stem="f", index=3, fmt="openai")
    if fast is None:
        return False
    slow = trace_from_record(record, source="f.jsonl:3", stem="f", index=3, fmt="openai",
                             report=SourceReport(path="f.jsonl"), line=3)
    assert type(slow) is Trace
    assert fast.view == view_of(slow)
    for f in fields(Trace):
        assert getattr(fast, f.name) == getattr(slow, f.name), f.name
    return True


def test_the_benchmark_records_take_the_fast_lane_and_read_the_same(tmp_path: Path) -> None:
    from analyze_bench import generate

    generate(tmp_path / "b.jsonl", 300)
    report = SourceReport(path="b.jsonl")
    taken = [same_as_general(record) for _, record in iter_records(tmp_path / "b.jsonl", report)]
    assert len(taken) == 300 and all(taken)


def test_records_the_lane_does_not_take() -> None:
    plain = {"id": "conversation-1", "messages": [{"role": "user", "content": "hi"},
                                                  {"role": "assistant", "content": "hello"}]}
    assert same_as_general(plain)
    for extra in ({"system": "Be brief."}, {"response": "ok"}, {"choices": []}, {"instructions": "x"}):
        assert not same_as_general(plain | extra)  # conversation_of adds to these messages
    assert not same_as_general({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
    assert not same_as_general({"messages": [{"role": "user", "content": "hi", "is_error": True}]})
    assert not same_as_general({"messages": [{"role": "assistant"}]})  # neither content nor calls
    assert not same_as_general({"traj": plain["messages"]})
    assert not same_as_general([plain])


def test_a_raw_trace_builds_its_messages_when_asked() -> None:
    record = {"id": "conversation-2", "messages": [
        {"role": "user", "content": "where is order 7?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "find", "arguments": '{"order": 7}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Error: order 7 not found"}]}
    fast = raw_trace(record, source="f.jsonl:1", stem="f", index=1, fmt="openai")
    assert isinstance(fast, RawTrace) and "messages" not in fast.__dict__
    assert fast.view.calls == [(1, "find", {"order": 7}, "c1")]
    assert fast.view.results == [(2, "Error: order 7 not found", False, "find", "c1")]
    assert [m.role for m in fast.messages] == ["user", "assistant", "tool"]
    assert fast.messages[2].name == "find" and fast.messages[1].tool_calls[0].arguments == {"order": 7}


def test_analysis_collects_the_same_with_and_without_the_lane(tmp_path: Path) -> None:
    from analyze_bench import generate

    generate(tmp_path / "b.jsonl", 400)
    lean = collect(read_traces([tmp_path], views=True))
    full = collect(read_traces([tmp_path], views=False))
    assert lean.summaries == full.summaries and len(lean.summaries) == 400
    assert lean.evidence == full.evidence
    assert lean.demos == full.demos


def test_the_shared_corpus_reads_the_same_through_the_lane(shared_traces: Path) -> None:
    lean = collect(read_traces([shared_traces], views=True))
    full = collect(read_traces([shared_traces], views=False))
    assert lean.summaries == full.summaries and lean.evidence == full.evidence and lean.demos == full.demos


# --- any record at all ---------------------------------------------------------------------------

texts = st.one_of(st.none(), st.text(max_size=30), st.sampled_from(["Error: boom", "No, I said the red one",
                                                                      "please talk to a human"]),
                  st.integers(), st.lists(st.just({"type": "text", "text": "hi"}), max_size=1))
calls = st.lists(st.fixed_dictionaries(
    {"function": st.one_of(st.fixed_dictionaries({"name": st.sampled_from(["find", "refund"]),
                                                  "arguments": st.sampled_from(
                                                      ['{"a": 1}', "[1]", "{bad", "x", "", '{"a": 1.0}'])}),
                           st.just("find"), st.none())},
    optional={"id": st.one_of(st.sampled_from(["c1", "c2", ""]), st.integers(0, 3)),
              "type": st.just("function")}), max_size=3)
messages = st.fixed_dictionaries(
    {"role": st.one_of(st.sampled_from(["user", "assistant", "tool", "system", "developer", "function",
                                        "Planner", ""]), st.none(), st.integers(0, 2))},
    optional={"content": texts, "tool_calls": st.one_of(calls, st.none(), st.just({})),
              "tool_call_id": st.one_of(st.sampled_from(["c1", "c2", ""]), st.integers(0, 3)),
              "name": st.one_of(st.sampled_from(["find", ""]), st.integers(0, 1), st.none()),
              "refusal": st.one_of(st.text(max_size=10), st.none()),
              "status": st.just("error"), "weight": st.integers(0, 1)})
# messages the lane should take (plain OpenAI ones), with every optional field's odd values
good_calls = st.lists(st.fixed_dictionaries(
    {"function": st.fixed_dictionaries({"name": st.sampled_from(["find", "refund", "transfer_to_human"]),
                                        "arguments": st.sampled_from(['{"a": 1}', '{"a": 1}', "[1]", "{bad",
                                                                      "x", "", '{"b": [1]}'])})},
    optional={"id": st.one_of(st.sampled_from(["c1", "c2", ""]), st.integers(0, 3))}), max_size=3)
plain = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "tool", "system", "developer", "function"]),
     "content": st.one_of(st.none(), st.text(max_size=20),
                          st.sampled_from(["Error: boom 42", "No, I said the red one", "talk to a human",
                                           "I'm sorry, I can't help with that.", "thanks, bye"]))},
    optional={"tool_calls": st.one_of(good_calls, st.none()),
              "tool_call_id": st.one_of(st.sampled_from(["c1", "c2", ""]), st.integers(0, 3)),
              "name": st.one_of(st.sampled_from(["find", ""]), st.integers(0, 1), st.none()),
              "refusal": st.one_of(st.text(max_size=10), st.none())})
records = st.fixed_dictionaries(
    {"messages": st.one_of(st.lists(plain, min_size=1, max_size=8),
                           st.lists(st.one_of(plain, plain, messages), min_size=1, max_size=6))},
    optional={"id": st.one_of(st.text(max_size=8), st.integers()),
              "thumbs": st.sampled_from(["up", "down", 1]),
              "timestamp": st.sampled_from(["2025-01-02T03:04:05Z", "yesterday", 1700000000]),
              "metadata": st.fixed_dictionaries({}, optional={"prompt_version": st.sampled_from(["v1", 2]),
                                                              "finish_reason": st.just("length")}),
              "reward": st.floats(0, 1), "system": st.just("Be brief."), "model": st.just("gpt-4o")})


@settings(max_examples=500, deadline=None)
@given(records)
def test_any_record_the_lane_takes_reads_as_the_general_path_reads_it(record: dict[str, Any]) -> None:
    try:
        same_as_general(record)
    except (TypeError, ValueError, AttributeError, KeyError):
        # the general path rejects the record (the reader counts it as skipped): so must the lane
        try:
            trace_from_record(record, source="f.jsonl:3", stem="f", index=3, fmt="openai",
                              report=SourceReport(path="f.jsonl"), line=3)
        except (TypeError, ValueError, AttributeError, KeyError):
            return
        raise


def test_a_key_the_lane_does_not_know_sends_the_record_down_the_general_path(tmp_path: Path) -> None:
    # `state` (a Vercel AI SDK tool part's outcome) and a function's `args` are not keys of a plain
    # OpenAI message: the lane must not take the record, and the general path reads them
    record = {"id": "conversation-3", "messages": [
        {"role": "user", "content": "cancel order 7"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "cancel", "args": {"order": 7}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "order 7 is shipped", "state": "output-error"}]}
    assert raw_trace(record, source="f.jsonl:1", stem="f", index=1, fmt="openai") is None
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps(record) + "\n")
    lean, = read_traces([path], views=True)
    full, = read_traces([path])
    assert type(lean) is Trace and lean == full
    assert lean.messages == (
        Message("user", "cancel order 7"),
        Message("assistant", "", (ToolCall("cancel", {"order": 7}, "c1"),)),
        Message("tool", "order 7 is shipped", tool_call_id="c1", is_error=True, name="cancel"),
    )
    for extra in ({"state": "output-error"}, {"annotations": []}):  # any unknown key, known effect or not
        assert raw_trace({"messages": [{"role": "user", "content": "hi"} | extra]}, source="f", stem="f",
                         index=1, fmt="openai") is None
    plain_call = {"id": "c1", "type": "function", "function": {"name": "cancel", "arguments": "{}"}}
    for call in (plain_call | {"index": 0}, plain_call | {"function": {"name": "cancel", "args": {}}}):
        assert raw_trace({"messages": [{"role": "user", "content": "hi"},
                                       {"role": "assistant", "content": None, "tool_calls": [call]}]},
                         source="f", stem="f", index=1, fmt="openai") is None
