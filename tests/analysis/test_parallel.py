"""Reading with several processes gives exactly the analysis of one process."""

from __future__ import annotations

import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from selfimprove.analysis.pipeline import analyze
from selfimprove.analysis.records import Analysis

DATA = Path(__file__).resolve().parents[1] / "data" / "analysis"
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def everything(analysis: Analysis) -> str:
    return json.dumps({"doc": analysis.to_json(), "outcomes": [o.to_json() for o in analysis.outcomes],
                       "also": dict(analysis.also), "filtered": [analysis.filtered, analysis.undated]},
                      sort_keys=True)


def test_sharded_reading_matches_a_single_pass(tmp_path: Path) -> None:
    from analyze_bench import generate  # the benchmark's generator: varied, labelled, with errors

    generate(tmp_path / "big.jsonl", 700)  # about 2 MB: split at line boundaries between the workers
    lines = (tmp_path / "big.jsonl").read_bytes().splitlines(keepends=True)
    # its first five runs again at its end (read by another worker than the first ones), and a bad line
    (tmp_path / "big.jsonl").write_bytes(b"".join(lines + lines[:5]) + b"{broken\n")
    support = (DATA / "support.jsonl").read_text(encoding="utf-8").splitlines()
    for n in range(3):  # small files are dealt out whole: the same runs in each, read once
        shutil.copy(DATA / "support.jsonl", tmp_path / f"s{n}.jsonl")
    # the same ids with other words: other runs, whose ids collide
    asked = '"role": "user", "content": "'
    other = [line.replace(asked, asked + "Hello. ", 1) for line in support]
    (tmp_path / "t.jsonl").write_text("\n".join(other) + "\n")
    undated = [json.dumps({k: v for k, v in json.loads(line).items() if k != "timestamp"})
               for line in support]
    for n in range(2):
        (tmp_path / f"u{n}.jsonl").write_text("\n".join(undated) + "\n")

    one = analyze([tmp_path], workers=1)
    two = analyze([tmp_path], workers=2)
    assert one.to_json()["traces"] == {"total": 700 + 3 * 12, "failure": one.counts["failure"],
                                       "success": one.counts["success"], "unknown": one.counts["unknown"],
                                       "skipped": 1, "duplicates": 5 + 2 * 12 + 12}
    assert everything(two) == everything(one)
    ids = [o.trace_id for o in one.outcomes]
    assert len(set(ids)) == len(ids)
    assert ids[700:703] == ["timeout-1", "timeout-2", "timeout-3"]  # s0.jsonl: the first to use them
    assert ids[712:715] == ["t:timeout-1", "t:timeout-2", "t:timeout-3"]
    assert ids[724:727] == ["u0:timeout-1", "u0:timeout-2", "u0:timeout-3"]
    assert one.also["timeout-1"] == (f"{tmp_path}/s1.jsonl:1", f"{tmp_path}/s2.jsonl:1")
    assert one.also["u0:timeout-1"] == (f"{tmp_path}/u1.jsonl:1",)
    first = one.outcomes[0]
    assert one.also[first.trace_id] == (f"{tmp_path}/big.jsonl:701",)

    # a time window: repeats left out or kept undated are counted once, the same way
    since = datetime(2025, 3, 5, tzinfo=timezone.utc)
    one = analyze([tmp_path], workers=1, since=since)
    two = analyze([tmp_path], workers=2, since=since)
    assert everything(two) == everything(one)
    assert (one.undated, one.duplicates) == (12, 41) and one.filtered > 0
