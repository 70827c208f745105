"""OTLP JSON trace exports (`resourceSpans` → `scopeSpans` → `spans`) with GenAI content → traces.

Owns the OTLP/JSON encoding: key/value attribute lists (`intValue` as strings, `arrayValue`,
`kvlistValue`, `bytesValue`), enums as integers or as `SPAN_KIND_*` / `STATUS_CODE_*` strings,
span events (the deprecated `gen_ai.*.message` / `gen_ai.choice` events, the current
`gen_ai.client.inference.operation.details` event, `gen_ai.evaluation.result` labels, exceptions).
A file is one export request, a list of them, or JSON Lines of them (collector file exporter).
Spans are grouped into traces by `traceId` across the whole file; what a span means for the
conversation is decided in `span_attributes` and `assembly` (shared with the flat-span reader).

Never judges outcomes: error status and evaluation results become `Feedback` for `analysis`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from selfimprove.traces.formats import assembly, grouping, span_attributes
from selfimprove.traces.formats._io import PLAIN, ReadContext
from selfimprove.traces.formats.jsondocs import Report, defer, documents, plain_head, skip, where
from selfimprove.traces.messages import telemetry, values
from selfimprove.traces.model import Feedback, Message, Trace

NAME = "otlp"
_ERROR_CODES = {2, "2", "STATUS_CODE_ERROR", "ERROR", "Error", "error"}
_PASS_WORDS = {
    "pass",
    "passed",
    "correct",
    "success",
    "succeeded",
    "true",
    "yes",
    "good",
    "ok",
    "accepted",
    "relevant",
    "resolved",
    "c",
}
_FAIL_WORDS = {
    "fail",
    "failed",
    "incorrect",
    "failure",
    "false",
    "no",
    "bad",
    "wrong",
    "error",
    "rejected",
    "irrelevant",
    "unresolved",
    "i",
    "hallucinated",
    "toxic",
}


def any_value(value: Any, depth: int = 0) -> Any:
    """An OTLP AnyValue (`{"stringValue": …}` …) → a plain Python value."""
    if not isinstance(value, dict) or depth > 32:
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "doubleValue" in value:
        try:
            return float(value["doubleValue"])
        except (TypeError, ValueError):
            return value["doubleValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        items = (value["arrayValue"] or {}).get("values") or []
        return [any_value(v, depth + 1) for v in items]
    if "kvlistValue" in value:
        return key_values((value["kvlistValue"] or {}).get("values") or [], depth + 1)
    if "bytesValue" in value:
        try:
            return base64.b64decode(value["bytesValue"]).decode("utf-8", "replace")
        except (ValueError, TypeError):
            return value["bytesValue"]
    return None


def key_values(items: Any, depth: int = 0) -> dict[str, Any]:
    """A list of `{"key", "value"}` (or an already flat mapping) → a flat attribute dict."""
    if isinstance(items, dict):
        return {str(k): any_value(v, depth) for k, v in items.items()}
    out: dict[str, Any] = {}
    if isinstance(items, list):
        for kv in items:
            if isinstance(kv, dict) and "key" in kv:
                out[str(kv["key"])] = any_value(kv.get("value"), depth)
    return out


def label_passed(label: Any) -> bool | None:
    word = str(label).strip().lower()
    if word in _PASS_WORDS:
        return True
    if word in _FAIL_WORDS:
        return False
    return None


def evaluation_feedback(attrs: Mapping[str, Any]) -> Feedback | None:
    """A `gen_ai.evaluation.result` event's attributes → Feedback (label when given, else score)."""
    name = attrs.get("gen_ai.evaluation.name")
    label = attrs.get("gen_ai.evaluation.score.label")
    score = attrs.get("gen_ai.evaluation.score.value")
    comment = attrs.get("gen_ai.evaluation.explanation")
    comment = str(comment) if comment not in (None, "") else None
    if label not in (None, ""):
        return Feedback(
            kind="label",
            value=str(label),
            comment=comment,
            passed=label_passed(label),
            name=str(name) if name else None,
        )
    if isinstance(score, (int, float)) and not isinstance(score, bool):
        return Feedback(kind="score", value=float(score), comment=comment, name=str(name) if name else None)
    return None


_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def event_messages(name: str, attrs: Mapping[str, Any]) -> tuple[list[Message], list[Message]]:
    """Deprecated GenAI content events → (input messages, output messages)."""
    body = attrs.get("gen_ai.event.content", attrs.get("body"))
    body = values.loads_maybe(body) if body is not None else None
    fields: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
    for key in ("content", "role", "tool_calls", "id", "message", "finish_reason"):
        if key in attrs and key not in fields:
            fields[key] = values.loads_maybe(attrs[key]) if key != "content" else attrs[key]
    if name in _EVENT_ROLES:
        role = _EVENT_ROLES[name]
        item = {
            "role": fields.get("role") or role,
            "content": fields.get("content"),
            "tool_calls": fields.get("tool_calls"),
        }
        if role == "tool":
            item["tool_call_id"] = fields.get("id", fields.get("tool_call_id"))
        return telemetry.to_messages([item]), []
    if name == "gen_ai.choice":
        message = fields.get("message")
        if isinstance(message, dict):
            return [], telemetry.to_messages([{"role": "assistant", **message}], "assistant")
        if fields.get("content") is not None or fields.get("tool_calls") is not None:
            return [], telemetry.to_messages(
                [
                    {
                        "role": "assistant",
                        "content": fields.get("content"),
                        "tool_calls": fields.get("tool_calls"),
                    }
                ],
                "assistant",
            )
    return [], []


def span_view(
    span: Mapping[str, Any],
    attrs: dict[str, Any],
    events: list[tuple[str, dict[str, Any]]],
    *,
    order: int,
    span_id: str,
    parent_id: str | None,
    start: Any,
    status_code: Any,
    status_message: Any,
    nanos: bool = False,
) -> span_attributes.SpanView:
    """One span (already decoded to flat attributes and events) → its contribution to the trace."""
    name = str(span.get("name") or "")
    feedback: list[Feedback] = []
    ev_in: list[Message] = []
    ev_out: list[Message] = []
    error_message = str(status_message) if status_message not in (None, "") else None
    for ev_name, ev_attrs in events:
        if ev_name == "gen_ai.client.inference.operation.details":
            for key, value in ev_attrs.items():
                attrs.setdefault(key, value)
        elif ev_name == "gen_ai.evaluation.result":
            fb = evaluation_feedback(ev_attrs)
            if fb is not None:
                feedback.append(fb)
        elif ev_name == "exception":
            if error_message is None and ev_attrs.get("exception.message"):
                error_message = (
                    str(ev_attrs.get("exception.type", "")) + ": " + str(ev_attrs["exception.message"])
                )
                error_message = error_message.lstrip(": ")
        else:
            i, o = event_messages(ev_name, ev_attrs)
            ev_in += i
            ev_out += o
    kind, inputs, outputs, tool = span_attributes.span_content(attrs, name)
    if not inputs and not outputs and (ev_in or ev_out):
        kind = "llm" if kind == "other" else kind
        inputs, outputs = ev_in, ev_out
    if kind == "tool" and tool is not None and tool.result == "" and error_message:
        tool.result = error_message
    error = status_code in _ERROR_CODES or (
        isinstance(status_code, str) and status_code.upper().endswith("ERROR")
    )
    return span_attributes.SpanView(
        span_id=span_id,
        parent_id=parent_id,
        name=name,
        start=span_attributes.from_nanos(start) if nanos else span_attributes.to_datetime(start),
        order=order,
        kind=kind,
        inputs=inputs,
        outputs=outputs,
        tool=tool,
        error=error,
        error_message=error_message or (attrs.get("error.type") if error else None),
        feedback=feedback,
        prompt_version=_version(attrs),
        metadata=_meta(attrs),
    )


_VERSION_KEYS = (
    "llm.prompt_template.version",
    "prompt.version",
    "prompt_version",
    "gen_ai.prompt.version",
    "gen_ai.agent.version",
    "langfuse.release",
    "service.version",
)


def _version(attrs: Mapping[str, Any]) -> str | None:
    for key in _VERSION_KEYS:
        value = attrs.get(key)
        if value not in (None, "") and not isinstance(value, (dict, list)):
            return str(value)
    return None


_META_KEYS = {
    "gen_ai.request.model": "model",
    "gen_ai.response.model": "model",
    "llm.model_name": "model",
    "ai.model.id": "model",
    "gen_ai.provider.name": "provider",
    "gen_ai.system": "provider",
    "llm.provider": "provider",
    "llm.system": "provider",
    "gen_ai.agent.name": "agent",
    "agent.name": "agent",
    "gen_ai.conversation.id": "conversation_id",
    "session.id": "session_id",
    "user.id": "user_id",
    "service.name": "service",
}


def _meta(attrs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, name in _META_KEYS.items():
        value = attrs.get(key)
        if value not in (None, "") and name not in out and isinstance(value, (str, int, float)):
            out[name] = value
    return out


def build_trace(
    trace_id: str,
    views: list[span_attributes.SpanView],
    *,
    source: str,
    format: str,
    extra: Mapping[str, Any] | None = None,
) -> Trace:
    """The spans of one trace id → a Trace (shared with the flat-span reader)."""
    messages, feedback, started, root = assembly.assemble(views)
    metadata: dict[str, Any] = {}
    for view in sorted(views, key=lambda v: v.order):
        for key, value in view.metadata.items():
            metadata.setdefault(key, value)
    if root is not None and root.name:
        metadata["root_span"] = root.name
    metadata["spans"] = len(views)
    if extra:
        metadata.update(extra)
    version = next((v.prompt_version for v in views if v.prompt_version), None)
    return Trace(
        id=trace_id,
        source=source,
        messages=tuple(messages),
        feedback=tuple(feedback),
        started_at=started,
        prompt_version=version,
        metadata=metadata,
        format=format,
    )


_HEX = re.compile(r"[0-9a-fA-F]*")


def _hex_id(value: Any) -> str:
    text = str(value or "")
    return text.lower() if _HEX.fullmatch(text) else text


class OtlpReader:
    name = NAME

    def sniff(self, path: Path, head: bytes) -> int:
        text = plain_head(head)
        if b'"resourceSpans"' in text or b'"resource_spans"' in text:
            return 90
        if b'"scopeSpans"' in text or b'"instrumentationLibrarySpans"' in text:
            return 80
        if b'"resourceLogs"' in text or b'"resource_logs"' in text:
            return 85  # GenAI content events exported as log records
        return 0

    def read(self, path: Path, report: Report, context: ReadContext = PLAIN) -> Iterator[Trace]:
        groups = grouping.TraceGroups()
        order = 0
        for doc in documents(path, report, context):
            requests = doc.value if isinstance(doc.value, list) else [doc.value]
            found = False
            for request in requests:
                if not isinstance(request, dict):
                    continue
                resource_logs = request.get("resourceLogs", request.get("resource_logs"))
                if isinstance(resource_logs, list):
                    found = True
                    for log_trace, log_view in self._log_spans(resource_logs, path, order):
                        order += 1
                        line = doc.line_for(f'"{log_trace}"') if log_trace not in groups.groups else 0
                        for tid, views, first in groups.add(log_trace, log_view, line):
                            yield build_trace(
                                tid, views, source=f"{where(path, report)}:{first}", format=NAME
                            )
                resource_spans = request.get("resourceSpans", request.get("resource_spans"))
                if not isinstance(resource_spans, list):
                    continue
                found = True
                for rs in resource_spans:
                    if not isinstance(rs, dict):
                        skip(report, doc.line, "resourceSpans entry is not an object")
                        continue
                    resource = key_values((rs.get("resource") or {}).get("attributes"))
                    scopes = rs.get(
                        "scopeSpans", rs.get("scope_spans", rs.get("instrumentationLibrarySpans"))
                    )
                    for ss in scopes if isinstance(scopes, list) else []:
                        spans = ss.get("spans") if isinstance(ss, dict) else None
                        for span in spans if isinstance(spans, list) else []:
                            order += 1
                            view, trace_id, reason = self._span(span, resource, order)
                            if view is None:
                                line = (
                                    doc.line_for(str(span.get("spanId", "")))
                                    if isinstance(span, dict)
                                    else doc.line
                                )
                                skip(report, line, reason)
                                continue
                            line = (
                                doc.line_for(f'"{span.get("traceId")}"')
                                if trace_id not in groups.groups
                                else 0
                            )
                            for tid, views, first in groups.add(trace_id, view, line):
                                yield build_trace(
                                    tid, views, source=f"{where(path, report)}:{first}", format=NAME
                                )
            if not found:
                defer(report, doc.line, "not an OTLP export request (no resourceSpans or resourceLogs)")
        for tid, views, first in groups.drain():
            yield build_trace(tid, views, source=f"{where(path, report)}:{first}", format=NAME)

    def _log_spans(
        self, resource_logs: list[Any], path: Path, order: int
    ) -> list[tuple[str, span_attributes.SpanView]]:
        """GenAI events exported as log records → one synthetic span per (trace, span) they belong to.

        Ordinary application logs in the same export are not trace records and are passed over."""
        by_span: dict[tuple[str, str], list[tuple[Any, str, dict[str, Any]]]] = {}
        resources: dict[tuple[str, str], dict[str, Any]] = {}
        for rl in resource_logs:
            if not isinstance(rl, dict):
                continue
            resource = key_values((rl.get("resource") or {}).get("attributes"))
            scopes = rl.get("scopeLogs", rl.get("scope_logs"))
            for sl in scopes if isinstance(scopes, list) else []:
                records = sl.get("logRecords", sl.get("log_records")) if isinstance(sl, dict) else None
                for rec in records if isinstance(records, list) else []:
                    if not isinstance(rec, dict):
                        continue
                    attrs = key_values(rec.get("attributes"))
                    name = str(rec.get("eventName") or attrs.get("event.name") or "")
                    if not name.startswith("gen_ai."):
                        continue
                    body = any_value(rec.get("body"))
                    if body is not None:
                        attrs["body"] = body
                    key = (
                        _hex_id(rec.get("traceId")) or f"{path.name.split('.')[0]}:logs",
                        _hex_id(rec.get("spanId")) or "-",
                    )
                    when = rec.get("timeUnixNano") or rec.get("observedTimeUnixNano")
                    by_span.setdefault(key, []).append((when, name, attrs))
                    resources.setdefault(key, resource)
        out: list[tuple[str, span_attributes.SpanView]] = []
        for (trace_id, span_id), records in by_span.items():
            starts = [int(w) for w, _, _ in records if str(w or "").isdigit() and int(w) > 0]
            view = span_view(
                {"name": records[0][1]},
                dict(resources[(trace_id, span_id)]),
                [(name, attrs) for _, name, attrs in records],
                order=order + len(out),
                span_id=f"log:{span_id}",
                parent_id=span_id if span_id != "-" else None,
                start=min(starts) if starts else None,
                status_code=None,
                status_message=None,
                nanos=True,
            )
            out.append((trace_id, view))
        return out

    def _span(
        self, span: Any, resource: Mapping[str, Any], order: int
    ) -> tuple[span_attributes.SpanView | None, str, str]:
        if not isinstance(span, dict):
            return None, "", "span is not an object"
        trace_id = _hex_id(span.get("traceId", span.get("trace_id")))
        if not trace_id:
            return None, "", "span without traceId"
        try:
            attrs = key_values(span.get("attributes"))
            for key, value in resource.items():
                attrs.setdefault(key, value)
            events = [
                (str(e.get("name", "")), key_values(e.get("attributes")))
                for e in span.get("events") or []
                if isinstance(e, dict)
            ]
            status: Any = span.get("status") if isinstance(span.get("status"), dict) else {}
            view = span_view(
                span,
                attrs,
                events,
                order=order,
                span_id=_hex_id(span.get("spanId", span.get("span_id"))) or f"#{order}",
                parent_id=_hex_id(span.get("parentSpanId", span.get("parent_span_id"))) or None,
                start=span.get("startTimeUnixNano", span.get("start_time_unix_nano")),
                status_code=status.get("code"),
                status_message=status.get("message"),
                nanos=True,
            )
        except (TypeError, ValueError, AttributeError, RecursionError) as exc:
            return None, trace_id, f"malformed span ({type(exc).__name__})"
        return view, trace_id, ""


READER = OtlpReader()
