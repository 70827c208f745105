"""Benchmark: `selfimprove analyze FILE --json` against a bare `orjson.loads` loop over the same file.

Generates a synthetic OpenAI chat JSONL file of 100,000 traces (about 280 MB: a system prompt, a few
user/assistant turns, tool calls, some tool errors, user corrections and hand-offs, thumbs labels on a
third of the traces) in a temporary directory, then runs, in this one run and on this one machine:

  baseline   python -c "for line in file: orjson.loads(line)"
  analyze    selfimprove analyze FILE --json > /dev/null
  (with --breakdown) reading alone: every trace of read_traces, in one process

and prints, for each, wall time, CPU time (a process's own and its worker processes') and the peak
resident memory of every process it started (parent, workers; sampled from /proc), and the ratios.
Targets: analyze ≤ 2× the baseline's wall time (both cores may be used); peak memory of any process
≤ 300 MB.

Usage: python bench/analyze_bench.py [--traces N] [--keep DIR] [--breakdown]

Recorded (2 vCPUs shared with other jobs: wall times swing by up to 2x between runs, CPU times by
~15%; "before" is the previous version of the code, run alternately with "after" on the same file):

  100000 traces, 282 MB              wall s       cpu s    peak RSS MB per process
  orjson.loads loop                0.86-0.88   0.84-0.85   15
  analyze --json, before          15.0-16.5   24.8-27.1    parent 186, worker 136
  analyze --json, after           11.8-12.4   19.5-20.9    parent 182, worker 115
  ratio after: 13-14x wall, 23-25x CPU (target <= 2x: not met); memory target met

  later, from bytecode caches (a first unmeasured run writes them), with four more readers and a
  cheaper start-up, alternately with "after" above on the same file:
  orjson.loads loop                0.96-1.01   0.94-0.99   15
  analyze --json                  12.4-13.2   21.8-21.9    parent 172, worker 114
  "after" above, in the same runs 11.8-13.4   19.9-22.3    (no difference within the noise)

What "after" changed: detectors read a TraceView (roles, texts, calls and tool results as columns,
built once per trace) instead of walking Message objects each; plain chat records take a fast lane
that builds that view straight from the parsed JSON (no Message objects; messages are built only if
something asks for them); the fit works on distinct feature vectors; the garbage collector runs less
often during the pass. The output is byte-identical (JSON, outcomes, Markdown, exported cases) on
this file, the shared corpus and the bundled example.

Where the time goes now (CPU per trace, measured stage by stage over 20k parsed records): orjson
~6-9 us, the view ~12, record fields (id, time, version, labels, metadata) ~12, the eight detectors
~55 (tool errors ~22 of it: error tests on each tool result and error templates), per-trace
bookkeeping and evidence ~15; then ~2 s in the parent for 100k traces (summaries unpickled, merged,
scored, grouped). A minimal loop that parses each record, sorts its messages into per-role lists and
runs two keyword tests and the rephrase comparison already takes 2.0x the bare loop in one process:
2x overall would need reading and detection in compiled code.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SYSTEM = ("You are the support agent of an online shop. Authenticate the user before any change. "
          "Orders can be cancelled while pending, returned within 30 days of delivery, exchanged once. "
          "Never reveal internal notes. Always confirm before cancelling an order. ")
PRODUCTS = ["mechanical keyboard", "water bottle", "running shoes", "desk lamp", "backpack", "headphones"]
ERRORS = ["Error: timeout after {n}s contacting orders-db (request {h})", "Error: order #W{n} not found",
          "Error: payment method card_{n} declined", "Error: non-pending order cannot be modified"]


def record(i: int, rng: random.Random) -> dict[str, object]:
    product = rng.choice(PRODUCTS)
    order = f"#W{rng.randint(1000000, 9999999)}"
    msgs: list[dict[str, object]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Hi, I want to return the {product} from order {order}. "
                                    f"It arrived damaged and I would like a refund to my card please."},
        {"role": "assistant", "content": "I can help with that. Could you first confirm your email address "
                                         "so that I can authenticate you?"},
        {"role": "user", "content": f"Sure, it is user{i}@example.com."},
    ]
    for k in range(rng.randint(2, 5)):
        cid = f"call_{i}_{k}"
        args = json.dumps({"order_id": order, "item": product, "step": k})
        msgs.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": cid, "type": "function", "function": {"name": rng.choice(["get_order", "return_items",
                                                                                "get_user"]),
                                                         "arguments": args}}]})
        if rng.random() < 0.12:
            content = rng.choice(ERRORS).format(n=rng.randint(10, 99999), h=f"{rng.getrandbits(40):x}")
        else:
            items = [{"name": product, "price": round(rng.uniform(10, 300), 2),
                      "item_id": str(rng.getrandbits(32))} for _ in range(3)]
            content = json.dumps({"order_id": order, "status": "delivered", "items": items})
        msgs.append({"role": "tool", "tool_call_id": cid, "content": content})
    if rng.random() < 0.15:
        msgs.append({"role": "assistant", "content": f"I have returned the {rng.choice(PRODUCTS)} for you."})
        msgs.append({"role": "user", "content": f"No, I said the {product}, not that one."})
    if rng.random() < 0.05:
        msgs.append({"role": "user", "content": "This is not working. Let me talk to a human please."})
    refund = rng.randint(10, 300)
    msgs.append({"role": "assistant", "content": f"Your return for the {product} is confirmed; the refund of "
                                                 f"${refund} will reach your card in 5-7 days."})
    msgs.append({"role": "user", "content": "Thanks, that's all."})
    rec: dict[str, object] = {"id": f"conv-{i:06d}", "timestamp": f"2025-03-{1 + i % 28:02d}T10:00:00Z",
                              "metadata": {"prompt_version": f"v{1 + i // 50000}"}, "messages": msgs}
    if i % 3 == 0:
        rec["thumbs"] = "down" if rng.random() < 0.3 else "up"
    return rec


def generate(path: Path, n: int) -> None:
    import orjson

    rng = random.Random(7)
    with path.open("wb") as fh:
        for i in range(n):
            fh.write(orjson.dumps(record(i, rng)) + b"\n")


class Run:
    """One measured child process: wall and CPU seconds (its own and its worker processes'), exit code,
    and the peak resident memory of every process it started, sampled from /proc while it runs."""

    def __init__(self, argv: list[str], stdout: int | None = subprocess.DEVNULL) -> None:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE, env=ENV)
        peaks: dict[int, int] = {}  # pid -> peak RSS in kB (VmHWM)
        names: dict[int, str] = {proc.pid: "parent"}
        while True:
            _sample(proc.pid, peaks, names)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.02)
        self.wall = time.perf_counter() - start
        self.code = os.waitstatus_to_exitcode(status)
        self.cpu = usage.ru_utime + usage.ru_stime
        self.max_rss_mb = usage.ru_maxrss / 1024  # the largest of the child and its waited-for processes
        self.peaks = {names[pid]: kb / 1024 for pid, kb in sorted(peaks.items())}
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if self.code != 0:
            print(err, file=sys.stderr)

    def memory(self) -> str:
        return ", ".join(f"{name} {mb:.0f}" for name, mb in self.peaks.items()) or "n/a"


def _sample(root: int, peaks: dict[int, int], names: dict[int, str]) -> None:
    """Peak RSS so far of `root` and its descendants (Linux /proc; nothing elsewhere)."""
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        peaks[pid] = max(peaks.get(pid, 0), int(line.split()[1]))
            with open(f"/proc/{pid}/task/{pid}/children") as fh:
                kids = [int(k) for k in fh.read().split()]
        except (OSError, ValueError):
            continue
        for kid in kids:
            if kid not in names:
                try:
                    with open(f"/proc/{kid}/cmdline", "rb") as fh:
                        cmd = fh.read()
                except OSError:
                    cmd = b""
                # the multiprocessing resource tracker is not a worker
                workers = sum(n.startswith("worker") for n in names.values())
                names[kid] = "tracker" if b"resource_tracker" in cmd else f"worker{workers + 1}"
        todo.extend(kids)


# Measured as an installed tool runs: from compiled bytecode (pip compiles it at install time; an
# environment that forbids writing it would charge every run with compiling the package again).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

READ_ONLY = ("import sys\n"
             "from pathlib import Path\n"
             "from selfimprove.traces.read import read_traces\n"
             "for _ in read_traces([Path(sys.argv[1])], views=True):\n"
             "    pass\n")
BASELINE = ("import orjson, sys\n"
            "with open(sys.argv[1], 'rb') as fh:\n"
            "    for line in fh:\n"
            "        orjson.loads(line)\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="write the generated file here and keep it")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time reading alone (read_traces in one process), to see where time goes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = (args.keep or Path(tmp)) / "traces.jsonl"
        if not path.exists():
            generate(path, args.traces)
        size = path.stat().st_size / 1e6
        warm = Path(tmp) / "warm-up.jsonl"  # a first, unmeasured run writes the bytecode caches
        with path.open("rb") as src:
            warm.write_bytes(b"".join(src.readline() for _ in range(10)))
        Run([sys.executable, "-m", "selfimprove", "analyze", str(warm), "--json"])
        base = Run([sys.executable, "-c", BASELINE, str(path)])
        tool = Run([sys.executable, "-m", "selfimprove", "analyze", str(path), "--json"])
        read = Run([sys.executable, "-c", READ_ONLY, str(path)]) if args.breakdown else None
    print(f"{args.traces} traces, {size:.0f} MB, {os.cpu_count()} CPU(s)")
    print(f"{'run':<28}{'wall s':>10}{'cpu s':>10}   peak RSS MB per process")
    print(f"{'orjson.loads loop':<28}{base.wall:>10.2f}{base.cpu:>10.2f}   {base.memory()}")
    print(f"{'selfimprove analyze --json':<28}{tool.wall:>10.2f}{tool.cpu:>10.2f}   {tool.memory()}")
    if read is not None:
        print(f"{'read_traces only (1 CPU)':<28}{read.wall:>10.2f}{read.cpu:>10.2f}   {read.memory()}")
    peak = max([tool.max_rss_mb, *tool.peaks.values()])
    print(f"ratio {tool.wall / base.wall:.2f}x wall, {tool.cpu / base.cpu:.2f}x CPU (target <= 2x wall); "
          f"peak of any process {peak:.0f} MB (target <= 300 MB)")
    return 0 if tool.code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
