"""Inspect AI eval logs: `.json` (one EvalLog with `samples`) and `.eval` (a zip of `header.json` and
`samples/{id}_epoch_{n}.json`). One trace per sample (and epoch).

Scores become feedback: Inspect's C/I (correct/incorrect) values → `label` with `passed`, numbers →
`score`, a sample `error` → `error`, a hit `limit` (messages, tokens, time) → `error` named "limit".
Tool messages with an `error` are `is_error`. The eval's own status (e.g. cancelled) is kept as
metadata, not as a verdict on each sample.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from selfimprove.traces.formats import _feedback, _fields, _io, _records
from selfimprove.traces.messages.convert import convert_messages
from selfimprove.traces.model import Feedback, Trace
from selfimprove.traces.storage import is_url

# Inspect's score value constants: CORRECT, INCORRECT, PARTIAL, NOANSWER
_VALUE_VERDICT = {"C": True, "I": False, "P": None, "N": False}
_SAMPLE_NAME = re.compile(r"^samples/(.+)_epoch_(\d+)\.json$")


def _natural(text: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def inspect_scores(scores: Any) -> list[Feedback]:
    out: list[Feedback] = []
    if not isinstance(scores, Mapping):
        return out
    for scorer, score in scores.items():
        if not isinstance(score, Mapping):
            continue
        value = score.get("value")
        explanation = score.get("explanation")
        comment = explanation if isinstance(explanation, str) else None
        values = value.items() if isinstance(value, Mapping) else [(None, value)]
        for key, item in values:
            name = f"{scorer}.{key}" if key is not None else str(scorer)
            if isinstance(item, str) and item in _VALUE_VERDICT:
                out.append(Feedback("label", item, comment, _VALUE_VERDICT[item], name))
            elif isinstance(item, bool):
                out.append(Feedback("success", item, comment, item, name))
            elif isinstance(item, int | float):
                out.append(Feedback("score", float(item), comment, None, name))
            elif isinstance(item, str) and item:
                out.append(Feedback("label", item, comment, _feedback.verdict_of(item), name))
    return out


def sample_trace(sample: Mapping[str, Any], header: Mapping[str, Any], *, source: str, stem: str,
                 index: int) -> Trace | None:
    raw = sample.get("messages")
    if not isinstance(raw, list):
        raw = []
    messages = convert_messages(raw)
    if not messages and isinstance(sample.get("input"), str | list):
        messages = convert_messages(sample["input"] if isinstance(sample["input"], list)
                                      else [{"role": "user", "content": sample["input"]}])
    if not messages:
        return None
    feedback = inspect_scores(sample.get("scores"))
    error = sample.get("error")
    if isinstance(error, Mapping):
        feedback.append(Feedback("error", str(error.get("message") or "sample error"), name="error"))
    elif isinstance(error, str) and error:
        feedback.append(Feedback("error", error, name="error"))
    limit = sample.get("limit")
    if isinstance(limit, Mapping) and limit.get("type"):
        text = f"{limit['type']} limit reached ({limit.get('limit')})"
        feedback.append(Feedback("error", text, name="limit"))
    evalinfo = header.get("eval") if isinstance(header.get("eval"), Mapping) else {}
    assert isinstance(evalinfo, Mapping)
    sid = sample.get("id", index)
    epoch = sample.get("epoch")
    meta: dict[str, Any] = {"sample_id": sid, "epoch": epoch}
    for key in ("task", "model", "eval_id", "run_id"):
        if isinstance(evalinfo.get(key), str):
            meta[key] = evalinfo[key]
    if isinstance(header.get("status"), str):
        meta["eval_status"] = header["status"]
    target = sample.get("target")
    if isinstance(target, str) and len(target) <= 500:
        meta["target"] = target
    if isinstance(limit, Mapping) and limit.get("type"):
        meta["limit"] = limit["type"]
    started = _fields.parse_time(sample.get("started_at")) or _fields.parse_time(evalinfo.get("created"))
    sample_meta = sample.get("metadata")
    version = (_fields.prompt_version_of({"metadata": sample_meta}) if isinstance(sample_meta, Mapping)
               else None)
    return Trace(id=f"{stem}:{sid}" + (f"/{epoch}" if epoch is not None else ""), source=source,
                 messages=messages, feedback=tuple(feedback), started_at=started, prompt_version=version,
                 metadata=meta, format="inspect")


class InspectReader:
    name = "inspect"

    def sniff(self, path: Path, head: bytes) -> int:
        if head.startswith(b"PK\x03\x04"):
            if b"header.json" in head or b"samples/" in head or b"_journal/" in head:
                return 100
            return 40 if _io.inner_suffix(path) == ".eval" else 0
        body = _io.text_head(head)
        if not body.startswith(b"{"):
            return 0
        hits = _io.head_has(body, b'"eval"', b'"plan"', b'"samples"', b'"results"', b'"stats"', b'"task_id"',
                          b'"task_file"')
        if hits >= 3 and b'"status"' in body:
            return 90
        return 0

    def read(self, path: Path, report: _io.SourceReport,
             context: _io.ReadContext = _io.PLAIN) -> Iterator[Trace]:
        stem = _fields.file_stem(path)
        try:
            with _io.open_raw(path) as fh:
                magic = fh.read(4)
        except OSError as exc:
            report.skip(None, f"cannot open: {_io.describe_read_error(exc)}")
            return
        if magic == b"PK\x03\x04":
            yield from self._read_zip(path, report, stem)
            return
        doc = _io.load_json(path, report, context)
        if doc is None:
            return
        if not isinstance(doc, Mapping):
            report.skip(1, "expected an Inspect eval log object")
            return
        samples = doc.get("samples")
        if not isinstance(samples, list) or not samples:
            report.ignore("Inspect log without samples (header only)")
            return
        source = f"{report.path}:1"
        for i, sample in enumerate(samples):
            if not isinstance(sample, Mapping):
                report.skip(1, f"sample {i} is not an object")
                continue
            before = report.skipped
            build = partial(sample_trace, sample, doc, source=source, stem=stem, index=i)
            trace = _records.guarded(report, 1, build)
            if trace is None:
                if report.skipped == before:
                    report.defer(1, f"sample {sample.get('id', i)} has no messages")
                continue
            yield trace

    def _read_zip(self, path: Path, report: _io.SourceReport, stem: str) -> Iterator[Trace]:
        try:
            archive = zipfile.ZipFile(_io.open_raw(path) if is_url(path) else path)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            report.skip(None, f"not a readable .eval zip ({exc})")
            return
        with archive:
            names = archive.namelist()
            header: Any = {}
            if "header.json" in names:
                header = self._member(archive, "header.json", report) or {}
            elif "_journal/start.json" in names:
                header = self._member(archive, "_journal/start.json", report) or {}
            if not isinstance(header, Mapping):
                header = {}
            members = []
            for name in names:
                m = _SAMPLE_NAME.match(name)
                if m:
                    members.append((_natural(m.group(1)), int(m.group(2)), name))
            if not members:
                report.ignore("Inspect log without samples (header only)")
                return
            for i, (_, _, name) in enumerate(sorted(members)):
                sample = self._member(archive, name, report)
                if sample is None:
                    continue
                if not isinstance(sample, Mapping):
                    report.skip(None, f"{name}: not a sample object")
                    continue
                before = report.skipped
                trace = _records.guarded(report, None, partial(sample_trace, sample, header,
                                                        source=f"{report.path}:1", stem=stem, index=i))
                if trace is None:
                    if report.skipped == before:
                        report.defer(None, f"{name}: no messages")
                    continue
                yield trace

    @staticmethod
    def _member(archive: zipfile.ZipFile, name: str, report: _io.SourceReport) -> Any:
        try:
            data = archive.read(name)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError) as exc:
            report.skip(None, f"{name}: cannot read from the zip ({exc})")
            return None
        try:
            return _io.loads(data)
        except ValueError as exc:
            report.skip(None, f"{name}: {exc}")
            return None


READER = InspectReader()
