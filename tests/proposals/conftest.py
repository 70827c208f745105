"""A prompt repo for propose tests: the example template, committed, in a temporary directory."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "proposals"
TEMPLATE = Path(__file__).resolve().parents[2] / "selfimprove" / "templates" / "prompts.example"


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` (a test's own repo) and return its stdout."""
    result = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false",
         *args],
        cwd=repo, capture_output=True, text=True, check=True,
    )
    return result.stdout


def make_repo(path: Path) -> Path:
    shutil.copytree(TEMPLATE, path)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial prompt repo")
    return path


@pytest.fixture
def prompt_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def data() -> Callable[[str], Path]:
    return lambda name: DATA / name
