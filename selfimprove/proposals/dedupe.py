"""Near-duplicate rules: a rule already in the section, or proposed earlier, is not added again.

Owns: rule normalisation and the similarity test (rapidfuzz), and the memory of what was proposed
earlier in a run or on other `selfimprove/` branches. Must never: read or write files itself.

Why fuzzy: the same lesson comes back with a different order id, a different quote or a reworded
clause; an exact comparison would let a prompt fill up with copies of one rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from selfimprove.proposals.text import strip_bullet

THRESHOLD = 85.0  # rapidfuzz score (0-100) at or above which two rules say the same thing

_PUNCT = re.compile(r"[^\w\s<>{}]+")
_QUOTED = re.compile(r"`([^`]+)`|\"([^\"]+)\"|“([^”]+)”")


def normalise(rule: str) -> str:
    text = strip_bullet(rule).lower().replace("’", "'")
    return " ".join(_PUNCT.sub(" ", text).split())


def quoted(rule: str) -> list[str]:
    """The quoted parts of a rule (a tool name, an error message): what makes a templated rule distinct."""
    return [normalise(next(g for g in m.groups() if g is not None)) for m in _QUOTED.finditer(rule)]


def _same_quote(x: str, y: str) -> bool:
    """Quoted names must match exactly (`tool_1` is not `tool_10`); long messages may differ a little."""
    from rapidfuzz import fuzz

    if x == y:
        return True
    return min(len(x), len(y)) >= 24 and fuzz.ratio(x, y) >= 92


def similarity(a: str, b: str) -> float:
    """0-100. Rules that quote different things (another tool, another error) are never the same,
    however much of their wording they share."""
    from rapidfuzz import fuzz

    na, nb = normalise(a), normalise(b)
    if not na or not nb:
        return 0.0
    qa, qb = quoted(a), quoted(b)
    if qa and qb and not all(any(_same_quote(x, y) for y in qb) for x in qa):
        return 0.0
    return float(max(fuzz.ratio(na, nb), fuzz.token_sort_ratio(na, nb)))


def near_duplicate(rule: str, existing: Iterable[str], threshold: float = THRESHOLD) -> str | None:
    """The first of `existing` that says the same as `rule`, if any."""
    best: tuple[float, str] | None = None
    for other in existing:
        score = similarity(rule, other)
        if score >= threshold and (best is None or score > best[0]):
            best = (score, other)
    return best[1] if best else None


@dataclass
class Memory:
    """What was proposed earlier (this run, or on other selfimprove branches), with where.

    `rules` are lines added to mutable sections, compared fuzzily; `values` are config settings
    ("path#/pointer=json value"), compared exactly.
    """

    rules: list[tuple[str, str]] = field(default_factory=list)  # (line, branch)
    values: dict[str, str] = field(default_factory=dict)  # "path#pointer=value" -> branch

    def add(self, rules: Iterable[str], branch: str) -> None:
        self.rules.extend((rule, branch) for rule in rules)

    def add_value(self, key: str, branch: str) -> None:
        self.values.setdefault(key, branch)

    def find(self, rule: str, *, exclude: str = "") -> tuple[str, str] | None:
        match = near_duplicate(rule, (r for r, b in self.rules if b != exclude))
        if match is None:
            return None
        return next((r, b) for r, b in self.rules if r == match and b != exclude)
