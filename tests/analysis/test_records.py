"""The records analysis hands on: JSON round trips, the shipped schema, and the one table of kinds."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from selfimprove.analysis import outcomes, signals
from selfimprove.analysis.pipeline import analyze
from selfimprove.analysis.records import Evidence, Pattern
from selfimprove.config import load_schema

DATA = Path(__file__).resolve().parents[1] / "data" / "analysis"
EXAMPLE_LOGS = Path(__file__).resolve().parents[2] / "examples" / "support-agent" / "logs"


@pytest.fixture(scope="module")
def document() -> dict:  # type: ignore[type-arg]
    return analyze([EXAMPLE_LOGS]).to_json()


def test_patterns_read_back_from_json_write_the_same_json(document: dict) -> None:  # type: ignore[type-arg]
    assert document["patterns"]
    for doc in document["patterns"]:
        pattern = Pattern.from_json(doc)
        assert json.dumps(pattern.to_json()) == json.dumps(doc)
        assert isinstance(pattern.evidence, Evidence)
    evidence = Pattern.from_json(document["patterns"][0]).evidence
    assert evidence.tool == "lookup_order" and evidence.call_arguments is not None
    assert evidence.exchanges[0][0].role == "user"


def test_the_shipped_schema_describes_what_analyze_writes(document: dict) -> None:  # type: ignore[type-arg]
    schema = load_schema("analysis.schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(document)) == []
    assert list(validator.iter_errors(analyze([DATA / "support.jsonl"]).to_json())) == []
    bad = json.loads(json.dumps(document))
    bad["patterns"][0]["evidence"]["demonstrations"][0]["user"] = 7
    (error,) = validator.iter_errors(bad)
    assert error.json_path == "$.patterns[0].evidence.demonstrations[0].user"


def test_every_list_of_kinds_is_derived_from_one_table() -> None:
    assert outcomes.FEATURES == ("tool_error", "user_correction", "rephrase", "escalation", "abandonment",
                                 "loop", "refusal", "max_turns", "long_run", "handoff", "accepted_refusal",
                                 "unfinished", "claims_done", "short_run")
    assert signals.IMPLICIT == tuple(f for f in outcomes.FEATURES
                                     if f not in ("long_run", "claims_done", "short_run"))
    assert dict(outcomes.PRIOR) == {k.name: k.prior for k in signals.KINDS if k.prior is not None}
    assert signals.KIND_ORDER == ("run_error", "max_turns", "tool_error", "loop", "escalation", "refusal",
                                  "user_correction", "abandonment", "explicit_failure")
    assert set(signals.REGISTRY) <= set(signals.IMPLICIT)  # every detector declares its kind
    with pytest.raises(ValueError, match="declare its kind in signals.KINDS"):
        signals.detector("not_a_kind")
