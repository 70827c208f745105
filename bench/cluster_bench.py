"""Benchmark: `selfimprove analyze FILE --json --cluster ADDRESS` on 1 and 2 local Dask workers.

Generates the 100,000-trace OpenAI JSONL file of bench/analyze_bench.py (about 280 MB; or reuses
one given with --file), runs `selfimprove analyze FILE --json` once locally (the reference output),
then for each worker count starts a Dask scheduler and that many single-threaded worker processes on
127.0.0.1 (`distributed.LocalCluster`), runs the same command with `--cluster`, and prints wall time,
the CPU seconds of the client (the CLI process: planning, merging, scoring, grouping) and of the
workers (reading and detecting), CPU microseconds per trace, and whether the JSON output is
byte-identical to the local run. Needs the dask extra: pip install -e ".[dev,dask]".

Usage: python bench/cluster_bench.py [--traces N] [--file FILE] [--workers 1,2] [--price USD_PER_VCPU_HOUR]

Recorded (five runs on a 2-vCPU machine shared with other jobs, load average 2.5-14: wall times
swing with the load, CPU times hold; "Scaling out" in the README discusses them):

  100000 traces, 282 MB           wall s      CPU s client + workers    us/trace   client peak RSS
  local (2 worker processes)     18.9-40.8   13.4-14.5 in all             134-145   204 MB
  --cluster, 1 worker            15.0-27.7   3.0-3.6 + 11.0-11.9          140-155   220 MB
  --cluster, 2 workers           14.8-34.4   3.2-3.8 + 12.4-13.5          156-172   223 MB
  output identical to the local run: yes, in every run
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# AWS EC2 c7i.large (2 vCPUs), Linux, on-demand, us-east-1: $0.08925 per hour → per vCPU-hour
DEFAULT_PRICE = 0.08925 / 2


def _cli(args: list[str]) -> tuple[float, float, float, str]:
    """(wall s, CPU s, peak RSS MB, sha256 of stdout) of `selfimprove ARGS` run as a child process;
    its CPU time includes the worker processes it started and waited for (a local run's)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "selfimprove", *args], stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"selfimprove {' '.join(args)} failed: {err.read().decode()[-2000:]}")
        out.seek(0)
        digest = hashlib.sha256(out.read()).hexdigest()
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, digest


def _workers_cpu(client: Any) -> float:
    def own_cpu() -> float:
        import psutil  # comes with distributed

        times = psutil.Process().cpu_times()
        return float(times.user + times.system)

    return float(sum(client.run(own_cpu).values()))


def run(path: Path, traces: int, workers: int, reference: str) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, worker_dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("selfimprove.analysis.cluster"))  # imports are not the work
        before_workers = _workers_cpu(client)
        wall, client_cpu, client_rss, digest = _cli(["analyze", str(path), "--json", "--offline",
                                                     "--cluster", cluster.scheduler_address])
        workers_cpu = _workers_cpu(client) - before_workers
    total = client_cpu + workers_cpu
    return {"workers": workers, "wall": wall, "client_cpu": client_cpu, "workers_cpu": workers_cpu,
            "client_rss": client_rss, "us_per_trace": total / traces * 1e6, "identical": digest == reference}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--file", type=Path, help="an existing file of --traces traces to use")
    parser.add_argument("--keep", type=Path, help="write the generated file here and keep it")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--price", type=float, default=DEFAULT_PRICE, help="USD per vCPU-hour")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file
        if path is None:
            from analyze_bench import generate

            path = args.keep or Path(tmp) / "traces.jsonl"
            generate(path, args.traces)
        size = path.stat().st_size
        print(f"{args.traces} traces, {size / 1e6:.0f} MB: {path.name}; {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f} (other jobs share them: wall times swing with it)")
        _cli(["analyze", str(path), "--json", "--offline"])  # bytecode caches, page cache
        wall, local_cpu, local_rss, reference = _cli(["analyze", str(path), "--json", "--offline"])
        print(f"local (its own worker processes)  wall {wall:6.1f} s  cpu {local_cpu:6.1f} s  "
              f"{local_cpu / args.traces * 1e6:5.0f} us/trace  peak RSS {local_rss:.0f} MB")
        rows = [run(path, args.traces, int(n), reference) for n in args.workers.split(",")]
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    for r in rows:
        print(f"--cluster, {r['workers']} worker(s)           wall {r['wall']:6.1f} s  "
              f"cpu {r['client_cpu']:5.1f} s client + {r['workers_cpu']:5.1f} s workers = "
              f"{r['us_per_trace']:5.0f} us/trace  client peak RSS {r['client_rss']:.0f} MB  "
              f"output identical to local: {r['identical']}")
    best = min(r["us_per_trace"] for r in rows)  # µs per trace × 1e6 traces = that many CPU seconds
    print(f"cost per million traces at ${args.price:.4f}/vCPU-hour: {best:.0f} us × 1e6 = {best:.0f} "
          f"vCPU-s = {best / 3600:.3f} vCPU-h → ${best / 3600 * args.price:.4f}")
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
