"""Where analyze's time goes, per trace: a cProfile of `analyze` in one process, scaled to real time.

Usage: python bench/profile_analyze.py FILE [--top N]
       (the files bench/analyze_bench.py writes with --keep DIR --span-traces 20000 suit it)

Runs `selfimprove.analysis.pipeline.analyze([FILE], workers=1)` twice: once unprofiled, for the CPU
time per trace, and once under cProfile. cProfile slows many small calls down more than a few big
ones, so its figures are scaled by (unprofiled CPU / profiled CPU) and are approximate: good for
ranking hot spots and telling 10 µs from 100 µs, not for the last digit. Prints the bare
`orjson.loads`-per-line CPU per trace beside it, then the functions with the most time per trace,
inclusive (with what they call) and self (their own code).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    import orjson

    from selfimprove.analysis.pipeline import analyze

    start = time.process_time()
    with args.file.open("rb") as fh:
        for line in fh:
            orjson.loads(line)
    bare = time.process_time() - start
    start = time.process_time()
    traces: int = analyze([args.file], workers=1).to_json()["traces"]["total"]
    real = time.process_time() - start
    profile = cProfile.Profile(time.process_time)  # CPU time: a busy machine's waits do not count
    start = time.process_time()
    profile.runcall(analyze, [args.file], workers=1)
    scale = real / (time.process_time() - start)

    def per_trace(seconds: float, factor: float = scale) -> float:
        return seconds * factor / traces * 1e6

    print(f"{args.file.name}: {traces} traces; CPU per trace: bare orjson.loads {per_trace(bare, 1):.0f} µs, "
          f"analyze (1 process) {per_trace(real, 1):.0f} µs = {real / bare:.1f}x; "
          f"profile scaled by {scale:.2f}")
    print(f"{'incl µs':>8}{'self µs':>8}{'calls':>7}  function (per trace)")
    rows = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    for (path, line, name), (_, calls, own, incl, _) in sorted(rows.items(), key=lambda r: -r[1][3]):
        if "selfimprove" not in path and not name.startswith(("<method", "<built-in")):
            continue
        if args.top <= 0:
            break
        args.top -= 1
        where = f"{path.split('selfimprove/')[-1]}:{line}({name})" if "selfimprove" in path else name
        print(f"{per_trace(incl):>8.1f}{per_trace(own):>8.1f}{calls / traces:>7.1f}  {where}")


if __name__ == "__main__":
    main()
