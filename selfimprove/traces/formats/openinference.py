"""Flat span records (OpenInference, OTel GenAI, Vercel AI SDK attributes as plain JSON maps) → traces.

Owns the shapes that are not OTLP's key/value encoding: a bare attribute map (one span), a list or
JSON Lines of span objects with an `attributes` dict (OpenTelemetry JS `ReadableSpan` JSON with
`spanContext`, Python's console exporter with `context`, Phoenix exports with nested attribute
objects and `status_code`), optionally wrapped in `{"spans": [...]}` or `{"data": [...]}`.
Spans are grouped by trace id; a bare map without ids is one trace named after its file and line.
Attribute meaning (GenAI current and deprecated, OpenInference indexed messages, Vercel `ai.*`)
lives in `span_attributes`, `assembly` and `otlp.span_view`, shared with the OTLP reader.

Never judges outcomes; unknown attributes are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from selfimprove.traces.formats import grouping, span_attributes
from selfimprove.traces.formats._io import PLAIN, ReadContext
from selfimprove.traces.formats.jsondocs import Report, defer, documents, plain_head, skip, where
from selfimprove.traces.formats.otlp import build_trace, span_view
from selfimprove.traces.model import Trace

NAME = "openinference"
_KEY = re.compile(
    rb'(?<!\\)"(?:attributes\.)?(openinference\.span\.kind|llm\.(input|output)_messages|llm\.model_name|gen_ai\.[a-z_.]+|'
    rb'ai\.operationId|ai\.prompt|input\.value|output\.value)"\s*:'
)
_SPAN_HINT = re.compile(rb'(?<!\\)"(spanContext|span_id|spanId|context)"\s*:')
_CONTENT_PREFIXES = ("gen_ai.", "llm.", "openinference.", "ai.", "input.value", "output.value", "tool.")


def flatten(attrs: Mapping[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """Nested attribute objects (`{"llm": {"input_messages": [...]}}`) → dotted keys, as OTel writes them."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict) and depth < 12:
            out.update(flatten(value, full + ".", depth + 1))
        else:
            out[full] = value
            if isinstance(value, list) and depth < 12 and any(isinstance(v, dict) for v in value):
                for i, item in enumerate(value):
                    if isinstance(item, dict):
                        out.update(flatten(item, f"{full}.{i}.", depth + 1))
    return out


def _is_flat_map(value: Mapping[str, Any]) -> bool:
    return any(isinstance(k, str) and k.startswith(_CONTENT_PREFIXES) for k in value)


def _is_span(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("attributes"), dict)
        and ("name" in value or "spanContext" in value or "context" in value)
    )


_ID_KEYS = ("trace_id", "traceId", "span_id", "spanId", "parent_id", "parentSpanId", "parent_span_id")


def as_span(value: Any) -> dict[str, Any] | None:
    """A record in any of the flat shapes → span form (`attributes` dict, ids, status, times)."""
    if not isinstance(value, dict):
        return None
    if _is_span(value):
        return value
    if any(isinstance(k, str) and k.startswith("attributes.") for k in value):
        # a Phoenix spans dataframe written as records: "attributes.llm.model_name", "context.trace_id", …
        return {
            "name": value.get("name"),
            "context": {"trace_id": value.get("context.trace_id"), "span_id": value.get("context.span_id")},
            "parent_id": value.get("parent_id"),
            "start_time": value.get("start_time"),
            "status_code": value.get("status_code"),
            "status_message": value.get("status_message"),
            "events": value.get("events") if isinstance(value.get("events"), list) else [],
            "attributes": {
                k[len("attributes.") :]: v for k, v in value.items() if k.startswith("attributes.")
            },
        }
    if _is_flat_map(value):
        return {"attributes": value, **{k: value[k] for k in _ID_KEYS if value.get(k)}}
    return None


def _ids(span: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    ctx = span.get("spanContext") or span.get("context") or {}
    ctx = ctx if isinstance(ctx, dict) else {}
    trace_id = ctx.get("traceId", ctx.get("trace_id", span.get("traceId", span.get("trace_id"))))
    span_id = ctx.get("spanId", ctx.get("span_id", span.get("spanId", span.get("span_id"))))
    parent = span.get("parentSpanId", span.get("parent_id", span.get("parentId", span.get("parent_span_id"))))
    pctx = span.get("parentSpanContext")
    if parent is None and isinstance(pctx, dict):
        parent = pctx.get("spanId")
    return _clean_id(trace_id), _clean_id(span_id), _clean_id(parent)


def _clean_id(value: Any) -> str | None:
    """Python's console exporter writes ids as `0x…` hex; OTLP JSON writes bare hex."""
    if value in (None, "", 0):
        return None
    text = str(value)
    if text[:2] in ("0x", "0X") and len(text) > 2:
        text = text[2:].lower()
    return text


def _status(span: Mapping[str, Any]) -> tuple[Any, Any]:
    status = span.get("status")
    if isinstance(status, dict):
        code = status.get("code", status.get("status_code"))
        message = status.get("message", status.get("description"))
    else:
        code, message = span.get("status_code", status), span.get("status_message")
    if isinstance(code, str) and "." in code:  # "StatusCode.ERROR"
        code = code.rsplit(".", 1)[1]
    return code, message


class OpenInferenceReader:
    name = NAME

    def sniff(self, path: Path, head: bytes) -> int:
        text = plain_head(head)
        if b'"resourceSpans"' in text or b'"observations"' in text:
            return 0
        keys = len({m.group(1) for m in _KEY.finditer(text)})
        if not keys:
            return 0
        return 70 if _SPAN_HINT.search(text) or keys >= 3 else 50

    def read(self, path: Path, report: Report, context: ReadContext = PLAIN) -> Iterator[Trace]:
        groups = grouping.TraceGroups()
        order = 0
        stem = path.name.split(".")[0]
        for doc in documents(path, report, context):
            value = doc.value
            if isinstance(value, dict) and isinstance(value.get("spans", value.get("data")), list):
                value = value.get("spans", value.get("data"))
            single = not isinstance(value, list)
            items = [value] if single else value
            for index, item in enumerate(items):
                order += 1
                span = as_span(item)
                if span is None:
                    if single:
                        defer(report, doc.line, "no span attributes (gen_ai.*, llm.*, openinference.*, ai.*)")
                    else:
                        skip(report, doc.line, "list item is not a span with an attributes object")
                    continue
                trace_id, span_id, parent = _ids(span)
                line = doc.line_for(f'"{span_id}"') if span_id else doc.line
                try:
                    view = self._view(span, order, span_id or f"#{order}", parent)
                except (TypeError, ValueError, AttributeError, RecursionError) as exc:
                    skip(report, line, f"malformed span ({type(exc).__name__})")
                    continue
                if trace_id:
                    key = trace_id
                elif single:  # a bare attribute map: one trace named after its file (and line)
                    key = stem if doc.text is not None else f"{stem}:{doc.line}"
                else:
                    key = f"{stem}:{doc.line}#{index + 1}"
                first_line = doc.line_for(f'"{trace_id}"') if trace_id and key not in groups.groups else line
                for tid, views, first in groups.add(key, view, first_line):
                    yield build_trace(tid, views, source=f"{where(path, report)}:{first}", format=NAME)
        for tid, views, first in groups.drain():
            yield build_trace(tid, views, source=f"{where(path, report)}:{first}", format=NAME)

    def _view(self, span: Mapping[str, Any], order: int, span_id: str,
              parent: str | None) -> span_attributes.SpanView:
        attrs = flatten(span["attributes"])
        resource = span.get("resource")
        if isinstance(resource, dict):
            res_attrs = resource.get("attributes", resource)
            if isinstance(res_attrs, dict):
                for key, value in flatten(res_attrs).items():
                    attrs.setdefault(key, value)
        events = [
            (str(e.get("name", "")), flatten(e.get("attributes") or {}))
            for e in span.get("events") or []
            if isinstance(e, dict) and isinstance(e.get("attributes") or {}, dict)
        ]
        code, message = _status(span)
        start = span.get("startTime", span.get("start_time", span.get("startTimeUnixNano")))
        return span_view(
            span,
            attrs,
            events,
            order=order,
            span_id=span_id,
            parent_id=parent,
            start=start,
            status_code=code,
            status_message=message,
        )


READER = OpenInferenceReader()
