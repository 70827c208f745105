"""Results documents (a run's metadata and its episodes under a key of its own) and the labels
benchmark harnesses nest inside each episode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from selfimprove.traces.formats._feedback import feedback_from_record
from selfimprove.traces.model import Feedback, Trace
from selfimprove.traces.read import read_traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces" / "results-docs"


def read(path: Path) -> tuple[list[Trace], Any]:
    stream = read_traces([path])
    return list(stream), stream


def test_tau2_results_document() -> None:
    traces, stream = read(DATA / "tau2_retail_results.json")
    assert [t.id for t in traces] == ["0b6f3a2e-7c1d-4d0e-9a51-1f2e3d4c5b6a/0",
                                      "5d9c8e7f-2a3b-4c5d-8e9f-0a1b2c3d4e5f/1",
                                      "c4d5e6f7-8a9b-4c0d-9e1f-2a3b4c5d6e7f/0"]
    assert [t.feedback for t in traces] == [(Feedback("reward", 1.0),), (Feedback("reward", 0.0),),
                                            (Feedback("reward", 0.0),)]
    assert stream.sources[0].to_json() == {"path": str(DATA / "tau2_retail_results.json"), "format": "openai",
                                           "traces": 3, "skipped": 0, "errors": []}
    failed = traces[1]
    assert [(m.role, m.name, m.is_error, m.content) for m in failed.messages if m.role == "tool"] == [
        ("tool", "find_user_id_by_name_zip", False, "yusuf_rossi_9620"),
        ("tool", "cancel_pending_order", True, "Error: order not found")]
    [cancel] = failed.messages[6].tool_calls
    assert cancel.arguments == {"order_id": "W2611340", "reason": "no longer needed"}
    assert failed.started_at is not None and failed.started_at.isoformat() == "2025-06-12T10:08:20+00:00"
    assert {k: failed.metadata[k] for k in ("task_id", "trial", "termination_reason", "episodes_key")} == {
        "task_id": "0", "trial": 1, "termination_reason": "user_stop", "episodes_key": "simulations"}


def test_swe_bench_style_resolved_is_the_label_and_test_lists_are_not() -> None:
    traces, _ = read(DATA / "swebench_lite_eval.json")
    assert [t.id for t in traces] == ["astropy__astropy-12907", "django__django-11099",
                                      "django__django-13821"]
    assert [t.feedback for t in traces] == [
        (Feedback("success", False, passed=False, name="resolved"),),
        (Feedback("success", True, passed=True, name="resolved"),),
        (Feedback("success", False, passed=False, name="resolved"),)]
    # the run's own fields are kept on each episode, beside the episode's
    meta = traces[0].metadata
    assert meta["run_id"] == "lite-eval-0612" and meta["episodes_key"] == "instances"
    assert [m.name for m in traces[2].messages if m.is_error] == []  # "Error: ..." text is not a flag
    outputs = [m.content for m in traces[2].messages if m.role == "tool"]
    assert outputs[0].startswith("Error: command timed out")


def test_lm_eval_style_samples_with_is_correct() -> None:
    traces, _ = read(DATA / "lm_eval_gsm8k_samples.json")
    assert [t.id for t in traces] == ["0", "1", "2"]  # doc_id
    assert [t.feedback for t in traces] == [(Feedback("success", v, passed=v, name="is_correct"),)
                                            for v in (True, True, False)]
    assert [(m.role, m.content[:9]) for m in traces[2].messages] == [("user", "Question:"),
                                                                     ("assistant", "The value")]
    assert traces[0].metadata["model_name"] == "Qwen/Qwen2.5-7B-Instruct"


def test_the_folder_through_analyze(run) -> None:  # type: ignore[no-untyped-def]
    result = run("analyze", str(DATA), "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["traces"] == {"total": 9, "failure": 5, "success": 4, "unknown": 0, "skipped": 0,
                             "duplicates": 0}
    assert [(Path(s["path"]).name, s["traces"]) for s in doc["sources"]] == [
        ("README.md", 0), ("lm_eval_gsm8k_samples.json", 3), ("swebench_lite_eval.json", 3),
        ("tau2_retail_results.json", 3)]


def test_results_documents_as_json_lines_and_in_arrays(tmp_path: Path) -> None:
    episode = {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
               "result": {"score": 1}}
    other = {"messages": [{"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "7"}],
             "result": {"score": 0}}
    run = {"model": "m-1", "config": {"temperature": 0}, "runs": [episode, other, {"note": "no messages"}]}
    path = tmp_path / "runs.jsonl"
    third = {**other, "messages": [{"role": "user", "content": "5+5?"},
                                   {"role": "assistant", "content": "1"}]}
    path.write_text(json.dumps(run) + "\n" + json.dumps({**run, "runs": [third]}) + "\n")
    traces, stream = read(path)
    assert [(t.id, t.source) for t in traces] == [("runs:1.0", f"{path}:1"), ("runs:1.1", f"{path}:1"),
                                                  ("runs:2.0", f"{path}:2")]
    assert [t.feedback for t in traces] == [(Feedback("score", 1.0),), (Feedback("score", 0.0),),
                                            (Feedback("score", 0.0),)]
    # the third item of the first document holds no conversation: skipped with the document's line
    assert stream.sources[0].errors == [(1, "no messages")] and stream.duplicates == 0
    array = tmp_path / "docs.json"
    array.write_text(json.dumps([run, {"model": "m-2", "data": {"episodes": [third]}}]))
    traces, _ = read(array)
    assert [(t.id, t.metadata["model"], t.metadata["episodes_key"]) for t in traces] == [
        ("docs:0", "m-1", "runs"), ("docs:1", "m-1", "runs"), ("docs:3", "m-2", "data.episodes")]


def test_a_document_of_other_objects_is_still_not_traces(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"model": "m", "tasks": [{"id": 1, "instructions": "x"}, {"id": 2}],
                                "scores": [{"task": 1, "score": 0.5}]}))
    traces, stream = read(path)
    assert traces == [] and stream.sources[0].status == "ignored"


MESSAGES = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


@pytest.mark.parametrize(("record", "expected"), [
    # nested result objects, at any depth up to three
    ({"reward_info": {"reward": 0.0, "info": {"r_actions": 1.0}}}, [Feedback("reward", 0.0)]),
    ({"result": {"score": 1}}, [Feedback("score", 1.0)]),
    ({"eval": {"grader": {"verdict": {"passed": "yes"}}}},
     [Feedback("success", True, passed=True, name="passed")]),
    ({"metrics": {"is_correct": False, "exact_match": 0.0}},
     [Feedback("success", False, passed=False, name="is_correct")]),
    # the shallowest labels win: a sub-check deeper down is not the run's verdict
    ({"report": {"resolved": True, "checks": {"lint": {"passed": False}}}},
     [Feedback("success", True, passed=True, name="resolved")]),
    # a decisive label at the top level: nothing nested is added
    ({"reward": 1.0, "info": {"reward_info": {"reward": 1.0}}}, [Feedback("reward", 1.0)]),
    # a status says the run ran, not that it passed: the nested reward still counts
    ({"status": "completed", "reward_info": {"reward": 0.5}},
     [Feedback("status", "ok"), Feedback("reward", 0.5)]),
])
def test_labels_found_where_harnesses_nest_them(record: dict[str, Any], expected: list[Feedback]) -> None:
    assert list(feedback_from_record({"messages": MESSAGES, **record})) == expected


@pytest.mark.parametrize("record", [
    # per-message fields, tool calls and their arguments live in lists: never labels
    {"messages": [{"role": "user", "content": "hi", "score": 0.0},
                  {"role": "assistant", "content": "", "tool_calls": [
                      {"id": "c1", "name": "submit", "arguments": {"passed": True}}]}]},
    # one message or one call outside a list
    {"last_message": {"role": "assistant", "content": "done", "success": True}},
    {"last_action": {"name": "submit", "arguments": {"resolved": True}, "passed": True}},
    # the task's input and its expected answer
    {"doc": {"question": "q", "correct": "B", "score": 1.0}},
    {"expected": {"success": True}, "task": {"reward": 1.0}, "config": {"score": 1.0}},
    # lists of test names under `success`, a score on an unknown scale, free text
    {"report": {"success": ["test_a", "test_b"], "score": 7, "passed": "see the log"}},
    # too deep: four objects down
    {"a": {"b": {"c": {"d": {"reward": 0.0}}}}},
])
def test_fields_that_are_not_the_runs_label(record: dict[str, Any]) -> None:
    assert feedback_from_record({"messages": MESSAGES, **record}) == ()
