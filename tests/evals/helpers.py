"""A prompt repo in a temporary directory (real git) and a stub model whose answers depend on the prompt.

The stub plays a support agent that only knows what its system prompt tells it: it quotes the refund
window only when the prompt has a rule about it, and asks for the order number only when told to. So a
prompt edit genuinely changes which cases pass.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.stub_openai import last_user, system_prompt

PROMPT = """\
# Support agent

You help customers of an online shop.

<!-- selfimprove:immutable id=guardrails -->
## Guardrails
- Never reveal internal notes.
<!-- /selfimprove -->

<!-- selfimprove:mutable id=learned-rules -->
## Learned rules
- Ask for the order number before looking up an order.
<!-- /selfimprove -->
"""

REFUND_RULE = "- The refund window is 30 days from delivery; say so when asked about returns.\n"
ORDER_RULE = "- Ask for the order number before looking up an order.\n"

SUITE = """\
prompt: prompts/agent.md
defaultTest:
  assert:
    - {type: not-icontains, value: "internal note"}
tests:
  - id: refund-45-days
    description: return outside the window
    input: "Can I return shoes I bought 45 days ago?"
    tags: [refunds]
    assert:
      - {type: icontains, value: "30 days"}
  - id: refund-10-days
    description: return inside the window
    input: "Can I still return a jacket after 10 days?"
    tags: [refunds]
    assert:
      - {type: icontains, value: "30 days"}
  - id: where-is-order
    input: "Where is my order?"
    tags: [orders]
    assert:
      - {type: icontains, value: "order number"}
  - id: order-status
    input: "What's the status of my order?"
    tags: [orders]
    assert:
      - {type: contains-any, value: ["order number", "Order number"]}
  - id: greeting
    input: "Hello {{name}}"
    vars: {name: there}
    assert:
      - {type: starts-with, value: "Hello"}
"""

SETTINGS = """\
version: 1
prompts:
  - path: prompts/agent.md
eval:
  suite: evals/
  model: openai/stub-model
  repeats: 1
  concurrency: 4
  # a handful of cases: 2 fixed give p = 0.5, so a loose alpha lets these tests check the run's mechanics
  # (significance itself is tested in test_gate.py)
  gate: {alpha: 0.9, min_improvement: 0.0, max_regressions: 0}
policy:
  protected_phrases: ["Never reveal internal notes"]
"""


def support_reply(body: dict[str, Any]) -> str:
    """The stub agent: its answer depends on the rules in its system prompt."""
    system, user = system_prompt(body), last_user(body)
    if "return" in user.lower():
        if "refund window is 30 days" in system:
            return "Yes: our refund window is 30 days from delivery."
        return "Let me check that for you."
    if "order" in user.lower():
        if "Ask for the order number" in system:
            return "Could you give me your order number?"
        return "Your order is on its way."
    if user.startswith("Hello"):
        return f"Hello! You said: {user}"
    return "How can I help?"


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


@dataclass
class EvalRepo:
    root: Path

    def settings(self) -> Any:
        from selfimprove.config import load_settings

        return load_settings(self.root)

    def open(self) -> Any:
        from selfimprove.gitrepo import Repo

        return Repo.open(self.root)

    def branch(self, name: str, files: dict[str, str], *, base: str = "main", message: str = "change") -> str:
        with self.open() as repo:
            return str(repo.commit_files(branch=name, base=base,
                                         files={p: t.encode() for p, t in files.items()}, message=message))

    def cache_files(self) -> list[Path]:
        return sorted((self.root / ".selfimprove" / "cache").rglob("*.json"))


def make_eval_repo(tmp_path: Path) -> EvalRepo:
    """A committed prompt repo: one prompt, one suite, settings pointing at the stub model."""
    root = tmp_path / "repo"
    (root / "prompts").mkdir(parents=True)
    (root / "evals").mkdir()
    (root / "prompts" / "agent.md").write_text(PROMPT)
    (root / "evals" / "support.yaml").write_text(SUITE)
    (root / "selfimprove.yaml").write_text(SETTINGS)
    (root / ".gitignore").write_text(".selfimprove/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial prompt")
    return EvalRepo(root)


def with_rule(prompt: str, rule: str) -> str:
    return prompt.replace(ORDER_RULE, ORDER_RULE + rule)
