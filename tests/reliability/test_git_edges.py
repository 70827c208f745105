"""Git edge cases for init, propose, eval and rollback, through the CLI, in real repositories.

What must hold whatever state the user's checkout is in: the working tree, the index and HEAD are left
byte-identical (rollback adds its one commit and touches only the managed files); proposal branches
are exactly one commit on their base with the trailers; concurrent or killed runs leave no corrupt
refs, no partial branch and no lock that blocks the next run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.reliability.conftest import (
    PROMPT,
    check_branch_shape,
    git,
    make_repo,
    selfimprove_branches,
    snapshot,
    spawn,
)


def make_mess(repo: Path) -> None:
    """A checkout mid-work: an unstaged edit of the prompt, a staged edit of the config, a staged new
    file, an untracked file and an unstaged edit of a file selfimprove does not manage."""
    with (repo / PROMPT).open("a", encoding="utf-8") as handle:
        handle.write("\nWORK IN PROGRESS, not committed\n")
    config = repo / "config" / "agent.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("temperature: 0.3", "temperature: 0.9"))
    (repo / "staged-new.txt").write_text("staged\n")
    git(repo, "add", "config/agent.yaml", "staged-new.txt")
    (repo / "untracked.md").write_text("mine\n")
    (repo / "evals" / "smoke.yaml").write_text((repo / "evals" / "smoke.yaml").read_text() + "# local note\n")


def one_line(result: Any, code: int = 2) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def fsck_clean(repo: Path) -> None:
    proc = subprocess.run(
        ["git", "fsck", "--strict", "--no-progress"], cwd=repo, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "error" not in proc.stderr.lower() and "broken" not in proc.stdout.lower(), proc.stderr


def no_lock_left(repo: Path) -> None:
    leftovers = sorted(p.name for p in (repo / ".git").glob("*.lock"))
    leftovers += sorted(str(p) for p in (repo / ".git" / "refs").rglob("*.lock"))
    assert leftovers == [], leftovers


# -- dirty tree, staged and untracked files ------------------------------------------------------


def test_propose_eval_history_leave_a_messy_checkout_byte_identical(
    repo: Path, cli: Callable[..., Any]
) -> None:
    base = git(repo, "rev-parse", "HEAD")
    make_mess(repo)
    before = snapshot(repo)

    proposed = cli(repo, "propose", "--offline", "--json")
    assert proposed.exit_code == 0, proposed.stderr
    assert snapshot(repo) == before
    proposals = proposed.json()["proposals"]
    assert proposals
    for p in proposals:
        check_branch_shape(repo, p["branch"], base)
        # built from the commit, never from the working tree or the index
        assert "WORK IN PROGRESS" not in git(repo, "show", f"{p['branch']}:{PROMPT}")
        assert "temperature: 0.9" not in git(repo, "show", f"{p['branch']}:config/agent.yaml")

    prompt_branch = next(p["branch"] for p in proposals if p["files"] == [PROMPT])
    evaluated = cli(repo, "eval", prompt_branch, "--json")
    assert evaluated.exit_code in (0, 1), evaluated.stderr
    assert evaluated.json()["base"]["sha"] == base
    assert snapshot(repo) == before

    history = cli(repo, "history", "--json")
    assert history.exit_code == 0, history.stderr
    assert snapshot(repo) == before
    fsck_clean(repo)
    no_lock_left(repo)


def test_rollback_refuses_dirty_managed_files_and_changes_nothing(
    repo: Path, cli: Callable[..., Any]
) -> None:
    proposed = cli(repo, "propose", "--offline", "--max", "1", "--json")
    assert proposed.exit_code == 0, proposed.stderr
    branch = proposed.json()["proposals"][0]["branch"]
    git(repo, "merge", "-q", "--no-ff", "--no-edit", branch)
    make_mess(repo)
    before = snapshot(repo, refs=True)
    line = one_line(cli(repo, "rollback"))
    assert "uncommitted changes" in line and PROMPT in line
    assert snapshot(repo, refs=True) == before


def test_rollback_leaves_unrelated_staged_and_untracked_work_alone(
    repo: Path, cli: Callable[..., Any]
) -> None:
    proposed = cli(repo, "propose", "--offline", "--max", "1", "--json")
    assert proposed.exit_code == 0, proposed.stderr
    branch = proposed.json()["proposals"][0]["branch"]
    prompt_before = (repo / PROMPT).read_bytes()
    git(repo, "merge", "-q", "--no-ff", "--no-edit", branch)
    merge = git(repo, "rev-parse", "HEAD")
    (repo / "staged-new.txt").write_text("staged\n")
    git(repo, "add", "staged-new.txt")
    (repo / "untracked.md").write_text("mine\n")
    (repo / "evals" / "smoke.yaml").write_text((repo / "evals" / "smoke.yaml").read_text() + "# local\n")
    before = snapshot(repo)

    result = cli(repo, "rollback", "--json")
    assert result.exit_code == 0, result.stderr
    after = snapshot(repo)
    assert git(repo, "rev-parse", "HEAD~1") == merge
    assert (repo / PROMPT).read_bytes() == prompt_before
    assert after.cached == before.cached and after.diff == before.diff and after.status == before.status
    changed = {p for p in set(before.files) | set(after.files) if before.files.get(p) != after.files.get(p)}
    assert changed <= {PROMPT, "config/agent.yaml"}


# -- detached HEAD -------------------------------------------------------------------------------


def test_detached_head(repo: Path, cli: Callable[..., Any]) -> None:
    git(repo, "checkout", "-q", "--detach")
    base = git(repo, "rev-parse", "HEAD")
    before = snapshot(repo)

    proposed = cli(repo, "propose", "--offline", "--max", "1", "--json")
    assert proposed.exit_code == 0, proposed.stderr
    (proposal,) = proposed.json()["proposals"]
    check_branch_shape(repo, proposal["branch"], base)
    assert snapshot(repo) == before and before.symbolic == ""

    evaluated = cli(repo, "eval", proposal["branch"], "--json")
    assert evaluated.exit_code in (0, 1), evaluated.stderr
    assert evaluated.json()["base"]["sha"] == base
    assert snapshot(repo) == before

    line = one_line(cli(repo, "rollback"))
    assert "detached" in line
    assert snapshot(repo) == before


def test_init_on_a_detached_head_writes_nothing_half_way(repo: Path, cli: Callable[..., Any]) -> None:
    git(repo, "checkout", "-q", "--detach")
    before = snapshot(repo, refs=True)
    result = cli(repo, "init", "fresh")
    line = one_line(result)
    assert "detached" in line
    assert snapshot(repo, refs=True) == before
    assert not (repo / "fresh").exists()


# -- no git identity -----------------------------------------------------------------------------


def test_no_git_identity_anywhere(tmp_path: Path, cli: Callable[..., Any]) -> None:
    assert git(tmp_path, "config", "--get", "user.name", identity=False, check=False) == ""
    created = cli(tmp_path, "init", "new-repo", "--json")
    assert created.exit_code == 0, created.stderr
    new = tmp_path / "new-repo"
    assert git(new, "log", "-1", "--format=%an <%ae>", identity=False)  # committed without an identity

    repo = make_repo(tmp_path / "repo")
    proposed = cli(repo, "propose", "--offline", "--max", "1", "--json")
    assert proposed.exit_code == 0, proposed.stderr
    (proposal,) = proposed.json()["proposals"]
    evaluated = cli(repo, "eval", proposal["branch"], "--json")
    assert evaluated.exit_code in (0, 1), evaluated.stderr
    assert git(repo, "notes", "--ref=refs/notes/selfimprove", "show", proposal["commit"], identity=False)
    git(repo, "merge", "-q", "--no-ff", "--no-edit", proposal["branch"])
    rolled = cli(repo, "rollback", "--json")
    assert rolled.exit_code == 0, rolled.stderr
    assert git(repo, "log", "-1", "--format=%s", identity=False).startswith("selfimprove: rollback")


# -- the branch already exists -------------------------------------------------------------------


def test_re_running_propose_reuses_its_branches(repo: Path, cli: Callable[..., Any]) -> None:
    first = cli(repo, "propose", "--offline", "--json")
    assert first.exit_code == 0, first.stderr
    branches = selfimprove_branches(repo)
    again = cli(repo, "propose", "--offline", "--json")
    assert again.exit_code == 0, again.stderr
    assert selfimprove_branches(repo) == branches
    assert {p["branch"] for p in again.json()["proposals"]} == {
        p["branch"] for p in first.json()["proposals"]
    }
    assert {p["status"] for p in again.json()["proposals"]} == {"exists"}


def test_a_foreign_branch_with_the_proposal_name_is_not_clobbered(
    repo: Path, cli: Callable[..., Any]
) -> None:
    first = cli(repo, "propose", "--offline", "--max", "1", "--json")
    assert first.exit_code == 0, first.stderr
    (proposal,) = first.json()["proposals"]
    git(repo, "update-ref", "-d", f"refs/heads/{proposal['branch']}")
    git(repo, "branch", proposal["branch"], "main")  # the user's own branch, same name
    before = snapshot(repo, refs=True)
    again = cli(repo, "propose", "--offline", "--max", "1", "--json")
    line = one_line(again)  # refused, with the branch named and a hint
    assert f"branch '{proposal['branch']}' already exists" in line and "hint:" in line
    assert git(repo, "rev-parse", proposal["branch"]) == git(repo, "rev-parse", "main")
    assert snapshot(repo, refs=True) == before
    for name in selfimprove_branches(repo):
        if name != proposal["branch"]:
            check_branch_shape(repo, name, git(repo, "rev-parse", "main"))
    fsck_clean(repo)


# -- concurrent and killed runs (real processes) ---------------------------------------------------


def analysis_file(repo: Path, cli: Callable[..., Any]) -> Path:
    result = cli(repo, "analyze", "--json")
    assert result.exit_code == 0, result.stderr
    path = repo.parent / "analysis.json"
    path.write_text(result.stdout, encoding="utf-8")
    return path


def refs_sane(repo: Path, base: str) -> dict[str, str]:
    fsck_clean(repo)
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objecttype)")
    for line in refs.splitlines():
        name, kind = line.split()
        assert kind == "commit", line
        assert name.startswith(("refs/heads/", "refs/notes/")), line
    branches = selfimprove_branches(repo)
    patterns = [check_branch_shape(repo, name, base)["Selfimprove-Pattern"] for name in branches]
    assert len(patterns) == len(set(patterns)), f"two branches for one pattern: {branches}"
    return branches


def test_two_proposes_at_once(repo: Path, cli: Callable[..., Any], subprocess_env: dict[str, str]) -> None:
    base = git(repo, "rev-parse", "HEAD")
    doc = analysis_file(repo, cli)
    before = snapshot(repo)
    for _ in range(2):
        procs = [spawn(repo, subprocess_env, "propose", "--from", str(doc), "--json") for _ in range(3)]
        outs = [(p.wait(timeout=60), *p.communicate()) for p in procs]
        for code, _, err in outs:
            assert "Traceback" not in err, err
            assert code in (0, 2), err
            if code == 2:
                lines = err.strip().splitlines()
                assert len(lines) == 1 and "another selfimprove command is running" in lines[0], err
        assert any(code == 0 for code, _, _ in outs)
        branches = refs_sane(repo, base)
        assert len(branches) == 3
        no_lock_left(repo)
    assert snapshot(repo) == before


def test_a_killed_propose_leaves_no_partial_branch_and_no_blocking_lock(
    repo: Path, cli: Callable[..., Any], subprocess_env: dict[str, str]
) -> None:
    base = git(repo, "rev-parse", "HEAD")
    doc = analysis_file(repo, cli)
    before = snapshot(repo)
    # how long a whole run takes here, to spread the kills over it
    started = time.monotonic()
    assert spawn(repo, subprocess_env, "propose", "--from", str(doc), "--dry-run").wait(timeout=60) == 0
    span = time.monotonic() - started
    rng = random.Random(7)
    for attempt in range(4):
        for name in selfimprove_branches(repo):  # start clean, so the kill can land mid-write
            git(repo, "update-ref", "-d", f"refs/heads/{name}")
        proc = spawn(repo, subprocess_env, "propose", "--from", str(doc), "--json")
        time.sleep(span * rng.uniform(0.5, 1.1))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.communicate()
        refs_sane(repo, base)  # whatever it managed to write is whole
        assert snapshot(repo) == before, f"attempt {attempt}"
        # the next run is never blocked by what the dead one left behind
        after = spawn(repo, subprocess_env, "propose", "--from", str(doc), "--json")
        code = after.wait(timeout=60)
        _, err = after.communicate()
        assert code == 0, err
        assert "Traceback" not in err
        assert len(refs_sane(repo, base)) == 3
        no_lock_left(repo)
    assert snapshot(repo) == before


def test_a_stale_lock_from_a_dead_process_does_not_block(repo: Path, cli: Callable[..., Any]) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (repo / ".git" / "selfimprove.lock").write_text(f"{dead.pid}\n")
    result = cli(repo, "propose", "--offline", "--max", "1", "--json")
    assert result.exit_code == 0, result.stderr
    no_lock_left(repo)


def test_a_lock_held_by_a_live_process_refuses_with_a_clear_line(
    repo: Path, cli: Callable[..., Any], subprocess_env: dict[str, str]
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\nfrom selfimprove.gitrepo import Repo\n"
            "with Repo.open(Path('.')) as r, r.lock():\n    print('held', flush=True)\n    time.sleep(60)\n",
        ],
        cwd=repo,
        env=subprocess_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = snapshot(repo, refs=True)
        line = one_line(cli(repo, "propose", "--offline", "--max", "1"))
        assert "another selfimprove command is running" in line and f"pid {holder.pid}" in line
        assert "selfimprove.lock" in line
        assert snapshot(repo, refs=True) == before
    finally:
        holder.kill()
        holder.wait()
    # its death released the lock, though its file is still there
    assert (repo / ".git" / "selfimprove.lock").exists()
    result = cli(repo, "propose", "--offline", "--max", "1", "--json")
    assert result.exit_code == 0, result.stderr
    no_lock_left(repo)


def test_eval_cache_never_shows_up_as_untracked_files(tmp_path: Path, cli: Callable[..., Any]) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / ".gitignore").unlink()  # a user repo that does not ignore .selfimprove/
    git(repo, "commit", "-qam", "no ignore file")
    proposed = cli(repo, "propose", "--offline", "--max", "1", "--json")
    before = git(repo, "status", "--porcelain=v1", "--untracked-files=all")
    evaluated = cli(repo, "eval", proposed.json()["proposals"][0]["branch"], "--json")
    assert evaluated.exit_code in (0, 1), evaluated.stderr
    assert (repo / ".selfimprove" / "cache").is_dir()
    assert git(repo, "status", "--porcelain=v1", "--untracked-files=all") == before


def test_init_in_a_messy_checkout_commits_only_what_it_created(repo: Path, cli: Callable[..., Any]) -> None:
    make_mess(repo)
    before = snapshot(repo)
    head = before.head
    result = cli(repo, "init", "agents/new", "--json")
    assert result.exit_code == 0, result.stderr
    created = result.json()["created"]
    assert created and result.json()["git_initialised"] is False
    after = snapshot(repo)
    assert git(repo, "rev-parse", "HEAD~1") == head
    committed = git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD").splitlines()
    assert sorted(committed) == sorted(f"agents/new/{p}" for p in created)
    # the user's work is exactly as it was: same staged diff, same unstaged diff, same untracked files
    assert after.cached == before.cached and after.diff == before.diff
    assert after.status == before.status
    assert {p: b for p, b in after.files.items() if not p.startswith("agents/new/")} == before.files
    again = cli(repo, "init", "agents/new", "--json")
    assert again.exit_code == 0, again.stderr
    assert again.json()["created"] == [] and again.json()["commit"] is None
    assert snapshot(repo) == after


def test_two_evals_at_once_share_the_cache_and_both_get_their_note(
    repo: Path, cli: Callable[..., Any], subprocess_env: dict[str, str]
) -> None:
    proposed = cli(repo, "propose", "--offline", "--max", "2", "--json")
    a, b = (p["commit"] for p in proposed.json()["proposals"][:2])
    procs = [spawn(repo, subprocess_env, "eval", sha, "--json") for sha in (a, b, a)]
    outs = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    for code, _, err in outs:
        assert "Traceback" not in err, err
        assert code in (0, 1), err
    fsck_clean(repo)
    no_lock_left(repo)
    notes = git(repo, "notes", "--ref=refs/notes/selfimprove", "list")
    assert {line.split()[1] for line in notes.splitlines()} == {a, b}
    again = cli(repo, "eval", a, "--json")
    assert again.json()["calls"]["made"] == 0


def test_a_stale_git_ref_lock_is_named_not_mistaken_for_an_existing_branch(
    repo: Path, cli: Callable[..., Any]
) -> None:
    first = cli(repo, "propose", "--offline", "--max", "1", "--json")
    branch = first.json()["proposals"][0]["branch"]
    git(repo, "update-ref", "-d", f"refs/heads/{branch}")
    stale = repo / ".git" / "refs" / "heads" / f"{branch}.lock"  # what a killed `git update-ref` leaves
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("")
    line = one_line(cli(repo, "propose", "--offline", "--max", "1", "--json"))
    assert f"cannot write branch '{branch}'" in line and f"{branch}.lock exists" in line, line
    assert "if none is, delete that file" in line
    stale.unlink()
    again = cli(repo, "propose", "--offline", "--max", "1", "--json")
    assert again.exit_code == 0, again.stderr
    check_branch_shape(repo, branch, git(repo, "rev-parse", "HEAD"))


LOCK_WORKER = """
import os, sys, time
from pathlib import Path
from selfimprove.gitrepo import Repo
marker = Path(sys.argv[2])
with Repo.open(Path(sys.argv[1])) as repo:
    for _ in range(25):
        with repo.lock(wait=20.0):
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # fails if two hold the lock
            time.sleep(0.001)
            os.close(fd)
            marker.unlink()
print("ok")
"""


def test_the_lock_excludes_under_contention(
    repo: Path, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    marker = tmp_path / "inside"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LOCK_WORKER, str(repo), str(marker)],
            env=subprocess_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "ok", err
    no_lock_left(repo)
