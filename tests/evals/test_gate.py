from __future__ import annotations

import math

import pytest

from selfimprove.config import Gate
from selfimprove.evals.gate import CaseOutcome, decide, mcnemar_exact, paired_difference_ci, refuse_policy


def outcome(case_id: str, base: int, candidate: int, trials: int = 1,
            tags: tuple[str, ...] = ()) -> CaseOutcome:
    return CaseOutcome(case_id, tags, trials, base, candidate)


@pytest.mark.parametrize(("b", "c", "expected"), [
    (0, 0, 1.0),
    (0, 2, 0.5),
    (1, 9, 2 * 11 / 1024),  # 2 × P(X ≤ 1), X ~ Bin(10, 1/2)
    (0, 10, 2 / 1024),
    (5, 5, 1.0),
    (3, 12, 2 * (1 + 15 + 105 + 455) / 2**15),
])
def test_mcnemar_exact(b, c, expected):
    assert math.isclose(mcnemar_exact(b, c), expected)
    assert math.isclose(mcnemar_exact(c, b), expected)


def test_paired_ci_contains_the_difference_and_narrows_with_data():
    lo, hi = paired_difference_ci(both=6, regressed=1, fixed=5, neither=8, alpha=0.05)
    assert lo < (5 - 1) / 20 < hi
    assert -1 <= lo and hi <= 1
    lo10, hi10 = paired_difference_ci(both=60, regressed=10, fixed=50, neither=80, alpha=0.05)
    assert hi10 - lo10 < hi - lo
    assert lo10 > 0  # a large consistent gain excludes zero
    wide = paired_difference_ci(both=6, regressed=1, fixed=5, neither=8, alpha=0.01)
    assert wide[0] < lo and wide[1] > hi
    assert paired_difference_ci(0, 0, 0, 0) == (-1.0, 1.0)
    # no discordant cases: the interval is around zero
    zlo, zhi = paired_difference_ci(both=10, regressed=0, fixed=0, neither=10)
    assert zlo < 0 < zhi


def test_a_fixing_candidate_passes():
    fixed = [outcome(f"a{i}", 0, 1, tags=("refunds",)) for i in range(6)]
    result = decide([*fixed, outcome("b", 1, 1, tags=("orders",)), outcome("c", 1, 1)], Gate())
    assert result.verdict == "pass" and result.reasons == ()
    assert result.fixed == tuple(f"a{i}" for i in range(6)) and result.regressed == ()
    assert math.isclose(result.gain, 6 / 8)
    assert result.p_value == 2 / 64
    assert result.slices["refunds"].delta == 1.0


def test_no_measured_effect_is_never_a_pass():
    same = [outcome("a", 1, 1), outcome("b", 0, 0), outcome("c", 1, 1)]
    result = decide(same, Gate())
    assert result.verdict == "no-effect"
    assert result.reasons == ("no measured effect: no case changed outcome and the pass rate is the same",)
    allowed = decide(same, Gate(), allow_no_effect=True)
    assert allowed.verdict == "pass"
    assert allowed.reasons == ("no measured effect: no case changed outcome and the pass rate is the same "
                               "(allowed: --allow-no-effect)",)
    # a gain the paired test cannot tell from chance (2 fixed: p = 0.5) is no measured effect either
    small = decide([outcome("a", 0, 1), outcome("b", 0, 1), outcome("c", 1, 1)], Gate())
    assert small.verdict == "no-effect"
    assert small.reasons == ("no measured effect: gain +66.7 points (2 fixed, 0 regressed), p = 0.5 is "
                             "not below alpha 0.05",)
    # 5 fixed gives p = 0.0625: a stricter alpha needs more evidence, a looser one passes it
    five = [outcome(f"f{i}", 0, 1) for i in range(5)]
    assert decide(five, Gate(alpha=0.05)).verdict == "no-effect"
    assert decide(five, Gate(alpha=0.1)).verdict == "pass"
    # a rule broken is a fail, whatever --allow-no-effect says
    assert decide([outcome("a", 1, 0)], Gate(), allow_no_effect=True).verdict == "fail"


def test_regressions_above_max_fail_and_slices_may_not_get_worse():
    cases = [outcome("a", 1, 0, tags=("orders",)), outcome("b", 0, 1, tags=("refunds",)),
             outcome("c", 0, 1, tags=("refunds",))]
    result = decide(cases, Gate(max_regressions=0))
    assert result.verdict == "fail"
    assert result.reasons == ("1 regressed case (max_regressions 0): a",
                              "slice 'orders' got worse: 100.0% → 0.0%")
    tolerant = decide(cases, Gate(max_regressions=1))
    assert tolerant.reasons == ("slice 'orders' got worse: 100.0% → 0.0%",)
    untagged = [outcome("a", 1, 0)] + [outcome(f"f{i}", 0, 1) for i in range(9)]
    assert decide(untagged, Gate(max_regressions=1)).verdict == "pass"  # p = 22/1024


def test_min_improvement():
    cases = [outcome(f"f{i}", 0, 1) for i in range(6)] + [outcome(f"n{i}", 0, 0) for i in range(18)]
    assert decide(cases, Gate(min_improvement=0.25)).verdict == "pass"
    result = decide(cases, Gate(min_improvement=0.3))
    assert result.verdict == "fail"
    assert result.reasons == ("gain +25.0 points is below min_improvement 30.0 points",)


def test_repeats_majority_decides_flips_rates_decide_slices():
    # 3 repeats: 3/3 → 2/3 still passes by majority (no regression) but the slice rate dropped
    cases = [outcome("a", 3, 2, trials=3, tags=("t",)), outcome("b", 1, 3, trials=3, tags=("u",))]
    result = decide(cases, Gate())
    assert result.regressed == () and result.fixed == ("b",)
    assert result.verdict == "fail"
    assert result.reasons == ("slice 't' got worse: 100.0% → 66.7%",)
    assert math.isclose(result.base_rate, (1 + 1 / 3) / 2)
    # 2 repeats: 1/2 is not a majority
    assert decide([outcome("a", 2, 1, trials=2)], Gate(max_regressions=5)).regressed == ("a",)


def test_policy_refusal():
    result = refuse_policy(["prompts/a.md:3: immutable section 'safety' changed"])
    assert result.verdict == "fail"
    assert result.reasons == ("policy: prompts/a.md:3: immutable section 'safety' changed",)
    assert result.p_value is None and result.base_rate is None
