"""The trace core's structure: one definition of each top-level function, one role table for every
reader, no private names imported across modules."""

from __future__ import annotations

import ast
import json
from collections import defaultdict
from pathlib import Path

from selfimprove.traces.read import read_traces

PACKAGE = Path(__file__).resolve().parents[2] / "selfimprove" / "traces"


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_top_level_function_name_is_defined_twice_under_traces() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for path in modules():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                where[node.name].append(path.relative_to(PACKAGE).as_posix())
    assert {name: files for name, files in where.items() if len(files) > 1} == {}


def is_module(dotted: str) -> bool:
    path = PACKAGE.parents[1].joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def test_no_private_name_is_imported_from_another_module() -> None:
    # the package-private modules (`formats._io`, …) may be imported; names private to a module not
    imported = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("selfimprove"):
                imported += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                             if a.name.startswith("_") and not is_module(f"{node.module}.{a.name}")]
    assert imported == []


def test_the_registry_imports_no_format_by_name() -> None:
    source = (PACKAGE / "formats" / "__init__.py").read_text(encoding="utf-8")
    assert "importlib" not in source and "ModuleNotFoundError" not in source and "getattr" not in source


CUSTOMER_CHAT = [("customer", "where is my order?"), ("agent", "let me look"),
                 ("observation", "order shipped")]
EXPECTED = [("user", "where is my order?"), ("assistant", "let me look"), ("tool", "order shipped")]


def roles_of(path: Path) -> list[tuple[str, str]]:
    traces = list(read_traces([path]))
    assert len(traces) == 1, path
    return [(m.role, m.content) for m in traces[0].messages]


def test_customer_agent_and_observation_are_the_same_roles_through_a_record_reader(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    record = {"id": "c1", "messages": [{"role": r, "content": c} for r, c in CUSTOMER_CHAT]}
    path.write_text(json.dumps(record) + "\n")
    assert roles_of(path) == EXPECTED
    assert next(iter(read_traces([path]))).format == "openai"


def test_customer_agent_and_observation_are_the_same_roles_through_a_span_reader(tmp_path: Path) -> None:
    # one OTel GenAI chat span (OTLP JSON) whose input holds the customer's turns
    messages = [{"role": r, "parts": [{"type": "text", "content": c}]} for r, c in CUSTOMER_CHAT]
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "chat m",
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000",
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                {"key": "gen_ai.input.messages", "value": {"stringValue": json.dumps(messages)}}]}
    doc = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"scope": {"name": "t"},
                                                                             "spans": [span]}]}]}
    path = tmp_path / "spans.json"
    path.write_text(json.dumps(doc))
    assert roles_of(path) == EXPECTED
    assert next(iter(read_traces([path]))).format == "otlp"


def test_customer_agent_and_observation_are_the_same_roles_through_a_run_reader(tmp_path: Path) -> None:
    # a LangSmith run whose inputs carry the messages as plain role/content objects
    run = {"id": "r1", "trace_id": "r1", "run_type": "llm", "name": "chat",
           "dotted_order": "20240101T000000000000Zr1", "start_time": "2024-01-01T00:00:00Z",
           "inputs": {"messages": [{"role": r, "content": c} for r, c in CUSTOMER_CHAT[:2]]},
           "outputs": {"output": "done"}}
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(run) + "\n")
    assert roles_of(path)[:2] == EXPECTED[:2]
    assert next(iter(read_traces([path]))).format == "langsmith"
