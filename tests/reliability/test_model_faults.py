"""Model faults from a stub OpenAI-compatible server on 127.0.0.1 — 429 with retry-after, 500, a
timeout, a malformed body, an empty reply — during analyze's reflection, propose and eval, through the
real litellm path: each run either completes correctly or stops with one clear line (exit 2), and an
eval stopped half-way keeps what it already got (the re-run asks only for the rest).

Timeouts: eval takes `eval.timeout` and analyze/propose `reflection.timeout` from selfimprove.yaml; here
their completer is built with a 0.5 s timeout and 2 retries (everything else is the product's code).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import (
    CONFIG,
    PROMPT,
    check_branch_shape,
    git,
    make_repo,
    selfimprove_branches,
)
from tests.reliability.faults import FAULTS, NEW_RULE, Model, kind_of

STUB_CONFIG = CONFIG.replace('model: "exec:python agent/sim_agent.py"', "model: openai/stub").replace(
    "timeout: 3", "timeout: 1"
)


@pytest.fixture
def fast_completer(monkeypatch: pytest.MonkeyPatch) -> None:
    """analyze/propose build their completer with `reflection.timeout` (60 s here): 0.5 s, 2 retries."""
    import selfimprove.llm as llm

    original = llm.make_completer
    monkeypatch.setattr(llm, "make_completer", lambda model, **_: original(model, timeout=0.5, retries=2))


@pytest.fixture
def stub_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", config=STUB_CONFIG)


def one_line(result: Any) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def no_lock(repo: Path) -> None:
    assert not list((repo / ".git").glob("*.lock"))


# -- analyze: reflection ---------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
def test_analyze_reflection_survives_a_transient_fault(
    stub_repo: Path, cli: Callable[..., Any], stub_openai: Any, fast_completer: None, fault: str
) -> None:
    stub_openai.reply = model = Model(fault, times=1)
    result = cli(stub_repo, "analyze", "--model", "openai/stub", "--json")
    assert result.exit_code == 0, result.stderr
    assert model.faulted == 1
    patterns = result.json()["patterns"]
    assert patterns
    reflected = [p for p in patterns[:10] if p.get("notes", {}).get("root_cause")]
    assert len(reflected) == min(len(patterns), 10), [p.get("notes") for p in patterns]
    assert all(p["notes"]["fix_kind"] == "prompt_rule" for p in reflected)


@pytest.mark.parametrize("fault", ["429", "500", "timeout", "malformed"])
def test_analyze_reflection_that_keeps_failing_keeps_the_offline_analysis(
    stub_repo: Path, cli: Callable[..., Any], stub_openai: Any, fast_completer: None, fault: str
) -> None:
    offline = cli(stub_repo, "analyze", "--offline", "--json")
    stub_openai.reply = Model(fault, times=None)
    result = cli(stub_repo, "analyze", "--model", "openai/stub", "--json")
    assert result.exit_code == 0, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("warning: reflection stopped, model call to openai/stub failed after 3 attempts")
    doc = result.json()
    assert [(p["id"], p["count"]) for p in doc["patterns"]] == [
        (p["id"], p["count"]) for p in offline.json()["patterns"]]
    assert doc["reflection"]["stopped"].startswith("model call to openai/stub failed after 3 attempts")


def test_analyze_reflection_with_only_empty_replies_keeps_the_offline_patterns(
    stub_repo: Path, cli: Callable[..., Any], stub_openai: Any, fast_completer: None
) -> None:
    offline = cli(stub_repo, "analyze", "--offline", "--json")
    stub_openai.reply = Model("empty", times=None)
    result = cli(stub_repo, "analyze", "--model", "openai/stub", "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert [(p["id"], p["count"]) for p in doc["patterns"]] == [
        (p["id"], p["count"]) for p in offline.json()["patterns"]
    ]
    assert not any(p.get("notes") for p in doc["patterns"])


# -- propose ------------------------------------------------------------------------------------


def saved_analysis(repo: Path, cli: Callable[..., Any]) -> Path:
    result = cli(repo, "analyze", "--offline", "--json")
    assert result.exit_code == 0, result.stderr
    path = repo.parent / "analysis.json"
    path.write_text(result.stdout)
    return path


@pytest.mark.parametrize("fault", FAULTS)
def test_propose_survives_a_transient_fault(
    stub_repo: Path, cli: Callable[..., Any], stub_openai: Any, fast_completer: None, fault: str
) -> None:
    doc = saved_analysis(stub_repo, cli)
    base = git(stub_repo, "rev-parse", "HEAD")
    stub_openai.reply = model = Model(fault, times=1)
    result = cli(stub_repo, "propose", "--from", str(doc), "--model", "openai/stub", "--max", "1", "--json")
    assert result.exit_code == 0, result.stderr
    assert model.faulted == 1
    (proposal,) = result.json()["proposals"]
    assert proposal["proposer"] == "llm:openai/stub"
    check_branch_shape(stub_repo, proposal["branch"], base)
    assert NEW_RULE in git(stub_repo, "show", f"{proposal['branch']}:{PROMPT}")
    no_lock(stub_repo)


@pytest.mark.parametrize("fault", ["429", "500", "timeout", "malformed"])
def test_propose_that_cannot_reach_the_model_is_one_line_and_writes_nothing(
    stub_repo: Path, cli: Callable[..., Any], stub_openai: Any, fast_completer: None, fault: str
) -> None:
    doc = saved_analysis(stub_repo, cli)
    stub_openai.reply = Model(fault, times=None)
    line = one_line(cli(stub_repo, "propose", "--from", str(doc), "--model", "openai/stub", "--json"))
    assert "model call to openai/stub failed" in line
    assert selfimprove_branches(stub_repo) == {}
    no_lock(stub_repo)


def test_propose_with_only_empty_replies_refuses_cleanly(
    stub_repo: Path, cli: Callable[..., Any], stub_openai: Any, fast_completer: None
) -> None:
    doc = saved_analysis(stub_repo, cli)
    stub_openai.reply = Model("empty", times=None)
    result = cli(stub_repo, "propose", "--from", str(doc), "--model", "openai/stub", "--max", "1", "--json")
    assert result.exit_code == 1, result.stderr  # nothing proposed: every candidate refused
    out = result.json()
    assert out["proposals"] == [] and out["rejected"]
    assert all("refused after one retry" in r["reason"] for r in out["rejected"])
    assert selfimprove_branches(stub_repo) == {}
    no_lock(stub_repo)


# -- eval ---------------------------------------------------------------------------------------


@pytest.fixture
def candidate(stub_repo: Path, cli: Callable[..., Any]) -> str:
    result = cli(stub_repo, "propose", "--offline", "--max", "1", "--json")
    assert result.exit_code == 0, result.stderr
    branch: str = result.json()["proposals"][0]["branch"]
    return branch


def eval_calls(body: dict[str, Any]) -> tuple[str, str]:
    return body["messages"][0]["content"], json.dumps(body["messages"][1:])


@pytest.mark.parametrize("fault", FAULTS)
def test_eval_survives_a_transient_fault(
    stub_repo: Path, cli: Callable[..., Any], stub_openai: Any, candidate: str, fault: str
) -> None:
    stub_openai.reply = model = Model(fault, times=1, only="eval")
    result = cli(stub_repo, "eval", candidate, "--json")
    assert result.exit_code in (0, 1), result.stderr
    doc = result.json()
    assert model.faulted == 1
    assert doc["calls"] == {"made": 6, "cached": 0}
    if fault == "empty":  # an empty answer is an answer: that case fails on one side, and is kept
        assert doc["verdict"] in ("no-effect", "fail")
    else:  # the same answers on both sides once the fault is retried: nothing measured, nothing lost
        assert doc["verdict"] == "no-effect"
        assert doc["base"]["pass_rate"] == doc["candidate"]["pass_rate"] == 1.0


@pytest.mark.parametrize("fault", ["429", "500", "timeout"])
def test_eval_stopped_by_a_fault_keeps_its_answers_and_resumes(
    stub_repo: Path, cli: Callable[..., Any], stub_openai: Any, candidate: str, fault: str
) -> None:
    def lookup(body: dict[str, Any]) -> bool:
        return kind_of(body) == "eval" and "48213" in body["messages"][-1]["content"]

    stub_openai.reply = first = Model(fault, times=None, match=lookup)
    line = one_line(cli(stub_repo, "eval", candidate, "--json", "--concurrency", "1"))
    assert "openai/stub" in line
    answered = {eval_calls(b) for b in first.answered}
    assert git(stub_repo, "notes", "--ref=refs/notes/selfimprove", "list", check=False) == ""  # no verdict

    stub_openai.reply = second = Model()
    seen = len(stub_openai.requests)
    result = cli(stub_repo, "eval", candidate, "--json", "--allow-no-effect")  # both sides answer alike
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    asked = {eval_calls(b) for b in stub_openai.requests[seen:]}
    assert doc["calls"]["made"] + doc["calls"]["cached"] == 6
    assert doc["calls"]["cached"] == len(answered) >= 1
    assert doc["calls"]["made"] == len(second.answered) == len(asked)
    assert not asked & answered  # nothing answered before is asked again
    again = cli(stub_repo, "eval", candidate, "--json")
    assert again.json()["calls"] == {"made": 0, "cached": 6}


def test_a_malformed_body_is_reported_plainly(
    stub_repo: Path, cli: Callable[..., Any], stub_openai: Any, fast_completer: None
) -> None:
    stub_openai.reply = Model("malformed", times=None)
    result = cli(stub_repo, "analyze", "--model", "openai/stub", "--json")
    assert result.exit_code == 0, result.stderr  # the offline analysis is kept; the stop is one line
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("warning: reflection stopped"), line
    assert "<APIResponse" not in line and "<class" not in line, line
    assert "InternalServerError: InternalServerError" not in line, line
    assert "not valid JSON" in line or "Expecting" in line, line


def test_no_api_key_is_one_line_with_a_hint(
    stub_repo: Path,
    cli: Callable[..., Any],
    stub_openai: Any,
    candidate: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    stub_openai.reply = Model()
    line = one_line(cli(stub_repo, "eval", candidate, "--json"))
    assert "OPENAI_API_KEY" in line, line
    assert "attempts" not in line, line  # retrying cannot bring a key: it fails at once
    assert stub_openai.requests == []  # refused before anything was sent


def test_a_server_that_is_not_there_is_one_line(
    stub_repo: Path, cli: Callable[..., Any], candidate: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OPENAI_API_BASE", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-dummy")
    line = one_line(cli(stub_repo, "eval", candidate, "--json", "--concurrency", "1"))
    assert "openai/stub" in line and "hint:" in line, line
