"""Traces in object storage: a `memory://` bucket read through fsspec like a folder of local files."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from selfimprove.errors import SelfImproveError
from selfimprove.traces import read
from selfimprove.traces.read import read_traces

fsspec = pytest.importorskip("fsspec")  # installed with the dask extra that CI installs

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support-agent" / "logs"
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


@pytest.fixture
def bucket(tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    """memory://bucket/logs holding a 200-run JSONL file (and a hidden one), its local twin in tmp_path."""
    from analyze_bench import generate

    generate(tmp_path / "runs.jsonl", 200)
    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/logs/runs.jsonl", (tmp_path / "runs.jsonl").read_bytes())
    fs.pipe("/bucket/logs/.partial/runs.jsonl", b"{}\n")  # hidden, as in a local folder: not read
    try:
        yield fs, tmp_path
    finally:
        fs.rm("/bucket", recursive=True)


def test_a_bucket_folder_reads_like_the_local_folder(bucket: tuple[Any, Path]) -> None:
    _, local = bucket
    remote = read_traces(["memory://bucket/logs"])
    got = [(t.id, t.source, t.messages) for t in remote]
    want = [(t.id, t.source.replace(str(local), "memory://bucket/logs"), t.messages)
            for t in read_traces([local / "runs.jsonl"])]
    assert got == want and len(got) == 200
    assert [s.path for s in remote.sources] == ["memory://bucket/logs/runs.jsonl"]


def test_a_big_object_is_range_split_between_shards(bucket: tuple[Any, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read, "SHARD_SPLIT_MIN_BYTES", 1024)  # small shards: the split really happens
    whole = [(t.id, t.source) for t in read_traces(["memory://bucket/logs/runs.jsonl"])]
    size = bucket[0].info("/bucket/logs/runs.jsonl")["size"]
    parts = []
    for k in range(3):
        stream = read_traces(["memory://bucket/logs/runs.jsonl"], shard=(k, 3))
        assert stream.spans() == [("memory://bucket/logs/runs.jsonl", size * k // 3, size * (k + 1) // 3)]
        parts.append([(t.id, t.source) for t in stream])
    assert all(parts) and sum(parts, []) == whole  # each line once, in order, with its line number


def test_analyze_reads_a_bucket_and_agrees_with_the_local_run(
        bucket: tuple[Any, Path], run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read, "SHARD_SPLIT_MIN_BYTES", 1024)
    local = run("analyze", str(bucket[1] / "runs.jsonl"), "--json", "--offline")
    remote = run("analyze", "memory://bucket/logs", "--json", "--offline")
    assert local.exit_code == 0 and remote.exit_code == 0, remote.stderr
    assert remote.json()["traces"] == local.json()["traces"]
    here = str(bucket[1] / "runs.jsonl")
    assert remote.stdout.replace("memory://bucket/logs/runs.jsonl", here) == local.stdout


def test_a_missing_object_or_backend_is_one_line(run: Callable[..., Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    missing = run("analyze", "memory://bucket/nothing-here", "--offline")
    assert missing.exit_code == 2
    assert missing.stderr.strip().count("\n") == 0 and "no such object or prefix" in missing.stderr

    def no_backend(url: str, **kwargs: Any) -> Any:
        raise ImportError("Install s3fs to access S3")

    monkeypatch.setattr(fsspec.core, "url_to_fs", no_backend)
    result = run("analyze", "s3://my-bucket/traces/", "--offline")
    assert result.exit_code == 2 and result.stderr.strip().count("\n") == 0, result.stderr
    assert 'pip install "selfimprove[s3]"' in result.stderr


def test_traces_path_may_be_a_url_in_the_settings(tmp_path: Path, bucket: tuple[Any, Path],
                                                  run: Callable[..., Any]) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "selfimprove.yaml").write_text("version: 1\nprompts: []\ntraces: {path: memory://bucket/logs}\n")
    result = run("analyze", "--json", "--offline", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert result.json()["traces"]["total"] == 200
    (tmp_path / "selfimprove.yaml").write_text("version: 1\nprompts: []\ntraces: {path: 'ftp://host/x'}\n")
    with pytest.raises(SelfImproveError):
        from selfimprove.config import load_settings

        load_settings(tmp_path)


def test_file_urls_read_like_the_paths_they_name(bucket: tuple[Any, Path]) -> None:
    local = bucket[1] / "runs.jsonl"
    by_url = read_traces([f"file://{local}"])
    assert [(t.id, t.messages) for t in by_url] == [(t.id, t.messages) for t in read_traces([local])]
    assert [s.path for s in by_url.sources] == [f"file://{local}"]
