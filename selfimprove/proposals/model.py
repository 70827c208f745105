"""The records of `propose`: a candidate edit, a proposal written (or not) as a branch, the run's result.

Frozen records, built by the proposers and the orchestrator; only `ProposeResult.to_json` shapes
what users see (`selfimprove.proposals/v1`, DESIGN §6). Nothing here reads files, calls a model or
touches git.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selfimprove.analysis.records import Evidence

SCHEMA = "selfimprove.proposals/v1"


@dataclass(frozen=True)
class Edit:
    """One change to one managed file: a section body of a prompt, or a JSON pointer of a config."""

    path: str
    section: str | None
    pointer: str | None
    before: str
    after: str

    def describe(self) -> str:
        where = f"section {self.section}" if self.section else f"{self.pointer}"
        return f"{self.path} {where}"


@dataclass(frozen=True)
class Candidate:
    """What a proposer suggests for one pattern, before the policy and git see it."""

    title: str
    proposer: str  # "offline/<name>" or "llm:<model>"
    rationale: str
    edits: tuple[Edit, ...]
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class Why(Enum):
    """Why a candidate (or a proposer) gave no proposal for a pattern."""

    NO_CANDIDATE = "no-candidate"  # the proposer could make no grounded candidate (or the model none)
    UNCHANGED = "unchanged"  # the candidate changes nothing, or only repeats what the section holds
    PENDING = "pending"  # an open proposal (another branch) already makes this change
    FAILED_EVAL = "failed-eval"  # the same change is on a branch that failed its eval
    UNSAFE = "unsafe"  # proposals.safety: an injection, a redaction marker, a contradiction, a limit
    POLICY = "policy"  # prompts.policy: immutable text, protected phrases, caps, schemas


@dataclass(frozen=True)
class Refusal:
    """A reason there is no proposal: its kind (what callers branch on) and the sentence users read."""

    why: Why
    reason: str

    def __str__(self) -> str:
        return self.reason

    @property
    def pending(self) -> bool:
        """The pattern is being handled on another branch: no alternative is proposed for it."""
        return self.why is Why.PENDING


@dataclass(frozen=True)
class Proposal:
    pattern: str
    title: str
    slug: str
    proposer: str
    rationale: str
    evidence: Evidence | None  # the pattern's, for the commit message (None: an earlier run's branch)
    files: Mapping[str, bytes]  # full new bytes of each changed file
    edits: tuple[Edit, ...] = ()
    base: str = ""
    branch: str = ""
    commit: str | None = None
    status: str = "created"  # created | exists | dry-run
    diff: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    removed: tuple[str, ...] = ()  # existing rules or examples it removes or rewrites
    search: Mapping[str, Any] | None = None  # the lineage of a `--search` winner

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "branch": self.branch,
            "commit": self.commit,
            "base": self.base,
            "pattern": self.pattern,
            "title": self.title,
            "files": sorted(self.files),
            "proposer": self.proposer,
            "status": self.status,
            "rationale": self.rationale,
            "edits": [
                {"path": e.path, "section": e.section, "pointer": e.pointer} for e in self.edits
            ],
            "removed": list(self.removed),
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
            "cost_usd": round(self.cost_usd, 6),
        }
        if self.status == "dry-run":
            doc["diff"] = self.diff
        if self.search is not None:
            doc["search"] = dict(self.search)
        return doc


@dataclass(frozen=True)
class Rejection:
    pattern: str
    reason: str
    proposer: str = ""

    def to_json(self) -> dict[str, Any]:
        doc = {"pattern": self.pattern, "reason": self.reason}
        if self.proposer:
            doc["proposer"] = self.proposer
        return doc


@dataclass(frozen=True)
class ProposeResult:
    base: str
    dry_run: bool
    proposals: tuple[Proposal, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    # every model call of the run, including those whose candidate was refused
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0  # every call the run made (model attempts and eval calls), when a budget counted them
    stopped: str = ""  # why the run stopped early (the budget), with what was done kept

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schema": SCHEMA,
            "base": self.base,
            "dry_run": self.dry_run,
            "proposals": [p.to_json() for p in self.proposals],
            "rejected": [r.to_json() for r in self.rejected],
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
            "cost_usd": round(self.cost_usd, 6),
        }
        if self.calls:
            doc["calls"] = self.calls
        if self.stopped:
            doc["stopped"] = self.stopped
        return doc
