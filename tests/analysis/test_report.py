from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfimprove.analysis.export import export_cases, write_outcomes
from selfimprove.analysis.pipeline import analyze
from selfimprove.cli.inputs import parse_time
from selfimprove.cli.reports.analysis import markdown, write_markdown
from selfimprove.errors import SelfImproveError
from selfimprove.evals.suite import parse_suite_file

DATA = Path(__file__).resolve().parents[1] / "data" / "analysis"


@pytest.fixture
def analysis(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(DATA)
    return analyze([Path("support.jsonl")])


def test_outcomes_jsonl_has_one_line_per_trace(analysis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "outcomes.jsonl"
    write_outcomes(analysis, out)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 12
    first = lines[0]
    assert set(first) == {"trace_id", "source", "outcome", "failure_score", "signals", "pattern", "blame"}
    assert first["blame"] == {"agent": "assistant", "step": 2,
                              "reason": "tool call failed: lookup_order: Error: timeout after 30s "
                                        "contacting orders-db (request 8f3a9c2e1b)"}
    assert (first["trace_id"], first["source"], first["outcome"], first["failure_score"]) == (
        "timeout-1", "support.jsonl:1", "failure", 1.0)
    assert [s["name"] for s in first["signals"]] == ["explicit_failure", "tool_error"]
    assert first["pattern"] == analysis.patterns[0].id
    unlabelled = next(line for line in lines if line["trace_id"] == "timeout-3")
    assert unlabelled["outcome"] == "unknown" and 0 < unlabelled["failure_score"] < 0.5
    assert unlabelled["pattern"] is None and "blame" not in unlabelled  # blame is for failures only
    assert all(0.0 <= line["failure_score"] <= 1.0 for line in lines)


def test_markdown_report_lists_the_top_reasons_with_numbers(analysis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = markdown(analysis)
    assert text.startswith("# Why the agent fails\n\n12 traces: **6 failed** (60% of decided traces), "
                           "4 succeeded, 2 unknown; 0 records skipped.\n")
    assert ("| 1 | lookup_order fails: Error: timeout after <n>s contacting orders-db (request <id>) | "
            "tool_error | 2 | 33% |") in text
    assert "| v1 | 7 | 5 | 100% |\n| v2 | 5 | 1 | 20% |" in text
    write_markdown(analysis, tmp_path / "r.md")
    assert (tmp_path / "r.md").read_text(encoding="utf-8") == text


def test_writing_into_a_missing_folder_is_a_clear_error(analysis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SelfImproveError, match="folder .* does not exist"):
        write_markdown(analysis, tmp_path / "nope" / "r.md")
    assert not (tmp_path / "nope").exists()


def test_exported_cases_are_a_valid_suite_cut_before_the_failure(analysis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "cases.yaml"
    assert export_cases(analysis, out) == 6
    text = out.read_text(encoding="utf-8")
    cases = parse_suite_file(text, "evals/cases.yaml", default_prompt="prompts/agent.md")
    assert len(cases) == 6
    import yaml

    tests = {t["metadata"]["trace_id"]: t for t in yaml.safe_load(text)["tests"]}
    timeout = tests["timeout-1"]
    assert timeout["messages"] == [{"role": "user", "content": "Where is my order A1001?"}]
    assert timeout["assert"] == [{"type": "not-tool-called",
                                  "value": {"name": "lookup_order", "arguments": {"order_id": "A1001"}}}]
    assert timeout["tags"] == ["tool_error", analysis.patterns[0].id]
    colour = tests["colour-1"]
    assert [m["role"] for m in colour["messages"]] == ["user"]
    assert colour["assert"][0]["type"] == "llm-rubric"
    assert "No, I said the blue one" in colour["assert"][0]["value"]


def test_parse_time_accepts_iso_and_relative_spans() -> None:
    from datetime import datetime, timezone

    now = datetime(2025, 3, 10, tzinfo=timezone.utc)
    assert parse_time("2025-03-05", "--since") == datetime(2025, 3, 5, tzinfo=timezone.utc)
    assert parse_time("2025-03-05T10:00:00Z", "--since") == datetime(2025, 3, 5, 10, tzinfo=timezone.utc)
    assert parse_time("7d", "--since", now=now) == datetime(2025, 3, 3, tzinfo=timezone.utc)
    assert parse_time(None, "--since") is None
    with pytest.raises(SelfImproveError, match="--until 'yesterday' is not a date or time"):
        parse_time("yesterday", "--until")


def test_cases_from_a_json_array_file_match_each_trace_not_just_its_record(shared_traces: Path,
                                                                          tmp_path: Path) -> None:
    # every tau-bench run in the array shares the file's source line; cases must still match by trace
    tau = shared_traces / "agentrx/tau_retail/tau_dataset_full.json"
    result = analyze([tau])
    out = tmp_path / "cases.yaml"
    assert export_cases(result, out) == 27
    cases = parse_suite_file(out.read_text(encoding="utf-8"), "evals/cases.yaml", default_prompt="p.md")
    failing = {o.trace_id for o in result.outcomes if o.outcome == "failure"}
    assert {c.metadata["trace_id"] for c in cases} == failing
