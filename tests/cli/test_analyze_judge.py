"""`analyze --judge MODEL --judge-sample N` and `analysis.judge` in selfimprove.yaml, end to end through
litellm and a stub OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.analysis.test_judge import verdict_for, write_logs
from tests.stub_openai import last_user


def _repo(tmp_path: Path, judge: str) -> Path:
    (tmp_path / ".git").mkdir()  # the root marker is enough: analyze never runs git
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "agent.md").write_text("be helpful\n")
    (tmp_path / "logs").mkdir()
    write_logs(tmp_path / "logs" / "runs.jsonl")
    (tmp_path / "selfimprove.yaml").write_text(
        "version: 1\nprompts:\n  - path: prompts/agent.md\ntraces: {path: logs/}\n"
        f"analysis:\n  judge: {judge}\n")
    return tmp_path


def test_judge_flags_show_the_estimate_then_report_the_labels(run, stub_openai, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    logs = write_logs(tmp_path / "runs.jsonl")
    stub_openai.reply = lambda body: verdict_for(last_user(body))
    result = run("analyze", str(logs), "--judge", "openai/judge-stub", "--judge-sample", "10", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert stub_openai.count == 10
    estimate = ("judge openai/judge-stub: 10 traces sampled from 42 candidates; 10 calls to make, 0 cached; "
                "estimated cost unknown (no price for this model)")
    assert result.stderr.splitlines()[0] == estimate  # a notice, before any call was made
    lines = result.stdout.splitlines()  # the report
    assert "judge openai/judge-stub: 10 traces judged (6 failed, 4 succeeded, 0 unknown); 8 of its labels " \
           "used for the weights" in lines
    assert "judge agrees with the explicit labels on 2 of 2 traces (100%)" in lines
    assert any(line.startswith("judge calls: 10 made, 0 cached · tokens: ") for line in lines)
    assert (tmp_path / ".selfimprove" / ".gitignore").is_file()  # verdicts cached beside the cwd

    again = run("analyze", str(logs), "--judge", "openai/judge-stub", "--judge-sample", "10", "--json",
                cwd=tmp_path)
    assert again.exit_code == 0, again.stderr
    assert stub_openai.count == 10  # a re-run makes no call
    doc = again.json()["judge"]
    assert (doc["judged"], doc["calls"], doc["cached"], doc["labels_used"]) == (10, 0, 10, 8)
    cached = estimate.replace("10 calls to make, 0 cached", "0 calls to make, 10 cached")
    assert again.stderr.splitlines() == [cached.replace("unknown (no price for this model)", "$0.0000")]


def test_offline_never_judges(run, stub_openai, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    logs = write_logs(tmp_path / "runs.jsonl")
    result = run("analyze", str(logs), "--judge", "openai/judge-stub", "--offline", "--json", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "judge" not in result.json() and stub_openai.count == 0 and result.stderr == ""


def test_the_judge_from_selfimprove_yaml(run, stub_openai, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = _repo(tmp_path, "{model: openai/judge-stub, sample: 4, rubric: Fail every run.}")
    stub_openai.reply = lambda body: verdict_for(last_user(body))
    result = run("analyze", "--json", cwd=repo)
    assert result.exit_code == 0, result.stderr
    assert stub_openai.count == 4
    assert "Rubric:\nFail every run.\n" in stub_openai.requests[0]["messages"][0]["content"]
    assert result.json()["judge"]["rubric"] == "custom"
    assert run("analyze", "--json", "--judge-sample", "2", cwd=repo).exit_code == 0
    assert stub_openai.count == 4  # the two are among the four already judged: the sample is a prefix


def test_the_judge_falls_back_to_the_reflection_model_and_config_errors_are_one_line(run, stub_openai,  # type: ignore[no-untyped-def]
                                                                                     tmp_path: Path) -> None:
    repo = _repo(tmp_path, "{sample: 3}")
    text = (repo / "selfimprove.yaml").read_text() + "reflection: {model: openai/reflect-stub}\n"
    (repo / "selfimprove.yaml").write_text(text)
    stub_openai.reply = lambda body: verdict_for(last_user(body)) if "<transcript>" in last_user(body) \
        else json.dumps({"name": "lookups time out", "root_cause": "The order service is slow to answer.",
                         "fix_kind": "config", "suggested_fix": "Raise the timeout."})
    result = run("analyze", "--json", cwd=repo)
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["judge"]["model"] == "openai/reflect-stub" and doc["judge"]["judged"] == 3
    assert [r["model"] for r in stub_openai.requests[:3]] == ["reflect-stub"] * 3

    (repo / "selfimprove.yaml").write_text(text.replace("{sample: 3}", "{sample: 0}"))
    bad = run("analyze", cwd=repo)
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: selfimprove.yaml:6: $.analysis.judge.sample: ")
    assert len(bad.stderr.strip().splitlines()) == 1
    shutil.rmtree(repo / ".selfimprove", ignore_errors=True)
    no_model = run("analyze", str(repo / "logs"), "--judge-sample", "3", cwd=tmp_path.parent)
    assert no_model.exit_code == 2
    assert no_model.stderr.startswith("error: --judge-sample needs a judge model (hint:")
