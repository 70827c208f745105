"""Reading a large input with several processes: one shard each, merged as if read by one.

Owns the process pool of `analyze` and the merge of the shards' compact results. Each worker reads
its shard of the input (`read_traces(..., shard=(k, n))`: big JSONL files are split at line
boundaries, other files dealt out whole) and runs the same streaming pass as a single process
(`collect.collect`); only the compact summaries, bounded evidence and source reports travel back.
The merge puts every summary back in stream order (file order, then line), reads one trace once
across shards (a trace whose identity an earlier trace of another shard has is dropped with its
evidence, and its source kept beside that one's), makes trace ids unique as one stream would, and
re-applies the bounds on evidence, the demonstration pool and the judge's candidate pool, so the
analysis is the same whatever the number of workers.

Why dropping a repeat after the fact gives what one pass would have kept: a shard reads one trace
once within itself, so each repeat it kept has a distinct twin, in another shard and earlier in the
stream, with the same messages and labels, hence the same signals and evidence. Whatever a repeat
took of a bounded list (the first N examples, distinct texts, demonstrations), its twin takes in the
single pass, so nothing a single pass keeps is pushed out of a shard's lists by a repeat.

Never does: send traces between processes (pickling them would cost more than analysing them), or
let a worker's error escape as a traceback: a `SelfImproveError` in a worker (e.g. `--strict`) is
raised again in the parent with its message, place and hint.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from selfimprove.analysis.collect import (
    MAX_DEMO_POOL,
    MAX_EXAMPLES_PER_KEY,
    MAX_KEPT,
    MAX_KEYS,
    collect,
    new_collected,
)
from selfimprove.analysis.records import Collected, Demo, KeyEvidence
from selfimprove.errors import SelfImproveError
from selfimprove.traces.model import Trace

MAX_ERRORS_KEPT = 100
DIGEST = 16  # bytes of a trace's identity (traces.read.identity)
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


@dataclass
class Shard:
    """What the merge needs of a shard's stream beyond its `Collected`, to read one trace once."""

    identities: bytes  # DIGEST bytes per trace the shard's stream yielded, in yield order
    outside: dict[int, tuple[str, str]]  # yielded traces left out by --since/--until: position → (source, id)
    undated: set[int]  # positions of the undated traces kept while a time filter was given
    repeats: dict[int, list[str]]  # position → sources of its repeats within the shard
    duplicates: int  # repeats within the shard


def _watched(stream: Iterable[Trace], col: Collected, outside: dict[int, tuple[str, str]],
             undated: set[int]) -> Iterator[Trace]:
    """The stream, noting which traces `collect` left out of the window or kept undated (it resumes
    this generator once it is done with a trace)."""
    for n, trace in enumerate(stream):
        filtered, dated = col.filtered, col.undated
        yield trace
        if col.filtered != filtered:
            outside[n] = (trace.source, trace.id)
        elif col.undated != dated:
            undated.add(n)


def _work(paths: list[str], shard: tuple[int, int], format: str, strict: bool, since: datetime | None,
          until: datetime | None, progress: Callable[[int], None] | None = None,
          judge_pool: int = 0,
          parts: Sequence[tuple[str, int, int]] | None = None) -> tuple[str, Any, Any, Any]:
    from selfimprove.traces.read import read_traces
    from selfimprove.traces.storage import as_path

    pending = [0]
    outside: dict[int, tuple[str, str]] = {}
    undated: set[int] = set()
    try:
        stream = read_traces([as_path(p) for p in paths], format=format, strict=strict, shard=shard,
                             progress=progress or _report_progress(pending), views=True, parts=parts)
        col = new_collected(judge_pool)
        collect(_watched(stream, col, outside, undated), since=since, until=until, col=col)
    except SelfImproveError as exc:
        return "error", (exc.message, exc.where, exc.hint), None, None
    if pending[0] and _counter is not None:
        with _counter.get_lock():
            _counter.value += pending[0]
    return "ok", col, list(stream.sources), Shard(b"".join(stream.identities()), outside, undated,
                                                  stream.repeats, stream.duplicates)


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
        futures: list[Future[tuple[str, Any, Any, Any]]] = [
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
    for status, payload, _, _ in results:
        if status == "error":
            message, where, hint = payload
            raise SelfImproveError(message, where=where, hint=hint)
    parts = [payload for _, payload, _, _ in results]
    reports = merge_reports([r for _, _, rs, _ in results for r in rs], order)
    return merge(parts, order, [shard for _, _, _, shard in results]), reports


def _position(source: str, order: dict[str, int]) -> tuple[int, int]:
    path, _, line = source.rpartition(":")
    if path in order and line.isdigit():
        return order[path], int(line)
    for display, n in order.items():  # a source that names a member inside a file (zip logs)
        if source.startswith(display + ":"):
            return n, 0
    return len(order), 0


def merge(parts: Sequence[Collected], order: dict[str, int], shards: Sequence[Shard]) -> Collected:
    """The shards' results as one `Collected`, in stream order, each trace once, with the ids and the
    bounds of a single pass."""
    from selfimprove.traces.formats._fields import file_stem
    from selfimprove.traces.read import unique_id

    # every trace the shards yielded, in stream order: (place, shard, position, summary index or -1)
    entries: list[tuple[tuple[int, int], int, int, int]] = []
    for k, (part, shard) in enumerate(zip(parts, shards, strict=True)):
        i = 0
        for n in range(len(shard.identities) // DIGEST):
            left_out = shard.outside.get(n)
            if left_out is not None:
                entries.append((_position(left_out[0], order), k, n, -1))
            else:
                entries.append((_position(part.summaries[i].source, order), k, n, i))
                i += 1
    entries.sort()
    names = {n: display for display, n in order.items()}
    out = Collected()
    out.filtered = sum(p.filtered for p in parts)
    out.undated = sum(p.undated for p in parts)
    out.duplicates = sum(shard.duplicates for shard in shards)
    first: dict[bytes, int] = {}  # identity → place of the trace kept with it among `kept`
    kept: list[str] = []  # the ids of the traces kept, in stream order
    also: dict[int, list[str]] = {}
    seen: set[str] = set()
    new = [[-1] * len(part.summaries) for part in parts]  # [shard][summary] → merged index, -1: a repeat
    for place, k, n, i in entries:
        shard = shards[k]
        source, given = (parts[k].summaries[i].source, parts[k].summaries[i].id) if i >= 0 \
            else shard.outside[n]
        m = first.setdefault(shard.identities[DIGEST * n:DIGEST * (n + 1)], len(kept))
        if m < len(kept):  # read earlier by another shard: a repeat
            out.duplicates += 1  # and no longer one left out of the window, or kept undated
            if i < 0:
                out.filtered -= 1
            elif n in shard.undated:
                out.undated -= 1
            also.setdefault(m, []).extend([source, *shard.repeats.get(n, ())])
            continue
        if n in shard.repeats:
            also.setdefault(m, []).extend(shard.repeats[n])
        stem = file_stem(Path(names.get(place[0], source.rpartition(":")[0]))) if given in seen else ""
        kept.append(unique_id(given, seen, stem))  # the stem only names a repeated id
        if i >= 0:
            summary = parts[k].summaries[i]
            summary.id = kept[m]
            new[k][i] = len(out.summaries)
            out.summaries.append(summary)
    del entries, first
    out.also = {kept[m]: tuple(sorted(sources, key=lambda s: _position(s, order)))
                for m, sources in also.items()}
    for s in out.summaries:  # counted over the traces kept: a repeat teaches the labels nothing new
        if s.label is not None:
            out.labelled[s.label] += 1
            for key in {sig.key for sig in s.implicit if sig.name == "tool_error"}:
                out.labelled_errors[(key, s.label)] += 1
    evidence: dict[str, KeyEvidence] = {}
    for k, part in enumerate(parts):
        at = new[k]
        for key, ev in part.evidence.items():
            into = evidence.setdefault(key, KeyEvidence())
            into.examples.extend((at[i], text, user) for i, text, user in ev.examples if at[i] >= 0)
            into.samples.extend((at[i], text) for i, text in ev.samples if at[i] >= 0)
            into.phrases.extend((at[i], text) for i, text in ev.phrases if at[i] >= 0)
            into.arguments.extend((at[i], text) for i, text in ev.arguments if at[i] >= 0)
            into.exchanges.extend((at[i], text) for i, text in ev.exchanges if at[i] >= 0)
    for key in [key for key, ev in evidence.items() if not ev.examples]:
        del evidence[key]  # only repeats gave it (the trace that opens a key always leaves an example)
    for ev in evidence.values():
        ev.examples = sorted(ev.examples)[:MAX_EXAMPLES_PER_KEY]
        ev.samples = _first_distinct(ev.samples)
        ev.phrases = _first_distinct(ev.phrases)
        ev.arguments = _first_distinct(ev.arguments)
        # by trace only: a stable sort keeps one trace's exchanges in message order, as one pass does
        ev.exchanges = sorted(ev.exchanges, key=lambda e: e[0])[:MAX_EXAMPLES_PER_KEY]
    first_seen = sorted(evidence, key=lambda key: (evidence[key].examples[0][0] if evidence[key].examples
                                                   else len(out.summaries), key))
    out.evidence = {key: evidence[key] for key in first_seen[:MAX_KEYS]}
    demos = sorted((new[k][d.index], d) for k, part in enumerate(parts) for d in part.demos
                   if new[k][d.index] >= 0)
    out.demos = [Demo(out.summaries[n].id, d.user, d.assistant, d.tools, n, d.calls, d.steps)
                 for n, d in demos[:MAX_DEMO_POOL]]
    if any(part.pool is not None for part in parts):
        from selfimprove.analysis.judge import JudgePool, merge_pools

        out.pool = merge_pools([(part.pool, _renumber(new, k)) for k, part in enumerate(parts)
                                if isinstance(part.pool, JudgePool)])
    return out


def _renumber(new: Sequence[Sequence[int]], part: int) -> Callable[[int], int]:
    return lambda index: new[part][index]  # -1: a repeat, dropped


def _first_distinct(items: list[tuple[int, str]]) -> list[tuple[int, str]]:
    seen: set[str] = set()
    out: list[tuple[int, str]] = []
    for index, text in sorted(items):
        if text not in seen and len(out) < MAX_KEPT:
            seen.add(text)
            out.append((index, text))
    return out


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
