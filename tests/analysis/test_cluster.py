"""`analyze --cluster`: the shards run on a Dask cluster (two worker processes on 127.0.0.1) and
the analysis is the one of a local run."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from selfimprove.analysis import cluster as cluster_module
from selfimprove.cli.inputs import resolve_address
from selfimprove.traces import read

distributed = pytest.importorskip("distributed")  # the dask extra, which CI installs

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "support-agent" / "logs"
sys.path.insert(0, str(ROOT / "bench"))


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A scheduler and two single-threaded worker processes, on the loopback only."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, worker_dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_the_cluster_gives_the_local_analysis_of_the_example(scheduler: str, run: Callable[..., Any]) -> None:
    local = run("analyze", str(EXAMPLE), "--json", "--offline")
    remote = run("analyze", str(EXAMPLE), "--json", "--offline", "--cluster", scheduler)
    assert local.exit_code == 0 and remote.exit_code == 0, remote.stderr
    assert remote.json()["traces"] == local.json()["traces"]
    assert remote.stdout == local.stdout  # totals, patterns, sources: all of it


def test_the_cluster_gives_the_local_analysis_of_the_shared_corpus(scheduler: str, shared_traces: Path,
                                                                  run: Callable[..., Any]) -> None:
    local = run("analyze", str(shared_traces), "--json", "--offline")
    remote = run("analyze", str(shared_traces), "--json", "--offline", "--cluster", scheduler)
    assert local.exit_code == 0 and remote.exit_code == 0, remote.stderr
    assert remote.json()["traces"] == local.json()["traces"]
    assert remote.json()["patterns"] == local.json()["patterns"]
    assert remote.stdout == local.stdout


def test_relative_paths_and_split_files_on_the_cluster(scheduler: str, tmp_path: Path,
                                                      run: Callable[..., Any]) -> None:
    from analyze_bench import generate

    (tmp_path / "logs").mkdir()
    generate(tmp_path / "logs" / "big.jsonl", 600)  # about 1.7 MB: split into byte ranges
    (tmp_path / "logs" / "again.jsonl").write_bytes((tmp_path / "logs" / "big.jsonl").read_bytes()[:4000])
    local = run("analyze", "logs", "--json", "--offline", cwd=tmp_path)
    remote = run("analyze", "logs", "--json", "--offline", "--cluster", scheduler, cwd=tmp_path)
    assert local.exit_code == 0 and remote.exit_code == 0, remote.stderr
    assert remote.stdout == local.stdout
    assert local.json()["traces"]["duplicates"] > 0
    shards = cluster_module.plan([tmp_path / "logs"], 4)
    assert [s.index for s in shards] == [0, 1, 2, 3]  # again.jsonl in shard 0; big.jsonl in four ranges
    assert sum(s.bytes for s in shards) == sum(p.stat().st_size for p in (tmp_path / "logs").iterdir())


def test_progress_comes_from_the_task_stream_and_a_failing_shard_is_reported(
        scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from analyze_bench import generate

    generate(tmp_path / "big.jsonl", 300)
    monkeypatch.setattr(read, "SHARD_SPLIT_MIN_BYTES", 1024)
    seen: list[int] = []
    col, reports = cluster_module.collect_on_cluster([tmp_path / "big.jsonl"], scheduler, shards=3,
                                                     progress=seen.append)
    assert len(seen) == 3 and sum(seen) == (tmp_path / "big.jsonl").stat().st_size
    assert len(col.summaries) == 300

    # a task that raises on every attempt (a time bound of the wrong type stands for a worker fault)
    col, reports = cluster_module.collect_on_cluster([tmp_path / "big.jsonl"], scheduler, shards=2, retries=1,
                                                     since="not a time")  # type: ignore[arg-type]
    assert len(col.summaries) == 0
    [report] = reports
    assert report.skipped == 2 and "failed on the cluster after 2 attempts" in report.errors[0][1]


def test_without_dask_or_a_scheduler_the_error_is_one_line(run: Callable[..., Any],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    unreachable = run("analyze", str(EXAMPLE), "--offline", "--cluster", "tcp://127.0.0.1:9")
    assert unreachable.exit_code == 2 and "cannot reach the Dask scheduler" in unreachable.stderr
    assert unreachable.stderr.strip().count("\n") == 0
    import fsspec

    fsspec.filesystem("memory").pipe("/scratch/t.jsonl", (EXAMPLE / "chat" / "2026-11-02.jsonl").read_bytes())
    try:
        in_memory = run("analyze", "memory://scratch", "--offline", "--cluster", "tcp://127.0.0.1:9")
    finally:
        fsspec.filesystem("memory").rm("/scratch", recursive=True)
    assert in_memory.exit_code == 2 and "no worker can read it" in in_memory.stderr
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # as if the extra were not installed
    missing = run("analyze", str(EXAMPLE), "--offline", "--cluster", "tcp://127.0.0.1:9")
    assert missing.exit_code == 2 and missing.stderr.strip().count("\n") == 0
    assert 'pip install "selfimprove[dask]"' in missing.stderr


def test_the_cluster_address_can_come_from_the_settings(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "selfimprove.yaml").write_text("version: 1\nprompts: []\nanalysis: {cluster: 'tcp://10.0.0.5:8786'}\n")
    assert resolve_address(None, tmp_path, None) == "tcp://10.0.0.5:8786"
    assert resolve_address("tcp://127.0.0.1:1", tmp_path, None) == "tcp://127.0.0.1:1"


def test_strict_stops_at_the_first_bad_record_on_the_cluster_too(scheduler: str, tmp_path: Path,
                                                                 run: Callable[..., Any]) -> None:
    (tmp_path / "t.jsonl").write_bytes((EXAMPLE / "chat" / "2026-11-02.jsonl").read_bytes()[:3000]
                                       .rsplit(b"\n", 1)[0] + b"\n{broken\n")
    local = run("analyze", str(tmp_path), "--strict", "--offline")
    remote = run("analyze", str(tmp_path), "--strict", "--offline", "--cluster", scheduler)
    assert local.exit_code == remote.exit_code == 2
    assert remote.stderr == local.stderr and "t.jsonl:" in remote.stderr, remote.stderr
