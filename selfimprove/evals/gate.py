"""The gate (DESIGN §6): base vs candidate on the same cases and repeats → pass or fail, with reasons.

Owns: per-case pass rates over repeats, which cases regressed or were fixed, tag slices, the rules
(policy violations, `max_regressions`, no slice worse, `min_improvement`), and the statistics reported
beside them: the paired exact (McNemar) p-value and a confidence interval of the difference.

Must never: call a model or read git (it is pure, so every rule is testable with plain numbers), or
let a significance test overrule a rule: the p-value is reported, the rules decide.

Definitions. A case's pass rate is the share of its repeats that passed. A case *passes* on one side
when most of its repeats pass (rate > 1/2); *regressed* = passes on base, not on candidate; *fixed* =
the reverse. The overall and slice pass rates are means of case pass rates. McNemar's exact test uses
the discordant cases (regressed b, fixed c): p = P(X ≤ min(b, c)) × 2 for X ~ Bin(b + c, 1/2), capped
at 1. The interval is Newcombe's (1998, method 10) for a difference of paired proportions, on the
case-level outcomes, at confidence 1 − alpha.

Verdicts. `fail` when a rule is broken (regressions, a worse slice, a gain below `min_improvement`).
Otherwise `pass` needs a measured effect: a positive gain whose paired test reaches `alpha`. A
candidate that changes nothing measurable (no discordant case, or a gain the test cannot tell from
chance) is `no-effect`, never `pass`: a gate that passes changes doing nothing lets noise through.
A refactor, meant to change nothing, asks for `allow_no_effect` and then passes on the same terms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from selfimprove.config import Gate


@dataclass(frozen=True)
class CaseOutcome:
    id: str
    tags: tuple[str, ...]
    trials: int
    base_passes: int
    candidate_passes: int

    @property
    def base_rate(self) -> float:
        return self.base_passes / self.trials if self.trials else 0.0

    @property
    def candidate_rate(self) -> float:
        return self.candidate_passes / self.trials if self.trials else 0.0

    @property
    def base_ok(self) -> bool:
        return self.base_rate > 0.5

    @property
    def candidate_ok(self) -> bool:
        return self.candidate_rate > 0.5


@dataclass(frozen=True)
class Slice:
    cases: int
    base: float
    candidate: float

    @property
    def delta(self) -> float:
        return self.candidate - self.base

    def to_json(self) -> dict[str, Any]:
        return {"cases": self.cases, "base": round(self.base, 6), "candidate": round(self.candidate, 6),
                "delta": round(self.delta, 6)}


@dataclass(frozen=True)
class GateResult:
    verdict: str  # "pass" | "fail" | "no-effect"
    reasons: tuple[str, ...]
    base_rate: float | None = None
    candidate_rate: float | None = None
    regressed: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()
    p_value: float | None = None
    ci: tuple[float, float] | None = None
    slices: dict[str, Slice] = field(default_factory=dict)

    @property
    def gain(self) -> float | None:
        if self.base_rate is None or self.candidate_rate is None:
            return None
        return self.candidate_rate - self.base_rate


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b and c."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = float(sum(math.comb(n, i) for i in range(k + 1))) / float(2**n)
    return min(1.0, 2.0 * tail)


def _wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_difference_ci(both: int, regressed: int, fixed: int, neither: int,
                         alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe's interval for (candidate − base) pass rate from the 2×2 paired table."""
    n = both + regressed + fixed + neither
    if n == 0:
        return -1.0, 1.0
    z = NormalDist().inv_cdf(1 - alpha / 2)
    p1 = (both + regressed) / n  # base
    p2 = (both + fixed) / n  # candidate
    l1, u1 = _wilson(both + regressed, n, z)
    l2, u2 = _wilson(both + fixed, n, z)
    product = (both + regressed) * (fixed + neither) * (both + fixed) * (regressed + neither)
    if product == 0:
        phi = 0.0
    else:
        numerator = float(both * neither - regressed * fixed)
        if numerator > 0:  # Newcombe's continuity adjustment
            numerator = max(numerator - n / 2, 0.0)
        phi = numerator / math.sqrt(product)
    d = p2 - p1
    lower = math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    upper = math.sqrt(max(0.0, (u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2))
    return max(-1.0, d - lower), min(1.0, d + upper)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def refuse_policy(violations: Sequence[object]) -> GateResult:
    """The verdict when the policy checker objects: fail, whatever the scores would have been."""
    return GateResult("fail", tuple(f"policy: {v}" for v in violations))


def decide(outcomes: Sequence[CaseOutcome], gate: Gate, *, allow_no_effect: bool = False) -> GateResult:
    """Apply the gate's rules to per-case outcomes (see the module's "Verdicts")."""
    n = len(outcomes)
    base_rate = sum(o.base_rate for o in outcomes) / n if n else 0.0
    candidate_rate = sum(o.candidate_rate for o in outcomes) / n if n else 0.0
    regressed = tuple(o.id for o in outcomes if o.base_ok and not o.candidate_ok)
    fixed = tuple(o.id for o in outcomes if o.candidate_ok and not o.base_ok)
    both = sum(1 for o in outcomes if o.base_ok and o.candidate_ok)
    neither = n - both - len(regressed) - len(fixed)
    p_value = mcnemar_exact(len(regressed), len(fixed))
    ci = paired_difference_ci(both, len(regressed), len(fixed), neither, gate.alpha)

    slices: dict[str, Slice] = {}
    for tag in sorted({t for o in outcomes for t in o.tags}):
        members = [o for o in outcomes if tag in o.tags]
        slices[tag] = Slice(len(members), sum(o.base_rate for o in members) / len(members),
                            sum(o.candidate_rate for o in members) / len(members))

    reasons: list[str] = []
    if len(regressed) > gate.max_regressions:
        more = f" and {len(regressed) - 10} more" if len(regressed) > 10 else ""
        shown = ", ".join(regressed[:10]) + more
        reasons.append(f"{len(regressed)} regressed case{'s' if len(regressed) != 1 else ''} "
                       f"(max_regressions {gate.max_regressions}): {shown}")
    eps = 1e-9
    for tag, stats in slices.items():
        if stats.candidate < stats.base - eps:
            reasons.append(f"slice '{tag}' got worse: {_pct(stats.base)} → {_pct(stats.candidate)}")
    gain = candidate_rate - base_rate
    if gain < gate.min_improvement - eps:
        reasons.append(f"gain {gain * 100:+.1f} points is below min_improvement "
                       f"{gate.min_improvement * 100:.1f} points")
    verdict = "fail" if reasons else "pass"
    if not reasons and not (gain > eps and p_value < gate.alpha):
        if not regressed and not fixed and abs(gain) <= eps:
            why = "no measured effect: no case changed outcome and the pass rate is the same"
        else:
            why = (f"no measured effect: gain {gain * 100:+.1f} points ({len(fixed)} fixed, "
                   f"{len(regressed)} regressed), p = {p_value:.4g} is not below alpha {gate.alpha:g}")
        verdict = "pass" if allow_no_effect else "no-effect"
        reasons.append(why + (" (allowed: --allow-no-effect)" if allow_no_effect else ""))
    return GateResult(
        verdict=verdict,
        reasons=tuple(reasons),
        base_rate=base_rate,
        candidate_rate=candidate_rate,
        regressed=regressed,
        fixed=fixed,
        p_value=p_value,
        ci=ci,
        slices=slices,
    )
