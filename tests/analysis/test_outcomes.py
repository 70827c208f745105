from __future__ import annotations

import math

import pytest

from selfimprove.analysis import outcomes as oc
from selfimprove.analysis.signals import Signal


def x(**counts: int) -> tuple[float, ...]:
    long_run = float(counts.pop("long_run", 0))
    return oc.features(counts, long_run)


def test_features_count_slowly_and_in_fixed_order() -> None:
    assert oc.FEATURES == ("tool_error", "user_correction", "rephrase", "escalation", "abandonment", "loop",
                           "refusal", "max_turns", "long_run", "handoff", "accepted_refusal", "unfinished",
                           "claims_done", "short_run")
    assert x(tool_error=1, loop=2) == (1.0, 0, 0, 0, 0, 1 + math.log(2), 0, 0, 0, 0, 0, 0, 0, 0)


def test_long_run_is_relative_to_the_median_and_capped() -> None:
    assert oc.long_run_feature(10, 10) == 0.0
    assert oc.long_run_feature(5, 10) == 0.0
    assert oc.long_run_feature(21, 10) == pytest.approx(1.0)
    assert oc.long_run_feature(10_000, 10) == 2.0


def test_a_failure_label_wins_over_a_success_label() -> None:
    fail, ok, err = (Signal("explicit_failure"), Signal("explicit_success"), Signal("run_error"))
    assert oc.label_of([ok, fail]) is True
    assert oc.label_of([ok, err]) is True
    assert oc.label_of([ok]) is False
    assert oc.label_of([]) is None


def test_decide_labels_first_then_the_model() -> None:
    model = oc.PRIOR_MODEL
    assert oc.decide(True, x(), model) == ("failure", 1.0)
    assert oc.decide(False, x(loop=3), model) == ("success", 0.0)
    outcome, score = oc.decide(None, x(), model)
    assert (outcome, round(score, 4)) == ("success", round(oc.sigmoid(oc.PRIOR_BIAS), 4))
    outcome, score = oc.decide(None, x(tool_error=1), model)
    assert (outcome, round(score, 4)) == ("unknown", round(oc.sigmoid(-0.5), 4))
    outcome, score = oc.decide(None, x(max_turns=1), model)
    assert (outcome, round(score, 4)) == ("failure", round(oc.sigmoid(1.0), 4))


def test_auroc_with_ties_and_degenerate_inputs() -> None:
    assert oc.auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert oc.auroc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    assert oc.auroc([0.5, 0.5, 0.5, 0.5], [True, False, True, False]) == 0.5
    assert oc.auroc([0.9, 0.5, 0.5, 0.1], [True, True, False, False]) == 0.875
    assert oc.auroc([0.3, 0.4], [True, True]) is None


def test_training_learns_that_escalation_is_fine_here_and_refusal_is_not() -> None:
    # a triage bot: hand-offs are its job, refusals are its failures
    rows = ([(x(escalation=1), False)] * 30 + [(x(refusal=1), True)] * 20 + [(x(), False)] * 30
            + [(x(refusal=1), False)] * 2 + [(x(escalation=1), True)] * 2)
    model = oc.train(rows)
    assert model.weights["escalation"] < oc.PRIOR["escalation"] - 1.0
    assert model.weights["refusal"] > oc.PRIOR["refusal"] + 1.0
    assert model.score(x(refusal=1)) > 0.5 > model.score(x(escalation=1))
    # signals the labels never saw keep their prior weight
    assert model.weights["max_turns"] == oc.PRIOR["max_turns"]


def test_fit_reports_prior_only_with_too_few_labels() -> None:
    fit = oc.fit([(x(loop=1), True)] * 3 + [(x(), False)] * 10)
    assert fit.method == "prior"
    assert fit.model == oc.PRIOR_MODEL
    assert fit.auroc_prior == 1.0 and fit.auroc_learned is None
    assert fit.signal_rates["loop"] == (3, 0)
    assert fit.to_json()["note"].startswith(
        "13 labelled traces (3 failures): uncalibrated prior weights used")
    assert fit.to_json()["calibrated"] is False


def test_fit_learns_and_cross_validates_when_labels_suffice() -> None:
    rows = ([(x(escalation=1), False)] * 30 + [(x(refusal=1), True)] * 20 + [(x(), False)] * 30
            + [(x(escalation=1), True)] * 2)
    fit = oc.fit(rows)
    doc = fit.to_json()
    assert fit.method == "learned" and doc["labelled"] == 82 and doc["labelled_failures"] == 22
    assert fit.auroc_prior is not None and fit.auroc_learned is not None
    assert fit.auroc_learned > fit.auroc_prior  # the prior thinks escalation means failure; it does not here
    assert set(doc) == {"method", "labelled", "labelled_failures", "auroc_prior", "auroc_prior_cv",
                        "auroc_learned_cv", "bias", "weights", "context_weights", "calibrated",
                        "signal_rates", "note"}
    assert doc["calibrated"] is True and doc["context_weights"] == {}  # no context features given
    assert oc.fit(rows).to_json() == doc  # deterministic


def test_context_features_let_twenty_labels_learn_what_signals_cannot_say() -> None:
    # failures end on the booking call, successes on a transfer: no signal tells them apart
    rows = [(x(), True)] * 10 + [(x(), False)] * 10
    extras = [("last:book", "tool:book")] * 10 + [("last:transfer", "tool:book", "tool:transfer")] * 10
    fit = oc.fit(rows, extras=extras)
    assert fit.method == "learned" and "context features" in fit.note
    assert fit.auroc_learned == 1.0 and fit.auroc_prior_cv == 0.5
    assert fit.model.context["last:book"] > 0 > fit.model.context["last:transfer"]
    assert "tool:book" not in fit.model.context  # in every labelled trace: says nothing
    assert fit.model.score(x(), ("last:book",)) > 0.5 > fit.model.score(x(), ("last:transfer",))
    assert oc.fit(rows).model.context == {}  # without context features: signals only


def test_evidence_is_a_signal_that_speaks_for_failure() -> None:
    # a hand-off the agent chose weighs nothing by default: alone it is no evidence of failure
    assert oc.decide(None, x(handoff=1), oc.PRIOR_MODEL)[0] == "success"
    assert oc.decide(None, x(escalation=1), oc.PRIOR_MODEL)[0] == "failure"
