"""Benchmark: blame (which agent, which step) against the AgentRx human annotations, per domain.

Reads the AgentRx ground truth (`ground_truth/tau_ground_truth.json` for the tau-bench retail runs,
`ground_truth/magentic_one_ground_truth.json` for the Magentic-One logs), the annotated failed runs
through selfimprove's own readers, and scores, per domain:

  agent       the blamed agent is the annotated root cause's `failed_agent` (case-insensitive)
  step        the blamed step is the root cause's step
  step (any)  the blamed step is any annotated failure step (AgentRx's own step metric)

for `blame()` and for the baselines: a random agent (expected accuracy: 1 / the number of agents that
speak in the run; a random step: 1 / its messages), the last speaker (its last message as the step),
and the speaker of the earliest message any signal flags (what the report could say before blame).

Annotated `step_number`s count messages from 1 (tau-bench messages carry the same number as `index`;
Magentic-One logs are message lists, their length is `steps_by_id.json`): step = step_number - 1.

Usage: python bench/blame.py [--data DIR]   (default: ../shared/data/traces/agentrx from the project root)

Recorded (deterministic; the same heuristics on both domains):

  domain      runs  method                    agent   step step (any)
  tau_retail    29  blame                     72.4%  17.2%      20.7%
  tau_retail    29  random agent (expected)   50.0%   2.9%       3.8%
  tau_retail    29  last speaker              44.8%   6.9%      13.8%
  tau_retail    29  earliest flagged step     27.6%   3.4%       3.4%
  magentic      44  blame                     61.4%  18.2%      20.5%
  magentic      44  random agent (expected)   30.3%   4.6%      12.7%
  magentic      44  last speaker              56.8%  20.5%      54.5%
  magentic      44  earliest flagged step     56.8%  20.5%      54.5%
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selfimprove.analysis.blame import agent_of, blame  # noqa: E402
from selfimprove.analysis.signals import detect  # noqa: E402
from selfimprove.traces.model import Trace, view_of  # noqa: E402
from selfimprove.traces.read import read_traces  # noqa: E402

Prediction = tuple[str, int] | None


def ground_truth(path: Path) -> dict[str, tuple[str, int, set[int]]]:
    """trajectory id → (root cause agent, root cause step, every annotated step), steps 0-based."""
    out = {}
    for entry in json.loads(path.read_text()):
        failures = entry.get("failures") or []
        root_id = str((entry.get("root_cause") or {}).get("failure_id"))
        root = next((f for f in failures if str(f.get("failure_id")) == root_id), None)
        if root is None:
            continue  # no root cause among its failures: nothing to score against
        out[str(entry["trajectory_id"])] = (str(root["failed_agent"]), int(root["step_number"]) - 1,
                                            {int(f["step_number"]) - 1 for f in failures})
    return out


def domain_traces(data: Path, name: str) -> Iterable[tuple[str, Trace]]:
    if name == "tau_retail":
        for t in read_traces([data / "tau_retail/tau_dataset_failed.json"]):
            yield str(t.metadata.get("task_id")), t
    else:
        for t in read_traces([data / "magentic_dataset"]):
            yield Path(t.source.rsplit(":", 1)[0]).stem, t


def predictors() -> dict[str, Callable[[Trace], Prediction]]:
    def ours(t: Trace) -> Prediction:
        view = view_of(t)
        b = blame(view, detect(t, view), [m.name for m in t.messages])
        return (b.agent, b.step) if b else None

    def last_speaker(t: Trace) -> Prediction:
        at = next((i for i in range(len(t.messages) - 1, -1, -1)
                   if t.messages[i].role not in ("system", "tool")), None)
        return (agent_of(t.messages[at].role, t.messages[at].name), at) if at is not None else None

    def earliest_flagged(t: Trace) -> Prediction:
        flagged = [s.message_index for s in detect(t) if s.message_index is not None]
        if not flagged:
            return last_speaker(t)
        at = min(flagged)
        m = t.messages[at]
        return agent_of(m.role, m.name), at

    return {"blame": ours, "earliest flagged step": earliest_flagged, "last speaker": last_speaker}


def same_agent(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def score(data: Path, name: str, gt_file: str) -> dict[str, Any]:
    truth = ground_truth(data / "ground_truth" / gt_file)
    rows: dict[str, list[float]] = {}
    n = 0
    for tid, trace in domain_traces(data, name):
        if tid not in truth:
            continue
        n += 1
        agent, step, steps = truth.pop(tid)
        for label, predict in predictors().items():
            got = predict(trace)
            r = rows.setdefault(label, [0.0, 0.0, 0.0])
            if got is not None:
                r[0] += same_agent(got[0], agent)
                r[1] += got[1] == step
                r[2] += got[1] in steps
        agents = {agent_of(m.role, m.name).lower() for m in trace.messages
                  if m.role not in ("system", "tool")}
        r = rows.setdefault("random agent (expected)", [0.0, 0.0, 0.0])
        r[0] += 1 / len(agents) if agent.lower() in agents else 0.0
        r[1] += 1 / len(trace.messages)
        r[2] += len(steps) / len(trace.messages)
    return {"domain": name, "runs": n, "missing": len(truth),
            "rows": {k: [v / n for v in vs] for k, vs in rows.items()} if n else {}}


DOMAINS = (("tau_retail", "tau_ground_truth.json"), ("magentic", "magentic_one_ground_truth.json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/traces/agentrx")
    args = parser.parse_args()
    order = ("blame", "random agent (expected)", "last speaker", "earliest flagged step")
    print(f"{'domain':<11} {'runs':>4}  {'method':<24} {'agent':>6} {'step':>6} {'step (any)':>10}")
    for name, gt_file in DOMAINS:
        result = score(args.data, name, gt_file)
        for k in order:
            a, s, s_any = result["rows"].get(k, [0.0, 0.0, 0.0])
            print(f"{name:<11} {result['runs']:>4}  {k:<24} {a:>6.1%} {s:>6.1%} {s_any:>10.1%}")


if __name__ == "__main__":
    main()
