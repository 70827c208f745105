from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "analysis"
FIXTURE = DATA / "support.jsonl"


def test_json_output_is_one_document_per_design(run) -> None:  # type: ignore[no-untyped-def]
    result = run("analyze", FIXTURE.name, "--json", cwd=DATA)
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["schema"] == "selfimprove.analysis/v1"
    assert doc["traces"] == {"total": 12, "failure": 6, "success": 4, "unknown": 2, "skipped": 0,
                             "duplicates": 0}
    assert doc["sources"] == [{"path": "support.jsonl", "format": "openai", "traces": 12, "skipped": 0,
                               "errors": []}]
    assert [p["count"] for p in doc["patterns"]] == [2, 1, 1, 1, 1]
    assert sum(p["share"] for p in doc["patterns"]) == pytest.approx(1.0, abs=1e-3)
    assert doc["fit"]["method"] == "prior" and doc["fit"]["labelled"] == 8
    assert [v["prompt_version"] for v in doc["versions"]] == ["v1", "v2"]
    assert result.stderr == ""


def test_human_report_goes_to_stdout_only(run) -> None:  # type: ignore[no-untyped-def]
    result = run("analyze", str(FIXTURE))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "12 traces: 6 failed (60% of decided), 4 succeeded, 2 unknown; 0 bad records skipped"
    assert "Top reasons the agent fails" in result.stdout
    assert "1. lookup_order fails: Error: timeout after <n>s contacting orders-db (request <id>)  " \
        "[tool-error-6228b8dc]" in lines
    row = ("│ 1 │ tool-error-6228b8dc       │ lookup_order fails: Error:   │ tool_error       │      2 "
           "│   33% │")
    assert row in lines  # the id propose --pattern takes
    assert "   config knob: timeout" in lines
    assert ("signal weights: uncalibrated prior (not fitted to this agent's labels); prior AUROC 0.90 on 8 "
            "labelled traces") in result.stdout


def test_files_written_and_announced(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out, md, cases = tmp_path / "o.jsonl", tmp_path / "r.md", tmp_path / "cases.yaml"
    result = run("analyze", str(FIXTURE), "--outcomes", str(out), "--markdown", str(md),
                 "--export-cases", str(cases), "--json")
    assert result.exit_code == 0, result.stderr
    assert len(out.read_text().splitlines()) == 12
    assert md.read_text().startswith("# Why the agent fails")
    assert cases.read_text().count("- id: prod-") == 6
    assert f"wrote 6 eval case(s) to {cases}" in result.stderr
    json.loads(result.stdout)


def test_since_and_until_filter_by_start_time(run) -> None:  # type: ignore[no-untyped-def]
    result = run("analyze", str(FIXTURE), "--since", "2025-03-06", "--until", "2025-03-09T11:00:00Z",
                 "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["traces"]["total"] == 4  # ok-1 … ok-4 (fail-v2 started at 12:00)
    assert doc["filtered"] == {"outside_window": 8, "undated_kept": 0}
    bad = run("analyze", str(FIXTURE), "--since", "last tuesday")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: --since 'last tuesday' is not a date or time (hint:")


def test_gzip_and_directories(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "logs" / "day1").mkdir(parents=True)
    with gzip.open(tmp_path / "logs" / "day1" / "a.jsonl.gz", "wb") as fh:
        fh.write(FIXTURE.read_bytes())
    result = run("analyze", str(tmp_path / "logs"), "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["traces"]["failure"] == 6


def test_default_path_comes_from_selfimprove_yaml(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "logs").mkdir()
    shutil.copy(FIXTURE, tmp_path / "logs" / "support.jsonl")
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "agent.md").write_text("be nice\n")
    (tmp_path / "selfimprove.yaml").write_text(
        "version: 1\nprompts:\n  - path: prompts/agent.md\ntraces: {path: logs/, format: openai}\n")
    result = run("analyze", "--json", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["traces"]["total"] == 12 and doc["sources"][0]["format"] == "openai"


def test_no_path_and_no_config_is_a_clear_error(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("analyze", cwd=tmp_path)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no git repository found")
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_path_and_unreadable_input_exit_2(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = run("analyze", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2
    assert "no such file or directory" in missing.stderr
    junk = tmp_path / "junk.jsonl"
    junk.write_text("{not json\n{also not\n")
    result = run("analyze", str(junk), "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert "no traces could be read" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_records_are_skipped_and_reported_with_lines(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mixed = tmp_path / "mixed.jsonl"
    lines = FIXTURE.read_text().splitlines()
    mixed.write_text("\n".join(lines[:3] + ["{broken"] + lines[3:]) + "\n")
    result = run("analyze", str(mixed), "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["traces"]["skipped"] == 1 and doc["traces"]["total"] == 12
    assert doc["sources"][0]["errors"][0]["line"] == 4
    strict = run("analyze", str(mixed), "--strict")
    assert strict.exit_code == 2
    assert f"{mixed}:4" in strict.stderr


def test_reflection_with_a_model_through_litellm(run, stub_openai) -> None:  # type: ignore[no-untyped-def]
    reply = {"name": "order lookup times out", "root_cause": "The orders database is slow to answer.",
             "fix_kind": "config", "suggested_fix": "Raise the lookup_order timeout to 60 seconds."}
    stub_openai.reply = lambda body: json.dumps(reply)
    result = run("analyze", str(FIXTURE), "--json", "--model", "openai/stub-model")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert len(stub_openai.requests) == 5
    first = doc["patterns"][0]["notes"]
    assert (first["name"], first["root_cause"], first["fix_kind"], first["suggested_fix"]) == (
        reply["name"], reply["root_cause"], reply["fix_kind"], reply["suggested_fix"])
    assert doc["reflection"]["model"] == "openai/stub-model" and doc["reflection"]["calls"] == 5
    offline = run("analyze", str(FIXTURE), "--json", "--model", "openai/stub-model", "--offline")
    assert "reflection" not in offline.json() and len(stub_openai.requests) == 5


def test_a_folder_without_trace_files_says_so(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "README.md").write_text("put logs here\n")
    result = run("analyze", str(logs))
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: no traces could be read from {logs}; first problem: {logs / 'README.md'}: not a trace file "
        "(.md) (hint: put your agent's logs there")
    assert result.stderr.count("\n") == 1


def test_reflection_timeout_comes_from_selfimprove_yaml(run, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import selfimprove.llm as llm

    (tmp_path / ".git").mkdir()
    (tmp_path / "logs").mkdir()
    shutil.copy(FIXTURE, tmp_path / "logs" / "support.jsonl")
    (tmp_path / "selfimprove.yaml").write_text(
        "version: 1\nprompts: []\ntraces: {path: logs/}\nreflection: {model: openai/judge, timeout: 7.5}\n")
    seen: list[tuple[str, float]] = []

    def fake(model: str, *, timeout: float = 60.0, retries: int = 3) -> llm.ScriptedCompleter:
        seen.append((model, timeout))
        raise llm.LLMError("stop here")

    monkeypatch.setattr(llm, "make_completer", fake)
    result = run("analyze", cwd=tmp_path)
    assert result.exit_code == 2
    assert seen == [("openai/judge", 7.5)]


def test_bad_records_are_named_by_default(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = json.dumps({"id": "t", "messages": [{"role": "user", "content": "hi"},
                                               {"role": "assistant", "content": "hello"}]})
    for n in range(7):  # more files than a short report lists one by one
        lines = [good.replace('"t"', f'"t{n}-{i}"') for i in range(3)]
        if n in (2, 5):
            lines.insert(1, "{not json")
        (tmp_path / f"log{n}.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "log6.jsonl").write_text(good + "\n{oops\n[1, 2\n")
    result = run("analyze", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("; 4 bad records skipped")
    named = [line for line in lines if line.startswith("  skipped ")]
    assert [line.split(": ")[0] for line in named] == [
        f"  skipped {tmp_path}/log2.jsonl:2", f"  skipped {tmp_path}/log5.jsonl:2",
        f"  skipped {tmp_path}/log6.jsonl:2"]
    assert "  … and 1 more: -v names them, as does --json (sources[].errors)" in lines
    verbose = run("analyze", str(tmp_path), "-v").stdout
    assert f"  skipped {tmp_path}/log6.jsonl:3: " in verbose and "… and" not in verbose


def test_the_same_traces_in_two_files_are_counted_once(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    logs = tmp_path / "logs"
    logs.mkdir()
    shutil.copy(FIXTURE, logs / "a.jsonl")
    lines = FIXTURE.read_text(encoding="utf-8").splitlines(keepends=True)
    (logs / "b.jsonl").write_text("".join(lines[:3]))  # three runs exported again
    out, md = tmp_path / "o.jsonl", tmp_path / "r.md"
    result = run("analyze", str(logs), "--outcomes", str(out), "--markdown", str(md))
    assert result.exit_code == 0, result.stderr
    report = result.stdout.splitlines()
    assert report[:2] == [
        "12 traces: 6 failed (60% of decided), 4 succeeded, 2 unknown; 0 bad records skipped",
        "3 duplicates merged (the same trace read more than once is counted once)"]
    assert "3 duplicates merged (the same trace read more than once is counted once)." in md.read_text()
    outcomes = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(o["trace_id"], o.get("duplicate_sources")) for o in outcomes[:4]] == [
        ("timeout-1", [f"{logs}/b.jsonl:1"]), ("timeout-2", [f"{logs}/b.jsonl:2"]),
        ("timeout-3", [f"{logs}/b.jsonl:3"]), ("colour-1", None)]
    doc = run("analyze", str(logs), "--json").json()
    assert doc["traces"]["duplicates"] == 3 and [s["traces"] for s in doc["sources"]] == [12, 3]
