"""The bytes-and-JSON layer (`formats._io`): the read context, JSON Lines and arrays, heads, the report."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from selfimprove.errors import SelfImproveError
from selfimprove.traces.formats import _io
from selfimprove.traces.formats._io import PLAIN, ReadContext, SourceReport


def lines(path: Path, *records: object, raw: bytes = b"") -> Path:
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records) + raw)
    return path


def test_jsonl_records_with_line_numbers_and_bad_lines_counted(tmp_path: Path) -> None:
    path = lines(tmp_path / "a.jsonl", {"n": 1}, {"n": 2}, raw=b"\n{bad\n" + b'{"n": 3}\n')
    report = SourceReport(path="a.jsonl")
    assert list(_io.iter_jsonl(path, report)) == [(1, {"n": 1}), (2, {"n": 2}), (5, {"n": 3})]
    assert report.skipped == 1
    assert report.errors == [(4, "invalid JSON (unexpected character, expected a string key)")]


def test_the_context_byte_range_reads_the_lines_that_start_in_it(tmp_path: Path) -> None:
    path = lines(tmp_path / "a.jsonl", *({"n": i} for i in range(10)))
    size = path.stat().st_size
    halves = [ReadContext(span=(0, size // 2)), ReadContext(span=(size // 2, size))]
    got = [list(_io.iter_jsonl(path, SourceReport(path="a"), context)) for context in halves]
    assert got[0] + got[1] == list(_io.iter_jsonl(path, SourceReport(path="a")))
    assert got[1][0][0] == len(got[0]) + 1  # line numbers continue across the split


def test_the_context_progress_hook_sees_every_byte(tmp_path: Path) -> None:
    path = lines(tmp_path / "a.jsonl", *({"n": i} for i in range(100)))
    seen: list[int] = []
    list(_io.iter_records(path, SourceReport(path="a"), ReadContext(progress=seen.append)))
    assert sum(seen) == path.stat().st_size
    seen.clear()
    list(_io.iter_records(path, SourceReport(path="a")))  # the plain context reports nothing
    assert seen == [] and PLAIN == ReadContext()


def test_json_array_document_and_gzip(tmp_path: Path) -> None:
    array = tmp_path / "a.json"
    array.write_text(json.dumps([{"n": 1}, {"n": 2}]))
    assert list(_io.iter_records(array, SourceReport(path="a"))) == [(1, {"n": 1}), (1, {"n": 2})]
    doc = tmp_path / "d.json.gz"
    doc.write_bytes(gzip.compress(b'{"n": 1}'))
    assert list(_io.iter_records(doc, SourceReport(path="d"))) == [(1, {"n": 1})]
    assert _io.read_head(doc) == b'{"n": 1}' and _io.inner_name(doc) == "d.json"


def test_a_streamed_array_gives_each_element_with_the_line_it_starts_on(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('[\n {"n": 1},\n {"n": 2}\n]')
    elements = _io.iter_json_array(path, SourceReport(path="a"), chunk_size=4)
    assert list(elements) == [(2, {"n": 1}), (3, {"n": 2})]


def test_truncated_gzip_is_a_counted_skip(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"n": 1}\n' * 1000)[:-20])
    report = SourceReport(path="a")
    records = list(_io.iter_jsonl(path, report))
    assert len(records) < 1000 and report.skipped == 1
    assert report.errors[0][1] == "truncated or corrupt gzip data"


def test_jsonl_is_told_from_one_document(tmp_path: Path) -> None:
    assert _io.is_jsonl(tmp_path / "x.ndjson", b"")
    assert _io.is_jsonl(tmp_path / "x.json", b'{"a": 1}\n{"a": 2}\n')
    assert not _io.is_jsonl(tmp_path / "x.json", b'{\n "a": 1\n}\n')
    assert _io.head_roles(b'{"role": "user"} {"from": "gpt"}') == ["user", "gpt"]
    assert _io.head_has(b'{"traj": [], "info": {}}', b'"traj"', b'"info"', b'"other"') == 2
    assert _io.first_char(b"\xef\xbb\xbf  [1]") == "[" and _io.looks_binary(b"\x00abc")


def test_loads_takes_nan_and_says_why_it_fails() -> None:
    value = _io.loads(b'{"x": NaN}')
    assert value["x"] != value["x"]
    with pytest.raises(ValueError, match="invalid JSON"):
        _io.loads(b"{nope")


def test_the_report_counts_defers_and_strict_raises() -> None:
    report = SourceReport(path="a.jsonl")
    report.defer(3, "no messages")
    report.settle()
    assert (report.status, report.reason) == ("ignored", "no traces in 1 record (no messages)")
    assert report.skipped == 0
    kept = SourceReport(path="b.jsonl", traces=1)
    kept.defer(3, "no   messages")
    kept.settle()
    assert kept.to_json() == {"path": "b.jsonl", "format": "", "traces": 1, "skipped": 1,
                              "errors": [{"line": 3, "reason": "no messages"}]}
    with pytest.raises(SelfImproveError, match="bad trace record: broken"):
        SourceReport(path="c.jsonl", strict=True).skip(7, "broken")
