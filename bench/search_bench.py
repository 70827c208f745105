"""Benchmark: `propose --search --offline` against single-shot `propose --offline`, judged on held-out cases.

On a fresh copy of the bundled example (examples/support-agent: 300 production conversations, 48 eval
cases, the simulated agent through `exec:`) with `eval.holdout: 0.5` (24-ish cases held out by a stable
hash of their ids), each method runs in its own copy (so no cached answer is shared) through the CLI:

  single-shot       propose --offline --max N                      one branch per pattern
  search/pattern    propose --offline --search --max N             one searched branch per pattern
  search/suite      propose --offline --search --from-suite --max N  one branch for the suite's failing
                                                                     dev cases, seeded by N patterns

then `eval` on every branch (the gate judges the held-out cases only; the search never ran them).
Reported per method: branches, accepted (PASS), the held-out pass rate of the best branch, held-out
cases fixed by the accepted branches together (union), calls made to propose (model attempts and the
search's dev evals, as the run's budget counted them) and to eval, tokens, and calls per accepted
improvement. Offline every model token count is 0: the calls are runs of the simulated agent.

Usage: python bench/search_bench.py [--max 3] [--holdout 0.5] [--rounds 4] [--k 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "support-agent"


def sh(cwd: Path, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return proc


def fresh_copy(where: Path, holdout: float) -> Path:
    repo = where / "repo"
    shutil.copytree(EXAMPLE, repo)
    yaml = repo / "selfimprove.yaml"
    yaml.write_text(yaml.read_text().replace("  repeats: 1\n", f"  repeats: 1\n  holdout: {holdout}\n"))
    git = ("git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
           "-c", "commit.gpgsign=false")
    sh(repo, "git", "init", "-q")
    sh(repo, *git, "add", "-A")
    sh(repo, *git, "commit", "-q", "-m", "example")
    return repo


def run_method(name: str, flags: list[str], args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="selfimprove-search-bench-") as tmp:
        repo = fresh_copy(Path(tmp), args.holdout)
        analysis = Path(tmp) / "analysis.json"
        analyzed = sh(repo, sys.executable, "-m", "selfimprove", "analyze", "logs/", "--json")
        analysis.write_text(analyzed.stdout)
        proposed = json.loads(sh(repo, sys.executable, "-m", "selfimprove", "propose", "--offline", "--from",
                                 str(analysis), "--max", str(args.max), "--rounds", str(args.rounds), "--k",
                                 str(args.k), "--json", *flags, ok=(0, 1)).stdout)
        rows = []
        fixed: set[str] = set()
        eval_calls = 0
        for p in proposed["proposals"]:
            doc = json.loads(sh(repo, sys.executable, "-m", "selfimprove", "eval", p["branch"], "--json",
                                ok=(0, 1)).stdout)
            eval_calls += doc["calls"]["made"]
            held = doc["split"]["held_out"]
            if doc["verdict"] == "pass":
                fixed |= set(doc["fixed"])
            rows.append({"branch": p["branch"], "verdict": doc["verdict"], "held_out_base": held["base"],
                         "held_out": held["candidate"], "dev_gain": doc["split"]["dev"]["gain"],
                         "held_out_gain": held["gain"], "search": p.get("search", {}).get("dev")})
        accepted = sum(r["verdict"] == "pass" for r in rows)
        calls = proposed.get("calls", 0)
        tokens = proposed["tokens"]["input"] + proposed["tokens"]["output"]
        return {
            "method": name, "branches": len(rows), "accepted": accepted,
            "held_out_cases": held["cases"] if rows else None,
            "best_held_out": max((r["held_out"] for r in rows if r["verdict"] == "pass"), default=None),
            "held_out_base": rows[0]["held_out_base"] if rows else None,
            "held_out_fixed_by_accepted": len(fixed),
            "propose_calls": calls, "eval_calls": eval_calls, "model_tokens": tokens,
            "calls_per_accepted": round((calls + eval_calls) / accepted, 1) if accepted else None,
            "tokens_per_accepted": round(tokens / accepted, 1) if accepted else None,
            "rows": rows,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max", type=int, default=3)
    parser.add_argument("--holdout", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="also print every branch's figures")
    args = parser.parse_args()
    methods = [("single-shot", []), ("search/pattern", ["--search"]),
               ("search/suite", ["--search", "--from-suite"])]
    results = []
    for name, flags in methods:
        results.append(run_method(name, flags, args))
    if args.json:
        print(json.dumps(results, indent=1))
    head = ("method", "branches", "accepted", "held-out base", "best held-out", "held-out fixed",
            "propose calls", "eval calls", "tokens", "calls/accepted")
    print(" | ".join(head))
    for r in results:
        print(" | ".join(str(x) for x in (
            r["method"], r["branches"], r["accepted"], r["held_out_base"], r["best_held_out"],
            f"{r['held_out_fixed_by_accepted']}/{r['held_out_cases']}", r["propose_calls"], r["eval_calls"],
            r["model_tokens"], r["calls_per_accepted"])))


if __name__ == "__main__":
    main()
