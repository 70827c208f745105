"""LangSmith runs → traces: ingestion payloads `{post, patch}`, run lists, single runs, JSON Lines of runs.

Owns the run schema (RunBase/Run of the LangSmith SDK): a `patch` completes the `post` of the same
run (by `id`, else by `dotted_order`), nested `child_runs` are flattened, runs are grouped by
`trace_id`. An `llm` run's inputs/outputs hold OpenAI or LangChain-serialized messages (both
understood by `telemetry.to_messages`); `tool` runs add tool results; a run's `error` marks its span
(tool errors become `is_error` tool messages, other errors a `status: error` feedback); `feedback`
records and `feedback_stats` become `Feedback`.

Never judges outcomes and never contacts LangSmith: it reads exported JSON only.
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

NAME = "langsmith"
_RUN_KEYS = re.compile(rb'(?<!\\)"(run_type|dotted_order|parent_run_id|session_name|child_runs)"\s*:')
MAX_BUFFERED_RUNS = 50_000  # runs held while their trace may still get runs or updates
_VERSION_KEYS = ("prompt_version", "ls_prompt_version", "version", "revision_id")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_feedback(value: Mapping[str, Any]) -> bool:
    return "key" in value and "run_id" in value and "run_type" not in value and "inputs" not in value


def _is_run(value: Any) -> bool:
    return isinstance(value, dict) and (
        "run_type" in value
        or "dotted_order" in value
        or ("trace_id" in value and ("inputs" in value or "outputs" in value))
    )


def _runs_in(value: Any) -> list[Any] | None:
    """The runs a document holds, in order (posts before patches), or None when it holds none."""
    if isinstance(value, dict):
        if isinstance(value.get("post"), list) or isinstance(value.get("patch"), list):
            posts: list[Any] = _list(value.get("post"))
            patches: list[Any] = _list(value.get("patch"))
            return [*posts, *({"__patch__": True, **p} if isinstance(p, dict) else p for p in patches)]
        for key in ("runs", "data", "items"):
            if isinstance(value.get(key), list):
                return list(value[key])
        return [value] if _is_run(value) else None
    if isinstance(value, list):
        return value
    return None


def _flatten(run: Mapping[str, Any], out: list[Mapping[str, Any]], depth: int = 0) -> None:
    out.append(run)
    children = run.get("child_runs")
    if isinstance(children, list) and depth < 64:
        for child in children:
            if isinstance(child, dict):
                if "trace_id" not in child and "trace_id" in run:
                    child = {**child, "trace_id": run["trace_id"]}
                if "parent_run_id" not in child and "id" in run:
                    child = {**child, "parent_run_id": run["id"]}
                _flatten(child, out, depth + 1)


def _feedback(run: Mapping[str, Any]) -> list[Feedback]:
    out: list[Feedback] = []
    records = run.get("feedback")
    for record in records if isinstance(records, list) else []:
        if not isinstance(record, dict):
            continue
        key = str(record.get("key") or "") or None
        comment = record.get("comment") if isinstance(record.get("comment"), str) else None
        score, value = record.get("score"), record.get("value")
        if record.get("correction") not in (None, "", {}):
            correction = record["correction"]
            text = correction if isinstance(correction, str) else values.dumps(correction)
            out.append(Feedback(kind="label", value="correction", comment=text, passed=False, name=key))
            continue
        if isinstance(score, bool):
            out.append(Feedback(kind="success", value=score, comment=comment, passed=score, name=key))
        elif isinstance(score, (int, float)):
            out.append(Feedback(kind="score", value=float(score), comment=comment, name=key))
        elif value not in (None, ""):
            out.append(
                Feedback(
                    kind="label", value=str(value), comment=comment, passed=label_passed(value), name=key
                )
            )
    stats = run.get("feedback_stats")
    if isinstance(stats, dict):
        for key, stat in stats.items():
            avg = stat.get("avg") if isinstance(stat, dict) else None
            if isinstance(avg, (int, float)) and not isinstance(avg, bool):
                out.append(
                    Feedback(
                        kind="score",
                        value=float(avg),
                        name=str(key),
                        comment=f"average of {stat.get('n', '?')}",
                    )
                )
    return out


def _tool_output(outputs: Any) -> tuple[str, str | None]:
    out = outputs.get("output", outputs) if isinstance(outputs, dict) else outputs
    out = values.loads_maybe(out)
    if isinstance(out, dict) and (out.get("lc") is not None or out.get("type") == "tool"):
        messages = telemetry.to_messages([out], "tool")
        if messages:
            return messages[0].content, messages[0].tool_call_id
    if isinstance(out, dict) and "content" in out and "tool_call_id" in out:
        return telemetry.field_text(out.get("content")), str(out["tool_call_id"])
    return (values.dumps(out) if out is not None else ""), None


def _view(run: Mapping[str, Any], order: int) -> span_attributes.SpanView:
    run_type = str(run.get("run_type") or "")
    error = run.get("error")
    error_text = str(error) if error not in (None, "", False) else None
    status = str(run.get("status") or "")
    extra: Mapping[str, Any] = _map(run.get("extra"))
    metadata: Mapping[str, Any] = _map(extra.get("metadata"))
    view = span_attributes.SpanView(
        span_id=str(run.get("id") or f"#{order}"),
        parent_id=str(run["parent_run_id"]) if run.get("parent_run_id") else None,
        name=str(run.get("name") or ""),
        start=span_attributes.to_datetime(run.get("start_time")),
        order=order,
        error=error_text is not None or status == "error",
        error_message=error_text,
        feedback=_feedback(run),
        prompt_version=next(
            (
                str(metadata[k])
                for k in _VERSION_KEYS
                if isinstance(metadata.get(k), (str, int, float)) and metadata.get(k) != ""
            ),
            None,
        ),
    )
    meta: dict[str, Any] = {}
    for src, dst in (("ls_model_name", "model"), ("ls_provider", "provider")):
        if isinstance(metadata.get(src), str):
            meta[dst] = metadata[src]
    if isinstance(run.get("session_name"), str):
        meta["project"] = run["session_name"]
    view.metadata = meta
    inputs, outputs = run.get("inputs"), run.get("outputs")
    if run_type == "tool":
        view.kind = "tool"
        result, call_id = _tool_output(outputs)
        if not call_id and isinstance(inputs, dict) and isinstance(inputs.get("tool_call_id"), str):
            call_id = inputs["tool_call_id"]
        args = inputs.get("input", inputs) if isinstance(inputs, dict) else inputs
        view.tool = span_attributes.ToolResult(
            name=view.name or None,
            call_id=call_id,
            result=result or (error_text or ""),
            arguments=values.parse_arguments(args),
        )
        return view
    view.kind = "llm" if run_type in ("llm", "chat", "prompt_llm") else "other"
    view.inputs = telemetry.with_instructions(telemetry.to_messages(inputs), outputs) if inputs else []
    view.outputs = telemetry.to_messages(outputs, "assistant") if outputs else []
    if view.kind == "llm" and isinstance(inputs, dict) and isinstance(inputs.get("prompts"), list):
        view.inputs = [m for p in inputs["prompts"] for m in telemetry.to_messages(p)]
    return view


def _merge(base: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if key == "__patch__":
            continue
        if value is None or value == {} or value == []:
            base.setdefault(key, value)
        elif key == "extra" and isinstance(value, dict) and isinstance(base.get("extra"), dict):
            base["extra"] = {**base["extra"], **value}
        else:
            base[key] = value


class LangSmithReader:
    name = NAME

    def sniff(self, path: Path, head: bytes) -> int:
        text = plain_head(head)
        keys = {m.group(1) for m in _RUN_KEYS.finditer(text)}
        if b'"post"' in text and (b'"run_type"' in text or b'"dotted_order"' in text):
            return 90
        if b'"run_type"' in text and (b'"trace_id"' in text or b'"dotted_order"' in text):
            return 85
        return 60 if len(keys) >= 2 else 0

    def read(self, path: Path, report: Report, context: ReadContext = PLAIN) -> Iterator[Trace]:
        runs: dict[str, dict[str, Any]] = {}
        lines: dict[str, int] = {}
        by_order: dict[str, str] = {}
        feedback_records: list[Mapping[str, Any]] = []
        for doc in documents(path, report, context):
            items = _runs_in(doc.value)
            if items is None:
                defer(report, doc.line, "not a LangSmith run (no run_type, trace_id or dotted_order)")
                continue
            for item in items:
                if isinstance(item, dict) and _is_feedback(item):
                    feedback_records.append(item)
                    continue
                if not isinstance(item, dict) or not (_is_run(item) or item.get("__patch__") or "id" in item):
                    skip(report, doc.line, "list item is not a run object")
                    continue
                flat: list[Mapping[str, Any]] = []
                _flatten(item, flat)
                for run in flat:
                    run_id = str(run.get("id") or "") or by_order.get(str(run.get("dotted_order") or ""), "")
                    if run.get("__patch__"):
                        if run_id in runs:
                            _merge(runs[run_id], run)
                            continue
                        if not run_id:
                            skip(
                                report, doc.line, "run update matches no created run (no id or dotted_order)"
                            )
                            continue
                    if not run_id:
                        run_id = f"#{len(runs) + 1}"
                    if run_id in runs:
                        _merge(runs[run_id], run)
                        continue
                    runs[run_id] = {k: v for k, v in run.items() if k not in ("child_runs", "__patch__")}
                    lines[run_id] = doc.line_for(f'"{run_id}"')
                    if run.get("dotted_order"):
                        by_order[str(run["dotted_order"])] = run_id
                if len(runs) > MAX_BUFFERED_RUNS:  # bounded memory: emit all but the current trace
                    current = str(flat[-1].get("trace_id") or "") or None
                    yield from _emit_runs(runs, lines, path, report, keep=current, feedback=feedback_records)
        yield from _emit_runs(runs, lines, path, report, feedback=feedback_records)


def _emit_runs(
    runs: dict[str, dict[str, Any]],
    lines: dict[str, int],
    path: Path,
    report: Report,
    keep: str | None = None,
    feedback: list[Mapping[str, Any]] | None = None,
) -> Iterator[Trace]:
    """Group buffered runs by trace and yield the traces, leaving the trace `keep` buffered.
    Feedback records exported beside the runs join the trace of their run."""
    groups: dict[str, list[tuple[str, span_attributes.SpanView]]] = {}
    kept: list[str] = []
    extra: dict[str, list[Feedback]] = {}
    owners: list[str] = []
    for record in feedback or []:
        run_id = str(record.get("run_id") or "")
        owner = str(record.get("trace_id") or "")
        if not owner and run_id in runs:
            owner = str(runs[run_id].get("trace_id") or "") or _root_of(run_id, runs)
        owners.append(owner)
        if owner and owner != keep:
            extra.setdefault(owner, []).extend(_feedback({"feedback": [record]}))
    for order, (run_id, run) in enumerate(runs.items()):
        trace_id = str(run.get("trace_id") or "") or _root_of(run_id, runs)
        if keep is not None and trace_id == keep:
            kept.append(run_id)
            continue
        try:
            view = _view(run, order)
        except (TypeError, ValueError, AttributeError, RecursionError) as exc:
            skip(report, lines.get(run_id), f"malformed run ({type(exc).__name__})")
            continue
        groups.setdefault(trace_id, []).append((run_id, view))
    for trace_id, more in extra.items():
        if trace_id in groups:
            groups[trace_id][0][1].feedback.extend(more)
    if feedback is not None:  # records whose run has not been read yet wait for it
        feedback[:] = [r for r, owner in zip(feedback, owners, strict=True) if owner not in groups]
    for trace_id, members in groups.items():
        first = min(lines.get(run_id, 1) for run_id, _ in members)
        yield build_trace(
            trace_id, [v for _, v in members], source=f"{where(path, report)}:{first}", format=NAME
        )
    survivors = {run_id: runs[run_id] for run_id in kept}
    runs.clear()
    runs.update(survivors)


def _root_of(run_id: str, runs: Mapping[str, Mapping[str, Any]]) -> str:
    seen = set()
    current = run_id
    while current in runs and runs[current].get("parent_run_id") and current not in seen:
        seen.add(current)
        current = str(runs[current]["parent_run_id"])
    return current


READER = LangSmithReader()
