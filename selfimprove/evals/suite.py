"""Eval suites (DESIGN §6): promptfoo-style YAML files or JSONL (one case a line) → frozen `Case`s.

Owns: reading suite files (from git objects at a commit, or from text), validating them against
`schemas/suite.schema.json` with errors that name the file, line and JSON path, merging `defaultTest`
into each case, checking what a schema cannot (regexes compile, is-json schemas are schemas, ids are
unique), and filling `{{var}}` placeholders.

Must never: read the working tree (the caller hands over bytes read at a commit), guess at a malformed
case, or let a case without assertions pass silently.

Case ids: a case's `id` when it has one, else `file:line` of the case, so every regressed or fixed case
in a report points at the line to open.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from selfimprove.errors import SelfImproveError
from selfimprove.validation import (
    deepest_error,
    describe,
    did_you_mean,
    json_path,
    pattern_choices,
    yaml_line,
)

SUITE_EXTENSIONS = (".yaml", ".yml", ".jsonl", ".json")
_VAR = re.compile(r"\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}")
HINT = "see 'Eval suites' in the README"


@dataclass(frozen=True)
class Assertion:
    type: str  # as written, e.g. "not-icontains"
    value: Any = None
    weight: float = 1.0
    threshold: float | None = None
    provider: str | None = None  # judge model for llm-rubric
    where: str = ""

    @property
    def negated(self) -> bool:
        return self.type.startswith("not-")

    @property
    def base_type(self) -> str:
        return self.type.removeprefix("not-")


@dataclass(frozen=True)
class Case:
    id: str
    where: str  # file:line
    prompt: str | None  # repo-relative prompt file rendered as the system message
    description: str = ""
    vars: Mapping[str, Any] = field(default_factory=dict)
    messages: tuple[Mapping[str, Any], ...] = ()
    tags: tuple[str, ...] = ()
    asserts: tuple[Assertion, ...] = ()
    threshold: float | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    cases: tuple[Case, ...]
    files: tuple[str, ...]

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(sorted({t for c in self.cases for t in c.tags}))


# -- schema -----------------------------------------------------------------------------------------

def _schema() -> dict[str, Any]:
    from selfimprove.config import load_schema

    return load_schema("suite.schema.json")


def _case_schema() -> dict[str, Any]:
    full = _schema()
    return {"$schema": full["$schema"], "$defs": full["$defs"], "$ref": "#/$defs/case"}


def _describe(error: Any) -> str:
    both = isinstance(error.instance, dict) and {"input", "messages"} <= set(error.instance)
    if error.validator == "not" and both:
        return "a case has either input or messages, not both"
    if error.validator == "pattern" and error.path and error.path[-1] == "type":
        choices = pattern_choices(str(error.validator_value))
        return f"unknown assertion type {error.instance!r}{did_you_mean(str(error.instance), choices)}"
    if error.validator == "oneOf" and error.path and error.path[-1] == "value":
        return "tool-called takes a tool name or {name, arguments}"
    return describe(error)


# -- parsing ----------------------------------------------------------------------------------------

def parse_suite_file(text: str, path: str, *, default_prompt: str | None) -> list[Case]:
    """The cases of one suite file (YAML, or JSON Lines for `.jsonl`)."""
    if path.endswith(".jsonl"):
        return _parse_jsonl(text, path, default_prompt)
    return _parse_yaml(text, path, default_prompt)


def _parse_yaml(text: str, path: str, default_prompt: str | None) -> list[Case]:
    import jsonschema
    import yaml

    try:
        doc = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise SelfImproveError(f"invalid YAML: {exc.problem or exc}",
                               where=f"{path}:{mark.line + 1}" if mark else path, hint=HINT) from None
    except yaml.YAMLError as exc:
        raise SelfImproveError(f"invalid YAML: {exc}", where=path, hint=HINT) from None
    if isinstance(doc, list):  # a bare list of cases, as promptfoo's tests files allow
        doc = {"tests": doc}
        location_prefix: list[Any] = []
    else:
        location_prefix = ["tests"]
    if doc is None:
        raise SelfImproveError("empty suite file", where=path, hint="add a 'tests:' list of cases")
    validator = jsonschema.Draft202012Validator(_schema())
    error = deepest_error(validator, doc)
    if error is not None:
        location = list(error.absolute_path)
        node_location = location if location_prefix else location[1:]
        line = yaml_line(root, node_location)
        raise SelfImproveError(f"{json_path(location)}: {_describe(error)}",
                               where=f"{path}:{line}" if line else path, hint=HINT)
    prompt = doc.get("prompt", default_prompt)
    default = doc.get("defaultTest") or {}
    config = doc.get("config") or {}
    cases = []
    for index, raw in enumerate(doc["tests"]):
        line = yaml_line(root, [*location_prefix, index]) or 1
        cases.append(_build(raw, default, config, prompt, path, line, f"$.tests[{index}]"))
    return cases


def _parse_jsonl(text: str, path: str, default_prompt: str | None) -> list[Case]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(_case_schema())
    cases = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError as exc:
            raise SelfImproveError(f"invalid JSON: {exc}", where=f"{path}:{number}",
                                   hint="one JSON object per line") from None
        error = deepest_error(validator, raw)
        if error is not None:
            raise SelfImproveError(f"{json_path(list(error.absolute_path))}: {_describe(error)}",
                                   where=f"{path}:{number}", hint=HINT)
        cases.append(_build(raw, {}, {}, default_prompt, path, number, "$"))
    return cases


def _build(raw: Mapping[str, Any], default: Mapping[str, Any], config: Mapping[str, Any],
           prompt: str | None, path: str, line: int, json_path: str) -> Case:
    where = f"{path}:{line}"
    asserts = tuple(
        _assertion(a, f"{where}", f"{json_path}.assert")
        for a in [*(default.get("assert") or ()), *(raw.get("assert") or ())]
    )
    if not asserts:
        raise SelfImproveError(f"{json_path}: the case has no assertions", where=where,
                               hint="add an 'assert:' list to the case or to defaultTest")
    messages: tuple[Mapping[str, Any], ...]
    if "messages" in raw:
        messages = tuple(dict(m) for m in raw["messages"])
    elif "input" in raw:
        messages = ({"role": "user", "content": raw["input"]},)
    else:
        messages = ()
    case_prompt = raw.get("prompt", prompt)
    return Case(
        id=str(raw.get("id") or where),
        where=where,
        prompt=case_prompt,
        description=str(raw.get("description") or ""),
        vars={**(default.get("vars") or {}), **(raw.get("vars") or {})},
        messages=messages,
        tags=tuple(dict.fromkeys([*(default.get("tags") or ()), *(raw.get("tags") or ())])),
        asserts=asserts,
        threshold=raw.get("threshold", default.get("threshold")),
        config={**config, **(raw.get("config") or {})},
        metadata={**(default.get("metadata") or {}), **(raw.get("metadata") or {})},
    )


def _assertion(raw: Mapping[str, Any], where: str, json_path: str) -> Assertion:
    assertion = Assertion(
        type=raw["type"], value=raw.get("value"), weight=float(raw.get("weight", 1.0)),
        threshold=raw.get("threshold"), provider=raw.get("provider"), where=where,
    )
    if assertion.base_type == "regex":
        try:
            re.compile(str(assertion.value))
        except re.error as exc:
            raise SelfImproveError(f"{json_path}: invalid regex {assertion.value!r}: {exc}", where=where,
                                   hint="use Python regular expression syntax") from None
    if assertion.base_type == "is-json" and isinstance(assertion.value, dict):
        import jsonschema

        try:
            jsonschema.Draft202012Validator.check_schema(assertion.value)
        except jsonschema.SchemaError as exc:
            raise SelfImproveError(f"{json_path}: is-json value is not a valid JSON Schema: {exc.message}",
                                   where=where, hint="give a JSON Schema object, or no value") from None
    return assertion


def load_suite(files: Mapping[str, bytes], *, default_prompt: str | None) -> Suite:
    """A suite from suite files' bytes (path → bytes), in path order. Ids must be unique."""
    cases: list[Case] = []
    for path in sorted(files):
        try:
            text = files[path].decode("utf-8")
        except UnicodeDecodeError:
            raise SelfImproveError("not UTF-8 text", where=path, hint="save the suite as UTF-8") from None
        cases.extend(parse_suite_file(text, path, default_prompt=default_prompt))
    seen: dict[str, str] = {}
    for case in cases:
        if case.id in seen:
            raise SelfImproveError(f"duplicate case id {case.id!r} (first at {seen[case.id]})",
                                   where=case.where, hint="give every case a unique id")
        seen[case.id] = case.where
        if case.prompt is None:
            raise SelfImproveError("no prompt for this case", where=case.where,
                                   hint="set 'prompt:' in the suite, or list a prompt in selfimprove.yaml")
    if not cases:
        raise SelfImproveError("the eval suite has no cases", where=", ".join(sorted(files)) or None,
                               hint="add cases under 'tests:'")
    return Suite(cases=tuple(cases), files=tuple(sorted(files)))


def suite_files_at(repo: Any, ref: str, suite_path: str) -> dict[str, bytes]:
    """The suite's files at a commit: `suite_path` itself, or every suite file under that directory."""
    suite_path = suite_path.strip("/")
    if suite_path in ("", "."):
        raise SelfImproveError("eval.suite must name a file or directory inside the repo, not its root",
                               hint="e.g. suite: evals/")
    data = repo.read_at(ref, suite_path)
    if data is not None:
        return {suite_path: data}
    names = [n for n in repo.list_at(ref, suite_path) if n.endswith(SUITE_EXTENSIONS)]
    if not names:
        raise SelfImproveError(f"eval suite {suite_path!r} not found at {ref[:12]}",
                               hint="commit the suite files (eval.suite in selfimprove.yaml) on the branch")
    files: dict[str, bytes] = {}
    for name in names:
        blob = repo.read_at(ref, name)
        if blob is not None:
            files[name] = blob
    return files


# -- rendering --------------------------------------------------------------------------------------

def _lookup(values: Mapping[str, Any], name: str) -> Any:
    current: Any = values
    for part in name.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            raise KeyError(name)
    return current


def fill(text: str, values: Mapping[str, Any]) -> str:
    """Replace `{{name}}` (and `{{a.b}}`) with the case's vars; unknown names are left as written."""

    def sub(match: re.Match[str]) -> str:
        try:
            value = _lookup(values, match.group(1))
        except KeyError:
            return match.group(0)
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return _VAR.sub(sub, text) if "{{" in text else text


def render_messages(case: Case, system: str) -> list[dict[str, Any]]:
    """The messages sent for a case: the rendered prompt as the system message, then the case's own."""
    messages: list[dict[str, Any]] = []
    if system.strip():
        messages.append({"role": "system", "content": fill(system, case.vars)})
    for message in case.messages:
        copy = dict(message)
        if isinstance(copy.get("content"), str):
            copy["content"] = fill(copy["content"], case.vars)
        messages.append(copy)
    return messages
