"""The bad-input corpus through `selfimprove analyze`: every problem is one clear line or a counted
skip with file:line — never a traceback (the `run` fixture fails on one), never a hang.

The corpus is generated in a temporary directory; nothing here is machine-specific.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def good(i: int) -> str:  # distinct conversations (an identical one would be read once)
    return (
        json.dumps(
            {
                "id": f"good-{i:04d}",
                "messages": [
                    {"role": "user", "content": f"Where is my order {48213 + i}?"},
                    {"role": "assistant", "content": "It ships tomorrow."},
                ],
            }
        )
        + "\n"
    )


def one_line_error(result: Any) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def only_source(doc: dict[str, Any]) -> dict[str, Any]:
    (source,) = doc["sources"]
    return source


# -- one bad file alone: exit 2 with one line naming it -----------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("binary.jsonl", bytes(range(256)) * 40, "binary data"),
        ("utf16.jsonl", good(1).encode("utf-16"), "UTF-16"),
        ("empty.jsonl", b"", "empty file"),
        (
            "deep.jsonl",
            b'{"id": "d", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}\n",
            "deep.jsonl:1: nesting too deep",
        ),
    ],
    ids=["binary", "utf16", "empty", "deep"],
)
def test_a_file_with_nothing_readable_is_one_line(
    tmp_path: Path, run: Callable[..., Any], name: str, data: bytes, says: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    line = one_line_error(run("analyze", str(path), "--json"))
    assert name in line and says in line
    assert "hint:" in line


def test_truncated_gzip_is_one_line(tmp_path: Path, run: Callable[..., Any]) -> None:
    data = gzip.compress("".join(good(i) for i in range(200)).encode())
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    line = one_line_error(run("analyze", str(path), "--json"))
    assert "t.jsonl.gz" in line and "gzip" in line


def test_a_path_that_does_not_exist_is_one_line(tmp_path: Path, run: Callable[..., Any]) -> None:
    result = run("analyze", str(tmp_path / "nowhere"), "--json")
    line = one_line_error(result)
    assert "nowhere" in line and "no such file or directory" in line
    assert result.stdout == ""


def test_a_symlink_loop_is_one_line(tmp_path: Path, run: Callable[..., Any]) -> None:
    os.symlink(tmp_path / "b.jsonl", tmp_path / "a.jsonl")
    os.symlink(tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    line = one_line_error(run("analyze", str(tmp_path / "a.jsonl"), "--json"))
    assert "a.jsonl" in line and "symbolic links" in line


def test_a_directory_with_only_noise_is_one_line(tmp_path: Path, run: Callable[..., Any]) -> None:
    noise = tmp_path / "noise"
    noise.mkdir()
    (noise / "README.txt").write_text("nothing to see\n")
    (noise / ".DS_Store").write_bytes(b"\x00\x01\x02Bud1")
    (noise / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (noise / "sub").mkdir()
    (noise / "sub" / "empty.jsonl").write_bytes(b"")
    line = one_line_error(run("analyze", str(noise), "--json"))
    assert "no traces could be read from" in line and "noise" in line


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root reads a chmod 000 file anyway, so there is nothing to refuse",
)
def test_an_unreadable_file_is_one_line(tmp_path: Path, run: Callable[..., Any]) -> None:
    path = tmp_path / "secret.jsonl"
    path.write_text(good(1))
    path.chmod(0)
    try:
        line = one_line_error(run("analyze", str(path), "--json"))
    finally:
        path.chmod(0o644)
    assert "secret.jsonl" in line and "ermission" in line


# -- a bad record among good ones: skipped, counted, located ---------------------------------------


def test_bad_lines_among_good_ones_are_counted_with_their_line(
    tmp_path: Path, run: Callable[..., Any]
) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        good(1).encode()
        + b'{"id": "latin", "messages": [{"role": "user", "content": "caf\xe9"}]}\n'  # latin-1 byte
        + good(2).encode()
        + b"{not json\n"
        + b"[" * 100_000
        + b"]" * 100_000
        + b"\n"  # absurdly deep
        + json.dumps(
            {
                "id": "huge",
                "messages": [
                    {"role": "user", "content": "x" * 3_000_000},
                    {"role": "assistant", "content": "ok"},
                ],
            }
        ).encode()
        + b"\n"
        + good(3).encode()
    )
    result = run("analyze", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    source = only_source(doc)
    assert source["path"].endswith("mixed.jsonl")
    assert source["traces"] == 4  # three good ones and the huge line, which is valid
    assert source["skipped"] == 3
    assert [e["line"] for e in source["errors"]] == [2, 4, 5]
    reasons = [e["reason"] for e in source["errors"]]
    assert reasons[0] == "invalid UTF-8"
    assert reasons[1].startswith("invalid JSON")
    assert "nesting too deep" in reasons[2]
    assert doc["traces"]["total"] == 4 and doc["traces"]["skipped"] == 3


def test_a_directory_mixing_good_and_bad_files(tmp_path: Path, run: Callable[..., Any]) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.jsonl").write_text(good(1) + good(2) + "{oops\n" + good(3))
    (logs / "b.jsonl.gz").write_bytes(gzip.compress((good(4) + good(5)).encode()))
    (logs / "empty.jsonl").write_bytes(b"")
    (logs / "binary.jsonl").write_bytes(bytes(range(256)) * 10)
    truncated = gzip.compress("".join(good(i) for i in range(100, 300)).encode())
    (logs / "c.jsonl.gz").write_bytes(truncated[: len(truncated) // 2])
    os.symlink(logs / "loop2.jsonl", logs / "loop1.jsonl")
    os.symlink(logs / "loop1.jsonl", logs / "loop2.jsonl")
    result = run("analyze", str(logs), "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    by_name = {Path(s["path"]).name: s for s in doc["sources"]}
    assert by_name["a.jsonl"]["traces"] == 3
    assert by_name["a.jsonl"]["errors"] == [{"line": 3, "reason": by_name["a.jsonl"]["errors"][0]["reason"]}]
    assert by_name["b.jsonl.gz"]["traces"] == 2
    # every good trace is read, whatever else is in the folder
    assert doc["traces"]["total"] >= 5
    good_ids = {f"good-{i:04d}" for i in range(1, 6)}
    out = tmp_path / "outcomes.jsonl"
    again = run("analyze", str(logs), "--outcomes", str(out))
    assert again.exit_code == 0, again.stderr
    seen = {json.loads(line)["trace_id"] for line in out.read_text().splitlines()}
    assert good_ids <= seen
    # the bad files are reported, not silently dropped
    for name in ("binary.jsonl", "c.jsonl.gz"):
        assert name in by_name and by_name[name]["skipped"] >= 1 and by_name[name]["errors"], by_name.get(
            name
        )


def test_strict_stops_at_the_first_bad_record_naming_file_and_line(
    tmp_path: Path, run: Callable[..., Any]
) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(good(1) + good(2) + "{not json\n" + good(3))
    line = one_line_error(run("analyze", str(path), "--strict", "--json"))
    assert "mixed.jsonl:3" in line
    assert run("analyze", str(path), "--strict").exit_code == 2


def test_directory_symlink_loops_and_fifos_never_hang(tmp_path: Path, run: Callable[..., Any]) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.jsonl").write_text(good(1))
    os.symlink("..", logs / "up")  # a loop through the parent
    os.symlink(".", logs / "self")  # a loop onto itself
    os.mkfifo(logs / "pipe.jsonl")  # reading it would block forever
    result = run("analyze", str(logs), "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["traces"]["total"] == 1
    (pipe,) = [s for s in doc["sources"] if s["path"].endswith("pipe.jsonl")]
    assert pipe["traces"] == 0 and pipe["reason"] == "not a regular file"
    line = one_line_error(run("analyze", str(logs / "pipe.jsonl"), "--json"))
    assert "pipe.jsonl" in line and "not a regular file" in line


# -- structurally valid JSON with the wrong shapes -------------------------------------------------

TRACE_SAMPLES = Path(__file__).resolve().parents[1] / "data" / "traces"
WEIRD: tuple[Any, ...] = (
    None,
    0,
    -1,
    1e308,
    "",
    "x",
    [],
    {},
    [None],
    {"a": None},
    True,
    "2026-13-45T99:99:99Z",
    "\u0000",
    [[[]]],
    12345678901234567890,
)


def _mutate(value: Any, rng: Any) -> Any:
    import copy

    if isinstance(value, dict) and value:
        key = rng.choice(sorted(value))
        roll = rng.random()
        if roll < 0.3:
            value[key] = copy.deepcopy(rng.choice(WEIRD))
        elif roll < 0.4:
            del value[key]
        else:
            value[key] = _mutate(value[key], rng)
        return value
    if isinstance(value, list) and value:
        i = rng.randrange(len(value))
        value[i] = copy.deepcopy(rng.choice(WEIRD)) if rng.random() < 0.3 else _mutate(value[i], rng)
        return value
    return copy.deepcopy(rng.choice(WEIRD))


def test_real_trace_files_with_wrong_types_never_crash(tmp_path: Path, run: Callable[..., Any]) -> None:
    """Real samples of every JSON format, each mutated a few times (a value of the wrong type, a key
    dropped): read or refused, never an internal error. Seeded, so a failure reproduces."""
    import random

    rng = random.Random(20261121)
    samples = sorted(p for p in TRACE_SAMPLES.rglob("*.json") if p.parent.name != "not-traces")
    assert len(samples) >= 10
    for n in range(40):
        source = rng.choice(samples)
        doc = json.loads(source.read_text(encoding="utf-8"))
        for _ in range(rng.randint(1, 5)):
            doc = _mutate(doc, rng)
        path = tmp_path / f"case{n}-{source.name}"
        path.write_text(json.dumps(doc), encoding="utf-8")
        result = run("analyze", str(path), "--json")
        assert result.exit_code in (0, 2), f"{source.name} (case {n}): {result.stderr}"
        if result.exit_code == 2:
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
