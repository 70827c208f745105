"""Reading a large input on a Dask distributed cluster: the same shards and merge as `parallel`.

Owns `analyze --cluster ADDRESS` (or `analysis.cluster` in selfimprove.yaml): connecting to a
running scheduler, planning the shards on the client, submitting one task per shard, following the
cluster's task stream for progress, and turning a shard that keeps failing into a reported, skipped
source. Each task runs `parallel._work` on a worker: it reads its shard straight from storage (byte
ranges of the big JSONL files, whole files otherwise; a local path must be visible to the workers
at the same place, a bucket URL always is) and sends back only the compact summaries, which
`parallel.merge` puts together exactly as for local worker processes, so the analysis is the same.

Never does: send traces or file contents through the scheduler, import Dask unless a cluster is
asked for (it is the optional extra `selfimprove[dask]`), start or stop a cluster (it connects to
one; `dask scheduler` and `dask worker`, dask-kubernetes or dask-jobqueue run it), or drop a shard in
silence: a worker failure is retried by Dask (`retries=`), and a shard still failing after that is a
source report with the reason, as for a file that could not be read.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from selfimprove.analysis.parallel import Shard, _work, merge, merge_reports
from selfimprove.analysis.records import Collected
from selfimprove.errors import SelfImproveError

RETRIES = 2  # extra attempts Dask gives a shard whose worker died or raised
SHARD_BYTES = 32 << 20  # big inputs are cut into shards of about this size, for load balance
CONNECT_TIMEOUT = "20s"
INSTALL_HINT = 'pip install "selfimprove[dask]" (Dask distributed, installed beside selfimprove)'

_cwd_lock = threading.Lock()  # relative paths are read in the client's directory (see `_shard`)


@dataclass(frozen=True)
class PlannedShard:
    """What the client knows of one shard before it runs: the parts of files it reads, its bytes."""

    index: int
    count: int
    parts: tuple[tuple[str, int, int], ...]  # (display path, first byte, end byte)

    @property
    def bytes(self) -> int:
        return sum(end - start for _, start, end in self.parts)


def plan(paths: Sequence[Path], count: int) -> list[PlannedShard]:
    """The `count` shards of the input as `read_traces(shard=(k, count))` reads them: the k-th byte
    range of each big one-trace-per-line JSONL file and every count-th other file. Shards that would
    read nothing are left out."""
    from selfimprove.traces.read import TraceStream

    out = []
    for k in range(count):
        parts = tuple(TraceStream(list(paths), shard=(k, count)).spans())
        if parts:
            out.append(PlannedShard(k, count, parts))
    return out


def shard_count(total_bytes: int, threads: int) -> int:
    """One shard per worker thread at least; more for a big input, so a slow worker holds up less."""
    wanted = -(-total_bytes // SHARD_BYTES)
    return max(1, threads, min(wanted, 4 * max(threads, 1)))


def _shard(cwd: str, names: list[str], planned: PlannedShard, format: str, strict: bool,
           since: datetime | None, until: datetime | None, judge_pool: int) -> tuple[str, Any, Any, Any]:
    """One shard on a worker. Relative paths name files in the client's directory; they are read
    from there (under a lock: the working directory belongs to the whole process) so that every
    source keeps the name it has in a local run."""
    from selfimprove.traces.storage import is_url

    shard = (planned.index, planned.count)
    if all(is_url(n) or os.path.isabs(n) for n in names) or os.getcwd() == cwd:
        return _work(names, shard, format, strict, since, until, _ignore, judge_pool, planned.parts)
    if not os.path.isdir(cwd):
        return "error", (f"this worker cannot see the directory {cwd} the traces were named from",
                         None, "give absolute paths on a filesystem every worker mounts at the same "
                               "place, or bucket URLs (s3://, gs://, az://)"), None, None
    with _cwd_lock:
        before = os.getcwd()
        os.chdir(cwd)
        try:
            return _work(names, shard, format, strict, since, until, _ignore, judge_pool, planned.parts)
        finally:
            os.chdir(before)


def _ignore(n: int) -> None:
    pass


def collect_on_cluster(paths: Sequence[Path], address: str, *, format: str = "auto", strict: bool = False,
                       since: datetime | None = None, until: datetime | None = None,
                       progress: Callable[[int], None] | None = None, judge_pool: int = 0,
                       shards: int | None = None, retries: int = RETRIES) -> tuple[Collected, list[Any]]:
    """`collect` over the shards of the input, run as tasks on the Dask cluster at `address`, merged
    in stream order; and the source reports (a shard that failed on every attempt among them)."""
    from selfimprove.traces.read import TraceStream, list_files

    client_module, as_completed = _dask()
    local_only = next((str(p) for p in paths if str(p).startswith("memory://")), None)
    if local_only is not None:
        raise SelfImproveError(f"{local_only} lives in this process's memory: no worker can read it",
                               where=local_only, hint="give a bucket URL (s3://, gs://, az://) or a path "
                                                      "on a filesystem the workers share")
    order = {display: n for n, (_, display, _) in enumerate(list_files(paths))}
    names = [str(p) for p in paths]
    try:
        client = client_module(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SelfImproveError(f"cannot reach the Dask scheduler at {address} ({exc})", where=address,
                               hint="start one (dask scheduler; dask worker ADDRESS) or fix --cluster / "
                                    "analysis.cluster") from None
    with client:
        threads = sum(client.nthreads().values())
        if threads == 0:
            raise SelfImproveError(f"the Dask cluster at {address} has no workers", where=address,
                                   hint="start some: dask worker ADDRESS --nthreads 1")
        total = TraceStream(list(paths)).total_bytes
        planned = plan(paths, shards or shard_count(total, threads))
        cwd = os.getcwd()
        futures = {client.submit(_shard, cwd, names, s, format, strict, since, until,
                                 judge_pool, retries=retries, pure=False,
                                 key=f"selfimprove-shard-{s.index}-of-{s.count}-{os.urandom(4).hex()}"): s
                   for s in planned}
        results: dict[int, tuple[str, Any, Any, Any]] = {}
        failed: list[tuple[PlannedShard, BaseException]] = []
        # the cluster's task stream, as shards finish
        for future in as_completed(list(futures), loop=client.loop):
            s = futures[future]
            if future.status == "error":
                failed.append((s, future.exception()))
            else:
                results[s.index] = future.result()
            if progress is not None:
                progress(s.bytes)
            future.release()
    for index in sorted(results):
        status, payload, _, _ = results[index]
        if status == "error":
            message, where, hint = payload
            raise SelfImproveError(message, where=where, hint=hint)
    done = [results[index] for index in sorted(results)]
    parts: list[Collected] = [payload for _, payload, _, _ in done]
    shard_states: list[Shard] = [state for _, _, _, state in done]
    reports = [r for _, _, rs, _ in done for r in rs] + _failure_reports(failed, retries)
    return merge(parts, order, shard_states), merge_reports(reports, order)


def _failure_reports(failed: list[tuple[PlannedShard, BaseException]], retries: int) -> list[Any]:
    """A shard that failed on every attempt, as a skipped stretch of each file it was to read."""
    from selfimprove.traces.formats._io import SourceReport

    reports = []
    for s, exc in failed:
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        for display, start, end in s.parts:
            report = SourceReport(path=display)
            report.skip(None, f"shard {s.index + 1} of {s.count} (bytes {start}-{end}) failed on the "
                              f"cluster after {retries + 1} attempts; its traces were not analysed ({why})")
            reports.append(report)
    return reports


def _dask() -> tuple[Any, Any]:
    """dask.distributed's Client and as_completed, or the one-line error saying what to install."""
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise SelfImproveError("--cluster needs Dask distributed, which is not installed",
                               hint=INSTALL_HINT) from None
    return Client, as_completed
