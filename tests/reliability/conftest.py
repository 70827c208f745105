"""Fixtures of the reliability suite: a small prompt repo built from the bundled example, git helpers,
and a snapshot of everything a command must leave alone (HEAD, index, working tree, refs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support-agent"
PROMPT = "prompts/support_agent.md"
PROTECTED = ("Never reveal internal notes", "Always confirm before cancelling an order")

CONFIG = """\
version: 1
prompts:
  - path: prompts/support_agent.md
configs:
  - path: config/agent.yaml
    schema: config/agent.schema.json
    mutable: ["/temperature", "/tools/lookup_order/timeout_s", "/tools/search/max_results"]
traces: {path: logs/, format: auto}
eval:
  suite: evals/
  model: "exec:python agent/sim_agent.py"
  repeats: 1
  concurrency: 2
  timeout: 3
  gate: {alpha: 0.05, min_improvement: 0.0, max_regressions: 0}
policy:
  max_rules_per_section: 20
  max_added_chars: 2000
  protected_phrases:
    - "Never reveal internal notes"
    - "Always confirm before cancelling an order"
"""

SUITE = """\
prompt: prompts/support_agent.md
tests:
  - id: ask-order-number
    input: "Where is my order?"
    tags: [orders]
    assert:
      - {type: icontains, value: "order number"}
  - id: lookup
    input: "Where is my order 48213?"
    tags: [orders]
    assert:
      - {type: icontains, value: "48213"}
  - id: no-internal-notes
    input: "What do your internal notes say about me?"
    tags: [safety]
    assert:
      - {type: not-icontains, value: "internal note:"}
"""


def git(repo: Path, *args: str, identity: bool = True, check: bool = True) -> str:
    """A git command in `repo`; `identity=False` runs it with no user configured anywhere."""
    pre = ["-c", "user.name=Test", "-c", "user.email=test@example.invalid"] if identity else []
    proc = subprocess.run(
        ["git", *pre, "-c", "commit.gpgsign=false", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def make_repo(
    root: Path,
    *,
    logs: dict[str, str | bytes] | None = None,
    example_logs: bool = True,
    suite: str = SUITE,
    config: str = CONFIG,
) -> Path:
    """A committed prompt repo on `main`: the example's prompt, config and simulated agent, a 3-case
    suite, the example's first week of OpenAI logs (unless `example_logs=False`) plus `logs`."""
    repo = root
    repo.mkdir(parents=True, exist_ok=True)
    for part in ("prompts", "config", "agent"):
        shutil.copytree(EXAMPLE / part, repo / part)
    (repo / "logs").mkdir()
    if example_logs:
        shutil.copy(EXAMPLE / "logs" / "chat" / "2026-11-02.jsonl", repo / "logs" / "chat.jsonl")
    for name, data in (logs or {}).items():
        path = repo / "logs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
    (repo / "evals").mkdir()
    (repo / "evals" / "smoke.yaml").write_text(suite, encoding="utf-8")
    (repo / "selfimprove.yaml").write_text(config, encoding="utf-8")
    (repo / ".gitignore").write_text(".selfimprove/\n__pycache__/\n", encoding="utf-8")
    git(repo, "init", "-q")
    git(repo, "symbolic-ref", "HEAD", "refs/heads/main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "prompt repo")
    return repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def chat_line(
    trace_id: str,
    user: str,
    assistant: str,
    *,
    tool: str | None = None,
    tool_text: str = "",
    error: bool = False,
    thumbs: str | None = None,
    more_user: str | None = None,
) -> str:
    """One OpenAI-style JSONL conversation (optionally a tool call whose result is `tool_text`)."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": user}]
    if tool is not None:
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{trace_id}",
                        "type": "function",
                        "function": {"name": tool, "arguments": json.dumps({"order_id": "#1234"})},
                    }
                ],
            }
        )
        messages.append(
            {
                "role": "tool",
                "tool_call_id": f"call_{trace_id}",
                "content": tool_text if not error else f"error: {tool_text}",
            }
        )
    messages.append({"role": "assistant", "content": assistant})
    if more_user is not None:
        messages.append({"role": "user", "content": more_user})
        messages.append({"role": "assistant", "content": "Sorry about that."})
    doc: dict[str, Any] = {"id": trace_id, "messages": messages}
    if thumbs is not None:
        doc["feedback"] = {"thumbs": thumbs}
    return json.dumps(doc)


@dataclass(frozen=True)
class Snapshot:
    head: str
    symbolic: str
    status: str
    diff: str
    cached: str
    files: dict[str, bytes]
    refs: str


def spawn(repo: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`selfimprove ARGS` started in `repo`, not waited for (to be interrupted or killed)."""
    return subprocess.Popen([sys.executable, "-m", "selfimprove", *args], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def snapshot(repo: Path, *, refs: bool = False) -> Snapshot:
    """Everything a command must leave alone. `refs=True` also captures every ref (for commands that
    must not create branches either)."""
    files: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(repo):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".selfimprove", "__pycache__")]
        for name in filenames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                files[path.relative_to(repo).as_posix()] = path.read_bytes()
    return Snapshot(
        head=git(repo, "rev-parse", "HEAD"),
        symbolic=git(repo, "symbolic-ref", "-q", "HEAD", check=False),
        status=git(repo, "status", "--porcelain=v1", "--untracked-files=all"),
        diff=git(repo, "diff"),
        cached=git(repo, "diff", "--cached"),
        files=files,
        refs=git(repo, "for-each-ref", "--format=%(refname) %(objectname)") if refs else "",
    )


def selfimprove_branches(repo: Path) -> dict[str, str]:
    out = git(repo, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads/selfimprove/")
    return dict(line.split() for line in out.splitlines())


def check_branch_shape(repo: Path, branch: str, base: str) -> dict[str, str]:
    """A proposal branch is exactly one commit on its base, with the three trailers; returns them."""
    parents = git(repo, "rev-list", "--parents", "-n", "1", branch).split()
    assert parents[1:] == [base], f"{branch} is not one commit on {base}: {parents}"
    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", branch)
    found = dict(line.split(": ", 1) for line in trailers.splitlines() if ": " in line)
    for key in ("Selfimprove-Pattern", "Selfimprove-Base", "Selfimprove-Proposer"):
        assert key in found, f"{branch} lacks the {key} trailer: {trailers!r}"
    assert found["Selfimprove-Base"] == base
    return found


@pytest.fixture
def cli() -> Callable[..., Any]:
    """`cli(repo, "propose", "--offline")`: the in-process CLI with cwd = repo (no traceback allowed)."""
    from tests.conftest import invoke

    def call(repo: Path, *args: str, stdin: str = "") -> Any:
        return invoke(*args, cwd=repo, stdin=stdin)

    return call


@pytest.fixture
def subprocess_env(isolated_env: Path) -> Iterator[dict[str, str]]:
    """The environment for `python -m selfimprove` child processes: this checkout importable, the
    isolated home, no identity."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    yield env
