"""Runs cut short: Ctrl-C at any moment is exit 130 and one line (never a traceback) and releases the
lock; an eval killed outright keeps every answer it had (the re-run asks only for the rest); a propose
whose model fails half-way keeps the whole branches it wrote, and the re-run finishes the job."""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.reliability.conftest import (
    check_branch_shape,
    git,
    make_repo,
    selfimprove_branches,
    snapshot,
    spawn,
)
from tests.reliability.faults import Model, kind_of
from tests.reliability.test_model_faults import STUB_CONFIG


def test_ctrl_c_at_any_moment_is_exit_130_without_a_traceback(
    repo: Path, cli: Callable[..., Any], subprocess_env: dict[str, str]
) -> None:
    base = git(repo, "rev-parse", "HEAD")
    doc = repo.parent / "analysis.json"
    doc.write_text(cli(repo, "analyze", "--json").stdout)
    before = snapshot(repo)
    started = time.monotonic()
    assert spawn(repo, subprocess_env, "propose", "--from", str(doc), "--dry-run").wait(timeout=60) == 0
    span = time.monotonic() - started
    rng = random.Random(11)
    codes = []
    for delay in [0.05, 0.15] + [span * rng.uniform(0.3, 0.95) for _ in range(6)]:
        for name in selfimprove_branches(repo):
            git(repo, "update-ref", "-d", f"refs/heads/{name}")
        proc = spawn(repo, subprocess_env, "propose", "--from", str(doc))
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        if _interpreter_starting(proc.returncode, err):
            continue  # the interpreter was still starting up: no selfimprove code had run yet
        codes.append(proc.returncode)
        assert "Traceback" not in err, f"after {delay:.2f}s:\n{err}"
        # -SIGINT: the signal came while the interpreter itself was starting up or shutting down
        assert proc.returncode in (0, 130, -signal.SIGINT), (delay, proc.returncode, err)
        if proc.returncode == 130:
            assert err.strip().splitlines()[-1] == "interrupted", err
        for name in selfimprove_branches(repo):
            check_branch_shape(repo, name, base)
        assert snapshot(repo) == before
        assert not (repo / ".git" / "selfimprove.lock").exists()
    assert 130 in codes


def _interpreter_starting(code: int, err: str) -> bool:
    """A Ctrl-C that Python itself handled before running any of selfimprove: while importing `site`,
    or inside runpy's own frames while it looks for `selfimprove.__main__` (every frame is frozen)."""
    if "Fatal Python error: init_import_site" in err:
        return True
    if code != -signal.SIGINT:
        return False
    if not err.strip():
        return True
    frames = re.findall(r'^  File "([^"]*)"', err, flags=re.M)
    return all(name.startswith("<frozen ") for name in frames) and err.rstrip().endswith("KeyboardInterrupt")


def test_an_eval_killed_outright_keeps_its_answers(
    repo: Path, cli: Callable[..., Any], subprocess_env: dict[str, str]
) -> None:
    proposed = cli(repo, "propose", "--offline", "--max", "1", "--json")
    branch = proposed.json()["proposals"][0]["branch"]
    rng = random.Random(5)
    for _ in range(3):
        proc = spawn(repo, subprocess_env, "eval", branch, "--json", "--concurrency", "1")
        time.sleep(rng.uniform(1.0, 2.0))
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    cache = repo / ".selfimprove" / "cache"
    kept = len(list(cache.rglob("*.json"))) if cache.exists() else 0
    assert (
        not [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".json")]
        if cache.exists()
        else True
    )
    result = cli(repo, "eval", branch, "--json")
    assert result.exit_code in (0, 1), result.stderr
    calls = result.json()["calls"]
    assert calls["cached"] == kept and calls["made"] + calls["cached"] == 6


def test_a_model_failing_half_way_through_propose(
    tmp_path: Path, cli: Callable[..., Any], stub_openai: Any
) -> None:
    repo = make_repo(tmp_path / "repo", config=STUB_CONFIG)
    base = git(repo, "rev-parse", "HEAD")
    doc = repo.parent / "analysis.json"
    doc.write_text(cli(repo, "analyze", "--offline", "--json").stdout)
    seen: list[int] = []

    def after_the_first(body: dict[str, Any]) -> bool:
        if kind_of(body) != "proposal":
            return False
        seen.append(1)
        return len(seen) > 1

    # a different rule per pattern, so that proposals are not near-duplicates of each other
    stub_openai.reply = Model("500", times=None, match=after_the_first)
    first = cli(repo, "propose", "--from", str(doc), "--model", "openai/stub", "--max", "3", "--json")
    assert first.exit_code == 2, first.stderr
    assert len(first.stderr.strip().splitlines()) == 1
    written = selfimprove_branches(repo)
    for name in written:
        check_branch_shape(repo, name, base)
    assert not (repo / ".git" / "selfimprove.lock").exists()

    stub_openai.reply = Model()
    again = cli(repo, "propose", "--from", str(doc), "--model", "openai/stub", "--max", "3", "--json")
    assert again.exit_code in (0, 1), again.stderr
    out = again.json()
    assert {p["branch"] for p in out["proposals"] if p["status"] == "exists"} == set(written)
    for name in selfimprove_branches(repo):
        check_branch_shape(repo, name, base)


def test_ctrl_c_inside_a_command_is_exit_130(repo: Path, cli: Callable[..., Any], monkeypatch: Any) -> None:
    import selfimprove.config

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    import selfimprove.gitrepo

    monkeypatch.setattr(selfimprove.config, "load_settings", interrupted)
    monkeypatch.setattr(selfimprove.gitrepo.Repo, "open", classmethod(interrupted))
    for command in (["history"], ["propose", "--offline"], ["eval"], ["rollback"]):
        result = cli(repo, *command)
        assert (result.exit_code, result.stderr) == (130, "interrupted\n"), command
