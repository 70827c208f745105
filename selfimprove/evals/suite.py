"""Eval suites (DESIGN §6): selfimprove's YAML or JSONL suites, and promptfoo configs read unchanged,
→ frozen `Case`s.

Owns: reading suite files (from git objects at a commit, or from text) and the files they name by
`file://` (through a `Source`: prompts, tests, vars, tools, python assertions), validating them against
`schemas/suite.schema.json` with errors that name the file, line and JSON path of the offending key,
merging `defaultTest` into each case, expanding a promptfoo config into one case per test × var
combination × prompt × provider, collecting every unsupported item into one error (or, asked to,
into the suite's `skipped` list), checking what a schema cannot (regexes compile, is-json schemas are
schemas, ids are unique), and rendering a case's messages.

Must never: read the working tree itself (the caller's `Source` reads at a commit; only a suite given
outside the repo is read from disk), guess at a malformed case, or let a case without assertions pass
silently.

Case ids: a case's `id` when it has one, else `file:line` of the case, so every regressed or fixed case
in a report points at the line to open; an expanded promptfoo case adds what tells it apart:
`{var=value}`, `(prompt label)`, `@provider`.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from selfimprove.errors import SelfImproveError
from selfimprove.evals import promptfoo
from selfimprove.validation import (
    deepest_error,
    describe,
    did_you_mean,
    error_location,
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
    metric: str | None = None  # promptfoo's named metric: reported, not scored differently
    script: str | None = None  # python: the code (inline, or the file's text read at the commit)
    function: str | None = None  # python file: the function to call (default get_assert)
    config: Mapping[str, Any] = field(default_factory=dict)  # python: handed over as context.config

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
    prompt: str | None  # repo-relative prompt file rendered as the system message (selfimprove's style)
    description: str = ""
    vars: Mapping[str, Any] = field(default_factory=dict)
    messages: tuple[Mapping[str, Any], ...] = ()
    tags: tuple[str, ...] = ()
    asserts: tuple[Assertion, ...] = ()
    threshold: float | None = None
    config: Mapping[str, Any] = field(default_factory=dict)  # call parameters, tools included
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # promptfoo's style: a template that becomes the whole conversation (a plain one is the user turn)
    template: str | None = None  # inline text
    template_file: str | None = None  # repo-relative prompt file, read at each side's commit (managed)
    template_index: int = 0  # which prompt of a `.txt` file split at `---` lines
    chat: bool = False  # the template is a chat message list (a JSON or YAML prompt file)
    provider: str | None = None  # the suite's provider for this case (litellm id or exec:); None = eval.model


@dataclass(frozen=True)
class Suite:
    cases: tuple[Case, ...]
    files: tuple[str, ...]
    skipped: tuple[str, ...] = ()  # "file:line: what" of each unsupported item left out

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(sorted({t for c in self.cases for t in c.tags}))

    @property
    def template_files(self) -> tuple[str, ...]:
        """Prompt files inside the repo that cases render: managed like the prompts of selfimprove.yaml."""
        return tuple(dict.fromkeys(c.template_file for c in self.cases if c.template_file))


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

@dataclass(frozen=True)
class Source:
    """Where a suite's `file://` references are read from.

    `read` takes a repo-relative path (read at the candidate commit) or an absolute path (a file
    outside the repo, read from disk: only for a suite given with `--suite` outside the repo).
    `root` is the repo's absolute path, so an absolute path inside it is read from git like any other.
    """

    read: Callable[[str], bytes | None]
    root: str | None = None
    skip_unsupported: bool = False
    model: str | None = None  # --model: replaces every provider a suite names
    tools: tuple[Mapping[str, Any], ...] = ()  # selfimprove.yaml's eval.tools, the default of every case
    files: Callable[[str], list[str]] | None = None  # the files under a directory, for globs

    def locate(self, ref: str, relative_to: str, where: str) -> tuple[str, bool]:
        """(path, inside the repo) of `file://ref` written in the file `relative_to`."""
        ref = ref.removeprefix("file://")
        if posixpath.isabs(ref):
            full = posixpath.normpath(ref)
        else:
            full = posixpath.normpath(posixpath.join(posixpath.dirname(relative_to), ref))
        if posixpath.isabs(full):
            if self.root and (full + "/").startswith(self.root.rstrip("/") + "/"):
                return posixpath.relpath(full, self.root), True
            return full, False
        if full == ".." or full.startswith("../"):
            if self.root is None:
                raise SelfImproveError(f"file://{ref} points outside the repo", where=where,
                                       hint="keep the suite's files inside the prompt repo")
            return posixpath.normpath(posixpath.join(self.root, full)), False
        return full, True

    def glob(self, ref: str, relative_to: str, where: str) -> list[str]:
        """The `file://` references a glob (`prompts/*.txt`, `tests/**/*.yaml`) matches, sorted; a
        plain reference as it is."""
        if not any(ch in ref for ch in "*?["):
            return [ref]
        pattern, _ = self.locate(ref, relative_to, where)
        fixed = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
        directory = fixed.rsplit("/", 1)[0] if "/" in fixed else ""
        matcher = re.compile(_glob_regex(pattern))
        found = sorted(p for p in (self.files(directory) if self.files else []) if matcher.fullmatch(p))
        if not found:
            raise SelfImproveError(f"{ref} matches no file", where=where,
                                   hint="paths are relative to the suite file; commit the files with it")
        base = posixpath.dirname(relative_to)
        return [f"file://{p if posixpath.isabs(p) else posixpath.relpath(p, base or '.')}" for p in found]

    def text(self, ref: str, relative_to: str, where: str) -> tuple[str, bool, str]:
        """(path, inside the repo, UTF-8 text) of a `file://` reference."""
        path, inside = self.locate(ref, relative_to, where)
        data = self.read(path)
        if data is None:
            raise SelfImproveError(f"file://{ref.removeprefix('file://')} not found ({path})", where=where,
                                   hint="paths are relative to the suite file; commit it with the suite")
        try:
            return path, inside, data.decode("utf-8")
        except UnicodeDecodeError:
            raise SelfImproveError(f"{path} is not UTF-8 text", where=where,
                                   hint="save it as UTF-8") from None

    def document(self, ref: str, relative_to: str, where: str) -> Any:
        """A `file://` reference's content: parsed for JSON, JSON Lines and YAML, else the text."""
        path, _, text = self.text(ref, relative_to, where)
        return _structured(text, path, where)


def _structured(text: str, path: str, where: str) -> Any:
    import yaml

    lower = path.lower()
    try:
        if lower.endswith(".json"):
            return json.loads(text)
        if lower.endswith(".jsonl"):
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        if lower.endswith((".yaml", ".yml")):
            return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SelfImproveError(f"cannot parse {path}: {str(exc).splitlines()[0]}", where=where,
                               hint="check the file's syntax") from None
    return text


_NO_FILES = Source(read=lambda path: None)


def _glob_regex(pattern: str) -> str:
    """A glob as a regex over whole paths: `**/` any directories, `*` and `?` within one name."""
    out, index = [], 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return "".join(out)


def parse_suite_file(text: str, path: str, *, default_prompt: str | None,
                     source: Source | None = None, skipped: list[str] | None = None) -> list[Case]:
    """The cases of one suite file (YAML, or JSON Lines for `.jsonl`). Unsupported items are one
    error, or — with `source.skip_unsupported` — left out and listed in `skipped`."""
    source = source or _NO_FILES
    issues = promptfoo.Issues([], [])
    if path.endswith(".jsonl"):
        cases = _parse_jsonl(text, path, default_prompt, source, issues)
    else:
        cases = _parse_yaml(text, path, default_prompt, source, issues)
    issues.raise_if_any(source.skip_unsupported, (skipped if skipped is not None else []).append)
    return cases


def _load_yaml(text: str, path: str) -> tuple[Any, Any]:
    import yaml

    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise SelfImproveError(f"invalid YAML: {exc.problem or exc}",
                               where=f"{path}:{mark.line + 1}" if mark else path, hint=HINT) from None
    except yaml.YAMLError as exc:
        raise SelfImproveError(f"invalid YAML: {exc}", where=path, hint=HINT) from None


def _check(validator: Any, doc: Any, root: Any, path: str, prefix: Sequence[Any] = ()) -> None:
    """One schema error, pointing at the offending key itself (not at the mapping holding it)."""
    error = deepest_error(validator, doc)
    if error is None:
        return
    location = error_location(error)
    line = yaml_line(root, [*prefix, *location]) if root is not None else None
    raise SelfImproveError(f"{json_path(list(error.absolute_path))}: {_describe(error)}",
                           where=f"{path}:{line}" if line else path, hint=HINT)


def _parse_yaml(text: str, path: str, default_prompt: str | None, source: Source,
                issues: promptfoo.Issues) -> list[Case]:
    import jsonschema

    doc, root = _load_yaml(text, path)
    if doc is None:
        raise SelfImproveError("empty suite file", where=path, hint="add a 'tests:' list of cases")
    if isinstance(doc, list):  # a bare list of cases, as promptfoo's tests files allow
        _check(jsonschema.Draft202012Validator(_schema()), {"tests": doc}, root, path)
        tests = [_Test(raw, path, root, [i]) for i, raw in enumerate(doc)]
        return _expand(tests, {}, {}, path, root, default_prompt, source, issues, promptfoo_style=False)
    _check(jsonschema.Draft202012Validator(_schema()), doc, root, path)
    style = any(k in doc for k in ("prompts", "providers", "targets")) or isinstance(doc.get("tests"), str)
    if "prompt" in doc and style:
        raise SelfImproveError("a suite has either 'prompt' (a managed prompt file, sent as the system "
                               "message) or promptfoo's 'prompts', not both",
                               where=f"{path}:{yaml_line(root, ['prompt'])}", hint=HINT)
    if style and "tests" not in doc:
        raise SelfImproveError("the suite has no 'tests'", where=path, hint="add a 'tests:' list of cases")
    for key in doc:
        if key in promptfoo.UNSUPPORTED_KEYS:
            issues.add(f"{path}:{yaml_line(root, [key])}", promptfoo.UNSUPPORTED_KEYS[key])
    default = doc.get("defaultTest") or {}
    if isinstance(default, str):
        where = f"{path}:{yaml_line(root, ['defaultTest'])}"
        default = source.document(default, path, where)
        if not isinstance(default, Mapping):
            raise SelfImproveError("defaultTest file must hold a mapping", where=where, hint=HINT)
    config = dict(doc.get("config") or {})
    tools = _tools(doc.get("tools"), source, path, f"{path}:{yaml_line(root, ['tools'])}")
    if tools is not None:
        config["tools"] = tools
    tests = _tests(doc.get("tests") or [], path, root, source)
    return _expand(tests, default, config, path, root, doc.get("prompt", default_prompt), source, issues,
                   promptfoo_style=style, doc=doc)


def _tools(raw: Any, source: Source, path: str, where: str) -> list[Any] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = source.document(raw, path, where)
    if not isinstance(raw, list) or not all(isinstance(t, Mapping) for t in raw):
        raise SelfImproveError("tools must be a list of OpenAI function schemas", where=where,
                               hint='e.g. [{"type": "function", "function": {"name", "parameters"}}]')
    return promptfoo.openai_tools(raw)


@dataclass(frozen=True)
class _Test:
    """One test as written, and where: its file, that file's YAML tree and its location in it."""

    raw: Any
    path: str
    root: Any
    location: list[Any]
    fixed_line: int | None = None  # a CSV row or JSON line: no YAML tree to ask

    @property
    def line(self) -> int:
        if self.fixed_line is not None:
            return self.fixed_line
        return (yaml_line(self.root, self.location) if self.root is not None else None) or 1

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def at(self, *more: Any) -> str:
        line = yaml_line(self.root, [*self.location, *more]) if self.root is not None else None
        return f"{self.path}:{line or self.line}"


def _tests(raw: Any, path: str, root: Any, source: Source) -> list[_Test]:
    """Tests written inline, or in `file://` YAML, JSON, JSON Lines or CSV files (a list of either)."""
    import jsonschema

    if isinstance(raw, str):
        where = f"{path}:{yaml_line(root, ['tests'])}"
        return [t for ref in source.glob(raw, path, where) for t in _test_file(ref, path, where, source)]
    out: list[_Test] = []
    case_validator = jsonschema.Draft202012Validator(_case_schema())
    for index, item in enumerate(raw):
        if isinstance(item, str):
            where = f"{path}:{yaml_line(root, ['tests', index])}"
            for ref in source.glob(item, path, where):
                for test in _test_file(ref, path, where, source):
                    _check(case_validator, test.raw, test.root, test.path, test.location)
                    out.append(test)
        else:
            out.append(_Test(item, path, root, ["tests", index]))
    return out


def _test_file(ref: str, relative_to: str, where: str, source: Source) -> list[_Test]:
    import jsonschema

    if not ref.startswith("file://") or promptfoo.is_code(ref):
        return [_Test({"__unsupported__": ref, "__where__": where}, relative_to, None, [])]
    path, _, text = source.text(ref, relative_to, where)
    if path.lower().endswith(".csv"):
        return [_Test(raw, path, None, [], line) for raw, line in promptfoo.csv_tests(text)]
    if path.lower().endswith((".yaml", ".yml")):
        doc, root = _load_yaml(text, path)
    else:
        doc, root = _structured(text, path, where), None
    if not isinstance(doc, list):
        raise SelfImproveError(f"{path} must hold a list of tests", where=where, hint=HINT)
    validator = jsonschema.Draft202012Validator(_case_schema())
    tests = []
    for index, raw in enumerate(doc):
        test = _Test(raw, path, root, [index], None if root is not None else index + 1)
        _check(validator, raw, root, path, [index])
        tests.append(test)
    return tests


@dataclass(frozen=True)
class _Template:
    """One promptfoo prompt: inline text, or a file (read at each side's commit when inside the repo)."""

    label: str
    text: str | None = None
    file: str | None = None
    index: int = 0
    chat: bool = False
    config: Mapping[str, Any] = field(default_factory=dict)


def split_prompts(text: str, path: str) -> list[str]:
    """The prompts of one prompt file: promptfoo splits a `.txt` file at lines of `---`."""
    if not path.lower().endswith(".txt"):
        return [text]
    parts = re.split(r"^---[ \t]*\r?\n", text, flags=re.M)
    return [p for p in parts if p.strip()] or [text]


def _templates(doc: Mapping[str, Any], path: str, root: Any, source: Source,
               issues: promptfoo.Issues) -> list[_Template]:
    raw = doc.get("prompts")
    items: list[tuple[Any, str | None, list[Any]]]
    if raw is None:
        return []
    if isinstance(raw, str):
        items = [(raw, None, ["prompts"])]
    elif isinstance(raw, Mapping):  # the older map form: {file://a.txt: label}
        items = [(key, str(label), ["prompts", key]) for key, label in raw.items()]
    else:
        items = [(item, None, ["prompts", i]) for i, item in enumerate(raw)]
    out: list[_Template] = []
    for number, (item, label, location) in enumerate(items, start=1):
        where = f"{path}:{yaml_line(root, location)}"
        config: Mapping[str, Any] = {}
        if isinstance(item, Mapping):
            label = item.get("label") or label
            config = item.get("config") or {}
            if "function" in item:
                issues.add(where, "a prompt given as a function (JavaScript)")
                continue
            item = item.get("raw", item.get("id"))
            if not isinstance(item, str):
                raise SelfImproveError("a prompt object needs 'raw' (the text) or 'id' (file://...)",
                                       where=where, hint=HINT)
        if not item.startswith("file://"):
            out.append(_Template(label or f"prompt {number}", text=item, config=config))
            continue
        if promptfoo.is_code(item):
            issues.add(where, f"a prompt function ({item}), which promptfoo runs as code")
            continue
        refs = source.glob(item, path, where)
        for ref in refs:  # a label names one file; a glob's files are named by their paths
            out.extend(_file_templates(ref, label if len(refs) == 1 else None, config, path, where, source))
    return out


def _file_templates(ref: str, label: str | None, config: Mapping[str, Any], path: str, where: str,
                    source: Source) -> list[_Template]:
    """The prompts of one prompt file: one, a chat prompt per JSON line, or a `.txt` file's `---` parts."""
    file, inside, text = source.text(ref, path, where)
    name = label or ref.removeprefix("file://")
    if file.lower().endswith(".jsonl"):  # one chat prompt per line
        return [_Template(f"{name}:{number}", text=line, chat=True, config=config)
                for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    chat = file.lower().endswith(promptfoo.CHAT_SUFFIXES)
    parts = split_prompts(text, file)
    out = []
    for index, part in enumerate(parts):
        numbered = f"{name}#{index + 1}" if len(parts) > 1 else name
        if inside:  # a managed prompt: read again at each side's commit
            out.append(_Template(numbered, file=file, index=index, chat=chat, config=config))
        else:
            out.append(_Template(numbered, text=part, chat=chat, config=config))
    return out


@dataclass(frozen=True)
class _Provider:
    id: str | None  # litellm model string or exec:..., None = eval.model
    label: str
    params: Mapping[str, Any] = field(default_factory=dict)


def _one_provider(item: Any, where: str, source: Source, path: str,
                  issues: promptfoo.Issues) -> _Provider | None:
    config: Mapping[str, Any] = {}
    label = None
    if isinstance(item, Mapping):
        if "id" not in item and len(item) == 1:  # the older map form: {openai:gpt-4: {config: ...}}
            (key, value), = item.items()
            item = {"id": key, **(value if isinstance(value, Mapping) else {})}
        label = item.get("label")
        config = item.get("config") or {}
        item = item.get("id")
    if not isinstance(item, str) or not item:
        raise SelfImproveError("a provider needs an 'id' (e.g. openai:gpt-4.1)", where=where, hint=HINT)
    model = promptfoo.litellm_model(item)
    if model is None:
        what = "a script" if promptfoo.is_code(item) else "no litellm equivalent"
        issues.add(where, f"provider {item!r} ({what})")
        return None
    if isinstance(config.get("tools"), str):
        config = {**config, "tools": _tools(config["tools"], source, path, where)}
    params, unknown = promptfoo.provider_params(config)
    for key in unknown:
        issues.add(where, f"provider config key {key!r} (no litellm equivalent)")
    return _Provider(model, str(label or model), params)


def _providers(doc: Mapping[str, Any], path: str, root: Any, source: Source,
               issues: promptfoo.Issues) -> list[_Provider]:
    key = "providers" if "providers" in doc else "targets"
    raw = doc.get(key)
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    elif isinstance(raw, Mapping):
        raw = [{k: v} for k, v in raw.items()]
    out = []
    for index, item in enumerate(raw):
        found = _one_provider(item, f"{path}:{yaml_line(root, [key, index])}", source, path, issues)
        if found is not None:
            out.append(found)
    if source.model is not None:  # --model replaces the suite's providers, keeps the first one's settings
        kept = {k: v for p in out[:1] for k, v in p.params.items() if k not in ("api_base", "api_key")}
        return [_Provider(source.model, source.model, kept)]
    return out


def _options(test: _Test, issues: promptfoo.Issues) -> tuple[str | None, bool, bool]:
    """(judge model, disable var expansion, runnable) from a test's `options`; the rest is unsupported.
    A test whose output is transformed first is not runnable: its assertions grade the transform's result."""
    judge = None
    options = test.raw.get("options") or {}
    runnable = not any(k in options for k in ("transform", "postprocess", "transformVars"))
    for key, value in options.items():
        where = test.at("options", key)
        if key == "provider":
            spec = value.get("id") if isinstance(value, Mapping) else value
            judge = promptfoo.litellm_model(str(spec)) if spec else None
            if judge is None:
                issues.add(where, f"options.provider {spec!r} has no litellm equivalent")
        elif key in ("disableVarExpansion", "runSerially", "disableConversationVar"):
            continue
        elif key in ("transform", "postprocess", "transformVars"):
            issues.add(where, f"options.{key} (a JavaScript transform)")
        else:
            issues.add(where, f"options.{key}")
    return judge, bool(options.get("disableVarExpansion")), runnable


def _vars(values: Mapping[str, Any], test: _Test, source: Source, issues: promptfoo.Issues,
          key: str = "vars") -> dict[str, Any]:
    """Vars with `file://` values read (text, or parsed JSON/YAML), as promptfoo loads them; all the
    vars from one `file://` JSON/YAML file when `values` is such a reference."""
    if isinstance(values, str):
        loaded = source.document(values, test.path, test.at(key))
        if not isinstance(loaded, Mapping):
            raise SelfImproveError(f"{values} must hold a mapping of vars", where=test.at(key), hint=HINT)
        values = loaded
    out: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, str) and value.startswith("file://"):
            where = test.at(key, name)
            if promptfoo.is_code(value):
                issues.add(where, f"var {name!r} from a script ({value})")
                continue
            out[name] = source.document(value, test.path, where)
        elif isinstance(value, list) and any(isinstance(v, str) and v.startswith("file://") for v in value):
            where = test.at(key, name)
            out[name] = [source.document(v, test.path, where)
                         if isinstance(v, str) and v.startswith("file://") else v for v in value]
        else:
            out[name] = value
    return out


def _expand(tests: Sequence[_Test], default: Mapping[str, Any], config: Mapping[str, Any], path: str,
            root: Any, prompt: str | None, source: Source, issues: promptfoo.Issues, *,
            promptfoo_style: bool, doc: Mapping[str, Any] | None = None) -> list[Case]:
    """Every test × var combination × prompt × provider, as cases (one of each when not promptfoo)."""
    doc = doc or {}
    templates = _templates(doc, path, root, source, issues) if promptfoo_style else []
    providers = _providers(doc, path, root, source, issues) if promptfoo_style else []
    if promptfoo_style and not templates and doc.get("prompts") and source.skip_unsupported:
        raise SelfImproveError("every prompt of the suite is unsupported: nothing left to run",
                               where=f"{path}:{yaml_line(root, ['prompts'])}",
                               hint="give at least one text or chat prompt (see 'Eval suites' in the README)")
    default_test = _Test(default, path, root, ["defaultTest"])
    default_judge, default_no_expand, default_runnable = _options(default_test, issues)
    default_vars = _vars(default.get("vars") or {}, default_test, source, issues)
    base_config = {**config}
    if source.tools and "tools" not in base_config:
        base_config["tools"] = list(source.tools)
    cases: list[Case] = []
    for test in tests:
        raw = test.raw
        if "__unsupported__" in raw:
            issues.add(raw["__where__"], f"tests from {raw['__unsupported__']} (a script or dataset)")
            continue
        where = test.where
        judge, no_expand, runnable = _options(test, issues)
        asserts = _assertions([*(default.get("assert") or ())], default_test, "assert", source, issues,
                              judge or default_judge)
        asserts += _assertions(list(raw.get("assert") or ()), test, "assert", source, issues,
                               judge or default_judge)
        if not (runnable and default_runnable):
            if source.skip_unsupported:
                issues.add(where, "the whole case (its output is transformed before grading)")
            continue
        if not asserts:
            if default.get("assert") or raw.get("assert"):  # every assertion was unsupported
                if source.skip_unsupported:
                    issues.add(where, "the whole case (none of its assertions can run)")
                continue
            if promptfoo_style:  # promptfoo runs it only to show the output: nothing to grade here
                issues.note(where, "a case with no assertions (nothing to grade)")
                continue
            raise SelfImproveError(f"{json_path(test.location)}: the case has no assertions", where=where,
                                   hint="add an 'assert:' list to the case or to defaultTest")
        values = {**default_vars, **_vars(raw.get("vars") or {}, test, source, issues)}
        messages: tuple[Mapping[str, Any], ...]
        if "messages" in raw:
            messages = tuple(dict(m) for m in raw["messages"])
        elif "input" in raw:
            messages = ({"role": "user", "content": raw["input"]},)
        else:
            messages = ()
        case_config = {**base_config, **(raw.get("config") or {})}
        if isinstance(case_config.get("tools"), str):
            case_config["tools"] = _tools(case_config["tools"], source, path, test.at("config"))
        shape = Case(
            id=str(raw.get("id") or where), where=where, prompt=raw.get("prompt", prompt),
            description=str(raw.get("description") or ""), vars=values, messages=messages,
            tags=tuple(dict.fromkeys([*(default.get("tags") or ()), *(raw.get("tags") or ())])),
            asserts=tuple(asserts), threshold=raw.get("threshold", default.get("threshold")),
            config=case_config, metadata={**(default.get("metadata") or {}), **(raw.get("metadata") or {})},
        )
        if not promptfoo_style:
            cases.append(shape)
            continue
        test_providers = providers
        if "provider" in raw and source.model is None:
            found = _one_provider(raw["provider"], test.at("provider"), source, path, issues)
            test_providers = [found] if found else []
        expand = not (no_expand or default_no_expand)
        cases.extend(_combinations(shape, templates, test_providers or [_Provider(source.model, "")], expand))
    return cases


def _combinations(shape: Case, templates: Sequence[_Template], providers: Sequence[_Provider],
                  expand: bool) -> list[Case]:
    """One case per var combination × prompt × provider, ids suffixed with what tells them apart."""
    combos = promptfoo.expand(shape.vars) if expand else [dict(shape.vars)]
    listed = [k for k, v in shape.vars.items() if isinstance(v, list)] if len(combos) > 1 else []
    out = []
    for combo in combos:
        asserts = tuple(_rendered(a, combo) for a in shape.asserts)
        for template in templates or [_Template("")]:
            for provider in providers:
                suffix, tags = "", shape.tags
                if listed:
                    suffix += f" {{{promptfoo.label_of(combo, listed)}}}"
                if len(templates) > 1:
                    suffix += f" ({template.label})"  # not [..]: rich would read it as markup
                if len(providers) > 1:  # one slice per provider: the gate must hold for each
                    suffix += f" @{provider.label}"
                    tags = (*tags, f"provider:{provider.label}")
                out.append(replace(
                    shape, id=shape.id + suffix, prompt=None, vars=combo, asserts=asserts, tags=tags,
                    config={**template.config, **provider.params, **shape.config}, provider=provider.id,
                    template=template.text, template_file=template.file, template_index=template.index,
                    chat=template.chat))
    return out


def _rendered(assertion: Assertion, values: Mapping[str, Any]) -> Assertion:
    """promptfoo fills a test's vars into its assertion values (not into code)."""
    if assertion.base_type == "python" or not isinstance(assertion.value, str):
        return assertion
    return replace(assertion, value=promptfoo.render(assertion.value, values, assertion.where))


def _parse_jsonl(text: str, path: str, default_prompt: str | None, source: Source,
                 issues: promptfoo.Issues) -> list[Case]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(_case_schema())
    tests = []
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
        tests.append(_Test(raw, path, None, [], number))
    return _expand(tests, {}, {}, path, None, default_prompt, source, issues, promptfoo_style=False)


def _assertions(raws: Sequence[Mapping[str, Any]], test: _Test, key: str, source: Source,
                issues: promptfoo.Issues, judge: str | None) -> list[Assertion]:
    out = []
    for index, raw in enumerate(raws):
        found = _assertion(raw, test, [key, index], source, issues, judge)
        if found is not None:
            out.append(found)
    return out


def _assertion(raw: Mapping[str, Any], test: _Test, location: list[Any], source: Source,
               issues: promptfoo.Issues, judge: str | None) -> Assertion | None:
    where = test.at(*location)
    case_where = test.where
    kind = str(raw["type"])
    base = kind.removeprefix("not-")
    problems = []
    if base in promptfoo.UNSUPPORTED_ASSERTIONS:
        problems.append((where, f"assertion type {kind!r}" + (" (JavaScript)" if base == "javascript"
                                                             else "")))
    for key in ("transform", "contextTransform"):
        if key in raw:
            python = str(raw[key]).startswith("file://") and ".py" in str(raw[key])
            language = "Python" if python else "JavaScript"
            problems.append((test.at(*location, key), f"{key} on a {kind!r} assertion ({language})"))
    value = raw.get("value")
    scripted = isinstance(value, str) and value.startswith("file://") and promptfoo.is_code(value)
    if scripted and base != "python":
        problems.append((test.at(*location, "value"), f"{kind!r} value from a script ({value})"))
    if problems:
        for at, problem in problems:
            issues.add(at, problem)
        return None
    source_text, function = None, None
    if isinstance(value, str) and value.startswith("file://"):
        if base == "python":
            ref, _, function = value.removeprefix("file://").partition(":")
            if not ref.endswith(".py"):  # 'file://a.py:fn' splits; a Windows-free path has no other colon
                ref, function = value.removeprefix("file://"), ""
            _, _, source_text = source.text(ref, test.path, where)
        else:
            value = source.document(value, test.path, where)
    elif base == "python":
        source_text = str(value)
    provider = raw.get("provider")
    if isinstance(provider, Mapping):
        provider = provider.get("id")
    if provider is not None:
        mapped = promptfoo.litellm_model(str(provider))
        if mapped is None:
            issues.add(where, f"assertion provider {provider!r} has no litellm equivalent")
            return None
        provider = mapped
    assertion = Assertion(
        type=kind, value=value, weight=float(raw.get("weight", 1.0)), threshold=raw.get("threshold"),
        provider=provider or judge, where=case_where, metric=raw.get("metric"),
        script=source_text, function=function or None, config=raw.get("config") or {},
    )
    if assertion.base_type == "regex":
        try:
            re.compile(str(assertion.value))
        except re.error as exc:
            raise SelfImproveError(f"{json_path([*test.location, *location])}: invalid regex "
                                   f"{assertion.value!r}: {exc}",
                                   where=where, hint="use Python regular expression syntax") from None
    if assertion.base_type in ("is-json", "contains-json") and isinstance(assertion.value, dict):
        import jsonschema

        try:
            jsonschema.Draft202012Validator.check_schema(assertion.value)
        except jsonschema.SchemaError as exc:
            raise SelfImproveError(f"{json_path([*test.location, *location])}: {kind} value is not a valid "
                                   "JSON Schema: "
                                   f"{exc.message}", where=where,
                                   hint="give a JSON Schema object, or no value") from None
    return assertion


def load_suite(files: Mapping[str, bytes], *, default_prompt: str | None,
               source: Source | None = None) -> Suite:
    """A suite from suite files' bytes (path → bytes), in path order. Ids must be unique.

    A file that another suite file names by `file://` (a promptfoo config's `tests.yaml`, a tools
    file) is part of that suite, not a suite of its own, even when it sits in the same directory."""
    source = source or _NO_FILES
    parsed: dict[str, tuple[list[Case], list[str]] | SelfImproveError] = {}
    referenced: set[str] = set()
    for path in sorted(files):
        reads: list[str] = []

        def read(name: str, _reads: list[str] = reads) -> bytes | None:
            _reads.append(name)
            return source.read(name)

        skipped_here: list[str] = []
        try:
            try:
                text = files[path].decode("utf-8")
            except UnicodeDecodeError:
                raise SelfImproveError("not UTF-8 text", where=path, hint="save the suite as UTF-8") from None
            found = parse_suite_file(text, path, default_prompt=default_prompt,
                                     source=replace(source, read=read), skipped=skipped_here)
            parsed[path] = (found, skipped_here)
        except SelfImproveError as exc:  # raised below unless another file turns out to include this one
            parsed[path] = exc
        referenced.update(name for name in reads if name != path)
    cases: list[Case] = []
    skipped: list[str] = []
    for path, outcome in parsed.items():
        if path in referenced:
            continue
        if isinstance(outcome, SelfImproveError):
            raise outcome
        cases.extend(outcome[0])
        skipped.extend(outcome[1])
    seen: dict[str, str] = {}
    for case in cases:
        if case.id in seen:
            raise SelfImproveError(f"duplicate case id {case.id!r} (first at {seen[case.id]})",
                                   where=case.where, hint="give every case a unique id")
        seen[case.id] = case.where
        if case.prompt is None and case.template is None and case.template_file is None:
            raise SelfImproveError("no prompt for this case", where=case.where,
                                   hint="set 'prompt:' in the suite, or list a prompt in selfimprove.yaml")
    if not cases:
        raise SelfImproveError("the eval suite has no cases", where=", ".join(sorted(files)) or None,
                               hint="add cases under 'tests:'")
    kept = tuple(sorted(p for p in files if p not in referenced))
    return Suite(cases=tuple(cases), files=kept, skipped=tuple(skipped))


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


def render_messages(case: Case, prompt_text: str) -> list[dict[str, Any]]:
    """The messages sent for a case.

    selfimprove's style: the rendered prompt file as the system message, then the case's own messages
    (the prompt alone, for a case with none, is the user turn).
    promptfoo's style: `prompt_text` is the case's template (as it is at the side asked), rendered with
    the vars as nunjucks would and sent as promptfoo sends it, then any messages the case adds.
    """
    messages: list[dict[str, Any]] = []
    if case.template is not None or case.template_file is not None:
        rendered = promptfoo.render(prompt_text, case.vars, case.where)
        messages.extend(promptfoo.conversation(rendered, case.chat, case.where))
    elif prompt_text.strip():
        # with no conversation of its own the prompt is the question, as promptfoo sends it: a request
        # holding only a system message asks nothing (and some providers refuse it)
        role = "system" if case.messages else "user"
        messages.append({"role": role, "content": fill(prompt_text, case.vars)})
    for message in case.messages:
        copy = dict(message)
        if isinstance(copy.get("content"), str):
            copy["content"] = fill(copy["content"], case.vars)
        messages.append(copy)
    return messages
