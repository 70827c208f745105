"""The proposer registry and the typed refusals every proposer and check gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfimprove.analysis.records import Pattern
from selfimprove.config import load_settings
from selfimprove.gitrepo import Repo
from selfimprove.llm import ScriptedCompleter
from selfimprove.proposals.dedupe import Memory
from selfimprove.proposals.model import Candidate, Edit, Refusal, Why
from selfimprove.proposals.offline import candidates
from selfimprove.proposals.proposers import PROPOSERS, ModelProposer, OfflineProposer, choose
from selfimprove.proposals.service import vet
from selfimprove.proposals.workspace import Workspace, load_workspace
from tests.proposals.conftest import DATA


def pattern(name: str = "tool_error.json") -> Pattern:
    return Pattern.from_json(json.loads((DATA / name).read_text())["patterns"][0])


@pytest.fixture
def ws(prompt_repo: Path) -> Workspace:
    with Repo.open(prompt_repo) as repo:
        return load_workspace(load_settings(prompt_repo), repo, repo.resolve("HEAD"))


def test_the_registry_names_every_proposer_and_choose_picks_by_model() -> None:
    assert sorted(PROPOSERS) == ["llm", "offline"]
    assert choose(None, None) == OfflineProposer()
    assert choose(None, "openai/gpt-4o-mini") == OfflineProposer()  # a model name alone calls nothing
    completer = ScriptedCompleter([])
    chosen = choose(completer, "m")
    assert isinstance(chosen, ModelProposer) and (chosen.name, chosen.deterministic) == ("llm:m", False)
    with pytest.raises(ValueError):
        PROPOSERS["llm"](None, None)


def test_the_offline_proposer_gives_the_offline_candidates(ws: Workspace) -> None:
    proposed = OfflineProposer().propose(pattern(), ws)
    assert list(proposed.outcomes) == candidates(pattern(), ws)
    assert [c.proposer for c in proposed.candidates()] == ["offline/tool-error-rule"]
    assert (proposed.input_tokens, proposed.cost_usd) == (0, 0.0)


def test_a_model_that_proposes_nothing_is_a_refusal_with_its_cost(ws: Workspace) -> None:
    reply = json.dumps({"title": "nothing", "rationale": "no grounded fix", "operations": []})
    proposed = ModelProposer(ScriptedCompleter([reply]), "m").propose(pattern(), ws)
    assert proposed.outcomes == (Refusal(Why.NO_CANDIDATE, "the model proposed no edit: no grounded fix"),)


def test_a_repeat_of_another_branch_is_pending_and_a_repeat_of_the_section_is_not(ws: Workspace) -> None:
    candidate = next(c for c in candidates(pattern(), ws) if isinstance(c, Candidate))
    (rule,) = [line for line in candidate.edits[0].after.splitlines()
               if line not in candidate.edits[0].before.splitlines()]
    elsewhere = Memory()
    elsewhere.add([rule], "selfimprove/other-branch")
    refused = vet(candidate, ws, elsewhere)
    assert isinstance(refused, Refusal) and refused.why is Why.PENDING and refused.pending
    assert str(refused).endswith("repeats a rule proposed on selfimprove/other-branch, not added again")
    edit = candidate.edits[0]
    same = Edit(edit.path, edit.section, None, edit.before, edit.before)
    unchanged = Candidate("t", "offline/x", "r", (same,))
    assert vet(unchanged, ws, Memory()) == Refusal(Why.UNCHANGED, "the proposal changes nothing")
