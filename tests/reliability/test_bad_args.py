"""Bad input to propose, eval, rollback, history and init: one line (what, where, a hint), exit 2,
nothing changed — the same contract as analyze's bad-input corpus."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import git, snapshot


def refused(result: Any) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["eval", "no-such-branch"], "no-such-branch"),
        (["eval", "main", "--base", "nope~3"], "nope~3"),
        (["rollback", "--to", "v0-never-tagged"], "v0-never-tagged"),
        (["rollback", "--proposal", "selfimprove/none"], "selfimprove/none"),
        (["rollback"], "no merged selfimprove change"),
        (["propose", "--offline", "--pattern", "no-such-pattern"], "no-such-pattern"),
        (["propose", "--offline", "--base", "deadbeef"], "deadbeef"),
        (["propose", "--from", "missing.json"], "missing.json"),
        (["analyze", "--since", "last tuesday"], "last tuesday"),
    ],
)
def test_bad_arguments(repo: Path, cli: Callable[..., Any], args: list[str], says: str) -> None:
    before = snapshot(repo, refs=True)
    assert says in refused(cli(repo, *args))
    assert snapshot(repo, refs=True) == before


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("analysis.json", "{not json", "analysis.json:1"),
        ("analysis.json", '{"schema": "something/else", "patterns": []}', "analysis.json"),
        ("analysis.json", '{"schema": "selfimprove.analysis/v1", "patterns": [{"id": 3}]}', "analysis.json"),
    ],
)
def test_a_bad_analysis_file(repo: Path, cli: Callable[..., Any], name: str, text: str, where: str) -> None:
    path = repo.parent / name
    path.write_text(text)
    before = snapshot(repo, refs=True)
    assert where in refused(cli(repo, "propose", "--from", str(path)))
    assert snapshot(repo, refs=True) == before


def test_a_broken_config_is_named_with_its_line(repo: Path, cli: Callable[..., Any]) -> None:
    config = repo / "selfimprove.yaml"
    config.write_text(config.read_text().replace("repeats: 1", "repeats: [1"))
    before = snapshot(repo, refs=True)
    for command in (["analyze"], ["propose", "--offline"], ["eval", "main"], ["rollback"]):
        line = refused(cli(repo, *command))
        assert "selfimprove.yaml:" in line, line
    assert snapshot(repo, refs=True) == before


def test_a_broken_suite_at_the_candidate_is_named(repo: Path, cli: Callable[..., Any]) -> None:
    git(repo, "checkout", "-q", "-b", "broken-suite")
    suite = repo / "evals" / "smoke.yaml"
    suite.write_text(suite.read_text().replace("tests:\n", "tests:\n  - id: [unclosed\n", 1))
    git(repo, "commit", "-qam", "break the suite")
    git(repo, "checkout", "-q", "main")
    before = snapshot(repo, refs=True)
    line = refused(cli(repo, "eval", "broken-suite", "--base", "main"))
    assert "evals/smoke.yaml" in line, line
    assert snapshot(repo, refs=True) == before


def test_init_over_a_file_is_one_line(tmp_path: Path, cli: Callable[..., Any]) -> None:
    (tmp_path / "taken").write_text("a file, not a directory\n")
    line = refused(cli(tmp_path, "init", "taken"))
    assert "taken" in line and "not a directory" in line
    assert (tmp_path / "taken").read_text() == "a file, not a directory\n"
