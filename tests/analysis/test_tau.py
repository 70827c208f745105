"""Acceptance on real labelled runs: AgentRx tau-bench retail (100 runs, 27 with reward 0)."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from selfimprove.analysis import outcomes as oc
from selfimprove.analysis.collect import collect
from selfimprove.analysis.pipeline import score
from selfimprove.traces.read import read_traces


@pytest.fixture
def tau(shared_traces: Path) -> list:  # type: ignore[type-arg]
    return list(read_traces([shared_traces / "agentrx/tau_retail/tau_dataset_full.json"]))


def test_labelled_failures_are_exactly_the_failures(tau: list) -> None:  # type: ignore[type-arg]
    outcomes, fit, _ = score(collect(tau))
    assert len(outcomes) == 100
    assert sum(o.outcome == "failure" for o in outcomes) == 27
    assert sum(o.outcome == "success" for o in outcomes) == 73
    assert all(o.failure_score == 1.0 for o in outcomes if o.outcome == "failure")
    assert fit.method == "learned" and fit.labelled == 100 and fit.labelled_failures == 27


def test_without_rewards_the_score_still_ranks_failures_first_and_learning_helps(tau: list) -> None:  # type: ignore[type-arg]
    failed = {t.id: any(f.kind == "reward" and f.value < 1 for f in t.feedback) for t in tau}
    assert sum(failed.values()) == 27
    unlabelled = [replace(t, feedback=()) for t in tau]
    outcomes, fit, _ = score(collect(unlabelled))
    assert fit.method == "prior" and fit.labelled == 0
    prior_auc = oc.auroc([o.failure_score for o in outcomes], [failed[o.trace_id] for o in outcomes])
    assert prior_auc is not None and prior_auc > 0.68  # measured 0.71

    # learn from half of the labels, judge on the other half; averaged over fixed random splits
    col = collect(unlabelled)
    score(col)  # fills the feature vectors
    rows = [(s.x, failed[s.id]) for s in col.summaries]
    gains = []
    for seed in range(10):
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        train, test = order[:50], order[50:]
        model = oc.train([rows[i] for i in train])
        labels = [rows[i][1] for i in test]
        before = oc.auroc([oc.PRIOR_MODEL.score(rows[i][0]) for i in test], labels)
        after = oc.auroc([model.score(rows[i][0]) for i in test], labels)
        assert before is not None and after is not None
        gains.append(after - before)
    assert sum(gains) / len(gains) > 0.01  # measured +0.02 on average
    assert sum(g > 0 for g in gains) >= 6


def test_the_shared_folder_reads_each_run_once(shared_traces: Path) -> None:
    from selfimprove.analysis.pipeline import analyze

    folder = shared_traces / "agentrx/tau_retail"  # 100 runs, and 29 failed runs of which 27 repeat them
    one = analyze([folder], workers=1)
    assert one.to_json()["traces"] == {"total": 102, "failure": 29, "success": 73, "unknown": 0, "skipped": 0,
                                       "duplicates": 27}
    assert [(Path(s.path).name, s.traces) for s in one.sources] == [("tau_dataset_failed.json", 29),
                                                                     ("tau_dataset_full.json", 100)]
    ids = [o.trace_id for o in one.outcomes]
    # ids as the files give them (task id / trial), none renamed: every repeat was merged
    assert len(set(ids)) == 102 and all(i == f"{i.split('/')[0]}/{i.split('/')[0]}" for i in ids)
    assert {"104/104", "105/105"} <= set(ids)
    full = f"{folder}/tau_dataset_full.json:1"
    assert len(one.also) == 27 and all(sources == (full,) for sources in one.also.values())
    for p in one.patterns:  # evidence names each task once
        tasks = [e.trace_id for e in p.examples]
        assert len(tasks) == len(set(tasks)) and len(p.trace_ids) == len(set(p.trace_ids)) == p.count
    assert sum(p.count for p in one.patterns) <= 29
    two = analyze([folder], workers=2)  # each file read by another process
    assert json.dumps(two.to_json(), sort_keys=True) == json.dumps(one.to_json(), sort_keys=True)
    assert [o.to_json() for o in two.outcomes] == [o.to_json() for o in one.outcomes]
    assert dict(two.also) == dict(one.also)
