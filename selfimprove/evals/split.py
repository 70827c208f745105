"""Dev and held-out: which eval cases a search may look at, and which ones judge its result.

Owns: the split of a suite by `eval.holdout` (a share in [0, 1)). A case is held out when a stable
hash of its id falls below the share, unless its `metadata.split` says `dev` or `held-out` (cases that
`analyze --export-cases` writes from production traces say `dev`: the traces a proposal is built from
must not also judge it), so the split never depends on the order of files, on the other
cases, on the machine or on the Python version, and adding a case never moves another one.

Must never: look at a case's content (a split by content would put similar cases on one side), or
use randomness that is not a function of the id.

Why: a search that is scored on the cases that gate it can pass the gate by fitting them. It sees
dev only; `eval` gates on held-out when a split is set, and reports show the dev → held-out gap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from selfimprove.evals.suite import Case

SIDES = ("dev", "held-out")


def held_out(case_id: str, share: float) -> bool:
    """True when the case with this id is held out at this share (stable across runs and machines)."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"selfimprove-holdout:{case_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def side_of(case: Case, share: float) -> str:
    """"dev" or "held-out": the case's own `metadata.split` when it names one, else its id's hash."""
    told = case.metadata.get("split") if isinstance(case.metadata, Mapping) else None
    if told in SIDES and share > 0:
        return str(told)
    return SIDES[1] if held_out(case.id, share) else SIDES[0]


def split(cases: Iterable[Case], share: float) -> tuple[list[Case], list[Case]]:
    """(dev, held-out), order kept."""
    dev: list[Case] = []
    held: list[Case] = []
    for case in cases:
        (held if side_of(case, share) == SIDES[1] else dev).append(case)
    return dev, held
