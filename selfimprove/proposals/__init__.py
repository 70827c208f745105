"""Proposals: failure patterns turned into bounded edits of mutable sections, one git branch each.

`propose()` is the service behind `selfimprove propose`; `offline` and `llm` hold the proposers,
`branch` writes a checked proposal as a branch. See `service` for the order of checks.
"""

from __future__ import annotations

from selfimprove.proposals.model import Candidate, Edit, Proposal, ProposeResult, Rejection
from selfimprove.proposals.service import fresh_analysis, load_analysis, propose

__all__ = [
    "Candidate",
    "Edit",
    "Proposal",
    "ProposeResult",
    "Rejection",
    "fresh_analysis",
    "load_analysis",
    "propose",
]
