"""`selfimprove propose` end to end: real git, real trace files, litellm against a stub server."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.proposals.conftest import DATA, git, make_repo

RULE = ('- When `lookup_order` fails with "Order <id> not found", do not repeat the same call: check the '
        "arguments you passed, and if it still fails, tell the user plainly what went wrong.")


def init_repo(run: Callable[..., Any], path: Path) -> Path:
    """A prompt repo made by `selfimprove init`, with the example log of a clear tool-error pattern."""
    result = run("init", str(path))
    assert result.exit_code == 0, result.stderr
    shutil.copy(DATA / "logs" / "support.jsonl", path / "logs" / "support.jsonl")
    git(path, "add", "logs/support.jsonl")
    git(path, "commit", "-qm", "production logs")
    return path


def snapshot(repo: Path) -> dict[str, Any]:
    """Everything the user could lose: HEAD, branch, index entries, staged and unstaged diffs, file bytes."""
    files = {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(repo.rglob("*")) if p.is_file() and ".git" not in p.relative_to(repo).parts}
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "branch": git(repo, "symbolic-ref", "HEAD"),
        "index": git(repo, "ls-files", "--stage"),
        "staged": git(repo, "diff", "--cached"),
        "unstaged": git(repo, "diff"),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "files": files,
    }


def make_mess(repo: Path) -> None:
    """A dirty working tree, a staged file and an untracked file, all touching the managed prompt."""
    prompt = repo / "prompts" / "support_agent.md"
    prompt.write_text(prompt.read_text() + "\nWork in progress, not committed.\n")
    (repo / "config" / "agent.yaml").write_text((repo / "config" / "agent.yaml").read_text()
                                                .replace("temperature: 0.2", "temperature: 0.9"))
    git(repo, "add", "config/agent.yaml")
    (repo / "notes.txt").write_text("untracked\n")


def branches(repo: Path) -> list[str]:
    return git(repo, "branch", "--format=%(refname:short)").split()


def test_offline_proposal_from_the_logs_leaves_the_users_work_alone(run, tmp_path: Path):
    repo = init_repo(run, tmp_path / "agent")
    make_mess(repo)
    before = snapshot(repo)
    result = run("propose", "--offline", cwd=repo)
    assert result.exit_code == 0, result.stderr
    assert snapshot(repo) == before
    (branch,) = [b for b in branches(repo) if b.startswith("selfimprove/")]
    assert branch.startswith("selfimprove/lookup-order-")
    head = before["head"].strip()
    assert git(repo, "rev-parse", f"{branch}^").strip() == head
    assert git(repo, "diff", "--name-only", head, branch).split() == ["prompts/support_agent.md"]
    diff = git(repo, "diff", "--unified=0", head, branch).splitlines()
    assert [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")] == ["+" + RULE]
    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", branch).split("\n")
    assert trailers[0].startswith("Selfimprove-Pattern: tool-error-")
    assert trailers[1:3] == [f"Selfimprove-Base: {head}", "Selfimprove-Proposer: offline/tool-error-rule"]
    body = git(repo, "log", "-1", "--format=%b", branch)
    assert "Seen in 8 failing traces (100% of failures)." in body
    assert "Trace ids: t-001, t-002, t-004" in body
    assert f"created {branch}" in result.stdout
    assert f"next: selfimprove eval {branch}" in result.stderr


def test_from_file_json_output_and_idempotence(run, tmp_path: Path):
    repo = make_repo(tmp_path / "agent")
    make_mess(repo)
    before = snapshot(repo)
    first = run("propose", "--offline", "--from", str(DATA / "tool_error.json"), "--json", cwd=repo)
    assert first.exit_code == 0, first.stderr
    doc = first.json()
    (p,) = doc["proposals"]
    assert doc["schema"] == "selfimprove.proposals/v1" and doc["rejected"] == []
    assert p["commit"] == git(repo, "rev-parse", p["branch"]).strip()
    assert (p["base"], p["pattern"], p["files"], p["proposer"], p["status"]) == (
        before["head"].strip(), "tool-error-5d0c7a21", ["prompts/support_agent.md"],
        "offline/tool-error-rule", "created")
    assert first.stderr == ""
    again = run("propose", "--offline", "--from", str(DATA / "tool_error.json"), "--json", cwd=repo).json()
    assert [(q["branch"], q["commit"], q["status"]) for q in again["proposals"]] == [
        (p["branch"], p["commit"], "exists")]
    assert len(branches(repo)) == 2
    assert snapshot(repo) == before


def test_dry_run_prints_the_diff_and_writes_nothing(run, tmp_path: Path):
    repo = make_repo(tmp_path / "agent")
    refs = git(repo, "for-each-ref")
    result = run("propose", "--offline", "--dry-run", "--from", str(DATA / "tool_error.json"), cwd=repo)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("would create selfimprove/lookup-order-")
    assert "\n--- a/prompts/support_agent.md\n+++ b/prompts/support_agent.md\n" in result.stdout
    assert f"\n+{RULE}\n" in result.stdout
    assert "would create selfimprove/lookup-order-" in result.stdout
    assert git(repo, "for-each-ref") == refs


def test_everything_refused_exits_1_with_reasons(run, tmp_path: Path):
    repo = make_repo(tmp_path / "agent")
    result = run("propose", "--offline", "--from", str(DATA / "injection.json"), cwd=repo)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert result.stderr.startswith("nothing proposed: every candidate was refused (listed above)")
    assert lines[0].startswith("refused user-correction-bad00001: every user correction of this pattern")
    assert lines[1].startswith("refused tool-error-bad00002: the error text of tool 'search' reads like")
    assert branches(repo) == ["main"]


def test_bad_analysis_file_is_one_line(run, tmp_path: Path):
    repo = make_repo(tmp_path / "agent")
    bad = tmp_path / "analysis.json"
    bad.write_text('{"schema": "selfimprove.analysis/v1",\n "patterns": [}\n')
    result = run("propose", "--offline", "--from", str(bad), cwd=repo)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {bad}:2: not valid JSON: ")
    assert len(result.stderr.splitlines()) == 1
    missing = run("propose", "--offline", "--from", str(tmp_path / "nope.json"), cwd=repo)
    assert missing.exit_code == 2 and "nope.json not found" in missing.stderr


def test_unknown_pattern_and_base(run, tmp_path: Path):
    repo = make_repo(tmp_path / "agent")
    args = ("propose", "--offline", "--from", str(DATA / "tool_error.json"))
    result = run(*args, "--pattern", "loop-1", cwd=repo)
    assert result.exit_code == 2
    assert result.stderr == ("error: no pattern 'loop-1' in the analysis (patterns: 1 tool-error-5d0c7a21) "
                             "(hint: give the id or the # of a pattern in the 'selfimprove analyze' "
                             "report)\n")
    assert run(*args, "--pattern", "2", cwd=repo).exit_code == 2
    by_rank = run(*args, "--pattern", "1", "--dry-run", "--json", cwd=repo)
    assert by_rank.exit_code == 0, by_rank.stderr
    assert [p["pattern"] for p in by_rank.json()["proposals"]] == ["tool-error-5d0c7a21"]
    result = run(*args, "--base", "v9", cwd=repo)
    assert result.exit_code == 2 and "v9" in result.stderr


def _model_reply(body: dict[str, Any]) -> str:
    """What the stub model answers: one rule added to the learned-rules section it was shown."""
    user = body["messages"][-1]["content"]
    prompts = json.loads(user.split("verbatim except for your operations):\n", 1)[1].split(
        "\n\nStructured configs:", 1)[0])
    assert any(s["id"] == "learned-rules" for s in prompts[0]["mutable_sections"])
    return json.dumps({
        "title": "check order numbers before lookup_order",
        "rationale": "lookup_order fails on order numbers that do not exist; asking first avoids it.",
        "operations": [{"op": "add", "path": "prompts/support_agent.md", "section": "learned-rules",
                        "text": "Repeat the order number back to the customer before calling "
                                "`lookup_order`."}],
    })


def test_llm_proposal_through_litellm_and_the_stub_server(run, tmp_path: Path, stub_openai):
    repo = make_repo(tmp_path / "agent")
    stub_openai.reply = _model_reply
    result = run("propose", "--model", "openai/stub-reflector", "--json",
                 "--from", str(DATA / "tool_error.json"), cwd=repo)
    assert result.exit_code == 0, result.stderr
    (p,) = result.json()["proposals"]
    assert p["proposer"] == "llm:openai/stub-reflector"
    assert p["tokens"]["input"] > 0 and p["tokens"]["output"] > 0
    assert p["branch"].startswith("selfimprove/check-order-numbers-before-lookup-order-")
    (request,) = stub_openai.requests
    assert request["model"] == "stub-reflector"
    assert "jane.doe@example.com" not in json.dumps(request)
    rule = "+- Repeat the order number back to the customer before calling `lookup_order`."
    diff = git(repo, "diff", "--unified=0", "HEAD", p["branch"]).splitlines()
    assert [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [rule]
    message = git(repo, "log", "-1", "--format=%B", p["branch"])
    assert "Selfimprove-Proposer: llm:openai/stub-reflector" in message


def test_llm_malformed_twice_through_the_stub_is_refused(run, tmp_path: Path, stub_openai):
    repo = make_repo(tmp_path / "agent")
    stub_openai.reply = lambda body: "I would add a rule, but here it is in prose."
    result = run("propose", "--model", "openai/stub-reflector", "--from", str(DATA / "tool_error.json"),
                 cwd=repo)
    assert result.exit_code == 1
    assert "refused tool-error-5d0c7a21: the model's reply was refused after one retry" in result.stdout
    assert len(stub_openai.requests) == 2
    assert branches(repo) == ["main"]
