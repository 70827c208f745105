"""gitrepo against real git in temporary directories (HOME and git config isolated by conftest)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from selfimprove.errors import SelfImproveError
from selfimprove.gitrepo import NOTES_REF, Repo, parse_trailers


def git(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    import os

    full = {**os.environ, **(env or {})}
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env=full).stdout


USER = {"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.com"}


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "--initial-branch=main")
    (root / "prompts").mkdir()
    (root / "prompts" / "agent.md").write_text("You are helpful.\n")
    (root / "config.yaml").write_text("temperature: 0.2\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "initial", env=USER)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    """Every byte a user could see: HEAD, the index, refs of the checkout, and all working-tree files."""
    snap = {".git/HEAD": (root / ".git" / "HEAD").read_bytes(),
            ".git/index": (root / ".git" / "index").read_bytes(),
            "status": git(root, "--no-optional-locks", "status", "--porcelain=v1",
                          "--untracked-files=all").encode(),
            "head": git(root, "rev-parse", "HEAD").encode()}
    for path in sorted(root.rglob("*")):
        if ".git" not in path.relative_to(root).parts and path.is_file():
            snap[str(path.relative_to(root))] = path.read_bytes()
    return snap


def test_open_finds_root_from_a_subdirectory_and_closes(repo_dir: Path) -> None:
    with Repo.open(repo_dir / "prompts") as repo:
        assert repo.root == repo_dir.resolve()
        assert repo.current_branch() == "main"
        assert repo.default_branch() == "main"


def test_open_outside_a_repo_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SelfImproveError) as info:
        Repo.open(tmp_path)
    assert info.value.one_line() == (
        f"{tmp_path} is not inside a git repository (hint: run `git init` there, or pass --repo DIR)")


def test_init_uses_main_and_empty_repo_answers(tmp_path: Path) -> None:
    with Repo.init(tmp_path / "new") as repo:
        assert repo.current_branch() == "main"
        assert repo.head_sha() is None
        assert repo.log() == []
        assert repo.branches() == {}
        assert repo.default_branch() == "main"


def test_resolve_and_unknown_revision(repo_dir: Path) -> None:
    with Repo.open(repo_dir) as repo:
        head = git(repo_dir, "rev-parse", "HEAD").strip()
        assert repo.resolve("HEAD") == head
        assert repo.resolve("main") == head
        assert repo.try_resolve("nope") is None
        assert repo.try_resolve("--all") is None
        assert repo.try_resolve(head) == head and repo.try_resolve("0" * 40) is None
        blob = git(repo_dir, "rev-parse", "HEAD:config.yaml").strip()
        assert repo.try_resolve(blob) is None  # a blob is not a revision
        assert repo.read_at(head, "config.yaml") == b"temperature: 0.2\n"
        with pytest.raises(SelfImproveError, match=r"unknown revision 'nope'"):
            repo.resolve("nope")


def test_read_at_and_list_at(repo_dir: Path) -> None:
    with Repo.open(repo_dir) as repo:
        assert repo.read_at("HEAD", "prompts/agent.md") == b"You are helpful.\n"
        assert repo.read_at("HEAD", "missing.md") is None
        assert repo.read_at("HEAD", "prompts") is None  # a directory is not a file
        assert repo.list_at("HEAD") == ["config.yaml", "prompts/agent.md", "run.sh"]
        assert repo.list_at("HEAD", "prompts") == ["prompts/agent.md"]
        assert repo.list_at("HEAD", "prompts/") == ["prompts/agent.md"]


def test_commit_files_never_touches_head_index_or_working_tree(repo_dir: Path) -> None:
    # a messy checkout: unstaged, staged and untracked changes, on the very files being committed
    (repo_dir / "prompts" / "agent.md").write_text("local edit\n")
    (repo_dir / "config.yaml").write_text("temperature: 0.9\n")
    git(repo_dir, "add", "config.yaml")
    (repo_dir / "notes.txt").write_text("untracked\n")
    before = snapshot(repo_dir)
    with Repo.open(repo_dir) as repo:
        base = repo.resolve("HEAD")
        sha = repo.commit_files(branch="selfimprove/fix-1", base="HEAD",
                                files={"prompts/agent.md": b"You are precise.\n", "new/file.txt": b"x",
                                       "config.yaml": None, "run.sh": b"#!/bin/sh\necho bye\n"},
                                message="selfimprove: fix\n\nbody\n\nSelfimprove-Pattern: p1\n")
        assert repo.branches("selfimprove/") == {"selfimprove/fix-1": sha}
        assert repo.read_at(sha, "prompts/agent.md") == b"You are precise.\n"
        assert repo.read_at(sha, "config.yaml") is None
        assert repo.list_at(sha) == ["new/file.txt", "prompts/agent.md", "run.sh"]
        [commit] = repo.log(sha, max_count=1)
        assert commit.parents == (base,)
        assert commit.subject == "selfimprove: fix"
        assert commit.trailers == {"Selfimprove-Pattern": ("p1",)}
    assert snapshot(repo_dir) == before
    assert git(repo_dir, "ls-tree", sha, "run.sh").split()[0] == "100755"  # executable bit kept


def test_commit_files_works_without_any_git_identity(repo_dir: Path) -> None:
    with Repo.open(repo_dir) as repo:
        sha = repo.commit_files(branch="b", base="HEAD", files={"a.txt": b"a\n"}, message="m")
        [commit] = repo.log(sha, max_count=1)
    assert commit.author == "selfimprove <selfimprove@localhost>"
    committer = git(repo_dir, "log", "-1", "--format=%cn <%ce>", sha).strip()
    assert committer == "selfimprove <selfimprove@localhost>"
    assert git(repo_dir, "config", "--list").count("user.") == 0  # nothing written to the config


def test_commit_files_uses_the_users_identity_when_there_is_one(repo_dir: Path) -> None:
    git(repo_dir, "config", "user.name", "Grace")
    git(repo_dir, "config", "user.email", "grace@example.com")
    with Repo.open(repo_dir) as repo:
        sha = repo.commit_files(branch="b", base="HEAD", files={"a.txt": b"a\n"}, message="m")
        assert repo.log(sha, max_count=1)[0].author == "Grace <grace@example.com>"


def test_commit_files_refuses_an_existing_branch(repo_dir: Path) -> None:
    with Repo.open(repo_dir) as repo:
        repo.commit_files(branch="selfimprove/x", base="HEAD", files={"a": b"1"}, message="one")
        before = repo.branches()
        with pytest.raises(SelfImproveError) as info:
            repo.commit_files(branch="selfimprove/x", base="HEAD", files={"a": b"2"}, message="two")
        assert info.value.one_line() == "branch 'selfimprove/x' already exists (hint: delete it with " \
            "`git branch -D` or choose another name)"
        assert repo.branches() == before
        with pytest.raises(SelfImproveError, match="already exists"):
            repo.commit_files(branch="main", base="HEAD", files={"a": b"2"}, message="two")
        with pytest.raises(SelfImproveError, match="invalid branch name"):
            repo.commit_files(branch="bad..name", base="HEAD", files={"a": b"2"}, message="m")
        with pytest.raises(SelfImproveError, match="invalid repository path"):
            repo.commit_files(branch="ok", base="HEAD", files={"../a": b"2"}, message="m")


def test_commit_files_update_is_compare_and_swap(repo_dir: Path) -> None:
    with Repo.open(repo_dir) as repo:
        first = repo.commit_files(branch="work", base="HEAD", files={"a": b"1"}, message="one")
        second = repo.commit_files(branch="work", base=first, files={"a": b"2"}, message="two",
                                   expect_new=False)
        assert repo.resolve("work") == second
        # another writer moves the ref between our read and our write: ours must fail, theirs stays
        build = repo._build_commit(first, {"a": b"3"}, "three")
        with pytest.raises(SelfImproveError, match="moved while selfimprove was writing"):
            repo._move_ref("refs/heads/work", build, first)
        with pytest.raises(SelfImproveError, match="already exists"):
            repo._move_ref("refs/heads/work", build, "0" * 40)
        assert repo.resolve("work") == second


def test_commit_to_current_branch_updates_exactly_those_paths(repo_dir: Path) -> None:
    (repo_dir / "notes.txt").write_text("untracked\n")
    (repo_dir / "run.sh").write_text("#!/bin/sh\necho local\n")  # dirty, but not one of ours
    with Repo.open(repo_dir) as repo:
        head = repo.resolve("HEAD")
        sha = repo.commit_to_current_branch({"prompts/agent.md": b"restored\n", "config.yaml": None},
                                            "selfimprove: rollback x")
        assert repo.resolve("main") == sha
        assert repo.log(max_count=1)[0].parents == (head,)
    assert (repo_dir / "prompts" / "agent.md").read_bytes() == b"restored\n"
    assert not (repo_dir / "config.yaml").exists()
    status = git(repo_dir, "status", "--porcelain=v1", "--untracked-files=all").splitlines()
    assert sorted(status) == [" M run.sh", "?? notes.txt"]


def test_commit_to_current_branch_refusals_change_nothing(repo_dir: Path) -> None:
    (repo_dir / "prompts" / "agent.md").write_text("local edit\n")
    before = snapshot(repo_dir)
    with Repo.open(repo_dir) as repo:
        with pytest.raises(SelfImproveError, match=r"uncommitted changes in prompts/agent\.md"):
            repo.commit_to_current_branch({"prompts/agent.md": b"x"}, "m")
    assert snapshot(repo_dir) == before
    git(repo_dir, "checkout", "-q", "prompts/agent.md")
    git(repo_dir, "checkout", "-q", "--detach")
    before = snapshot(repo_dir)
    with Repo.open(repo_dir) as repo:
        assert repo.current_branch() is None
        with pytest.raises(SelfImproveError, match="HEAD is detached"):
            repo.commit_to_current_branch({"prompts/agent.md": b"x"}, "m")
    assert snapshot(repo_dir) == before


def test_dirty_paths_sees_staged_unstaged_and_untracked(repo_dir: Path) -> None:
    (repo_dir / "prompts" / "agent.md").write_text("edit\n")
    (repo_dir / "config.yaml").write_text("temperature: 1\n")
    git(repo_dir, "add", "config.yaml")
    (repo_dir / "prompts" / "new.md").write_text("new\n")
    with Repo.open(repo_dir) as repo:
        assert repo.dirty_paths(["prompts/agent.md", "config.yaml", "prompts/new.md", "run.sh",
                                 "absent.md"]) == ["config.yaml", "prompts/agent.md", "prompts/new.md"]
        assert repo.dirty_paths([]) == []


def test_diff_merge_base_is_ancestor_log_paths(repo_dir: Path) -> None:
    with Repo.open(repo_dir) as repo:
        base = repo.resolve("HEAD")
        sha = repo.commit_files(branch="b", base="HEAD", files={"prompts/agent.md": b"You are precise.\n"},
                                message="edit")
        text = repo.diff(base, sha)
        assert "-You are helpful.\n+You are precise.\n" in text
        assert repo.diff(base, sha, ["config.yaml"]) == ""
        assert repo.merge_base(sha, "main") == base
        assert repo.is_ancestor(base, sha) and not repo.is_ancestor(sha, base)
        assert [c.sha for c in repo.log(sha, paths=["prompts/agent.md"])] == [sha, base]
        assert [c.sha for c in repo.log(sha, paths=["config.yaml"])] == [base]
        repo.delete_branch("b")
        assert repo.branches() == {"main": base}
        with pytest.raises(SelfImproveError, match="checked out"):
            repo.delete_branch("main")
        with pytest.raises(SelfImproveError, match="no branch named"):
            repo.delete_branch("b")


def test_log_first_parent_and_merge(repo_dir: Path) -> None:
    with Repo.open(repo_dir) as repo:
        side = repo.commit_files(branch="side", base="HEAD", files={"s.txt": b"s"}, message="side work")
    (repo_dir / "m.txt").write_text("m")
    git(repo_dir, "add", "m.txt")
    git(repo_dir, "commit", "-q", "-m", "main work", env=USER)
    git(repo_dir, "merge", "-q", "--no-ff", "-m", "Merge side", "side", env=USER)
    with Repo.open(repo_dir) as repo:
        subjects = [c.subject for c in repo.log(first_parent=True)]
        assert subjects == ["Merge side", "main work", "initial"]
        merge = repo.log(max_count=1)[0]
        assert len(merge.parents) == 2 and merge.parents[1] == side
        assert {c.subject for c in repo.log()} == {"Merge side", "main work", "initial", "side work"}


def test_notes_round_trip_and_overwrite(repo_dir: Path) -> None:
    with Repo.open(repo_dir) as repo:
        head = repo.resolve("HEAD")
        assert repo.notes() == {}
        assert repo.note_read(head) is None
        doc = {"schema": "selfimprove.eval/v1", "verdict": "fail", "base": {"sha": head}}
        repo.note_add(head, json.dumps(doc))
        assert json.loads(repo.note_read(head) or "") == doc
        repo.note_add(head, json.dumps({**doc, "verdict": "pass"}))
        assert json.loads(repo.notes()[head])["verdict"] == "pass"
        assert repo.note_read(head, ref="refs/notes/other") is None
    assert git(repo_dir, "notes", f"--ref={NOTES_REF}", "list").split()[1] == head
    assert not list((repo_dir / ".git").glob("*.lock"))


def test_lock_is_exclusive_and_released(repo_dir: Path) -> None:
    with Repo.open(repo_dir) as repo:
        with repo.lock():
            assert (repo_dir / ".git" / "selfimprove.lock").exists()
            with pytest.raises(SelfImproveError, match="another selfimprove command is running"):
                with repo.lock():
                    pass
        assert not (repo_dir / ".git" / "selfimprove.lock").exists()
        with repo.lock():
            pass


def test_parse_trailers() -> None:
    message = ("selfimprove: ask for the order number\n\nEvidence: 12 traces\nmore text\n\n"
               "Selfimprove-Pattern: tool_error:lookup\nselfimprove-base: abc123\n"
               "Selfimprove-Proposer: offline\nCo-authored-by: A <a@x>\nCo-authored-by: B <b@x>\n")
    assert parse_trailers(message) == {
        "Selfimprove-Pattern": ("tool_error:lookup",), "Selfimprove-Base": ("abc123",),
        "Selfimprove-Proposer": ("offline",), "Co-Authored-By": ("A <a@x>", "B <b@x>")}
    assert parse_trailers("Subject: looks like a trailer\n") == {}
    assert parse_trailers("subject\n\nsome prose: not all\nlines are trailers\n") == {}
    continued = parse_trailers("subject\n\nKey: a long\n  continued value\n")
    assert continued == {"Key": ("a long continued value",)}


def child_git_processes() -> list[str]:
    import os
    import shutil

    assert shutil.which("ps") is not None, "this test lists child processes with ps (install procps)"
    out = subprocess.run(["ps", "--ppid", str(os.getpid()), "-o", "args="], capture_output=True,
                         text=True).stdout
    return [line for line in out.splitlines() if line.startswith("git")]


def test_every_git_process_is_closed(repo_dir: Path) -> None:
    with Repo.open(repo_dir) as repo:
        head = repo.resolve("HEAD")
        assert repo.read_at("HEAD", "prompts/agent.md")
        repo.note_add(head, "n")
        assert repo.notes() == {head: "n"}
        assert child_git_processes()  # gitpython keeps a cat-file process while the repo is open
    assert child_git_processes() == []


def test_diff_files_moves_nothing(repo_dir: Path) -> None:
    before = snapshot(repo_dir)
    refs = git(repo_dir, "for-each-ref")
    with Repo.open(repo_dir) as repo:
        text = repo.diff_files("HEAD", {"config.yaml": b"temperature: 0.1\n", "run.sh": None})
        assert repo.diff_files("HEAD", {}) == ""
    assert "-temperature: 0.2\n+temperature: 0.1\n" in text
    assert "deleted file mode 100755" in text
    assert snapshot(repo_dir) == before and git(repo_dir, "for-each-ref") == refs


def test_merge_file_three_way(repo_dir: Path) -> None:
    base = b"a\nb\nc\nd\ne\n"
    with Repo.open(repo_dir) as repo:
        assert repo.merge_file(base, b"A\nb\nc\nd\ne\n", b"a\nb\nc\nd\nE\n") == (b"A\nb\nc\nd\nE\n", 0)
        merged, conflicts = repo.merge_file(base, b"X\nb\nc\nd\ne\n", b"Y\nb\nc\nd\ne\n")
        assert conflicts == 1 and b"<<<<<<<" in merged


def test_commit_to_current_branch_makes_the_first_commit_of_a_new_repo(tmp_path: Path) -> None:
    root = tmp_path / "new"
    with Repo.init(root) as repo:
        (root / "a.md").write_bytes(b"scaffolded\n")  # already on disk with exactly the committed bytes
        sha = repo.commit_to_current_branch({"a.md": b"scaffolded\n", "b.md": b"b\n"}, "init")
        assert repo.head_sha() == sha and repo.log()[0].parents == ()
    assert (root / "b.md").read_bytes() == b"b\n"
    assert git(root, "--no-optional-locks", "status", "--porcelain") == ""


def test_commit_to_current_branch_keeps_work_it_would_lose(repo_dir: Path) -> None:
    (repo_dir / "config.yaml").write_text("temperature: 0.5\n")
    git(repo_dir, "add", "config.yaml")
    (repo_dir / "config.yaml").write_text("temperature: 0.9\n")  # staged 0.5, working tree 0.9
    with Repo.open(repo_dir) as repo:
        with pytest.raises(SelfImproveError, match="uncommitted changes in config.yaml"):
            repo.commit_to_current_branch({"config.yaml": b"temperature: 0.9\n"}, "m")  # would lose 0.5
        (repo_dir / "new.md").write_text("mine\n")
        with pytest.raises(SelfImproveError, match="uncommitted changes in new.md"):
            repo.commit_to_current_branch({"new.md": b"theirs\n"}, "m")
        git(repo_dir, "add", "config.yaml")  # staged == working tree == the new bytes: nothing to lose
        repo.commit_to_current_branch({"config.yaml": b"temperature: 0.9\n"}, "m")
    assert git(repo_dir, "--no-optional-locks", "status", "--porcelain") == "?? new.md\n"
