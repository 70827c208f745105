"""The driver: directories, ordering, ignored files, forced formats, unique ids, progress, errors."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from selfimprove.errors import SelfImproveError
from selfimprove.traces.formats import FORMATS, REGISTRY, choose
from selfimprove.traces.formats._io import read_head
from selfimprove.traces.read import read_traces

DATA = Path(__file__).resolve().parents[1] / "data" / "traces"

MY_FORMATS = {
    "openai",
    "anthropic",
    "claude-code",
    "swe-agent",
    "openhands",
    "multi-agent",
    "inspect",
    "generic",
}


def chat(i: int) -> str:
    return json.dumps(
        {
            "id": f"conv-{i:06d}",
            "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
        }
    )


def test_registry_has_every_format_and_generic_last() -> None:
    assert MY_FORMATS <= set(REGISTRY)
    assert list(REGISTRY)[-1] == "generic"
    assert list(REGISTRY.values()) == list(FORMATS)  # one list, names unique
    for name, reader in REGISTRY.items():
        assert reader.name == name


class Claims:
    """A reader that claims every file with a fixed confidence."""

    def __init__(self, name: str, score: int) -> None:
        self.name, self.score = name, score

    def sniff(self, path: Path, head: bytes) -> int:
        return self.score

    def read(self, path: Path, report: object, context: object = None) -> Iterator[object]:
        return iter(())


def test_a_tie_goes_to_the_reader_listed_first_and_confidence_beats_order(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    first, second, surer = Claims("first", 70), Claims("second", 70), Claims("surer", 71)
    assert choose(path, b"{}", [first, second]) == (first, 70)
    assert choose(path, b"{}", [second, first]) == (second, 70)
    assert choose(path, b"{}", [first, second, surer]) == (surer, 71)
    assert choose(path, b"{}", [Claims("none", 0)]) == (None, 0)


def test_real_tie_openai_and_generic_both_claim_a_chat_array_and_openai_is_listed_first() -> None:
    path = DATA / "smolagents" / "cancel_order_error.json"
    head = read_head(path)
    assert REGISTRY["openai"].sniff(path, head) == REGISTRY["generic"].sniff(path, head) == 10
    reader, score = choose(path, head)
    assert (reader, score) == (REGISTRY["openai"], 10)
    assert list(REGISTRY).index("openai") < list(REGISTRY).index("generic")
    stream = read_traces([path])
    assert [t.format for t in stream] == ["openai"]


def test_directory_walk_is_sorted_recursive_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / ".cache").mkdir()
    (tmp_path / "b" / "x.jsonl").write_text(chat(2) + "\n")
    (tmp_path / "a" / "y.jsonl").write_text(chat(1) + "\n")
    (tmp_path / ".cache" / "z.jsonl").write_text(chat(3) + "\n")
    (tmp_path / ".hidden.jsonl").write_text(chat(4) + "\n")
    (tmp_path / "README.md").write_text("# logs\n")
    (tmp_path / "notes.txt").write_text("hello")
    stream = read_traces([tmp_path])
    assert [t.id for t in stream] == ["conv-000001", "conv-000002"]
    rel = [(Path(s.path).relative_to(tmp_path).as_posix(), s.status, s.reason) for s in stream.sources]
    assert rel == [
        ("README.md", "ignored", "not a trace file (.md)"),
        ("a/y.jsonl", "read", None),
        ("b/x.jsonl", "read", None),
        ("notes.txt", "ignored", "not a trace file (.txt)"),
    ]
    assert stream.skipped == 0 and stream.traces == 2


def test_given_paths_are_shown_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "t.jsonl").write_text(chat(1) + "\n" + chat(2) + "\n")
    monkeypatch.chdir(tmp_path)
    stream = read_traces([Path("logs")])
    assert [t.source for t in stream] == ["logs/t.jsonl:1", "logs/t.jsonl:2"]
    assert [s.path for s in stream.sources] == ["logs/t.jsonl"]


def test_missing_path_and_unknown_format_are_errors(tmp_path: Path) -> None:
    with pytest.raises(SelfImproveError) as err:
        read_traces([tmp_path / "nope.jsonl"])
    assert err.value.one_line() == (
        f"{tmp_path}/nope.jsonl: no such file or directory: {tmp_path}/nope.jsonl "
        "(hint: check the path (traces can be files, directories or .gz files))"
    )
    with pytest.raises(SelfImproveError, match="unknown trace format 'csv'"):
        read_traces([tmp_path], format="csv")


def said(id: str, text: str, **fields: object) -> str:
    return json.dumps({"id": id, "messages": [{"role": "user", "content": text},
                                               {"role": "assistant", "content": "ok"}], **fields})


def test_ids_are_kept_as_given_and_only_collisions_renamed(tmp_path: Path) -> None:
    # short, number-like ids are the user's ids too: unique ones stay exactly as written
    (tmp_path / "r.jsonl").write_text("".join(said(f"run-{i}", f"question {i}") + "\n" for i in range(12)))
    (tmp_path / "s.jsonl").write_text(said("run-3", "another question") + "\n"
                                      + said("run-3", "and another") + "\n"
                                      + json.dumps({"task_id": 7, "messages": [{"role": "user",
                                                                                 "content": "x"}]})
                                      + "\n")
    (tmp_path / "t.jsonl").write_text(said("r:run-3", "a third") + "\n")
    ids = [t.id for t in read_traces([tmp_path])]
    assert ids == [f"run-{i}" for i in range(12)] + ["s:run-3", "run-3~2", "7", "r:run-3"]
    assert [t.id for t in read_traces([tmp_path])] == ids  # the same names on every run


def test_the_same_trace_in_several_files_is_read_once(tmp_path: Path) -> None:
    run = {"task_id": 2, "trial": 0, "reward": 0.0,
           "traj": [{"role": "user", "content": "cancel #W1"}, {"role": "assistant", "content": "done"}]}
    other = {**run, "task_id": 3, "traj": [{"role": "user", "content": "return #W2"}]}
    (tmp_path / "all.json").write_text(json.dumps([run, other]))
    # the failed runs again, with another id and extra fields: the same messages and labels
    (tmp_path / "failed.jsonl").write_text(json.dumps({**run, "task_id": "t-2", "note": "x"}) + "\n"
                                           + json.dumps({**run, "reward": 1.0}) + "\n")
    stream = read_traces([tmp_path])
    traces = list(stream)
    assert [(t.id, t.source) for t in traces] == [
        ("2/0", f"{tmp_path}/all.json:1"), ("3/0", f"{tmp_path}/all.json:1"),
        ("failed:2/0", f"{tmp_path}/failed.jsonl:2")]  # another label: another trace
    assert stream.duplicates == 1 and stream.also == {"2/0": (f"{tmp_path}/failed.jsonl:1",)}
    assert [(s.path.rsplit("/", 1)[1], s.traces) for s in stream.sources] == [("all.json", 2),
                                                                              ("failed.jsonl", 2)]
    # a start time is part of what a trace is: the same words at another time are another run
    (tmp_path / "failed.jsonl").write_text(json.dumps({**run, "timestamp": "2025-01-01T10:00:00Z"}) + "\n")
    again = read_traces([tmp_path])
    assert len(list(again)) == 3 and again.duplicates == 0


def test_identity_is_the_content_whichever_reader_built_the_trace(tmp_path: Path) -> None:
    from selfimprove.traces.read import identity

    messages = [{"role": "user", "content": "where is #W1?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function",
                     "function": {"name": "find", "arguments": "{\"id\": 1}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "Error: not found"}]
    plain = {"id": "a", "messages": messages, "score": 0.2}
    general = {"id": "b", "messages": messages, "score": 0.2, "system": None}  # takes the general path
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(plain) + "\n" + json.dumps(general) + "\n")
    fast, = read_traces([path], views=True)  # the second is the first again
    slow = list(read_traces([path]))
    assert identity(fast) == identity(slow[0]) and len(identity(fast)) == 16
    assert identity(replace(slow[0], feedback=())) != identity(slow[0])
    changed = replace(slow[0], messages=slow[0].messages[:2])
    assert identity(changed) != identity(slow[0])


def test_forced_format_reads_what_sniffing_would_not(tmp_path: Path) -> None:
    path = tmp_path / "export.dat"
    path.write_text(chat(1) + "\n")
    stream = read_traces([path], format="generic")
    assert [t.id for t in stream] == ["conv-000001"]
    assert stream.sources[0].format == "generic"


def test_progress_reports_every_byte(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / f"{i}.jsonl").write_text("".join(chat(j) + "\n" for j in range(200)))
    (tmp_path / "README.md").write_text("hi")
    seen: list[int] = []
    stream = read_traces([tmp_path], progress=seen.append)
    assert sum(1 for _ in stream) == 200 and stream.duplicates == 400  # three copies of each trace
    assert sum(seen) == stream.total_bytes == sum(p.stat().st_size for p in tmp_path.iterdir())


def test_strict_raises_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(chat(1) + "\n{broken\n" + chat(2) + "\n")
    stream = read_traces([path])
    assert [t.id for t in stream] == ["conv-000001", "conv-000002"]
    assert stream.sources[0].errors == [(2, "invalid JSON (unexpected character, expected a string key)")]
    with pytest.raises(SelfImproveError) as err:
        list(read_traces([path], strict=True))
    assert err.value.where == f"{path}:2"
    assert err.value.one_line().startswith(f"{path}:2: bad trace record: invalid JSON")


def test_sources_json_shape(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text(chat(1) + "\n[1]\n")
    (tmp_path / "README.md").write_text("x")
    stream = read_traces([tmp_path])
    list(stream)
    assert [s.to_json() for s in stream.sources] == [
        {
            "path": f"{tmp_path}/README.md",
            "format": "",
            "traces": 0,
            "skipped": 0,
            "errors": [],
            "status": "ignored",
            "reason": "not a trace file (.md)",
        },
        {
            "path": f"{tmp_path}/t.jsonl",
            "format": "openai",
            "traces": 1,
            "skipped": 1,
            "errors": [{"line": 2, "reason": "a JSON list, not an object"}],
        },
    ]


def test_a_symlinked_directory_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "t.jsonl").write_text(chat(1) + "\n")
    os.symlink(tmp_path / "real", tmp_path / "zlink")
    assert [t.id for t in read_traces([tmp_path])] == ["conv-000001"]


def test_shards_partition_the_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from selfimprove.traces import read as read_module

    monkeypatch.setattr(read_module, "SHARD_SPLIT_MIN_BYTES", 1000)
    big = tmp_path / "big.jsonl"
    lines = [
        chat(i) if i % 7 else json.dumps({"messages": [{"role": "user", "content": f"n{i}"}]})
        for i in range(500)
    ]
    lines[250] = "{broken"
    big.write_text("\n".join(lines) + "\n")
    (tmp_path / "one.jsonl").write_text(chat(9001) + "\n")
    (tmp_path / "two.json").write_text(json.dumps([json.loads(chat(9002))]))
    whole = read_traces([tmp_path])
    expected = [(t.id, t.source, t.messages) for t in whole]
    assert len(expected) == 501 and whole.skipped == 1
    for n in (2, 3):
        got = []
        skipped = 0
        seen: list[int] = []
        for k in range(n):
            part = read_traces([tmp_path], shard=(k, n), progress=seen.append)
            got.extend((t.id, t.source, t.messages) for t in part)
            skipped += part.skipped
            assert sum(seen) == part.total_bytes
            seen.clear()
        assert sorted(got) == sorted(expected) and skipped == 1
    with pytest.raises(ValueError):
        read_traces([tmp_path], shard=(2, 2))


def test_two_streams_side_by_side_keep_their_own_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selfimprove.traces import read as read_module

    monkeypatch.setattr(read_module, "SHARD_SPLIT_MIN_BYTES", 1000)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "big.jsonl").write_text("".join(chat(i) + "\n" for i in range(300)))
    (tmp_path / "b.jsonl").write_text("".join(chat(1000 + i) + "\n" for i in range(300)))
    alone = [t.id for t in read_traces([tmp_path / "a"], shard=(1, 2))]
    assert 100 < len(alone) < 200 and alone[-1] == "conv-000299"
    a_seen: list[int] = []
    half = read_traces([tmp_path / "a"], shard=(1, 2), progress=a_seen.append)
    whole = read_traces([tmp_path / "b.jsonl"])
    it_a, it_b = iter(half), iter(whole)
    got_a, got_b = [next(it_a).id], [next(it_b).id]
    for x, y in zip(it_a, it_b, strict=False):  # interleaved: one trace from each, in turn
        got_a.append(x.id)
        got_b.append(y.id)
    got_a.extend(t.id for t in it_a)
    assert got_a == alone
    assert got_b == [f"conv-{1000 + i:06d}" for i in range(len(alone))]
    assert sum(a_seen) == half.total_bytes


def test_files_beside_traces_that_are_not_traces() -> None:
    stream = read_traces([DATA / "not-traces"])
    assert list(stream) == []
    assert {Path(s.path).name: (s.status, s.reason) for s in stream.sources} == {
        "README.md": ("ignored", "not a trace file (.md)"),
        "all_preds.jsonl": ("ignored", "no traces in 1 record (no messages)"),
        "steps_by_id.json": ("ignored", "no traces in 1 record (no messages)"),
        "tau_ground_truth_2.json": ("ignored", "no traces in 2 records (no messages)"),
        "tools_structure.json": (
            "ignored",
            "a list of assistant/tool messages with no user, system or agent input: a fragment "
            "(e.g. example tool calls), not a conversation",
        ),
    }
    assert stream.skipped == 0


def test_every_fixture_folder_reads_cleanly() -> None:
    expected = {
        "tau-bench": 2,
        "magentic": 1,
        "claude-code": 1,
        "swe-agent": 2,
        "openhands": 2,
        "inspect": 3,
        "provider-native": 5,
        "autogen": 1,
        "pydantic-ai": 1,
        "google-adk": 1,
        "smolagents": 1,
    }
    for folder, count in expected.items():
        stream = read_traces([DATA / folder])
        assert sum(1 for _ in stream) == count, folder
        assert stream.skipped == 0, folder


def test_look_alike_of_a_format_falls_back_to_the_generic_reader(tmp_path: Path) -> None:
    # keys that make it look like an OpenHands event stream, but the events hold ordinary messages
    records = [
        {
            "source": "web",
            "action": "chat",
            "observation": None,
            "cause": 1,
            "extras": {},
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        }
    ]
    path = tmp_path / "events.json"
    path.write_text(json.dumps(records))
    stream = read_traces([path])
    [trace] = list(stream)
    assert [m.content for m in trace.messages] == ["hi", "hello"]
    [report] = stream.sources
    assert (report.format, report.traces, report.skipped, report.status) == ("generic", 1, 0, "read")
