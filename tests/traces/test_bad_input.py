"""Bad input never produces a traceback: each problem is a counted skip with file:line and reason.

The corpus is generated here, in a temporary directory, one file per problem.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from selfimprove.errors import SelfImproveError
from selfimprove.traces.formats import _io
from selfimprove.traces.read import SourceReport, read_traces

GOOD = {
    "id": "good-000001",
    "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
}


def said(i: int) -> list[dict[str, str]]:  # distinct conversations: an identical one is read once
    return [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "yo"}]


def good(i: int = 1) -> bytes:
    return json.dumps({**GOOD, "id": f"good-{i:06d}", "messages": said(i)}).encode() + b"\n"


def read_one(path: Path, **kw: object) -> tuple[list[str], SourceReport]:
    stream = read_traces([path], **kw)  # type: ignore[arg-type]
    ids = [t.id for t in stream]
    [report] = stream.sources
    return ids, report


def test_binary_file_with_a_trace_extension(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(bytes(range(256)) * 40)
    ids, report = read_one(path)
    assert ids == []
    assert (report.status, report.skipped) == ("skipped", 1)
    assert report.errors == [(None, "binary data, not a trace format (use --format to force a reader)")]


def test_binary_file_without_extension_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "core"
    path.write_bytes(b"\x7fELF\x00\x00" + bytes(range(256)) * 10)
    ids, report = read_one(path)
    assert (ids, report.status, report.reason, report.skipped) == (
        [],
        "ignored",
        "binary file, not a trace format",
        0,
    )


def test_invalid_utf8_line_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(good(1) + b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n' + good(2))
    ids, report = read_one(path)
    assert ids == ["good-000001", "good-000002"]
    assert (report.skipped, report.errors) == (1, [(2, "invalid UTF-8")])


def test_latin1_json_document(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(
        json.dumps({"messages": [{"role": "user", "content": "caf"}]}).encode().replace(b"caf", b"caf\xe9")
    )
    ids, report = read_one(path)
    assert (ids, report.errors) == ([], [(1, "invalid UTF-8")])


def test_utf16_file(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(json.dumps(GOOD).encode("utf-16"))
    ids, report = read_one(path)
    assert (ids, report.errors) == ([], [(None, "UTF-16 encoded text (re-encode the file as UTF-8)")])


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(good(i) for i in range(2000)))
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    ids, report = read_one(path)
    assert 0 < len(ids) < 2000
    assert ids[0] == "good-000000"
    assert report.skipped == 1
    [(line, reason)] = report.errors
    assert line == len(ids) + 1  # the line that was cut
    assert reason == "truncated or corrupt gzip data"


def test_gz_name_but_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(good(1))
    ids, report = read_one(path)
    assert ids == [] and report.status == "skipped"
    assert report.errors[0][1].startswith("not a valid gzip file")


def test_gzip_of_nothing(tmp_path: Path) -> None:
    path = tmp_path / "t.json.gz"
    path.write_bytes(gzip.compress(b""))
    ids, report = read_one(path)
    assert (ids, report.status, report.reason) == ([], "ignored", "empty file (after decompression)")


def test_absurd_nesting_in_a_line_and_in_a_document(tmp_path: Path) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    path = tmp_path / "t.jsonl"
    path.write_bytes(good(1) + b'{"messages": ' + deep + b"}\n" + good(2))
    ids, report = read_one(path)
    assert ids == ["good-000001", "good-000002"]
    assert report.errors == [(2, "nesting too deep")]
    doc = tmp_path / "d.json"
    doc.write_bytes(b'{"messages": ' + deep + b"}")
    ids, report = read_one(doc)
    assert (ids, report.errors) == ([], [(1, "nesting too deep")])


def test_deep_content_inside_the_parser_limit(tmp_path: Path) -> None:
    content: object = "x"
    for _ in range(400):  # 800 nested containers: inside the parser limit, deep for Python code
        content = [{"type": "text", "text": content}]
    path = tmp_path / "t.jsonl"
    path.write_bytes(
        json.dumps({"id": "deep-000001", "messages": [{"role": "user", "content": content}]}).encode()
        + b"\n"
        + good(2)
    )
    ids, report = read_one(path)
    assert ids == ["deep-000001", "good-000002"] and report.skipped == 0


def test_huge_line_is_skipped_without_being_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_io, "MAX_LINE_BYTES", 4096)
    path = tmp_path / "t.jsonl"
    big = json.dumps({"messages": [{"role": "user", "content": "x" * 50_000}]}).encode() + b"\n"
    path.write_bytes(good(1) + big + good(2))
    ids, report = read_one(path)
    assert ids == ["good-000001", "good-000002"]
    assert report.errors == [(2, "line longer than 4 KiB (not read)")]


def test_empty_and_blank_files(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"")
    (tmp_path / "b.jsonl").write_bytes(b"\n  \n\t\n")
    stream = read_traces([tmp_path])
    assert list(stream) == []
    assert [(s.status, s.reason, s.skipped) for s in stream.sources] == [
        ("ignored", "empty file", 0),
        ("ignored", "blank file", 0),
    ]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(good(1))
    path.chmod(0)
    try:
        ids, report = read_one(path)
    finally:
        path.chmod(0o644)
    assert ids == [] and report.skipped == 1 and "permission denied" in report.errors[0][1].lower()


def test_unreadable_file_even_as_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    path = tmp_path / "t.jsonl"
    path.write_bytes(good(1))

    def deny(file: object, *args: object, **kw: object) -> object:
        if Path(str(file)) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return builtins.open(file, *args, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr(_io, "open", deny, raising=False)
    ids, report = read_one(path)
    assert (ids, report.status, report.errors) == ([], "skipped", [(None, "permission denied")])


def test_broken_link_and_symlink_loops(tmp_path: Path) -> None:
    (tmp_path / "ok.jsonl").write_bytes(good(1))
    os.symlink(tmp_path / "missing.jsonl", tmp_path / "broken.jsonl")
    os.symlink(tmp_path / "self.jsonl", tmp_path / "self.jsonl")  # a link to itself
    os.symlink(tmp_path, tmp_path / "loop")  # a directory containing itself
    stream = read_traces([tmp_path])
    assert [t.id for t in stream] == ["good-000001"]
    by_name = {Path(s.path).name: s for s in stream.sources}
    assert sorted(by_name) == ["broken.jsonl", "ok.jsonl", "self.jsonl"]
    assert by_name["broken.jsonl"].errors == [(None, "broken symbolic link")]
    assert by_name["self.jsonl"].skipped == 1
    assert "symbolic links" in by_name["self.jsonl"].errors[0][1]


def test_truncated_json_document(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps([GOOD, GOOD])[:-20])
    ids, report = read_one(path)
    assert ids == [] and report.skipped == 1 and report.errors[0][0] == 1
    assert report.errors[0][1].startswith("invalid JSON")


def test_big_arrays_are_streamed_with_element_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_io, "STREAM_ARRAY_MIN_BYTES", 100)
    records = [{**GOOD, "id": f"arr-{i:06d}", "messages": said(i)} for i in range(50)]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(records, indent=2))
    ids, report = read_one(path)
    assert ids == [f"arr-{i:06d}" for i in range(50)] and report.skipped == 0
    # a broken element: earlier elements are kept, the error names the element's first line
    text = json.dumps(records[:3], indent=1)
    broken = text.replace('"arr-000002"', '"arr-000002" oops', 1)
    path.write_text(broken)
    ids, report = read_one(path)
    assert ids == ["arr-000000", "arr-000001"]
    start = broken[: broken.index('"arr-000002"')].count("\n")  # the line of the element's "{"
    assert report.errors == [(start, "invalid JSON (Expecting ',' delimiter)")]


def test_streamed_array_reads_in_small_chunks(tmp_path: Path) -> None:
    records = [{**GOOD, "id": f"arr-{i:06d}", "messages": said(i), "pad": "é" * (i * 37 % 300)}
               for i in range(40)]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    report = SourceReport(path=str(path))
    values = [v for _, v in _io.iter_json_array(path, report, chunk_size=64)]
    assert values == records and report.skipped == 0


def test_nan_and_bom_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + good(1) + b'{"id": "nan-000002", "score": NaN, "messages": [{"role": "user", '
        b'"content": "x"}]}\n'
    )
    ids, report = read_one(path)
    assert ids == ["good-000001", "nan-000002"] and report.skipped == 0


def test_records_of_the_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(good(1) + b'42\n"text"\nnull\n' + b'{"messages": "not a list"}\n')
    ids, report = read_one(path)
    assert ids == ["good-000001"]
    assert report.errors == [
        (2, "a JSON int, not an object"),
        (3, "a JSON str, not an object"),
        (4, "a JSON NoneType, not an object"),
        (5, "no messages"),
    ]


def test_plain_text_with_a_trace_extension_or_as_a_log(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    path.write_text("2025-01-01 INFO started\n2025-01-01 ERROR boom\n")
    ids, report = read_one(path)
    assert ids == [] and report.status == "skipped"
    assert report.errors == [
        (None, "not a JSON object or array, and no reader recognised it (use --format to force a reader)")
    ]
    log = tmp_path / "app.log"
    log.write_text("2025-01-01 INFO started\n")
    ids, report = read_one(log)
    assert (ids, report.status, report.reason, report.skipped) == (
        [],
        "ignored",
        "plain text, not JSON (a log file?)",
        0,
    )
    log.write_text(good(1).decode())  # a .log of JSON lines is read
    ids, report = read_one(log)
    assert ids == ["good-000001"]


def test_strict_raises_on_the_first_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(SelfImproveError) as err:
        list(read_traces([path], strict=True))
    assert err.value.where == str(path)


def test_errors_are_capped_but_all_counted(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(good(1) + b"{bad\n" * 250)
    ids, report = read_one(path)
    assert ids == ["good-000001"] and report.skipped == 250 and len(report.errors) == 100
    assert report.errors[-1][0] == 101


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jsonl")
    (tmp_path / "ok.jsonl").write_bytes(good(1))
    stream = read_traces([tmp_path])
    assert [t.id for t in stream] == ["good-000001"]
    assert [(Path(s.path).name, s.status, s.reason) for s in stream.sources] == [
        ("ok.jsonl", "read", None),
        ("pipe.jsonl", "ignored", "not a regular file"),
    ]


def test_json_lines_with_records_longer_than_the_sniffed_head(tmp_path: Path) -> None:
    path = tmp_path / "runs.json"  # JSONL content under a .json name, first record > 64 KiB
    long = {**GOOD, "id": "long-000001", "messages": [{"role": "user", "content": "x" * 100_000}]}
    path.write_bytes(json.dumps(long).encode() + b"\n" + good(2))
    ids, report = read_one(path)
    assert ids == ["long-000001", "good-000002"] and report.skipped == 0


def test_big_gzipped_array_is_streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_io, "STREAM_ARRAY_MIN_BYTES", 1000)
    records = [{**GOOD, "id": f"arr-{i:06d}", "messages": said(i)} for i in range(200)]
    path = tmp_path / "t.json.gz"
    path.write_bytes(gzip.compress(json.dumps(records, indent=1).encode()))
    calls: list[Path] = []
    real = _io.iter_json_array
    monkeypatch.setattr(_io, "iter_json_array",
                        lambda p, r, *a, **kw: calls.append(p) or real(p, r, *a, **kw))
    ids, report = read_one(path)
    assert ids == [f"arr-{i:06d}" for i in range(200)] and report.skipped == 0 and calls == [path]


def test_kinds_and_roles_of_the_wrong_type_lose_that_message_only(tmp_path: Path) -> None:
    # a writer that put an object or a list where a string names a role or a kind: the record is
    # read (that field names nothing), not skipped as unreadable
    records = [
        {"id": "openai", "messages": [{"role": "user", "content": "hi"},
                                      {"role": {"name": "x"}, "content": "?"},
                                      {"role": "assistant", "content": "hello openai"}]},
        {"id": "autogen", "messages": [{"source": "user", "type": "TextMessage", "content": "hi"},
                                       {"source": "agent", "type": ["TextMessage"], "content": "?"},
                                       {"source": "agent", "type": "TextMessage",
                                        "content": "hello autogen"}]},
        {"id": "pydantic-ai", "messages": [
            {"kind": "request", "parts": [{"part_kind": "user-prompt", "content": "hi"}]},
            {"kind": "request", "parts": [{"part_kind": {"x": 1}, "content": "?", "outcome": ["failed"]}]},
            {"kind": "response", "parts": [{"part_kind": "text", "content": "hello pydantic-ai"}]}]},
    ]
    path = tmp_path / "odd.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    stream = read_traces([path])
    traces = list(stream)
    assert stream.skipped == 0 and [t.id for t in traces] == ["openai", "autogen", "pydantic-ai"]
    for trace in traces:
        spoken = [(m.role, m.content) for m in trace.messages if m.role in ("user", "assistant")]
        assert spoken == [("user", "hi"), ("assistant", f"hello {trace.id}")], trace.id
