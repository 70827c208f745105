"""Reading a large input with several processes: one shard each, merged as if read by one.

Owns the process pool of `analyze` and the merge of the shards' compact results. Each worker reads
its shard of the input (`read_traces(..., shard=(k, n))`: big JSONL files are split at line
boundaries, other files dealt out whole) and runs the same streaming pass as a single process
(`pipeline.collect`); only the compact summaries, bounded evidence and source reports travel back.
The merge puts every summary back in stream order (file order, then line), re-applies the bounds on
evidence, the demonstration pool and the judge's candidate pool, and makes trace ids unique across
shards, so the analysis is the same whatever the number of workers.

Never does: send traces between processes (pickling them would cost more than analysing them), or
let a worker's error escape as a traceback: a `SelfImproveError` in a worker (e.g. `--strict`) is
raised again in the parent with its message, place and hint.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from datetime import datetime
from pathlib import Path
from typing import Any

from selfimprove.analysis.pipeline import (
    MAX_DEMO_POOL,
    MAX_EXAMPLES_PER_KEY,
    MAX_KEPT,
    MAX_KEYS,
    Collected,
    Demo,
    KeyEvidence,
    collect,
    new_collected,
)
from selfimprove.errors import SelfImproveError

MAX_ERRORS_KEPT = 100
_counter: Any = None  # bytes read so far by all workers (a shared multiprocessing.Value)


def _init(counter: Any) -> None:
    global _counter
    _counter = counter


def _report_progress(pending: list[int]) -> Callable[[int], None]:
    def progress(n: int) -> None:
        pending[0] += n
        if pending[0] >= 1 << 20 and _counter is not None:
            with _counter.get_lock():
                _counter.value += pending[0]
            pending[0] = 0

    return progress


def _work(paths: list[str], shard: tuple[int, int], format: str, strict: bool, since: datetime | None,
          until: datetime | None, progress: Callable[[int], None] | None = None,
          judge_pool: int = 0) -> tuple[str, Any, Any]:
    from selfimprove.traces.read import read_traces

    pending = [0]
    try:
        stream = read_traces([Path(p) for p in paths], format=format, strict=strict, shard=shard,
                             progress=progress or _report_progress(pending), views=True)
        col = collect(stream, since=since, until=until, col=new_collected(judge_pool))
    except SelfImproveError as exc:
        return "error", (exc.message, exc.where, exc.hint), None
    if pending[0] and _counter is not None:
        with _counter.get_lock():
            _counter.value += pending[0]
    return "ok", col, list(stream.sources)


def _ignore(n: int) -> None:
    pass


def collect_sharded(paths: Sequence[Path], workers: int, *, format: str = "auto", strict: bool = False,
                    since: datetime | None = None, until: datetime | None = None,
                    progress: Callable[[int], None] | None = None,
                    judge_pool: int = 0) -> tuple[Collected, list[Any]]:
    """`collect` over `workers` shards of the input, merged in stream order; and the source reports.
    `judge_pool` > 0 gathers a judge's candidate pool of that size per stratum in every shard."""
    from selfimprove.traces.read import list_files

    order = {display: n for n, (_, display, _) in enumerate(list_files(paths))}
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("q", 0)
    names = [str(p) for p in paths]
    shown = 0

    def own_progress(n: int) -> None:  # this process's shard, and what the others have read meanwhile
        nonlocal shown
        value = counter.value
        progress(n + value - shown)  # type: ignore[misc]
        shown = value

    # this process reads the first shard itself while the pool reads the others: one interpreter
    # fewer to start, and one shard's results fewer to pickle
    with ProcessPoolExecutor(max_workers=workers - 1, mp_context=ctx, initializer=_init,
                             initargs=(counter,)) as pool:
        futures: list[Future[tuple[str, Any, Any]]] = [
            pool.submit(_work, names, (k, workers), format, strict, since, until, None, judge_pool)
            for k in range(1, workers)]
        own = _work(names, (0, workers), format, strict, since, until,
                    own_progress if progress is not None else _ignore, judge_pool)
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            if progress is not None:
                value = counter.value
                if value > shown:
                    progress(value - shown)
                    shown = value
        results = [own] + [f.result() for f in futures]
    if progress is not None:
        time.sleep(0)
    for status, payload, _ in results:
        if status == "error":
            message, where, hint = payload
            raise SelfImproveError(message, where=where, hint=hint)
    parts = [payload for _, payload, _ in results]
    reports = merge_reports([r for _, _, rs in results for r in rs], order)
    return merge(parts, order), reports


def _position(source: str, order: dict[str, int]) -> tuple[int, int]:
    path, _, line = source.rpartition(":")
    if path in order and line.isdigit():
        return order[path], int(line)
    for display, n in order.items():  # a source that names a member inside a file (zip logs)
        if source.startswith(display + ":"):
            return n, 0
    return len(order), 0


def merge(parts: Sequence[Collected], order: dict[str, int]) -> Collected:
    """The shards' results as one `Collected`, in stream order, with the bounds of a single pass."""
    items = sorted((_position(s.source, order), k, i)
                   for k, part in enumerate(parts) for i, s in enumerate(part.summaries))
    new = {(k, i): n for n, (_, k, i) in enumerate(items)}
    out = Collected()
    out.summaries = [parts[k].summaries[i] for _, k, i in items]
    out.filtered = sum(p.filtered for p in parts)
    out.undated = sum(p.undated for p in parts)
    for p in parts:
        out.labelled.update(p.labelled)
        out.labelled_errors.update(p.labelled_errors)
    _unique_ids(out)
    evidence: dict[str, KeyEvidence] = {}
    for k, part in enumerate(parts):
        for key, ev in part.evidence.items():
            into = evidence.setdefault(key, KeyEvidence())
            into.examples.extend((new[(k, i)], text, user) for i, text, user in ev.examples)
            into.samples.extend((new[(k, i)], text) for i, text in ev.samples)
            into.phrases.extend((new[(k, i)], text) for i, text in ev.phrases)
            into.arguments.extend((new[(k, i)], text) for i, text in ev.arguments)
            into.exchanges.extend((new[(k, i)], text) for i, text in ev.exchanges)
    for ev in evidence.values():
        ev.examples = sorted(ev.examples)[:MAX_EXAMPLES_PER_KEY]
        ev.samples = _first_distinct(ev.samples)
        ev.phrases = _first_distinct(ev.phrases)
        ev.arguments = _first_distinct(ev.arguments)
        ev.exchanges = sorted(ev.exchanges)[:MAX_EXAMPLES_PER_KEY]
    first_seen = sorted(evidence, key=lambda key: (evidence[key].examples[0][0] if evidence[key].examples
                                                   else len(out.summaries), key))
    out.evidence = {key: evidence[key] for key in first_seen[:MAX_KEYS]}
    demos = sorted((new[(k, d.index)], d) for k, part in enumerate(parts) for d in part.demos)
    out.demos = [Demo(out.summaries[n].id, d.user, d.assistant, d.tools, n, d.calls, d.steps)
                 for n, d in demos[:MAX_DEMO_POOL]]
    pools = [(part.pool, k) for k, part in enumerate(parts) if part.pool is not None]
    if pools:
        from selfimprove.analysis.judge import merge_pools

        out.pool = merge_pools([(pool, _renumber(new, k)) for pool, k in pools])
    return out


def _renumber(new: dict[tuple[int, int], int], part: int) -> Callable[[int], int]:
    return lambda index: new[(part, index)]


def _first_distinct(items: list[tuple[int, str]]) -> list[tuple[int, str]]:
    seen: set[str] = set()
    out: list[tuple[int, str]] = []
    for index, text in sorted(items):
        if text not in seen and len(out) < MAX_KEPT:
            seen.add(text)
            out.append((index, text))
    return out


def _unique_ids(col: Collected) -> None:
    """Ids unique across shards, named as a single reader pass would (file stem, then a counter)."""
    from selfimprove.traces.formats._fields import file_stem

    seen: set[str] = set()
    for s in col.summaries:
        if s.id not in seen:
            seen.add(s.id)
            continue
        candidate = f"{file_stem(Path(s.source.rpartition(':')[0]))}:{s.id}"
        n = 2
        while candidate in seen:
            candidate = f"{s.id}~{n}"
            n += 1
        seen.add(candidate)
        s.id = candidate


def merge_reports(reports: Sequence[Any], order: dict[str, int]) -> list[Any]:
    """One report per file: a file split between shards adds up its counts and errors."""
    merged: dict[str, Any] = {}
    for r in reports:
        have = merged.get(r.path)
        if have is None:
            merged[r.path] = r
            continue
        have.traces += r.traces
        have.skipped += r.skipped
        have.errors = sorted(have.errors + r.errors, key=lambda e: (e[0] is not None, e[0] or 0))
        have.errors = have.errors[:MAX_ERRORS_KEPT]
        have.format = have.format or r.format
        if have.status != "read" and r.status == "read":
            have.status, have.reason = r.status, r.reason
    return sorted(merged.values(), key=lambda r: order.get(r.path, len(order)))
