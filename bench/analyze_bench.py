"""Benchmark: `selfimprove analyze FILE --json` against a bare `orjson.loads` of the same file, per format.

Generates the same synthetic traces (a system prompt, a few user/assistant turns, tool calls, some
tool errors, user corrections and hand-offs, thumbs labels on a third of the traces) in three formats,
one JSON value per line each, in a temporary directory:

  openai     OpenAI chat JSONL, one conversation a line (the reader's fast lane): 100,000 traces, 282 MB
  otlp       OTLP/JSON as a collector's file exporter writes it: one ExportTraceServiceRequest a line,
             the spans of 10 traces each (invoke_agent root with the thumbs as a gen_ai.evaluation.result
             event; a chat span per assistant message carrying the conversation so far in
             gen_ai.input.messages; an execute_tool span per tool result, error status on a failure):
             20,000 traces, 411 MB
  langfuse   a Langfuse export, one {trace, observations} a line (GENERATION observations carrying the
             conversation so far, TOOL observations at level ERROR on a failure, a NUMERIC score for
             the thumbs): 20,000 traces, 291 MB

The span formats repeat the history in every LLM call, as real exports do, so a trace takes 5-7x the
bytes of a chat line; their size is chosen so that one analyze run stays near 2 minutes here. Then,
for each format, in this one run and on this one machine, alternately `--repeat` times:

  baseline   python -c "for line in file: orjson.loads(line)"     (the same parse for all three files)
  analyze    selfimprove analyze FILE --json > file
  (with --breakdown) reading alone: every trace of read_traces, in one process

and prints wall time, CPU time (a process's own and its worker processes') and the peak resident
memory of every process it started (parent, workers; sampled from /proc), and the ratios. Targets:
analyze ≤ 8× the baseline's wall time for each format (both cores may be used); peak memory of any
process ≤ 300 MB. Last, it checks that analyze read as many traces and failures from each format's file
of the same size (the first N traces are the same whatever N: a format measured at another size is
analyzed once more, unmeasured, for this check) and exits non-zero if not; it also says whether the
patterns found are identical.

Usage: python bench/analyze_bench.py [--traces N] [--span-traces N] [--formats openai,otlp,langfuse]
                                     [--repeat R] [--keep DIR] [--breakdown]

Recorded with `python bench/analyze_bench.py --repeat 3`, three runs (ranges over all nine pairs; 2
vCPUs shared with other jobs at a load average of 3-13, so wall times are stretched and swing widely;
CPU times are the steadier figure, within ~15% between runs):

  format    traces   MB   run                 wall s        cpu s     peak RSS MB per process
  openai    100000  282   orjson.loads loop   0.57-2.63    0.51-0.63   13
                          analyze --json      8.3-39.6    12.6-14.9    parent 203, worker 134
                          ratio 13-28x wall, 22-29x CPU: target <= 8x NOT met; memory met
  otlp       20000  411   orjson.loads loop   1.18-2.74    0.82-0.96   17
                          analyze --json     19.5-44.2    12.7-14.4    parent 162, worker 30 (idle)
                          ratio 9.5-18x wall, 13-17x CPU: target <= 8x NOT met; memory met
  langfuse   20000  291   orjson.loads loop   0.61-2.24    0.57-0.74   13
                          analyze --json      9.1-23.2     9.2-10.1    parent 311, worker 30 (idle)
                          ratio 10-18x wall, 13-17x CPU: target <= 8x NOT met; memory 311 MB: NOT met
  20000 traces as otlp, as langfuse and as openai: 20000 traces, 2021 failed, from each; patterns identical

Per trace, CPU in one process (`python bench/profile_analyze.py FILE` on the 20k files): bare parse
6 µs (openai), 46 (otlp), 34 (langfuse); analyze 119, 609 and 465 µs, of which reading ~54, ~540 and
~400. On the span formats nearly all the time is reading: every chat span or GENERATION re-sends the
conversation so far, and each copy is turned into messages (~185 µs a trace) and merged again (~60).
A single span-format file is also read by one process: files that are not one whole trace per line
are dealt out to workers whole, so the second worker idles.

Earlier records (OpenAI JSONL only, against the former 2x target; same file, another day's machine):
orjson.loads loop 0.86-1.01 s wall; analyze 11.8-13.4 s wall, 19.5-21.9 s CPU: 12-14x wall, 22-25x CPU.
The version before that (detectors walking Message objects, no fast lane for chat records) took
15.0-16.5 s. The output is byte-identical (JSON, outcomes, Markdown, exported cases) on this file, the
shared corpus and the bundled example across those changes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

SYSTEM = ("You are the support agent of an online shop. Authenticate the user before any change. "
          "Orders can be cancelled while pending, returned within 30 days of delivery, exchanged once. "
          "Never reveal internal notes. Always confirm before cancelling an order. ")
PRODUCTS = ["mechanical keyboard", "water bottle", "running shoes", "desk lamp", "backpack", "headphones"]
MODEL = "gpt-4o-mini"
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


def ident(*parts: object, size: int = 16) -> str:
    """A stable hex id (OTLP trace and span ids, Langfuse ids) derived from the record, not the rng, so
    the three renderings of a trace hold the same conversation whatever ids they need."""
    return hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=size // 2).hexdigest()


def at(rec: dict[str, Any], step: int) -> datetime:
    """When message `step` of the record happened: the record's timestamp plus two seconds a message."""
    start = datetime.fromisoformat(str(rec["timestamp"]).replace("Z", "+00:00"))
    return start + timedelta(seconds=2 * step)


def nanos(t: datetime) -> str:
    return str(int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000)


def kv(key: str, value: str | int | float) -> dict[str, object]:
    """One OTLP/JSON attribute (int64 values travel as strings)."""
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def parts(message: dict[str, Any]) -> dict[str, object]:
    """An OpenAI chat message in the GenAI semantic conventions' parts shape."""
    if message["role"] == "tool":
        return {"role": "tool", "parts": [{"type": "tool_call_response", "id": message["tool_call_id"],
                                           "result": message["content"]}]}
    if message.get("tool_calls"):
        return {"role": "assistant", "parts": [
            {"type": "tool_call", "id": c["id"], "name": c["function"]["name"],
             "arguments": json.loads(c["function"]["arguments"])} for c in message["tool_calls"]]}
    return {"role": message["role"], "parts": [{"type": "text", "content": message["content"]}]}


def otlp_spans(i: int, rec: dict[str, Any]) -> list[dict[str, object]]:
    """The record as OpenTelemetry GenAI spans: an invoke_agent root (the user's thumbs as a
    gen_ai.evaluation.result event), one chat span per assistant message (the conversation so far in
    gen_ai.input.messages, the system prompt in gen_ai.system_instructions) and one execute_tool span
    per tool result (error status on a failed call)."""
    msgs: list[dict[str, Any]] = rec["messages"]
    version = rec["metadata"]["prompt_version"]
    trace_id, root_id = ident(i, size=32), ident(i, "root")
    events = []
    if "thumbs" in rec:
        up = rec["thumbs"] == "up"
        events.append({"timeUnixNano": nanos(at(rec, len(msgs))), "name": "gen_ai.evaluation.result",
                       "attributes": [kv("gen_ai.evaluation.name", "user_feedback"),
                                      kv("gen_ai.evaluation.score.value", 1.0 if up else 0.0),
                                      kv("gen_ai.evaluation.score.label",
                                         "thumbs_up" if up else "thumbs_down")]})
    spans: list[dict[str, object]] = [{
        "traceId": trace_id, "spanId": root_id, "name": "invoke_agent support-agent", "kind": 1,
        "startTimeUnixNano": nanos(at(rec, 0)), "endTimeUnixNano": nanos(at(rec, len(msgs))),
        "attributes": [kv("gen_ai.operation.name", "invoke_agent"), kv("gen_ai.agent.name", "support-agent"),
                       kv("gen_ai.agent.version", version), kv("gen_ai.conversation.id", rec["id"]),
                       kv("gen_ai.provider.name", "openai"), kv("gen_ai.request.model", MODEL)],
        "events": events, "status": {}}]
    system = json.dumps([{"type": "text", "content": msgs[0]["content"]}])
    for j, message in enumerate(msgs):
        if message["role"] == "assistant":
            history = json.dumps([parts(m) for m in msgs[1:j]])
            output = json.dumps([{**parts(message), "finish_reason": "tool_call" if message.get("tool_calls")
                                  else "stop"}])
            spans.append({
                "traceId": trace_id, "spanId": ident(i, j), "parentSpanId": root_id, "name": f"chat {MODEL}",
                "kind": 3, "startTimeUnixNano": nanos(at(rec, j) - timedelta(seconds=1)),
                "endTimeUnixNano": nanos(at(rec, j)),
                "attributes": [kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", "openai"),
                               kv("gen_ai.request.model", MODEL), kv("gen_ai.request.temperature", 0.3),
                               kv("gen_ai.response.id", "chatcmpl-" + ident(i, j, "r", size=20)),
                               kv("gen_ai.usage.input_tokens", len(history) // 4),
                               kv("gen_ai.usage.output_tokens", len(output) // 4),
                               kv("gen_ai.system_instructions", system),
                               kv("gen_ai.input.messages", history), kv("gen_ai.output.messages", output)],
                "status": {}})
        elif message["role"] == "tool":
            call = called(msgs, j)
            content = str(message["content"])
            attrs = [kv("gen_ai.operation.name", "execute_tool"),
                     kv("gen_ai.tool.name", call["function"]["name"]),
                     kv("gen_ai.tool.call.id", call["id"]),
                     kv("gen_ai.tool.call.arguments", call["function"]["arguments"])]
            failed = content.startswith("Error:")
            if not failed:
                attrs.append(kv("gen_ai.tool.call.result", content))
            spans.append({
                "traceId": trace_id, "spanId": ident(i, j), "parentSpanId": root_id,
                "name": f"execute_tool {call['function']['name']}", "kind": 1,
                "startTimeUnixNano": nanos(at(rec, j) - timedelta(seconds=1)),
                "endTimeUnixNano": nanos(at(rec, j)), "attributes": attrs,
                "status": {"code": 2, "message": content} if failed else {"code": 1}})
    return spans


def otlp_request(spans: list[dict[str, object]]) -> dict[str, object]:
    """One ExportTraceServiceRequest, as an OpenTelemetry collector's file exporter writes a line."""
    return {"resourceSpans": [{
        "resource": {"attributes": [kv("service.name", "support-agent"), kv("service.version", "2025.03"),
                                    kv("telemetry.sdk.name", "opentelemetry")]},
        "scopeSpans": [{"scope": {"name": "support.agent", "version": "1.0"}, "spans": spans}]}]}


def langfuse_export(i: int, rec: dict[str, Any]) -> dict[str, object]:
    """The record as a Langfuse export `{trace, observations}`: an AGENT observation, a GENERATION per
    assistant message (the conversation so far as its input), a TOOL per tool result (level ERROR and
    statusMessage on a failed call), the user's thumbs as a NUMERIC score."""
    msgs: list[dict[str, Any]] = rec["messages"]
    version = rec["metadata"]["prompt_version"]
    trace_id, agent_id = ident(i, size=32), ident(i, "agent")
    when = [at(rec, j).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            for j in range(len(msgs) + 1)]
    observations: list[dict[str, object]] = [{
        "id": agent_id, "traceId": trace_id, "parentObservationId": None, "type": "AGENT",
        "name": "support-agent", "startTime": when[0], "endTime": when[-1], "level": "DEFAULT",
        "statusMessage": None,
        "input": msgs[1]["content"], "output": msgs[-2]["content"], "metadata": {}, "version": version}]
    for j, message in enumerate(msgs):
        if message["role"] == "assistant":
            observations.append({
                "id": ident(i, j), "traceId": trace_id, "parentObservationId": agent_id, "type": "GENERATION",
                "name": "OpenAI-generation", "startTime": when[j], "endTime": when[j], "level": "DEFAULT",
                "statusMessage": None, "input": msgs[:j], "output": message, "model": MODEL,
                "modelParameters": {"temperature": 0.3}, "metadata": {}, "version": version})
        elif message["role"] == "tool":
            call = called(msgs, j)
            content = str(message["content"])
            failed = content.startswith("Error:")
            observations.append({
                "id": ident(i, j), "traceId": trace_id, "parentObservationId": agent_id, "type": "TOOL",
                "name": call["function"]["name"], "startTime": when[j], "endTime": when[j],
                "level": "ERROR" if failed else "DEFAULT", "statusMessage": content if failed else None,
                "input": json.loads(call["function"]["arguments"]),
                "output": None if failed else json.loads(content), "metadata": {"tool_call_id": call["id"]},
                "version": version})
    scores = []
    if "thumbs" in rec:
        scores.append({"id": ident(i, "score"), "traceId": trace_id, "name": "user-feedback",
                       "value": 1 if rec["thumbs"] == "up" else 0, "dataType": "NUMERIC", "source": "API",
                       "comment": None, "timestamp": when[-1]})
    trace = {"id": trace_id, "name": "support-agent", "timestamp": when[0], "version": version,
             "sessionId": rec["id"], "input": msgs[1]["content"], "output": msgs[-2]["content"],
             "metadata": {}, "tags": ["support"], "scores": scores}
    return {"trace": trace, "observations": observations}


def called(msgs: list[dict[str, Any]], j: int) -> dict[str, Any]:
    """The tool call that tool message `j` answers."""
    return next(c for m in msgs[:j] for c in m.get("tool_calls") or () if c["id"] == msgs[j]["tool_call_id"])


FORMATS = ("openai", "otlp", "langfuse")
TRACES_PER_OTLP_LINE = 10  # a collector's batch exporter writes the spans of several traces per request


def generate(path: Path, n: int, fmt: str = "openai") -> None:
    """n synthetic traces in one format, one JSON value per line; the same n traces whatever the format."""
    import orjson

    rng = random.Random(7)
    with path.open("wb") as fh:
        batch: list[dict[str, object]] = []
        for i in range(n):
            rec = record(i, rng)
            if fmt == "openai":
                fh.write(orjson.dumps(rec) + b"\n")
            elif fmt == "langfuse":
                fh.write(orjson.dumps(langfuse_export(i, rec)) + b"\n")
            else:
                batch += otlp_spans(i, rec)
                if (i + 1) % TRACES_PER_OTLP_LINE == 0 or i == n - 1:
                    fh.write(orjson.dumps(otlp_request(batch)) + b"\n")
                    batch = []


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


SPAN_TRACES = 20_000  # span formats hold 5-7x the bytes of a chat line per trace; a run stays near 2 min


def counts(path: Path) -> tuple[dict[str, int], list[tuple[str, int, str]]]:
    """(trace counts, patterns as (kind, count, title)) of an `analyze --json` output."""
    doc = json.loads(path.read_bytes())
    return doc["traces"], [(p["kind"], p["count"], p["title"]) for p in doc["patterns"]]


def span(runs: list[Run], value: Callable[[Run], float], digits: int = 2) -> str:
    lo, hi = (f"{v:.{digits}f}" for v in (min(map(value, runs)), max(map(value, runs))))
    return lo if lo == hi else f"{lo}-{hi}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=100_000, help="traces in the OpenAI JSONL file")
    parser.add_argument("--span-traces", type=int, default=SPAN_TRACES,
                        help=f"traces in the OTLP and Langfuse files (default {SPAN_TRACES})")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help=f"comma-separated, of {', '.join(FORMATS)} (default: all)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure each format this many times, baseline and analyze alternately")
    parser.add_argument("--keep", type=Path, help="write the generated files here and keep them")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time reading alone (read_traces in one process), to see where time goes")
    args = parser.parse_args()
    formats = [f for f in args.formats.split(",") if f]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        parser.error(f"unknown format(s) {', '.join(unknown)}: choose from {', '.join(FORMATS)}")
    print(f"{os.cpu_count()} CPU(s); each format: a bare orjson.loads of every line of its own file, "
          f"then selfimprove analyze FILE --json, alternately, {args.repeat} time(s)")
    print(f"{'format':<10}{'traces':>8}{'MB':>6}  {'run':<18}{'wall s':>12}{'cpu s':>12}   "
          "peak RSS MB per process")
    seen: dict[tuple[str, int], tuple[dict[str, int], list[tuple[str, int, str]]]] = {}
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        for fmt in formats:
            n = args.traces if fmt == "openai" else args.span_traces
            path = where / f"traces-{fmt}-{n}.jsonl"
            if not path.exists():
                generate(path, n, fmt)
            size = path.stat().st_size / 1e6
            warm = Path(tmp) / f"warm-up-{fmt}.jsonl"  # a first, unmeasured run writes the bytecode caches
            generate(warm, 10, fmt)
            Run([sys.executable, "-m", "selfimprove", "analyze", str(warm), "--json"])
            out = Path(tmp) / f"analyze-{fmt}.json"
            bases: list[Run] = []
            tools: list[Run] = []
            for _ in range(args.repeat):
                bases.append(Run([sys.executable, "-c", BASELINE, str(path)]))
                with out.open("wb") as fh:
                    tools.append(Run([sys.executable, "-m", "selfimprove", "analyze", str(path), "--json"],
                                     stdout=fh.fileno()))
            read = Run([sys.executable, "-c", READ_ONLY, str(path)]) if args.breakdown else None
            failed = failed or any(t.code for t in tools)
            head = f"{fmt:<10}{n:>8}{size:>6.0f}  "
            print(f"{head}{'orjson.loads loop':<18}{span(bases, lambda r: r.wall):>12}"
                  f"{span(bases, lambda r: r.cpu):>12}   {bases[-1].memory()}")
            print(f"{'':<24}{'analyze --json':<18}{span(tools, lambda r: r.wall):>12}"
                  f"{span(tools, lambda r: r.cpu):>12}   {tools[-1].memory()}")
            if read is not None:
                print(f"{'':<24}{'read_traces, 1 CPU':<18}{read.wall:>12.2f}{read.cpu:>12.2f}   "
                      f"{read.memory()}")
            walls = [t.wall / b.wall for t, b in zip(tools, bases, strict=True)]
            cpus = [t.cpu / b.cpu for t, b in zip(tools, bases, strict=True)]
            peak = max(max([t.max_rss_mb, *t.peaks.values()]) for t in tools)
            print(f"{'':<24}ratio {min(walls):.1f}-{max(walls):.1f}x wall, "
                  f"{min(cpus):.1f}-{max(cpus):.1f}x CPU "
                  f"(target <= 8x wall: {'met' if max(walls) <= 8 else 'NOT met'}); peak of any process "
                  f"{peak:.0f} MB (target <= 300 MB: {'met' if peak <= 300 else 'NOT met'})")
            if not failed:
                seen[fmt, n] = counts(out)
        # the same traces in every format: analyze must read as many traces and failures from each file.
        # The first N traces are the same whatever N, so a format measured at another size is analyzed
        # once more (unmeasured) at the span formats' size for this check.
        if not failed and len(formats) > 1:
            n = args.span_traces
            for fmt in formats:
                if (fmt, n) not in seen:
                    path = where / f"traces-{fmt}-{n}.jsonl"
                    if not path.exists():
                        generate(path, n, fmt)
                    out = Path(tmp) / f"check-{fmt}.json"
                    with out.open("wb") as fh:
                        Run([sys.executable, "-m", "selfimprove", "analyze", str(path), "--json"],
                            stdout=fh.fileno())
                    seen[fmt, n] = counts(out)
            (traces, patterns), first = seen[formats[0], n], formats[0]
            for fmt in formats[1:]:
                other, other_patterns = seen[fmt, n]
                if (other["total"], other["failure"]) != (traces["total"], traces["failure"]):
                    raise SystemExit(f"{fmt} read {other} but {first} read {traces}: analyze does not read "
                                     "the same traces from the same conversations in two formats")
                print(f"{n} traces as {fmt} and as {first}: analyze read {traces['total']} traces, "
                      f"{traces['failure']} failed, from each; patterns "
                      f"{'identical' if other_patterns == patterns else 'DIFFER'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
