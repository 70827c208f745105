"""Proposals: failure patterns turned into bounded edits of mutable sections, one git branch each.

`propose()` is the service behind `selfimprove propose`; `proposers` is the registry of proposers
(`offline` and `llm` hold them), `branch` writes a checked proposal as a branch. See `service` for the
order of checks.
"""

from __future__ import annotations

from selfimprove.proposals.model import Candidate, Edit, Proposal, ProposeResult, Refusal, Rejection, Why
from selfimprove.proposals.service import fresh_analysis, load_analysis, propose

__all__ = [
    "Candidate",
    "Edit",
    "Proposal",
    "ProposeResult",
    "Refusal",
    "Rejection",
    "Why",
    "fresh_analysis",
    "load_analysis",
    "propose",
]
