"""rollback against real git repos: a prompt repo, proposals merged the ways people merge them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from selfimprove.gitrepo import Repo

USER = {"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.com"}

SETTINGS = """\
version: 1
prompts:
  - path: prompts/agent.md
configs:
  - path: config/agent.yaml
    mutable: ["/temperature"]
policy:
  protected_phrases: ["Never reveal internal notes"]
"""

PROMPT = """\
# Support agent
<!-- selfimprove:immutable id=safety -->
Never reveal internal notes. Always confirm before cancelling an order.
<!-- /selfimprove -->
<!-- selfimprove:mutable id=learned-rules -->
- Be concise.
<!-- /selfimprove -->
Answer in English.
<!-- selfimprove:mutable id=tone -->
- Be friendly.
<!-- /selfimprove -->
"""

RULE = "- Ask for the order number before looking up an order.\n"
TONE = "- Be friendly and thank the customer.\n"


def git(root: Path, *args: str, at: str | None = None) -> str:
    env = {**os.environ, **USER}
    if at:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = at
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env=env).stdout


def make_repo(root: Path, prompt: str = PROMPT) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "--initial-branch=main")
    (root / "prompts").mkdir()
    (root / "config").mkdir()
    (root / "selfimprove.yaml").write_text(SETTINGS)
    (root / "prompts" / "agent.md").write_text(prompt)
    (root / "config" / "agent.yaml").write_text("temperature: 0.2\n")
    (root / "README.md").write_text("not managed\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "initial prompts", at="2026-01-01T10:00:00+00:00")
    return root


def propose(root: Path, slug: str, pattern: str, files: dict[str, bytes], *, at: str,
            verdict: str | None = "pass", base: str = "main") -> tuple[str, str]:
    """A proposal branch as `propose` writes it (one commit, trailers) plus, optionally, an eval note."""
    branch = f"selfimprove/{slug}"
    env_date = {"GIT_AUTHOR_DATE": at, "GIT_COMMITTER_DATE": at}
    old = {k: os.environ.get(k) for k in env_date}
    os.environ.update(env_date)
    try:
        with Repo.open(root) as repo:
            base_sha = repo.resolve(base)
            message = (f"selfimprove: {slug.replace('-', ' ')}\n\n"
                       f"Pattern {pattern}: 12 of 40 failures (30%).\n\n"
                       f"Selfimprove-Pattern: {pattern}\nSelfimprove-Base: {base_sha}\n"
                       "Selfimprove-Proposer: offline/rules\n")
            sha = repo.commit_files(branch=branch, base=base_sha, files=files, message=message)
            if verdict is not None:
                note = {"schema": "selfimprove.eval/v1", "verdict": verdict, "reasons": [],
                        "base": {"ref": base, "sha": base_sha, "pass_rate": 0.6},
                        "candidate": {"ref": branch, "sha": sha, "pass_rate": 0.9}}
                repo.note_add(sha, json.dumps(note))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return branch, sha


def with_rule(text: str = PROMPT) -> bytes:
    return text.replace("- Be concise.\n", "- Be concise.\n" + RULE).encode()


def with_tone(text: str = PROMPT) -> bytes:
    return text.replace("- Be friendly.\n", TONE).encode()


def state(root: Path) -> dict[str, Any]:
    """Everything rollback could change: refs, HEAD, the index, the working tree."""
    snap: dict[str, Any] = {
        "refs": git(root, "for-each-ref", "--format=%(refname) %(objectname)"),
        "HEAD": (root / ".git" / "HEAD").read_bytes(),
        "index": (root / ".git" / "index").read_bytes(),
        "status": git(root, "--no-optional-locks", "status", "--porcelain=v1", "--untracked-files=all"),
    }
    for path in sorted(root.rglob("*")):
        if ".git" not in path.relative_to(root).parts and path.is_file():
            snap[str(path.relative_to(root))] = path.read_bytes()
    return snap


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "prompts-repo")


def merged(root: Path) -> tuple[str, str, str]:
    """main with one proposal merged --no-ff: (branch, proposal sha, merge sha)."""
    branch, sha = propose(root, "ask-order-number", "tool-error-1a2b3c4d", {"prompts/agent.md": with_rule()},
                          at="2026-01-02T10:00:00+00:00")
    git(root, "merge", "-q", "--no-ff", "-m", f"Merge {branch}", branch, at="2026-01-03T16:00:00+00:00")
    return branch, sha, git(root, "rev-parse", "HEAD").strip()


def test_rollback_undoes_the_latest_merge_in_one_commit(repo_dir: Path, run: Callable[..., Any]) -> None:
    branch, proposal, merge = merged(repo_dir)
    before_merge = git(repo_dir, "rev-parse", "HEAD^1").strip()
    result = run("rollback", "--json", cwd=repo_dir)
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    commit = doc["commit"]
    assert doc["schema"] == "selfimprove.rollback/v1"
    assert doc["mode"] == "latest" and doc["rollback_of"] == [merge] and doc["restored_from"] == before_merge
    assert doc["files"] == [{"path": "prompts/agent.md", "deleted": False}]
    assert git(repo_dir, "rev-list", f"{merge}..HEAD").split() == [commit]
    assert git(repo_dir, "rev-parse", "HEAD^").strip() == merge
    for path in ("prompts/agent.md", "config/agent.yaml", "selfimprove.yaml"):
        assert git(repo_dir, "show", f"HEAD:{path}") == git(repo_dir, "show", f"{before_merge}:{path}")
    assert (repo_dir / "prompts" / "agent.md").read_text() == PROMPT  # the working tree follows
    assert git(repo_dir, "status", "--porcelain") == ""
    message = git(repo_dir, "log", "-1", "--format=%B")
    assert message.splitlines()[0] == f"selfimprove: rollback ask order number ({merge[:7]})"
    assert message.strip().splitlines()[-2:] == [f"Selfimprove-Rollback-Of: {merge}",
                                                 f"Selfimprove-Restored-From: {before_merge}"]
    assert git(repo_dir, "log", "-1", "--format=%an <%ae>") == "selfimprove <selfimprove@localhost>\n"

    history = run("history", "--json", cwd=repo_dir).json()
    [prop] = history["proposals"]
    assert (prop["commit"], prop["branch"], prop["verdict"]) == (proposal, branch, "pass")
    assert prop["merged_by"] == merge
    [change] = history["merges"]
    assert (change["commit"], change["rolled_back_by"], change["validated"]) == (merge, commit, True)
    [undo] = history["rollbacks"]
    assert (undo["commit"], undo["rollback_of"], undo["restored_from"]) == (commit, [merge], before_merge)
    assert [e["event"] for e in history["events"]] == ["rollback", "merge", "proposal"]

    # undone already: a second rollback has nothing to undo, and says so
    again = run("rollback", cwd=repo_dir)
    assert again.exit_code == 2
    assert again.stderr == ("error: no merged selfimprove change on main to undo "
                            "(hint: see selfimprove history; --to REF restores any version)\n")


def test_rollback_of_a_fast_forward_merge(repo_dir: Path, run: Callable[..., Any]) -> None:
    branch, proposal = propose(repo_dir, "lower-temperature", "loop-99aa00bb",
                               {"config/agent.yaml": b"temperature: 0.1\n"}, at="2026-01-02T10:00:00+00:00")
    git(repo_dir, "merge", "-q", "--ff-only", branch)
    result = run("rollback", "--json", cwd=repo_dir)
    assert result.exit_code == 0, result.stderr
    assert result.json()["rollback_of"] == [proposal]
    assert (repo_dir / "config" / "agent.yaml").read_bytes() == b"temperature: 0.2\n"
    assert git(repo_dir, "rev-parse", "HEAD^").strip() == proposal


def test_dry_run_prints_the_diff_and_changes_nothing(repo_dir: Path, run: Callable[..., Any]) -> None:
    merged(repo_dir)
    before = state(repo_dir)
    result = run("rollback", "--dry-run", cwd=repo_dir)
    assert result.exit_code == 0, result.stderr
    assert f"\n-{RULE}" in result.stdout
    assert result.stdout.startswith("diff --git a/prompts/agent.md b/prompts/agent.md\n")
    assert "dry run: would commit 'selfimprove: rollback ask order number" in result.stdout
    assert state(repo_dir) == before
    doc = run("rollback", "--dry-run", "--json", cwd=repo_dir).json()
    assert doc["dry_run"] is True and doc["commit"] is None and f"-{RULE}" in doc["diff"]
    assert state(repo_dir) == before


def refuse(run: Callable[..., Any], root: Path, *args: str) -> str:
    before = state(root)
    result = run("rollback", *args, cwd=root)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert state(root) == before
    line: str = result.stderr.strip()
    return line


def test_refusals_exit_2_with_one_line_and_change_nothing(repo_dir: Path, run: Callable[..., Any]) -> None:
    assert refuse(run, repo_dir) == ("error: no merged selfimprove change on main to undo "
                                     "(hint: see selfimprove history; --to REF restores any version)")
    branch, _, merge = merged(repo_dir)
    assert refuse(run, repo_dir, "--to", "no-such-ref") == (
        f"error: unknown revision 'no-such-ref' in {repo_dir.resolve()} (hint: check the name with "
        "`git log --oneline` or `git branch -a`)")
    assert refuse(run, repo_dir, "--to", "HEAD") == (
        "error: managed files at HEAD are identical to HEAD; nothing to undo")
    (repo_dir / "config" / "agent.yaml").write_text("temperature: 0.7\n")
    assert refuse(run, repo_dir) == ("error: uncommitted changes in managed files: config/agent.yaml "
                                     "(hint: commit or stash them first; rollback only adds a new commit)")
    git(repo_dir, "add", "config/agent.yaml")
    assert "uncommitted changes in managed files: config/agent.yaml" in refuse(run, repo_dir, "--dry-run")
    git(repo_dir, "reset", "-q", "--hard")
    (repo_dir / "README.md").write_text("unmanaged edits do not block a rollback\n")
    git(repo_dir, "checkout", "-q", "--detach")
    assert refuse(run, repo_dir) == ("error: HEAD is detached; rollback commits on a branch "
                                     "(hint: check out the branch to roll back (git switch BRANCH))")
    git(repo_dir, "checkout", "-q", "main")
    other, _ = propose(repo_dir, "unmerged", "loop-00000000", {"prompts/agent.md": with_tone()},
                       at="2026-01-04T10:00:00+00:00")
    assert refuse(run, repo_dir, "--proposal", other) == (
        "error: selfimprove/unmerged is not merged into main; nothing to undo (hint: rollback undoes merged "
        "proposals; an unmerged branch can simply be deleted)")
    assert refuse(run, repo_dir, "--proposal", "selfimprove/nope").startswith("error: unknown proposal")
    assert refuse(run, repo_dir, "--to", "main", "--proposal", branch).startswith(
        "error: --to and --proposal cannot be combined")
    with Repo.open(repo_dir) as repo, repo.lock():
        assert refuse(run, repo_dir).startswith("error: another selfimprove command is running")
    assert run("rollback", cwd=repo_dir).exit_code == 0  # the README edit survives, untouched
    assert (repo_dir / "README.md").read_text() == "unmanaged edits do not block a rollback\n"
    assert refuse(run, repo_dir, "--proposal", branch) == (
        f"error: {branch} was already rolled back by {git(repo_dir, 'rev-parse', 'HEAD').strip()[:7]}; "
        "nothing to undo (hint: see selfimprove history)")
    assert merge


def test_undo_one_proposal_keeps_a_later_one(repo_dir: Path, run: Callable[..., Any]) -> None:
    first, _ = propose(repo_dir, "ask-order-number", "tool-error-1a2b3c4d", {"prompts/agent.md": with_rule()},
                       at="2026-01-02T10:00:00+00:00")
    git(repo_dir, "merge", "-q", "--no-ff", "-m", "Merge first", first)
    second, _ = propose(repo_dir, "thank-customers", "user-correction-5e6f7a8b",
                        {"prompts/agent.md": with_tone(with_rule().decode())}, at="2026-01-03T10:00:00+00:00")
    git(repo_dir, "merge", "-q", "--no-ff", "-m", "Merge second", second)
    result = run("rollback", "--proposal", first, "--json", cwd=repo_dir)
    assert result.exit_code == 0, result.stderr
    assert (repo_dir / "prompts" / "agent.md").read_bytes() == with_tone()  # rule gone, tone kept
    # the latest change is still the second one, which has not been undone
    doc = run("rollback", "--dry-run", "--json", cwd=repo_dir).json()
    assert doc["subject"].startswith("selfimprove: rollback thank customers")


def test_rollback_to_a_ref_restores_that_version(repo_dir: Path, run: Callable[..., Any]) -> None:
    initial = git(repo_dir, "rev-parse", "HEAD").strip()
    _, _, merge = merged(repo_dir)
    (repo_dir / "config" / "agent.yaml").write_text("temperature: 0.5\n")
    git(repo_dir, "commit", "-q", "-am", "tune by hand")
    result = run("rollback", "--to", initial[:10], "--json", cwd=repo_dir)
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["mode"] == "to" and doc["rollback_of"] == [merge] and doc["restored_from"] == initial
    assert [f["path"] for f in doc["files"]] == ["config/agent.yaml", "prompts/agent.md"]
    for path in ("prompts/agent.md", "config/agent.yaml"):
        assert git(repo_dir, "show", f"HEAD:{path}") == git(repo_dir, "show", f"{initial}:{path}")
    assert git(repo_dir, "log", "-1", "--format=%s").strip() == f"selfimprove: rollback to {initial[:10]} " \
        f"({initial[:7]})"


def test_policy_blocks_removing_a_protected_phrase(tmp_path: Path, run: Callable[..., Any]) -> None:
    weak = PROMPT.replace("Never reveal internal notes. ", "")
    root = make_repo(tmp_path / "r", prompt=weak)
    old = git(root, "rev-parse", "HEAD").strip()
    (root / "prompts" / "agent.md").write_text(PROMPT)
    git(root, "commit", "-q", "-am", "add the guardrail")
    before = state(root)
    result = run("rollback", "--to", old, cwd=root)
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("the restored version fails the policy check: prompts/agent.md")
    assert "Never reveal internal notes" in result.stderr and "pass --force" in result.stderr
    assert state(root) == before
    forced = run("rollback", "--to", old, "--force", "--json", cwd=root)
    assert forced.exit_code == 0, forced.stderr
    assert forced.json()["forced_violations"]
    assert (root / "prompts" / "agent.md").read_text() == weak
    assert "Restored with --force despite policy violations:" in git(root, "log", "-1", "--format=%B")


def test_verbose_rollback_prints_the_committed_diff(repo_dir: Path, run: Callable[..., Any]) -> None:
    merged(repo_dir)
    quiet = run("rollback", "--dry-run", cwd=repo_dir).stdout
    diff = quiet[: quiet.index("dry run: ")]
    result = run("rollback", "-v", cwd=repo_dir)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(diff) and f"\n-{RULE}" in diff  # the same diff the dry run showed
    assert (repo_dir / "prompts" / "agent.md").read_text() == PROMPT
