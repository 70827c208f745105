"""Langfuse exports → traces: `{trace, observations}` documents, lists or JSON Lines of them, API pages.

Owns Langfuse's data model: a trace with its observations (GENERATION, TOOL, SPAN, AGENT, …) and
scores. A GENERATION's `input`/`output` hold whatever the instrumented SDK sent (OpenAI chat or
Responses items, Anthropic blocks, Gemini contents, LangChain messages, OTel GenAI parts, plain
text), normalised by `telemetry.to_messages`, with the raw OTel attributes Langfuse keeps in
`metadata.attributes` as a fallback. TOOL observations (or spans whose attributes say they ran a
tool) add tool results; an observation at level ERROR marks its tool result `is_error` or, for any
other observation, adds a `status: error` feedback with its `statusMessage`. Scores become
feedback: NUMERIC in [0, 1] a `score` (higher is better, so metrics where lower is better —
hallucination, toxicity, … — are inverted and say so in `comment`), BOOLEAN a pass/fail score,
CATEGORICAL/TEXT a `label`, CORRECTION a failing label. `trace.version`, else `trace.release`,
else a managed prompt's `promptName:promptVersion` is the trace's prompt version.

Never judges outcomes and never contacts Langfuse.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from selfimprove.traces.formats import span_attributes
from selfimprove.traces.formats._io import PLAIN, ReadContext
from selfimprove.traces.formats.jsondocs import Report, defer, documents, plain_head, skip, where
from selfimprove.traces.formats.otlp import build_trace, label_passed
from selfimprove.traces.messages import telemetry, values
from selfimprove.traces.model import Feedback, Trace

NAME = "langfuse"
MAX_BUFFERED_OBSERVATIONS = 50_000  # observations held while their trace may still get more
LOWER_IS_BETTER = (
    "hallucination",
    "toxicity",
    "toxic",
    "bias",
    "harm",
    "pii",
    "jailbreak",
    "injection",
    "latency",
    "cost",
    "error",
    "refusal",
)


def langfuse_score(score: Mapping[str, Any]) -> Feedback | None:
    name = str(score.get("name") or "") or None
    data_type = str(score.get("dataType") or "").upper()
    comment = score.get("comment") if isinstance(score.get("comment"), str) else None
    value = score.get("value")
    text = score.get("stringValue") or score.get("longStringValue")
    if data_type == "CORRECTION" or name == "correction":
        return Feedback(
            kind="label",
            value="correction",
            comment=str(text or comment or "") or None,
            passed=False,
            name=name,
        )
    if data_type in ("CATEGORICAL", "TEXT") or (isinstance(value, str) and value):
        label = text if text not in (None, "") else value
        if label in (None, ""):
            return None
        return Feedback(
            kind="label", value=str(label), comment=comment, passed=label_passed(label), name=name
        )
    if isinstance(value, bool):
        value = 1.0 if value else 0.0
    if not isinstance(value, (int, float)):
        return None
    number = float(value)
    inverted = bool(name) and any(word in str(name).lower() for word in LOWER_IS_BETTER)
    if 0.0 <= number <= 1.0:
        if inverted:
            number = round(1.0 - number, 9)
            note = f"{name} {value} (lower is better), recorded as 1 - value"
            comment = f"{note}: {comment}" if comment else note
        passed = (number >= 0.5) if data_type == "BOOLEAN" else None
        return Feedback(kind="score", value=number, comment=comment, passed=passed, name=name)
    return Feedback(kind="label", value=str(value), comment=comment, name=name)


def _metadata(obs: Mapping[str, Any]) -> dict[str, Any]:
    meta = values.loads_maybe(obs.get("metadata"))
    return dict(meta) if isinstance(meta, dict) else {}


def _attributes(meta: Mapping[str, Any]) -> dict[str, Any]:
    attrs = values.loads_maybe(meta.get("attributes"))
    return dict(attrs) if isinstance(attrs, dict) else {}


def _observation_view(obs: Mapping[str, Any], order: int) -> span_attributes.SpanView:
    kind_name = str(obs.get("type") or "SPAN").upper()
    meta = _metadata(obs)
    attrs = _attributes(meta)
    level = str(obs.get("level") or "").upper()
    error = level == "ERROR"
    status_message = obs.get("statusMessage") if isinstance(obs.get("statusMessage"), str) else None
    name = str(obs.get("name") or "")
    view = span_attributes.SpanView(
        span_id=str(obs.get("id") or f"#{order}"),
        parent_id=str(obs["parentObservationId"]) if obs.get("parentObservationId") else None,
        name=name,
        start=span_attributes.to_datetime(obs.get("startTime")),
        order=order,
        error=error,
        error_message=status_message,
    )
    if obs.get("promptName") and obs.get("promptVersion") is not None:
        view.prompt_version = f"{obs['promptName']}:{obs['promptVersion']}"
    if isinstance(obs.get("model"), str):
        view.metadata["model"] = obs["model"]
    attr_kind = span_attributes.span_kind(attrs, name)
    if kind_name == "TOOL" or (attr_kind == "tool" and kind_name != "GENERATION"):
        view.kind = "tool"
        tool_name = (
            attrs.get("gen_ai.tool.name")
            or attrs.get("tool.name")
            or attrs.get("ai.toolCall.name")
            or (
                name.split(":", 1)[1].strip()
                if name.startswith("running tool:")
                else name[len("execute_tool ") :]
                if name.startswith("execute_tool ")
                else name
            )
        )
        call_id = attrs.get("gen_ai.tool.call.id") or attrs.get("ai.toolCall.id") or attrs.get("tool_call.id")
        output = values.loads_maybe(obs.get("output"))
        if isinstance(output, dict) and isinstance(output.get("content"), list):
            result = telemetry.field_text(output["content"])  # MCP / Anthropic tool result blocks
        elif output is None:
            result = ""
        else:
            result = values.dumps(output)
        if not result and error and status_message:
            result = status_message
        view.tool = span_attributes.ToolResult(
            name=str(tool_name) if tool_name else None,
            call_id=str(call_id) if call_id else None,
            result=result,
            arguments=values.parse_arguments(obs.get("input")),
        )
        return view
    view.kind = "llm" if kind_name == "GENERATION" else "other"
    view.inputs = telemetry.to_messages(obs.get("input"))
    view.outputs = telemetry.to_messages(obs.get("output"), "assistant")
    if view.inputs:
        view.inputs = telemetry.with_instructions(view.inputs, obs.get("output"))
    if attrs and (view.kind == "llm" or attr_kind == "llm") and not (view.inputs and view.outputs):
        _, a_in, a_out, _ = span_attributes.span_content(attrs, name)
        view.inputs = view.inputs or a_in
        view.outputs = view.outputs or a_out
        view.kind = "llm" if (view.inputs or view.outputs) and attr_kind == "llm" else view.kind
    if view.kind == "llm" and not view.inputs and not view.outputs:
        view.kind = "other"  # lifecycle markers (…start / …finish) carry no content
    return view


def _trace_view(trace: Mapping[str, Any]) -> span_attributes.SpanView:
    """The trace object itself: its input/output are the fallback conversation, its scores feedback."""
    view = span_attributes.SpanView(
        span_id=f"trace:{trace.get('id')}",
        name=str(trace.get("name") or ""),
        start=span_attributes.to_datetime(trace.get("timestamp")),
        order=-1,
        inputs=telemetry.to_messages(trace.get("input")),
        outputs=telemetry.to_messages(trace.get("output"), "assistant"),
    )
    scores = trace.get("scores")
    for score in scores if isinstance(scores, list) else []:
        if isinstance(score, dict):
            fb = langfuse_score(score)
            if fb is not None:
                view.feedback.append(fb)
    corrections = trace.get("corrections")
    for corr in corrections if isinstance(corrections, list) else []:
        if isinstance(corr, dict):
            fb = langfuse_score({**corr, "dataType": "CORRECTION"})
            if fb is not None:
                view.feedback.append(fb)
    for key in ("version", "release"):
        if trace.get(key) not in (None, ""):
            view.prompt_version = str(trace[key])
            break
    return view


def _merge_trace(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> Mapping[str, Any]:
    """The same trace seen twice (a trace object and scores exported apart): fields and scores joined."""
    if old is None:
        return new
    merged = dict(old)
    for key, value in new.items():
        if key == "scores":
            merged["scores"] = [*(old.get("scores") or []), *(value or [])]
        elif value is not None and merged.get(key) is None:
            merged[key] = value
    return merged


def _split(value: Any) -> list[tuple[Mapping[str, Any] | None, list[Any]]]:
    """A document → [(trace or None, observations)]."""
    if isinstance(value, dict):
        if isinstance(value.get("trace"), dict):
            obs = value.get("observations")
            return [(value["trace"], obs if isinstance(obs, list) else [])]
        if isinstance(value.get("data"), list):
            return [x for item in value["data"] for x in _split(item)]
        if isinstance(value.get("observations"), list) and "id" in value and "type" not in value:
            return [(value, value["observations"])]
        if "traceId" in value and "type" in value:
            return [(None, [value])]
        if "traceId" in value and ("dataType" in value or ("name" in value and "value" in value)):
            return [({"id": value["traceId"], "scores": [value]}, [])]  # a score exported on its own
        return []
    if isinstance(value, list):
        return [x for item in value for x in _split(item)]
    return []


class LangfuseReader:
    name = NAME

    def sniff(self, path: Path, head: bytes) -> int:
        text = plain_head(head)
        if b'"observations"' in text and (
            b'"trace"' in text or b'"traceId"' in text or b'"projectId"' in text
        ):
            return 90
        if re.match(rb'\s*[\[{]?\s*\{\s*"trace"\s*:\s*\{', text) and b'"projectId"' in text:
            return 90
        if b'"parentObservationId"' in text or (b'"traceId"' in text and b'"GENERATION"' in text):
            return 80
        return 0

    def read(self, path: Path, report: Report, context: ReadContext = PLAIN) -> Iterator[Trace]:
        traces: dict[str, Mapping[str, Any]] = {}
        observations: dict[str, dict[str, Mapping[str, Any]]] = {}
        lines: dict[str, int] = {}
        buffered = 0
        for doc in documents(path, report, context):
            parts = _split(doc.value)
            if not parts:
                defer(report, doc.line, "not a Langfuse export (no trace with observations)")
                continue
            for trace, obs_list in parts:
                trace_id = str((trace or {}).get("id") or "")
                if trace is not None and not trace_id:
                    skip(report, doc.line, "trace without an id")
                    continue
                if trace is not None:
                    traces[trace_id] = _merge_trace(traces.get(trace_id), trace)
                    lines.setdefault(trace_id, doc.line_for(f'"{trace_id}"'))
                    inline = trace.get("observations")
                    if isinstance(inline, list):
                        obs_list = [*obs_list, *(o for o in inline if isinstance(o, dict))]
                for obs in obs_list:
                    if not isinstance(obs, dict):
                        continue  # observation ids only (the trace object's summary list)
                    owner = str(obs.get("traceId") or trace_id)
                    if not owner:
                        skip(report, doc.line, "observation without a traceId")
                        continue
                    obs_id = str(obs.get("id") or f"#{len(observations.get(owner, {}))}")
                    observations.setdefault(owner, {}).setdefault(obs_id, obs)
                    lines.setdefault(owner, doc.line_for(f'"{owner}"'))
                    buffered += 1
            if buffered > MAX_BUFFERED_OBSERVATIONS:  # bounded memory: emit all but the latest trace
                latest = next(reversed(lines)) if lines else None
                yield from _emit_traces(traces, observations, lines, path, report, keep=latest)
                buffered = sum(len(v) for v in observations.values())
        yield from _emit_traces(traces, observations, lines, path, report)


def _emit_traces(
    traces: dict[str, Mapping[str, Any]],
    observations: dict[str, dict[str, Mapping[str, Any]]],
    lines: dict[str, int],
    path: Path,
    report: Report,
    keep: str | None = None,
) -> Iterator[Trace]:
    """Yield every buffered trace except `keep`, and forget them."""
    for trace_id in [t for t in dict.fromkeys([*traces, *observations]) if t != keep]:
        trace = traces.pop(trace_id, {})
        obs_map = observations.pop(trace_id, {})
        line = lines.pop(trace_id, 1)
        views: list[span_attributes.SpanView] = []
        try:
            if trace:
                views.append(_trace_view(trace))
            for order, obs in enumerate(obs_map.values()):
                views.append(_observation_view(obs, order))
        except (TypeError, ValueError, AttributeError, RecursionError) as exc:
            skip(report, line, f"malformed trace ({type(exc).__name__})")
            continue
        extra: dict[str, Any] = {}
        for key in ("name", "userId", "sessionId", "environment"):
            if isinstance(trace.get(key), str) and trace.get(key):
                extra[{"userId": "user_id", "sessionId": "session_id"}.get(key, key)] = trace[key]
        if isinstance(trace.get("tags"), list) and trace["tags"]:
            extra["tags"] = [str(t) for t in trace["tags"]]
        yield build_trace(trace_id, views, source=f"{where(path, report)}:{line}", format=NAME, extra=extra)


READER = LangfuseReader()
