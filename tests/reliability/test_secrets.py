"""Secrets in production traces — an API key, a bearer token, an e-mail address, a card number, a phone
number — never appear in what selfimprove commits (branch files, commit messages), in its reports
(analyze --json, --markdown, --outcomes, --export-cases, the terminal report), nor in any request a
model receives (asserted on the bodies the stub server got).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import CONFIG, chat_line, make_repo, selfimprove_branches
from tests.reliability.faults import Model, kind_of

API_KEY = "sk-proj-Q9x7Lm2Vb8Nc4Zt6Rw1Ys3Ku5Hd0Jf"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjdXMifQ.Zk3vQ9x7Lm2Vb8Nc"
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
PHONE = "+1 415-555-0132"
SECRETS = {
    "api key": API_KEY,
    "bearer token": BEARER,
    "email": EMAIL,
    "card": CARD,
    "card digits": CARD.replace(" ", ""),
    "phone": "415-555-0132",
}


def leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def secret_logs() -> str:
    lines = []
    for i in range(8):  # a tool error that echoes what it was given
        lines.append(
            chat_line(
                f"sec-tool-{i}",
                f"Where is my order? My email is {EMAIL}",
                "Sorry, something went wrong.",
                tool="lookup_order",
                error=True,
                thumbs="down",
                tool_text=f"unauthorized: header 'Authorization: Bearer {BEARER}' rejected for {EMAIL}",
            )
        )
    for i in range(8):  # users correcting the agent with their personal data
        lines.append(
            chat_line(
                f"sec-user-{i}",
                f"Please update the card on file, it is {CARD}",
                "Sure, I updated the billing phone number.",
                thumbs="down",
                more_user=[
                    f"No, I meant the card {CARD}, not my phone {PHONE}.",
                    f"No! My phone is {PHONE} and my email is {EMAIL}.",
                    f"No, I meant my API key {API_KEY} is what stopped working.",
                ][i % 3],
            )
        )
    for i in range(4):  # successes that would make demonstrations
        lines.append(
            chat_line(
                f"sec-ok-{i}",
                f"Where is my order 4821{i}? Reach me at {EMAIL} or {PHONE}.",
                f"Order 4821{i} ships tomorrow; we will write to {EMAIL}.",
                thumbs="up",
            )
        )
    return "\n".join(lines) + "\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    config = CONFIG.replace('model: "exec:python agent/sim_agent.py"', "model: openai/stub")
    return make_repo(tmp_path / "repo", logs={"secrets.jsonl": secret_logs()}, config=config)


def test_the_traces_really_carry_the_secrets(repo: Path) -> None:
    text = (repo / "logs" / "secrets.jsonl").read_text()
    assert set(leaks(text)) == set(SECRETS) - {"card digits"}


def test_analyze_reports_carry_no_secret(repo: Path, cli: Callable[..., Any]) -> None:
    out = repo.parent / "out"
    out.mkdir()
    result = cli(
        repo,
        "analyze",
        "--json",
        "--markdown",
        str(out / "report.md"),
        "--outcomes",
        str(out / "outcomes.jsonl"),
        "--export-cases",
        str(out / "cases.yaml"),
    )
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    ids = {t for p in doc["patterns"] for t in p["trace_ids"]}
    assert {f"sec-tool-{i}" for i in range(8)} <= ids  # the secret-bearing traces are in the evidence
    assert leaks(result.stdout) == []
    assert leaks(result.stderr) == []
    for name in ("report.md", "outcomes.jsonl", "cases.yaml"):
        assert leaks((out / name).read_text()) == [], name
    human = cli(repo, "analyze", "-v")
    assert human.exit_code == 0, human.stderr
    assert leaks(human.stdout + human.stderr) == []


def branch_text(repo: Path) -> str:
    """Every commit message and every file of every selfimprove branch."""
    parts = []
    for branch in selfimprove_branches(repo):
        parts.append(
            subprocess.run(
                ["git", "log", "-1", "-p", "--format=%B", branch],
                cwd=repo,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        files = subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", branch],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        for name in files:
            if name.startswith(("prompts/", "config/")):
                parts.append(
                    subprocess.run(
                        ["git", "show", f"{branch}:{name}"],
                        cwd=repo,
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                )
    return "\n".join(parts)


def test_offline_proposals_commit_no_secret(repo: Path, cli: Callable[..., Any]) -> None:
    result = cli(repo, "propose", "--offline", "--max", "10", "--json")
    assert result.exit_code in (0, 1), result.stderr
    assert selfimprove_branches(repo)
    assert leaks(branch_text(repo)) == []
    assert leaks(result.stdout + result.stderr) == []
    dry = cli(repo, "propose", "--offline", "--max", "10", "--dry-run")
    assert leaks(dry.stdout + dry.stderr) == []


def test_no_model_request_carries_a_secret(repo: Path, cli: Callable[..., Any], stub_openai: Any) -> None:
    stub_openai.reply = Model()
    analyzed = cli(repo, "analyze", "--model", "openai/stub", "--json")
    assert analyzed.exit_code == 0, analyzed.stderr
    proposed = cli(repo, "propose", "--model", "openai/stub", "--max", "10", "--json")
    assert proposed.exit_code in (0, 1), proposed.stderr
    assert leaks(branch_text(repo)) == []
    kinds = {kind_of(body) for body in stub_openai.requests}
    assert kinds == {"reflection", "proposal"}
    for body in stub_openai.requests:
        assert leaks(json.dumps(body, ensure_ascii=False)) == [], body["messages"][-1]["content"][:400]


def test_eval_requests_carry_no_secret(tmp_path: Path, cli: Callable[..., Any], stub_openai: Any) -> None:
    suite = f"""\
prompt: prompts/support_agent.md
tests:
  - id: personal-data
    input: "My card is {CARD}, email {EMAIL}, phone {PHONE}; my key {API_KEY} leaked, Bearer {BEARER}"
    assert:
      - {{type: icontains, value: "order number"}}
"""
    config = CONFIG.replace('model: "exec:python agent/sim_agent.py"', "model: openai/stub")
    repo = make_repo(tmp_path / "repo", suite=suite, config=config)
    proposed = cli(repo, "propose", "--offline", "--max", "1", "--json")
    branch = proposed.json()["proposals"][0]["branch"]
    stub_openai.reply = Model()
    result = cli(repo, "eval", branch, "--json")
    assert result.exit_code in (0, 1), result.stderr
    assert len(stub_openai.requests) == 2
    for body in stub_openai.requests:
        assert leaks(json.dumps(body, ensure_ascii=False)) == []
