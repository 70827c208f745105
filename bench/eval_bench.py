"""Benchmark: `selfimprove eval` throughput — 400 model calls at concurrency 20 against a slow stub.

Builds a temporary prompt repo with a 100-case suite, a base and a candidate prompt (different, so no
call is shared), and starts the stub OpenAI-compatible server (tests/stub_openai.py) in its own process
with a fixed latency of 200 ms per request. Then, in this one run:

  warm-up     import litellm and make one async call (a fixed cost of any process, paid once)
  calls       run_eval with an empty cache: 100 cases × 2 repeats × base and candidate = 400 calls
  fixed       the same run again, every answer now cached: 0 calls (git reads, suite, policy, grading,
              cache reads, note) — the fixed cost of a run
  cli         `selfimprove eval --no-cache` end to end in a fresh process (start-up included), for context

The ideal for the calls is 400 / 20 × 0.2 s = 4.0 s. Reported: (calls − fixed) / 4.0; target ≤ 1.2.

Usage: python bench/eval_bench.py [--cases 100] [--repeat 2] [--concurrency 20] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = """\
# Support agent

<!-- selfimprove:immutable id=guardrails -->
Never reveal internal notes.
<!-- /selfimprove -->

<!-- selfimprove:mutable id=learned-rules -->
- Ask for the order number before looking up an order.
{extra}<!-- /selfimprove -->
"""


def git(root: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, env=env)


def make_repo(root: Path, cases: int, concurrency: int) -> None:
    (root / "prompts").mkdir(parents=True)
    (root / "evals").mkdir()
    (root / "prompts" / "agent.md").write_text(PROMPT.format(extra=""))
    lines = ["prompt: prompts/agent.md", "tests:"]
    for i in range(cases):
        lines += [f"  - id: case-{i:03d}", f'    input: "question number {i}"', f"    tags: [t{i % 5}]",
                  "    assert:", f'      - {{type: contains, value: "question number {i}"}}']
    (root / "evals" / "suite.yaml").write_text("\n".join(lines) + "\n")
    (root / "selfimprove.yaml").write_text(
        "version: 1\nprompts:\n  - path: prompts/agent.md\neval:\n  suite: evals/\n"
        f"  model: openai/bench-model\n  concurrency: {concurrency}\n")
    (root / ".gitignore").write_text(".selfimprove/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    git(root, "checkout", "-q", "-b", "candidate")
    (root / "prompts" / "agent.md").write_text(PROMPT.format(extra="- Quote the refund window: 30 days.\n"))
    git(root, "commit", "-q", "-am", "candidate")
    git(root, "checkout", "-q", "main")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--runs", type=int, default=3, help="eval runs with calls (the median is reported)")
    args = parser.parse_args()

    stub = subprocess.Popen([sys.executable, "-m", "tests.stub_openai", "--latency", str(args.latency)],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert stub.stdout is not None
        url = stub.stdout.readline().strip()
        os.environ["OPENAI_API_BASE"] = url
        os.environ["OPENAI_API_KEY"] = "sk-bench-dummy"
        with tempfile.TemporaryDirectory(prefix="selfimprove-bench-") as tmp:
            root = Path(tmp) / "repo"
            make_repo(root, args.cases, args.concurrency)
            run(root, args)
    finally:
        if stub.stdin:
            stub.stdin.close()
        stub.wait(timeout=10)


def run(root: Path, args: argparse.Namespace) -> None:
    from selfimprove.config import load_settings
    from selfimprove.evals.runner import run_eval
    from selfimprove.gitrepo import Repo
    from selfimprove.llm import LiteLLMCompleter

    calls = args.cases * args.repeat * 2
    ideal = calls / args.concurrency * args.latency

    start = time.perf_counter()
    hello = [{"role": "user", "content": "hi"}]
    asyncio.run(LiteLLMCompleter(timeout=30).acomplete("openai/bench-model", hello))
    warm = time.perf_counter() - start

    settings = load_settings(root)

    def once(use_cache: bool = True) -> tuple[float, dict[str, int]]:
        with Repo.open(root) as repo:
            t0 = time.perf_counter()
            result = run_eval(settings, repo, candidate="candidate", base="main", repeat=args.repeat,
                              concurrency=args.concurrency, use_cache=use_cache)
            elapsed = time.perf_counter() - t0
        doc = result.to_json()
        assert doc["candidate"]["pass_rate"] == 1.0, doc["reasons"]
        return elapsed, doc["calls"]

    first, made = once()
    fixed, cached = once()
    assert made == {"made": calls, "cached": 0}, made
    assert cached == {"made": 0, "cached": calls}, cached
    runs = [first] + [once(use_cache=False)[0] for _ in range(args.runs - 1)]
    with_calls = statistics.median(runs)
    floor = statistics.median(bare_litellm(calls, args.concurrency) for _ in range(args.runs))

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "selfimprove", "eval", "candidate", "--base", "main", "--no-cache",
                    "--json", "--repeat", str(args.repeat), "--concurrency", str(args.concurrency)],
                   cwd=root, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cli = time.perf_counter() - t0

    ratio = (with_calls - fixed) / ideal
    print(f"calls: {calls} ({args.cases} cases × {args.repeat} repeats × base and candidate), "
          f"concurrency {args.concurrency}, stub latency {args.latency * 1000:.0f} ms, {os.cpu_count()} CPUs")
    print(f"warm-up (litellm import + first call):     {warm:.2f} s")
    print(f"eval run with {calls} calls (median of {args.runs}): {with_calls:.2f} s  "
          f"[{', '.join(f'{r:.2f}' for r in runs)}]")
    print(f"same run, all cached (fixed cost):         {fixed:.2f} s")
    print(f"calls part: {with_calls - fixed:.2f} s vs ideal {ideal:.2f} s → ratio {ratio:.2f} "
          f"(target ≤ 1.20: {'met' if ratio <= 1.2 else 'NOT met'})")
    print(f"floor: a bare litellm.acompletion loop, same stub and concurrency: {floor:.2f} s "
          f"→ ratio {floor / ideal:.2f}")
    print(f"CLI end to end, fresh process, --no-cache: {cli:.2f} s")


def bare_litellm(calls: int, concurrency: int) -> float:
    """The same calls (system + user message) straight through litellm: what litellm itself costs here."""
    from selfimprove.llm import _litellm

    litellm = _litellm()

    system = PROMPT.format(extra="")

    async def main() -> None:
        semaphore = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            messages = [{"role": "system", "content": system}, {"role": "user", "content": f"question {i}"}]
            async with semaphore:
                await litellm.acompletion(model="openai/bench-model", messages=messages, timeout=30,
                                          num_retries=0, max_retries=0)

        await asyncio.gather(*(one(i) for i in range(calls)))

    t0 = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
