"""Benchmark: the LLM judge of `analyze`: what its candidate pool costs while traces stream, what its labels
do to the learned weights, and a judged run through litellm.

1. pool: the streaming pass (`collect.collect`, one process) over a synthetic OpenAI JSONL file
   (bench/analyze_bench.py's generator), without a pool and with the pool of `--judge-sample 50`:
   CPU seconds, strata, candidates kept and their transcript characters.
2. oracle: tau-retail (../shared/data/traces/agentrx/tau_retail/tau_dataset_full.json) with the
   rewards removed; a scripted judge answers each run's true outcome (with `noise`, the wrong one for
   that share of runs) for a sample; AUROC of failure_score on the runs it did not judge, beside the
   prior's AUROC on the same runs. It measures what judge labels do to the learner, not a model.
3. litellm: `analyze --judge openai/gpt-4o-mini --judge-sample 50` on the same file against the stub
   OpenAI-compatible server (tests/stub_openai.py, 127.0.0.1), twice: the estimate printed before any
   call, calls, tokens, the cost litellm prices for that model, and the re-run (all cached).

Usage: python bench/judge_bench.py [--traces N]   (from the project root, with PYTHONPATH=.)

Recorded with `--tau ../shared/data/traces/agentrx/tau_retail/tau_dataset_full.json` (2 vCPUs shared
with other jobs):

  pool, 30000 traces (85 MB)     no pool 2.37-2.81 s CPU; pool of 50: 2.59-3.08 s (+0.19-0.27 s,
                                 ~7-10%), 12 strata, 600 candidates, 1.2 M characters of transcript
  oracle, tau-retail (100 runs, 27 failed; prior AUROC 0.712 on all of them), AUROC on the runs not
  judged, the prior's on the same runs in brackets:
    judge 20 runs                0.685 (0.665); 20% wrong verdicts, 3 seeds: 0.685-0.726
    judge 30 runs                0.715 (0.675); 20% wrong: 0.648-0.721
    judge 50 runs                0.751 (0.718); 20% wrong: 0.784
    The sample depends on the file's path (a run's priority hashes its source), and these figures
    with it: the same runs under another name gave 0.615 (0.742), 0.651 (0.764) and 0.776 (0.754).
    With the signal-count features of today, 20-30 judge labels do not reliably beat the prior.
  litellm + stub, 50 runs        estimate $0.0243 printed before any call; 50 calls, 96447 tokens in,
                                 500 out, $0.0148 at gpt-4o-mini's price; 1.8 s wall (12.5 s at load
                                 average 15); re-run 0 calls, 0.3-0.4 s
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selfimprove.analysis.outcomes import Outcome

ROOT = Path(__file__).resolve().parents[1]
TAU = ROOT.parent / "shared" / "data" / "traces" / "agentrx" / "tau_retail" / "tau_dataset_full.json"
tau = TAU


def pool(path: Path) -> None:
    from selfimprove.analysis.collect import collect, new_collected
    from selfimprove.traces.read import read_traces

    for size in (0, 50):
        start = time.process_time()
        col = collect(read_traces([path], views=True), col=new_collected(size))
        cpu = time.process_time() - start
        kept = col.pool.candidates() if col.pool is not None else []
        strata = len(col.pool.heaps) if col.pool is not None else 0
        print(f"pool {size:>2}: {len(col.summaries)} traces, {cpu:.2f} s CPU, {strata} strata, "
              f"{len(kept)} candidates, {sum(len(c.transcript) for c in kept)} characters")


def _first_user(messages: list[dict[str, object]]) -> str:
    text = next(str(m.get("content") or "") for m in messages if m.get("role") == "user")
    return " ".join(text.split())[:120]


def oracle(hidden: Path) -> None:
    from selfimprove.analysis.judge import JudgeOptions
    from selfimprove.analysis.outcomes import auroc
    from selfimprove.analysis.pipeline import analyze
    from selfimprove.llm import ScriptedCompleter
    from selfimprove.traces.read import read_traces

    runs = json.loads(tau.read_text())
    truth = {_first_user(r["traj"]): r["reward"] < 1 for r in runs}
    hidden.write_text(json.dumps([{k: v for k, v in r.items() if k != "reward"} for r in runs]))
    failed = {t.id: truth[" ".join(next(m.content for m in t.messages if m.role == "user").split())[:120]]
              for t in read_traces([hidden])}

    def judge(noise: float, seed: int) -> ScriptedCompleter:
        rng = random.Random(seed)

        def reply(messages: list[dict[str, str]]) -> str:
            found = re.search(r"^\[\d+\] user: (.*)$", messages[-1]["content"], re.M)
            label = truth.get(" ".join(found.group(1).split())[:120]) if found else None
            if label is None:
                return json.dumps({"verdict": "unknown", "reason": "not found"})
            label = not label if rng.random() < noise else label
            return json.dumps({"verdict": "failure" if label else "success", "reason": "oracle"})

        return ScriptedCompleter(reply)

    def score(outcomes: Sequence[Outcome], skip: set[str]) -> float | None:
        rows = [(o.failure_score, failed[o.trace_id]) for o in outcomes if o.trace_id not in skip]
        return auroc([s for s, _ in rows], [y for _, y in rows])

    prior = analyze([hidden])
    print(f"oracle: prior AUROC {score(prior.outcomes, set()):.3f} on {len(prior.outcomes)} runs")
    for n in (20, 30, 50):
        for noise in (0.0, 0.2):
            aucs = []
            for seed in range(3 if noise else 1):
                result = analyze([hidden], completer=judge(noise, seed),
                                 judge=JudgeOptions("oracle", sample=n))
                skip = {o.trace_id for o in result.outcomes if any(s.name == "llm_judge" for s in o.signals)}
                aucs.append(score(result.outcomes, skip) or 0.0)
            others = len(prior.outcomes) - len(skip)
            print(f"oracle: judge {n} runs, {noise:.0%} wrong: AUROC {min(aucs):.3f}-{max(aucs):.3f} on the "
                  f"{others} others; prior on them {score(prior.outcomes, skip):.3f}")


def through_litellm(workdir: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from selfimprove.cli import main
    from tests.stub_openai import StubOpenAI, last_user

    def reply(body: dict[str, object]) -> str:
        verdict = "failure" if "ERROR" in last_user(body) else "success"
        return json.dumps({"verdict": verdict, "reason": "stub"})

    os.chdir(workdir)  # verdicts are cached beside the cwd: a fresh one asks everything once
    with StubOpenAI(reply) as stub:
        os.environ.update(OPENAI_API_BASE=stub.url, OPENAI_API_KEY="sk-stub")
        for attempt in (1, 2):
            err = io.StringIO()
            start = time.perf_counter()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(["analyze", str(tau), "--judge", "openai/gpt-4o-mini", "--judge-sample", "50"])
            wall = time.perf_counter() - start
            print(f"litellm run {attempt}: exit {code}, {wall:.2f} s wall, {stub.count} requests so far")
            for line in err.getvalue().splitlines():
                if line.startswith("judge"):
                    print(f"  {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=30000, help="traces in the synthetic file")
    parser.add_argument("--tau", type=Path, default=TAU,
                        help="the tau-retail runs (default: the shared corpus)")
    args = parser.parse_args()
    global tau
    tau = args.tau
    sys.path.insert(0, str(ROOT / "bench"))
    from analyze_bench import generate

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traces.jsonl"
        generate(path, args.traces)
        pool(path)
        if not tau.is_file():
            print(f"{tau} not found: the oracle and litellm parts are skipped (pass --tau FILE)")
            return 0
        oracle(Path(tmp) / "tau_hidden.json")
        through_litellm(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
