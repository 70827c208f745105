"""Reading with several processes gives exactly the analysis of one process."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from selfimprove.analysis.pipeline import analyze

DATA = Path(__file__).resolve().parents[1] / "data" / "analysis"
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def test_sharded_reading_matches_a_single_pass(tmp_path: Path) -> None:
    from analyze_bench import generate  # the benchmark's generator: varied, labelled, with errors

    generate(tmp_path / "big.jsonl", 700)  # about 2 MB: split at line boundaries between the workers
    (tmp_path / "big.jsonl").write_bytes((tmp_path / "big.jsonl").read_bytes() + b"{broken\n")
    for n in range(3):  # small files are dealt out whole; the same ids in each file
        shutil.copy(DATA / "support.jsonl", tmp_path / f"s{n}.jsonl")
    one = analyze([tmp_path], workers=1).to_json()
    two = analyze([tmp_path], workers=2).to_json()
    assert one["traces"]["total"] == 700 + 36 and one["traces"]["skipped"] == 1
    assert json.dumps(two, sort_keys=True) == json.dumps(one, sort_keys=True)
    outcomes_one = [o.to_json() for o in analyze([tmp_path], workers=1).outcomes]
    outcomes_two = [o.to_json() for o in analyze([tmp_path], workers=2).outcomes]
    assert outcomes_two == outcomes_one
