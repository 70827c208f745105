from __future__ import annotations

import subprocess
from pathlib import Path

from selfimprove.config import load_settings
from selfimprove.prompts.sections import parse_prompt
from selfimprove.scaffold import template_files


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_init_makes_a_git_repo_with_one_commit_that_later_commands_accept(run, tmp_path):
    target = tmp_path / "agent"
    result = run("init", str(target))
    assert result.exit_code == 0, result.stderr
    assert f"initialised a git repository in {target}" in result.stdout
    files = sorted(git(target, "ls-files").split())
    assert files == sorted(template_files())
    assert git(target, "log", "--format=%s").splitlines() == ["selfimprove: init prompt repo"]
    assert git(target, "status", "--porcelain") == ""
    settings = load_settings(repo=target)
    assert settings.prompts == ("prompts/support_agent.md",)
    doc = parse_prompt((target / "prompts/support_agent.md").read_text(), "prompts/support_agent.md")
    assert {s.id: s.mutable for s in doc.sections.values()} == {
        "guardrails": False, "learned-rules": True, "examples": True,
    }
    assert "<!--" not in doc.render()


def test_init_never_overwrites_and_commits_only_what_it_created(run, tmp_path):
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "selfimprove.yaml").write_text("mine\n")
    (tmp_path / "notes.txt").write_text("staged work\n")
    git(tmp_path, "add", "notes.txt")
    result = run("init", str(tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["skipped"] == ["selfimprove.yaml"] and doc["git_initialised"] is False
    assert (tmp_path / "selfimprove.yaml").read_text() == "mine\n"
    committed = sorted(git(tmp_path, "show", "--name-only", "--format=", "HEAD").split())
    assert committed == sorted(set(template_files()) - {"selfimprove.yaml"})
    assert git(tmp_path, "status", "--porcelain").splitlines() == ["A  notes.txt", "?? selfimprove.yaml"]
    again = run("init", str(tmp_path), "--json").json()
    assert again["created"] == [] and again["commit"] is None


def test_init_in_a_subdirectory_of_an_existing_repo(run, tmp_path):
    git(tmp_path, "init", "-q", "-b", "main")
    result = run("init", str(tmp_path / "agents" / "support"), "--json")
    assert result.exit_code == 0, result.stderr
    names = git(tmp_path, "show", "--name-only", "--format=", "HEAD").split()
    assert "agents/support/prompts/support_agent.md" in names


def test_init_on_a_file_is_a_user_error(run, tmp_path):
    (tmp_path / "f").write_text("x")
    result = run("init", str(tmp_path / "f"))
    assert result.exit_code == 2
    assert result.stderr == f"error: {tmp_path / 'f'} exists and is not a directory\n"
