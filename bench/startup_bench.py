"""CLI start-up: `selfimprove --help`, `--version` and a whole `analyze` of a one-trace file, against a
bare `python -c pass`, in one run.

Run: python bench/startup_bench.py [--runs N]
Prints the median wall time of each and their ratio, and which heavy modules `--help` imported
(none of litellm, git, jsonschema may be imported just to print help). The one-trace files are the
first trace of analyze_bench.py's synthetic traces, in each of its formats (OpenAI chat JSONL, OTLP
spans, a Langfuse export); `analyze FILE --json` on them is the fixed cost of every analyze run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from analyze_bench import FORMATS, generate


def median_seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    py = sys.executable
    bare = median_seconds([py, "-c", "pass"], args.runs)
    help_ = median_seconds([py, "-m", "selfimprove", "--help"], args.runs)
    version = median_seconds([py, "-m", "selfimprove", "--version"], args.runs)
    probe = (
        "import sys, contextlib, io\n"
        "from selfimprove.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "print(','.join(sorted(m for m in ('litellm', 'git', 'jsonschema', 'rich') if m in sys.modules)))\n"
    )
    loaded = subprocess.run([py, "-c", probe], check=True, capture_output=True, text=True).stdout.strip()
    print(f"{'command':<28}{'median s':>10}{'vs python -c pass':>20}")
    print(f"{'python -c pass':<28}{bare:>10.3f}{1.0:>19.2f}x")
    print(f"{'selfimprove --help':<28}{help_:>10.3f}{help_ / bare:>19.2f}x")
    print(f"{'selfimprove --version':<28}{version:>10.3f}{version / bare:>19.2f}x")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FORMATS:
            one = Path(tmp) / f"one-{fmt}.jsonl"
            generate(one, 1, fmt)
            subprocess.run([py, "-m", "selfimprove", "analyze", str(one), "--json"], check=True,
                           stdout=subprocess.DEVNULL)  # unmeasured: writes the bytecode caches
            took = median_seconds([py, "-m", "selfimprove", "analyze", str(one), "--json"], args.runs)
            label = f"analyze 1 trace ({fmt})"
            print(f"{label:<28}{took:>10.3f}{took / bare:>19.2f}x")
    print(f"heavy modules imported by --help: {loaded or 'none'}")


if __name__ == "__main__":
    main()
