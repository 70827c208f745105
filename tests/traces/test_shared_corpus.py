"""Every file of the shared trace corpus is read with the expected counts and no unexplained skip."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from selfimprove.traces.model import Feedback
from selfimprove.traces.read import read_traces

# folder → traces read from it
EXPECTED_TRACES = {
    ".": 0,
    "agentrx/ground_truth": 0,
    "agentrx/magentic_dataset": 58,  # 58 logs in the folder (steps_by_id.json lists the same 58)
    "agentrx/policies": 0,
    "agentrx/tau_retail": 129,  # 100 runs + 29 failed runs
    "agentrx/tool_schemas": 0,
    "claude-code-jsonl": 1,
    "inspect-ai": 20,
    "langfuse-framework-traces": 20,
    "langsmith": 6,
    "openhands": 4,
    "openinference-fixtures/genai": 5,
    "openinference-fixtures/vercel-v6-spans": 16,
    "otlp": 1,
    "otlp/genai-interlingua": 2,
    "provider-native": 3,
    "specs": 0,
    "swe-agent": 3,
}

# files that are not traces: reported as ignored, with the reason
EXPECTED_IGNORED = {
    "FORMATS.md": "not a trace file (.md)",
    "PROVENANCE.md": "not a trace file (.md)",
    "agentrx/ground_truth/magentic_one_ground_truth.json": "no traces in 44 records (no messages)",
    "agentrx/ground_truth/tau_ground_truth.json": "no traces in 29 records (no messages)",
    "agentrx/ground_truth/tau_retail.json": "no traces in 24 records (no messages)",
    "agentrx/magentic_dataset/magentic_count.jsonl": "empty file",
    "agentrx/magentic_dataset/steps_by_id.json": "no traces in 1 record (no messages)",
    "agentrx/policies/magentic_policy.txt": "not a trace file (.txt)",
    "agentrx/policies/retail_policy.txt": "not a trace file (.txt)",
    "agentrx/tool_schemas/tools_structure.json": (
        "a list of assistant/tool messages with no user, system or agent input: a fragment (e.g. example "
        "tool calls), not a conversation"
    ),
    "langfuse-framework-traces/README.md": "not a trace file (.md)",
    "swe-agent/all_preds.jsonl": "no traces in 1 record (no messages)",
}

MY_FORMATS = {
    "agentrx/magentic_dataset": "multi-agent",
    "agentrx/tau_retail": "openai",
    "claude-code-jsonl": "claude-code",
    "inspect-ai": "inspect",
    "openhands": "openhands",
    "swe-agent": "swe-agent",
}


def test_whole_corpus(shared_traces: Path) -> None:
    stream = read_traces([shared_traces])
    traces = list(stream)
    rel = {s.path: Path(s.path).relative_to(shared_traces).as_posix() for s in stream.sources}

    per_folder: Counter[str] = Counter()
    for source in stream.sources:
        per_folder[Path(rel[source.path]).parent.as_posix()] += source.traces
    assert {k: per_folder.get(k, 0) for k in EXPECTED_TRACES} == EXPECTED_TRACES
    assert set(per_folder) <= set(EXPECTED_TRACES)
    assert stream.traces == sum(EXPECTED_TRACES.values()) == 268
    # read once: 27 tau-bench runs in both tau_retail files; 10 OpenInference / Vercel AI SDK traces
    # also in `all-spans.json` or written again in another convention; one Langfuse trace exported twice
    assert (len(traces), stream.duplicates) == (230, 27 + 10 + 1)

    # no unexplained skip: every file is read cleanly or ignored with a reason
    assert stream.skipped == 0
    assert [(rel[s.path], s.errors) for s in stream.sources if s.errors] == []
    ignored = {rel[s.path]: s.reason for s in stream.sources if s.status == "ignored"}
    expected_ignored = dict(EXPECTED_IGNORED)
    for name, reason in ignored.items():  # Langfuse's expected ChatML outputs and the semconv schemas
        if name.endswith(".chatml.json") or name.startswith("specs/"):
            assert reason and reason.startswith("no traces in 1 record"), (name, reason)
            expected_ignored[name] = reason
    assert ignored == expected_ignored
    assert {s.status for s in stream.sources} == {"read", "ignored"}

    # ids are unique across the whole corpus
    assert len({t.id for t in traces}) == len(traces)

    # each of these folders is read by its own reader
    for folder, fmt in MY_FORMATS.items():
        formats = {
            s.format
            for s in stream.sources
            if s.status == "read" and Path(rel[s.path]).parent.as_posix() == folder
        }
        assert formats == {fmt}, folder


def test_tau_retail_labels(shared_traces: Path) -> None:
    folder = shared_traces / "agentrx" / "tau_retail"
    full = list(read_traces([folder / "tau_dataset_full.json"]))
    assert len(full) == 100
    rewards = Counter(t.feedback for t in full)
    assert rewards == {(Feedback("reward", 1.0),): 73, (Feedback("reward", 0.0),): 27}
    failed = list(read_traces([folder / "tau_dataset_failed.json"]))
    assert len(failed) == 29 and all(t.feedback == (Feedback("reward", 0.0),) for t in failed)
    assert [t.id for t in full[:2]] == ["0/0", "1/1"]  # task id / trial, as the file gives them


def test_magentic_logs_have_no_invented_labels(shared_traces: Path) -> None:
    traces = list(read_traces([shared_traces / "agentrx" / "magentic_dataset"]))
    assert len(traces) == 58
    assert all(t.feedback == () and t.format == "multi-agent" for t in traces)
    assert all(t.messages[0].role == "user" for t in traces)
    steps = {t.id: len(t.messages) for t in traces}
    assert steps["08cae58d-4084-4616-b6dd-dd6534e4825b"] == 129  # = steps_by_id.json


def test_inspect_labels_and_tool_errors(shared_traces: Path) -> None:
    traces = list(read_traces([shared_traces / "inspect-ai"]))
    labels = Counter(f.value for t in traces for f in t.feedback if f.kind == "label")
    assert labels == {"C": 7, "I": 2}
    assert sum(m.is_error for t in traces for m in t.messages) == 11
