"""Acceptance across domains: bench/judgement.py's figures on the shared corpus stay where the README says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from selfimprove.analysis import outcomes as oc

BENCH = Path(__file__).resolve().parents[2] / "bench" / "judgement.py"


@pytest.fixture(scope="module")
def judgement() -> ModuleType:
    spec = importlib.util.spec_from_file_location("judgement", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["judgement"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("domain", "traces", "failed", "at_least"), [
    ("tau_retail", 100, 27, 0.68),  # measured 0.70
    ("magentic", 58, 44, 0.59),  # measured 0.60 (0.44 before runs that stop unanswered were seen)
])
def test_the_unlabelled_prior_ranks_failures_first(judgement: ModuleType, shared_traces: Path, domain: str,
                                                   traces: int, failed: int, at_least: float) -> None:
    rows = judgement.load(domain, shared_traces)
    assert (len(rows), sum(y for _, y in rows)) == (traces, failed)
    assert judgement.auroc(oc.PRIOR_MODEL, rows) >= at_least


def test_twenty_labels_lift_magentic_well_above_the_prior(judgement: ModuleType, shared_traces: Path) -> None:
    rows = judgement.load("magentic", shared_traces)
    learned = judgement.with_labels(rows, 5)
    assert len(learned) == 5 and sum(learned) / 5 >= 0.7  # measured 0.75, prior 0.60
