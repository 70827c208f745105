"""Shared fixtures: an isolated HOME and git config, the CLI called like a function, the real corpus."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SHARED_TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "traces"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No test may read or write the real home, the user's git config or a real API key."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL",
                "GIT_DIR", "GIT_WORK_TREE", "OPENAI_API_KEY", "OPENAI_API_BASE", "OPENAI_BASE_URL",
                "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")
    yield home


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def invoke(*args: str, cwd: Path | None = None, stdin: str = "") -> Result:
    from selfimprove.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_cwd = Path.cwd()
    old_stdin = os.sys.stdin  # type: ignore[attr-defined]
    try:
        if cwd is not None:
            os.chdir(cwd)
        os.sys.stdin = io.StringIO(stdin)  # type: ignore[attr-defined]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        os.sys.stdin = old_stdin  # type: ignore[attr-defined]
        os.chdir(old_cwd)
    result = Result(code, out.getvalue(), err.getvalue())
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture
def run() -> Callable[..., Result]:
    """`run("analyze", path, "--json", cwd=repo)` → Result(exit_code, stdout, stderr)."""
    return invoke


@pytest.fixture
def shared_traces() -> Path:
    if not SHARED_TRACES.is_dir():
        pytest.skip("the shared trace corpus is not beside the project")
    return SHARED_TRACES


@pytest.fixture
def stub_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A stub OpenAI-compatible server on 127.0.0.1 (tests/stub_openai.py), wired into the environment.

    OPENAI_API_BASE points at it and OPENAI_API_KEY is a dummy, so `openai/<name>` through litellm
    reaches the stub. Script it through its attributes: `stub.reply = lambda body: "text"`,
    `stub.latency`, `stub.fail_every`, `stub.enqueue(Reply(status=429, headers={...}))`; every request
    body is in `stub.requests`.
    """
    from tests.stub_openai import StubOpenAI

    stub = StubOpenAI().start()
    monkeypatch.setenv("OPENAI_API_BASE", stub.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-dummy")
    try:
        yield stub
    finally:
        stub.stop()
