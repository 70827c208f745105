"""history against real git repos: the ledger, the process metrics and the production check."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from selfimprove import history
from selfimprove.errors import SelfImproveError
from selfimprove.gitrepo import Repo
from tests.test_rollback import PROMPT, git, make_repo, propose, with_rule, with_tone


def at(day: int, hour: int = 10) -> str:
    return f"2026-01-{day:02d}T{hour:02d}:00:00+00:00"


@pytest.fixture
def loop_repo(tmp_path: Path) -> dict[str, str]:
    """Five proposals over a week: merged and kept, merged and rolled back, failed, never evaluated and
    merged anyway, and evaluated then amended before merging (so the merged commit has no passing note)."""
    root = make_repo(tmp_path / "repo")
    shas: dict[str, str] = {"root": str(root)}
    a, shas["a"] = propose(root, "ask-order-number", "tool-error-1a2b3c4d", {"prompts/agent.md": with_rule()},
                           at=at(2))
    git(root, "merge", "-q", "--no-ff", "-m", "Merge a", a, at=at(2, 16))  # 6 hours later
    shas["merge_a"] = git(root, "rev-parse", "HEAD").strip()
    b, shas["b"] = propose(root, "lower-temperature", "loop-99aa00bb",
                           {"config/agent.yaml": b"temperature: 0\n"}, at=at(3))
    git(root, "merge", "-q", "--no-ff", "-m", "Merge b", b, at=at(4, 10))  # 24 hours later
    shas["merge_b"] = git(root, "rev-parse", "HEAD").strip()
    _, shas["c"] = propose(root, "thank-customers", "user-correction-5e6f7a8b",
                           {"prompts/agent.md": with_tone(with_rule().decode())}, at=at(5), verdict="fail")
    d, shas["d"] = propose(root, "no-eval", "escalation-00112233",
                           {"prompts/agent.md": with_tone(with_rule().decode())}, at=at(6), verdict=None)
    git(root, "merge", "-q", "--no-ff", "-m", "Merge d", d, at=at(6, 12))  # 2 hours later
    shas["merge_d"] = git(root, "rev-parse", "HEAD").strip()
    e, shas["e"] = propose(root, "shorter-answers", "loop-44556677",
                           {"config/agent.yaml": b"temperature: 0.1\n"}, at=at(7))
    git(root, "checkout", "-q", e)
    (root / "config" / "agent.yaml").write_text("temperature: 0.15\n")
    git(root, "commit", "-q", "-am", "tweak by hand", at=at(7, 11))
    shas["e_tip"] = git(root, "rev-parse", "HEAD").strip()
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "-m", "Merge e", e, at=at(7, 14))  # 4 hours after the proposal
    shas["merge_e"] = git(root, "rev-parse", "HEAD").strip()
    return shas


def test_ledger_and_metrics(loop_repo: dict[str, str], run: Callable[..., Any]) -> None:
    root = Path(loop_repo["root"])
    undo = run("rollback", "--proposal", "selfimprove/ask-order-number", "--json", cwd=root)
    assert undo.exit_code == 0, undo.stderr
    rollback_sha = undo.json()["commit"]
    assert undo.json()["rollback_of"] == [loop_repo["merge_a"]]
    assert (root / "prompts" / "agent.md").read_bytes() == with_tone()  # d's later edit is kept

    doc = run("history", "--json", cwd=root).json()
    assert doc["schema"] == "selfimprove.history/v1" and doc["branch"] == "main"
    assert doc["metrics"] == {
        "since": None, "proposals": 5, "evaluated": 4, "passed": 3, "merged": 4, "rolled_back": 1,
        "improvement_rate": 0.75, "regression_rate": 0.25, "validation_coverage": 0.5,
        "hours_to_merge": {"median": 5.0, "mean": 9.0, "count": 4},
    }
    proposals = {p["branch"]: p for p in doc["proposals"]}
    assert [p["commit"] for p in doc["proposals"]] == [loop_repo[k] for k in "edcba"]  # newest first
    assert proposals["selfimprove/thank-customers"]["verdict"] == "fail"
    assert proposals["selfimprove/thank-customers"]["merged_by"] is None
    assert proposals["selfimprove/no-eval"]["verdict"] is None
    assert proposals["selfimprove/shorter-answers"] | {"created_at": None} == {
        "commit": loop_repo["e"], "branch": "selfimprove/shorter-answers", "title": "shorter answers",
        "pattern": "loop-44556677", "base": loop_repo["merge_d"], "proposer": "offline/rules",
        "created_at": None, "verdict": "pass", "merged_by": loop_repo["merge_e"]}
    merges = {m["commit"]: m for m in doc["merges"]}
    assert [m["commit"] for m in doc["merges"]] == [loop_repo[k] for k in ("merge_e", "merge_d", "merge_b",
                                                                         "merge_a")]
    assert merges[loop_repo["merge_e"]]["merged_commit"] == loop_repo["e_tip"]
    assert merges[loop_repo["merge_e"]]["validated"] is False  # evaluated, then amended before the merge
    assert merges[loop_repo["merge_d"]]["validated"] is False
    assert merges[loop_repo["merge_a"]]["validated"] is True
    assert merges[loop_repo["merge_a"]]["rolled_back_by"] == rollback_sha
    assert merges[loop_repo["merge_b"]]["rolled_back_by"] is None
    assert merges[loop_repo["merge_a"]]["hours_to_merge"] == 6.0
    assert merges[loop_repo["merge_a"]]["patterns"] == ["tool-error-1a2b3c4d"]
    assert doc["rollbacks"][0]["rollback_of"] == [loop_repo["merge_a"]]
    assert [e["event"] for e in doc["events"]][:3] == ["rollback", "merge", "proposal"]
    assert doc["warnings"] == []

    windowed = run("history", "--json", "--since", "2026-01-05", cwd=root).json()
    assert windowed["metrics"]["proposals"] == 3 and windowed["metrics"]["merged"] == 2
    assert windowed["metrics"]["improvement_rate"] == 0.5  # 1 of the 2 evaluated; d never was
    assert windowed["metrics"]["regression_rate"] == 0.0

    table = run("history", cwd=root)
    assert table.exit_code == 0 and table.stderr == ""
    assert "5 proposals (4 evaluated), improvement rate 75%; 4 merged, regression rate 25%, validation " \
        "coverage 50%; median hours to merge 5" in " ".join(table.stdout.split())
    assert re.search(rf"\n *2026-\S+ \S+ +rollback +{rollback_sha[:7]} +ask order number", table.stdout)
    verbose = run("history", "-v", cwd=root)
    assert verbose.exit_code == 0, verbose.stderr
    assert (f"selfimprove/no-eval: pattern escalation-00112233, proposer offline/rules, base "
            f"{loop_repo['merge_b'][:7]}, verdict not evaluated, merged by {loop_repo['merge_d'][:7]}\n"
            ) in verbose.stdout
    assert "selfimprove/thank-customers: pattern user-correction-5e6f7a8b" in verbose.stdout
    assert "verdict fail, not merged" in verbose.stdout


def test_empty_repo_and_bad_notes(tmp_path: Path, run: Callable[..., Any]) -> None:
    root = make_repo(tmp_path / "repo")
    empty = run("history", "--json", cwd=root).json()
    assert empty["proposals"] == [] and empty["events"] == []
    assert empty["metrics"]["improvement_rate"] is None and empty["metrics"]["validation_coverage"] is None
    with Repo.open(root) as repo:
        head = repo.resolve("HEAD")
        repo.note_add(head, "not json")
    warnings = run("history", "--json", cwd=root).json()["warnings"]
    assert warnings == [f"note on {head[:7]} is not JSON; ignored"]
    assert "no proposals, merges or rollbacks yet" in run("history", cwd=root).stdout
    bad = run("history", "--since", "last tuesday", cwd=root)
    assert bad.exit_code == 2
    assert bad.stderr == ("error: --since 'last tuesday' is not a date or a duration "
                          "(hint: use e.g. 30d, 12h, 2w or 2026-01-31)\n")
    outside = run("history", "--repo", str(tmp_path), cwd=tmp_path)
    assert outside.exit_code == 2 and "is not inside a git repository" in outside.stderr


def test_parse_since_and_fisher() -> None:
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert history.parse_since("2d", now=now) == datetime(2026, 2, 27, tzinfo=timezone.utc)
    assert history.parse_since("2026-02-01") == datetime(2026, 2, 1, tzinfo=timezone.utc)
    assert history.parse_since(None) is None
    with pytest.raises(SelfImproveError):
        history.parse_since("soon")
    # 1/10 before, 9/10 after: Fisher's one-sided p = 0.000547 (hypergeometric tail)
    assert history.fisher_greater(1, 10, 9, 10) == pytest.approx(0.000547, abs=1e-6)
    assert history.fisher_greater(9, 10, 1, 10) == 0.999995  # 1 - 1/C(20, 10)
    assert history.fisher_greater(0, 0, 3, 10) == 1.0


def test_production_check_by_recorded_version(loop_repo: dict[str, str]) -> None:
    root = Path(loop_repo["root"])
    initial = git(root, "rev-list", "--max-parents=0", "HEAD").strip()
    rows: list[tuple[str | None, datetime | None, str, str | None]] = []
    # 50 traces on the initial prompt: 10 tool errors, 1 escalation; 50 after merge a: 1 and 12
    rows += [(initial, None, "failure", "tool-error-1a2b3c4d")] * 10 + [(initial, None, "failure", "esc")]
    rows += [(initial, None, "success", None)] * 39
    rows += [(loop_repo["merge_a"][:12], None, "failure", "tool-error-1a2b3c4d")]
    rows += [(loop_repo["merge_a"][:12], None, "failure", "esc")] * 12
    rows += [(loop_repo["merge_a"][:12], None, "success", None)] * 37
    # the proposal branch commit itself places like the version it was based on plus nothing merged
    rows += [("v-unknown", None, "success", None), (None, None, "success", None)]
    with Repo.open(root) as repo:
        ledger = history.build_ledger(repo)
        result = history.production_check(repo, ledger, [], outcomes=rows)
    first, second = result["versions"][0], result["versions"][1]
    assert (first["label"], first["traces"], first["failures"]) == ("before the first change", 50, 11)
    assert first["patterns"]["tool-error-1a2b3c4d"] == {"count": 10, "rate": 0.2}
    assert second["label"] == f"after merge {loop_repo['merge_a'][:7]} (ask order number)"
    assert second["patterns"]["tool-error-1a2b3c4d"] == {"count": 1, "rate": 0.02}
    check = result["changes"][0]
    assert check["commit"] == loop_repo["merge_a"] and check["targets"] == ["tool-error-1a2b3c4d"]
    assert check["held"] is True and check["worse"] == ["esc"]
    assert result["placed_by"] == {"version": 100, "time": 0, "unplaced": 2}
    assert result["unknown_versions"] == []
    assert first["recorded_versions"] == {initial: 50}
    assert result["versions"][0]["failure_rate"] == 0.22
    assert [v["traces"] for v in result["versions"]] == [50, 50, 0, 0, 0]


def trace_line(i: int, version: str | None, when: str, failed: bool) -> str:
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"Where is my order {i}?"}]
    if failed:
        messages += [
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c1", "type": "function",
                             "function": {"name": "lookup_order", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "Error: order id missing", "is_error": True},
            {"role": "assistant", "content": "Sorry, I could not find your order."}]
    else:
        messages += [{"role": "assistant", "content": "It ships tomorrow."}]
    record: dict[str, Any] = {"id": f"t{i}", "messages": messages, "timestamp": when,
                              "outcome": "failure" if failed else "success"}
    if version:
        record["prompt_version"] = version
    return json.dumps(record)


def test_history_traces_shows_the_targeted_pattern_falling(tmp_path: Path, run: Callable[..., Any]) -> None:
    root = make_repo(tmp_path / "repo")
    before = git(root, "rev-parse", "HEAD").strip()
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [trace_line(i, before, "2026-01-01T12:00:00Z", failed=i % 2 == 0) for i in range(20)]
    (logs / "before.jsonl").write_text("\n".join(lines) + "\n")
    analysis = run("analyze", str(logs), "--json", cwd=root)
    assert analysis.exit_code == 0, analysis.stderr
    assert analysis.json()["patterns"], analysis.stdout
    pattern = analysis.json()["patterns"][0]["id"]
    branch, _ = propose(root, "ask-order-number", pattern, {"prompts/agent.md": with_rule(PROMPT)}, at=at(2))
    git(root, "merge", "-q", "--no-ff", "-m", "Merge fix", branch, at=at(3))
    merge = git(root, "rev-parse", "HEAD").strip()
    after = [trace_line(100 + i, merge[:8], "2026-01-04T12:00:00Z", failed=i % 10 == 0) for i in range(20)]
    (logs / "after.jsonl").write_text("\n".join(after) + "\n")

    result = run("history", "--traces", str(logs), "--json", cwd=root)
    assert result.exit_code == 0, result.stderr
    production = result.json()["production"]
    assert production["placed_by"] == {"version": 40, "time": 0, "unplaced": 0}
    [check] = production["changes"]
    assert check["targets"] == [pattern] and check["held"] is True
    [row] = [r for r in check["patterns"] if r["pattern"] == pattern]
    assert (row["before"], row["after"]) == (0.5, 0.1)
    human = run("history", "--traces", str(logs), cwd=root)
    assert f"after merge {merge[:7]} (ask order number): fix held" in human.stdout

    # the same traces without versions: placed by time between merges, same answer
    for name in ("before.jsonl", "after.jsonl"):
        path = logs / name
        records = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "prompt_version"}) + "\n"
                                for r in records))
    timed = run("history", "--traces", str(logs), "--json", cwd=root).json()["production"]
    assert timed["placed_by"] == {"version": 0, "time": 40, "unplaced": 0}
    assert timed["changes"][0]["held"] is True
