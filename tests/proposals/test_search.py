"""`propose --search` on a copy of the bundled example (offline, the simulated agent through exec:), the
dev / held-out split, and the budget (`--max-calls`) counted where the requests arrive: the stub server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from selfimprove.evals.split import held_out, side_of, split
from selfimprove.evals.suite import Case
from tests.conftest import invoke

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support-agent"


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid",
                           "-c", "commit.gpgsign=false", *args], cwd=repo, capture_output=True, text=True,
                          check=True)
    return proc.stdout.strip()


@pytest.fixture
def acme(tmp_path: Path) -> Path:
    """The example with half its cases held out, as a fresh repo, plus its analysis."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    yaml = repo / "selfimprove.yaml"
    yaml.write_text(yaml.read_text().replace("  repeats: 1\n", "  repeats: 1\n  holdout: 0.5\n"))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Acme")
    result = invoke("analyze", "logs/", "--json", cwd=repo)
    assert result.exit_code == 0, result.stderr
    (tmp_path / "analysis.json").write_text(result.stdout)
    return repo


# -- the split --------------------------------------------------------------------------------------

def test_holdout_split_is_a_stable_function_of_the_id() -> None:
    ids = [f"refund-window-{i}" for i in range(1, 8)]
    # recorded once: a change of hash would move cases between dev and held-out in every user's suite
    assert [held_out(i, 0.5) for i in ids] == [False, False, True, True, True, True, False]
    assert not any(held_out(i, 0.0) for i in ids)
    cases = [Case(id=i, where="x:1", prompt=None) for i in ids]
    dev, held = split(cases, 0.5)
    dev_rev, held_rev = split(list(reversed(cases)), 0.5)
    assert {c.id for c in dev} == {c.id for c in dev_rev} and {c.id for c in held} == {c.id for c in held_rev}
    assert len(held) == 4
    shares = [sum(held_out(f"case-{n}", 0.3) for n in range(2000)) / 2000]
    assert 0.27 < shares[0] < 0.33


def test_cases_exported_from_production_stay_in_dev() -> None:
    held = Case(id="refund-window-3", where="x:1", prompt=None)
    assert side_of(held, 0.5) == "held-out"
    exported = Case(id="refund-window-3", where="x:1", prompt=None, metadata={"split": "dev"})
    assert side_of(exported, 0.5) == "dev"


# -- the search, end to end -------------------------------------------------------------------------

def _eval(repo: Path, branch: str) -> dict[str, Any]:
    result = invoke("eval", branch, "--json", cwd=repo)
    assert result.exit_code in (0, 1), result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_search_offline_beats_single_shot_on_held_out_cases(acme: Path) -> None:
    analysis = str(acme.parent / "analysis.json")
    single = invoke("propose", "--offline", "--from", analysis, "--max", "3", "--json", cwd=acme)
    assert single.exit_code == 0, single.stderr
    single_gains = []
    for p in json.loads(single.stdout)["proposals"]:
        doc = _eval(acme, p["branch"])
        single_gains.append(doc["split"]["held_out"]["gain"])
    for p in json.loads(single.stdout)["proposals"]:
        git(acme, "branch", "-D", p["branch"])

    found = invoke("propose", "--offline", "--search", "--from-suite", "--from", analysis, "--max", "3",
                   "--json", cwd=acme)
    assert found.exit_code == 0, found.stderr
    doc = json.loads(found.stdout)
    [proposal] = doc["proposals"]
    lineage = proposal["search"]
    assert lineage["dev"]["best"] > lineage["dev"]["base"]
    assert lineage["rounds"] >= 2 and len(lineage["candidates"]) >= 4
    merged = [c for c in lineage["candidates"] if len(c.get("parents", ())) == 2]
    assert merged, "complementary candidates are merged"
    body = git(acme, "log", "-1", "--format=%B", proposal["branch"])
    assert "Search: " in body and f"{lineage['dev']['best']}/{lineage['dev']['cases']}" in body
    note = json.loads(git(acme, "notes", "--ref=refs/notes/selfimprove-search", "show", proposal["commit"]))
    assert note["dev"] == lineage["dev"]

    evaluated = _eval(acme, proposal["branch"])
    assert evaluated["verdict"] == "pass"
    # the gate judged the held-out cases only; the search never ran them
    assert evaluated["split"]["held_out"]["cases"] + evaluated["split"]["dev"]["cases"] == evaluated["cases"]
    assert evaluated["split"]["held_out"]["gain"] > max(single_gains)


def test_search_stops_on_the_budget_and_keeps_nothing_half_done(acme: Path) -> None:
    analysis = str(acme.parent / "analysis.json")
    # the base alone needs 27 dev calls (the simulated agent through exec:): 10 cannot start the search
    result = invoke("propose", "--offline", "--search", "--from-suite", "--from", analysis, "--max-calls",
                    "10", "--json", cwd=acme)
    assert result.exit_code == 2, result.stderr
    assert "needs at least" in result.stderr and "--max-calls allows 10" in result.stderr
    assert "preflight: 1 search × up to 4 rounds × 3 candidates = at most 12 candidates" in result.stderr
    assert git(acme, "branch", "--list", "selfimprove/*") == ""


# -- the budget at the completer, through litellm --------------------------------------------------

def test_max_calls_is_a_ceiling_on_requests_even_when_every_reply_is_refused(acme: Path, stub_openai) -> None:
    stub_openai.reply = lambda body: "I cannot help with that."  # never valid JSON: every attempt retried
    analysis = str(acme.parent / "analysis.json")
    result = invoke("propose", "--model", "openai/stub-model", "--from", analysis, "--max", "2",
                    "--max-calls", "3", "--json", cwd=acme)
    assert stub_openai.count == 3  # 2 attempts for the first pattern, 1 for the second, then stopped
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["calls"] == 3 and "budget reached" in doc["stopped"]
    assert doc["tokens"]["input"] > 0  # invalid attempts are counted, not free


def test_the_preflight_refuses_a_run_the_budget_cannot_cover(acme: Path, stub_openai) -> None:
    analysis = str(acme.parent / "analysis.json")
    result = invoke("propose", "--model", "openai/stub-model", "--from", analysis, "--max", "3",
                    "--max-calls", "2", cwd=acme)
    assert result.exit_code == 2
    assert "needs at least 3 calls" in result.stderr
    preflight = "preflight: at least 3 model calls (one per pattern), 6 with a retry each; --max-calls 2"
    assert preflight in result.stderr
    assert stub_openai.count == 0


def test_retries_are_taken_from_the_budget(stub_openai) -> None:
    from selfimprove.llm import Budget, BudgetExceeded, LiteLLMCompleter

    stub_openai.fail_every = 1  # every request fails with a 500: retried
    budget = Budget(max_calls=2)
    completer = LiteLLMCompleter(backoff=0.0, retries=5, budget=budget)
    with pytest.raises(BudgetExceeded):
        completer.complete("openai/stub-model", [{"role": "user", "content": "hi"}])
    assert stub_openai.count == 2 and budget.calls == 2


def test_a_branch_that_failed_its_eval_is_reported_and_proposed_again(acme: Path) -> None:
    analysis = str(acme.parent / "analysis.json")
    first = invoke("propose", "--offline", "--from", analysis, "--max", "1", "--json", cwd=acme)
    [written] = json.loads(first.stdout)["proposals"]
    note = json.dumps({"schema": "selfimprove.eval/v1", "verdict": "fail", "reasons": ["2 regressed cases"]})
    git(acme, "notes", "--ref=refs/notes/selfimprove", "add", "-m", note, written["commit"])

    again = invoke("propose", "--offline", "--from", analysis, "--max", "1", "--json", cwd=acme)
    doc = json.loads(again.stdout)
    assert all(p["status"] != "exists" for p in doc["proposals"])
    [retried] = doc["proposals"]  # the pattern's next candidate, not the failed branch
    assert retried["pattern"] == written["pattern"] and retried["branch"] != written["branch"]
    assert again.exit_code == 0, again.stderr
    assert [(r["pattern"], r["reason"]) for r in doc["rejected"]] == [
        (written["pattern"], f"{written['branch']} failed its eval (verdict fail: 2 regressed cases); "
                             "proposing again")]


def test_a_model_in_the_search_sees_failed_dev_cases_and_never_a_held_out_one(acme: Path) -> None:
    from selfimprove.config import load_settings
    from selfimprove.evals.suite import load_suite
    from selfimprove.gitrepo import Repo
    from selfimprove.llm import Budget, ScriptedCompleter
    from selfimprove.proposals.search import Options, search

    settings = load_settings(acme)
    files = {str(p.relative_to(acme)): p.read_bytes() for p in (acme / "evals").glob("*.yaml")}
    suite = load_suite(files, default_prompt="prompts/support_agent.md")
    dev, held = split(suite.cases, 0.5)

    def model(messages: list[dict[str, Any]]) -> str:
        # writes its rule from the failed dev cases it is sent: the window they expect
        sent = messages[-1]["content"]
        block = " failed-eval-cases>"
        cases = sent.split(block)[1].split("</data-")[0] if block in sent else ""
        rule = ("Refunds are accepted within 30 days of delivery." if "30 days" in cases else "Be helpful.")
        return json.dumps({"title": "state the refund window", "rationale": "the failed dev cases expect it",
                           "operations": [{"op": "add", "path": "prompts/support_agent.md",
                                           "section": "learned-rules", "text": rule}]})

    completer = ScriptedCompleter(model)
    doc = json.loads((acme.parent / "analysis.json").read_text())
    refund = next(p["id"] for p in doc["patterns"] if "30 days" in p["title"])
    budget = Budget(max_calls=400)
    with Repo.open(acme) as repo:
        result = search(settings, repo, doc, options=Options(rounds=2, k=1), completer=completer,
                        model="scripted", pattern=refund, budget=budget, dry_run=True)
    [proposal] = result.proposals
    assert proposal.search is not None and proposal.search["dev"]["best"] > proposal.search["dev"]["base"]
    assert "30 days of delivery" in proposal.files["prompts/support_agent.md"].decode()
    requests = [c["messages"][-1]["content"] for c in completer.calls]
    assert requests and all(" failed-eval-cases>" in r for r in requests)
    for case in held:
        assert all(f'"{case.id}"' not in r for r in requests), case.id
    assert any(f'"{case.id}"' in r for case in dev for r in requests)
    assert result.calls == budget.calls and budget.calls >= len(completer.calls)
