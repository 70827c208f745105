"""Proposers: a small protocol and the registry of the ones that exist (name → how to make one).

Owns the one place that says which proposer a run uses: `choose(completer, model)` gives the model
proposer when a model is configured and the offline one otherwise, and `service` and `search` ask it
rather than branching on how each proposer is called. A proposer turns one pattern into candidates in
order of preference, or refusals saying why it could not, with what its model calls cost.

Never does: vet a candidate (that is `service.vet`, the same for every proposer), write anything, or
hide which proposer made a candidate (`Candidate.proposer` names it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from selfimprove.proposals.model import Candidate, Refusal, Why

if TYPE_CHECKING:
    from selfimprove.analysis.records import Pattern
    from selfimprove.llm import Completer
    from selfimprove.proposals.feedback import FailedCase
    from selfimprove.proposals.workspace import Workspace


@dataclass(frozen=True)
class Proposed:
    """What a proposer suggests for one pattern: candidates in order of preference and refusals, with
    the tokens and cost of the model calls it made."""

    outcomes: tuple[Candidate | Refusal, ...]
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def candidates(self) -> list[Candidate]:
        return [o for o in self.outcomes if isinstance(o, Candidate)]


class Proposer(Protocol):
    @property
    def name(self) -> str:
        """"offline", or "llm:<model>"."""

    @property
    def deterministic(self) -> bool:
        """The same pattern always gives the same candidates: a search asks once, not once per slot."""

    def propose(self, pattern: Pattern, ws: Workspace, *, feedback: Sequence[FailedCase] = (),
                notes: Sequence[str] = ()) -> Proposed: ...


@dataclass(frozen=True)
class OfflineProposer:
    """The grounded offline proposers of `offline`, tried in their order (no model, no API key). Failed
    eval cases and notes do not change what they propose."""

    name: str = "offline"
    deterministic: bool = True

    def propose(self, pattern: Pattern, ws: Workspace, *, feedback: Sequence[FailedCase] = (),
                notes: Sequence[str] = ()) -> Proposed:
        from selfimprove.proposals.offline import candidates

        return Proposed(tuple(candidates(pattern, ws)))


@dataclass(frozen=True)
class ModelProposer:
    """A model proposes operations on mutable sections (`proposals.llm`); one call, one retry."""

    completer: Completer
    model: str
    deterministic: bool = False

    @property
    def name(self) -> str:
        return f"llm:{self.model}"

    def propose(self, pattern: Pattern, ws: Workspace, *, feedback: Sequence[FailedCase] = (),
                notes: Sequence[str] = ()) -> Proposed:
        from selfimprove.proposals.llm import propose_llm

        out = propose_llm(pattern, ws, self.completer, self.model, feedback=feedback, notes=notes)
        outcome = out.candidate if out.candidate is not None else Refusal(Why.NO_CANDIDATE, out.reason)
        return Proposed((outcome,), out.input_tokens, out.output_tokens, out.cost_usd)


def _model(completer: Completer | None, model: str | None) -> Proposer:
    if completer is None or not model:
        raise ValueError("the model proposer needs a completer and a model")
    return ModelProposer(completer, model)


PROPOSERS: Mapping[str, Callable[[Any, str | None], Proposer]] = {
    "offline": lambda completer, model: OfflineProposer(),
    "llm": _model,
}


def choose(completer: Completer | None, model: str | None) -> Proposer:
    """The proposer of a run: the model's when one is configured, else the offline one."""
    return PROPOSERS["llm" if completer is not None and model else "offline"](completer, model)
