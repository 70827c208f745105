"""promptfoo's vocabulary, read by Python: provider ids, prompt files, nunjucks templates, var expansion.

Owns: mapping promptfoo provider ids (`openai:chat:gpt-4.1`) and their `config` to litellm model
strings and call parameters, telling which prompt files are chat conversations, rendering a template
with a case's vars (jinja2, the closest Python match to nunjucks), turning a rendered prompt into the
conversation promptfoo would send (a chat list as written, anything else one user turn), expanding
list-valued vars into one case per combination, reading CSV test files, and the list of promptfoo
features that cannot run here (JavaScript in any form, and the assertion types no Python check
implements).

Must never: run JavaScript, guess a provider that has no litellm equivalent, or drop an unsupported
item silently: the suite loader collects every one into a single error, or — asked to skip them —
into the run's list of what was skipped.

Why a separate module: `suite.py` owns the file format and its errors; this one owns what promptfoo's
names mean, so a new provider prefix or assertion name is a one-line change here.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from selfimprove.errors import SelfImproveError

# promptfoo prefix → litellm prefix, longest first where one prefix extends another
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("openai:chat:", "openai/"),
    ("openai:responses:", "openai/"),
    ("openai:completion:", "text-completion-openai/"),
    ("openai:", "openai/"),
    ("anthropic:messages:", "anthropic/"),
    ("anthropic:", "anthropic/"),
    ("azureopenai:chat:", "azure/"),
    ("azure:chat:", "azure/"),
    ("azure:", "azure/"),
    ("bedrock:converse:", "bedrock/converse/"),
    ("bedrock:", "bedrock/"),
    ("vertex:", "vertex_ai/"),
    ("google:", "gemini/"),
    ("gemini:", "gemini/"),
    ("mistral:", "mistral/"),
    ("groq:", "groq/"),
    ("ollama:chat:", "ollama_chat/"),
    ("ollama:completion:", "ollama/"),
    ("ollama:", "ollama/"),
    ("openrouter:", "openrouter/"),
    ("togetherai:", "together_ai/"),
    ("deepseek:", "deepseek/"),
    ("xai:", "xai/"),
    ("perplexity:", "perplexity/"),
    ("cohere:", "cohere/"),
    ("fireworks:", "fireworks_ai/"),
    ("cerebras:", "cerebras/"),
    ("huggingface:text-generation:", "huggingface/"),
    ("litellm:", ""),
)
# model names that legitimately hold a colon (Bedrock versions, Ollama tags)
_COLON_OK = ("bedrock/", "ollama/", "ollama_chat/")

# litellm call parameters a promptfoo provider `config` may set, under promptfoo's spelling
_PARAMS = {
    "temperature": "temperature", "max_tokens": "max_tokens",
    "max_completion_tokens": "max_completion_tokens",
    "top_p": "top_p", "top_k": "top_k", "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty", "seed": "seed", "stop": "stop", "tools": "tools",
    "tool_choice": "tool_choice", "response_format": "response_format",
    "parallel_tool_calls": "parallel_tool_calls", "reasoning_effort": "reasoning_effort",
    "thinking": "thinking", "apiBaseUrl": "api_base", "apiKey": "api_key",
}
# parameters that never change an answer, so they stay out of cache keys
SECRET_PARAMS = frozenset({"api_key"})

# promptfoo assertion types (as of its 2025-2026 documentation) no Python check implements here
UNSUPPORTED_ASSERTIONS = frozenset({
    "javascript", "similar", "factuality", "model-graded-closedqa", "model-graded-factuality",
    "answer-relevance", "context-faithfulness", "context-recall", "context-relevance", "g-eval",
    "classifier", "moderation", "select-best", "max-score", "perplexity", "perplexity-score", "rouge-n",
    "bleu", "gleu", "meteor", "webhook", "is-sql", "contains-sql", "is-xml", "contains-xml", "is-html",
    "contains-html", "pi", "assert-set", "search-rubric", "is-refusal", "finish-reason",
    "is-valid-openai-function-call", "is-valid-function-call", "word-count", "trace-span-count",
    "trace-span-duration", "trace-error-spans", "conversation-relevance", "guardrails",
    "tool-call-f1", "ruby",
})
# top-level keys that shape only promptfoo's own output or environment: read and ignored
IGNORED_KEYS = frozenset({"outputPath", "sharing", "evaluateOptions", "env", "commandLineOptions",
                          "writeLatestResults", "metadata", "tags", "$schema", "description"})
# top-level keys that change what is evaluated and cannot be honoured here
UNSUPPORTED_KEYS = {
    "scenarios": "scenarios (run each scenario's tests as their own suite)",
    "extensions": "extensions (JavaScript/Python hooks)",
    "nunjucksFilters": "nunjucksFilters (JavaScript filters)",
    "derivedMetrics": "derivedMetrics",
    "redteam": "redteam",
}
_CODE_SUFFIXES = (".js", ".cjs", ".mjs", ".ts", ".py")
CHAT_SUFFIXES = (".json", ".jsonl", ".yaml", ".yml")


def litellm_model(spec: str) -> str | None:
    """The litellm model string for a promptfoo provider id, or None when there is none.

    `exec:` is selfimprove's own harness protocol and passes through; so does a string that already
    reads as a litellm id (`openai/gpt-4.1`).
    """
    spec = spec.strip()
    if spec.startswith("exec:"):
        return spec
    for prefix, target in _PREFIXES:
        if spec.startswith(prefix):
            name = spec[len(prefix):]
            if not name or (":" in name and not target.startswith(_COLON_OK)):
                return None
            return target + name
    if ":" not in spec and "/" in spec and not spec.startswith(("file/", "http")):
        return spec
    return None


def provider_params(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(litellm parameters, the config keys that have none) for a provider's `config`."""
    params: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in config.items():
        if key in _PARAMS:
            params[_PARAMS[key]] = value
        elif key == "apiKeyEnvar" and isinstance(value, str):
            if os.environ.get(value):
                params["api_key"] = os.environ[value]
        else:
            unknown.append(key)
    if isinstance(params.get("tools"), list):
        params["tools"] = openai_tools(params["tools"])
    return params, unknown


def openai_tools(tools: Sequence[Any]) -> list[Any]:
    """Tools as OpenAI function schemas: Anthropic's `{name, input_schema}` shape is converted."""
    out: list[Any] = []
    for tool in tools:
        if isinstance(tool, Mapping) and "input_schema" in tool and "function" not in tool:
            function = {"name": tool.get("name"), "parameters": tool["input_schema"]}
            if tool.get("description"):
                function["description"] = tool["description"]
            out.append({"type": "function", "function": function})
        else:
            out.append(tool)
    return out


def is_code(ref: str) -> bool:
    """A `file://` reference to a script (promptfoo runs those as functions)."""
    path = ref.removeprefix("file://").split(":", 1)[0]
    return path.lower().endswith(_CODE_SUFFIXES)


# -- templates --------------------------------------------------------------------------------------

def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _finalize(value: Any) -> Any:
    # nunjucks prints an object var as promptfoo hands it over: JSON text, not a Python repr
    if isinstance(value, (Mapping, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


def _environment() -> Any:
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(autoescape=False, keep_trailing_newline=True, finalize=_finalize)
    env.filters["dump"] = _dump  # nunjucks' name for JSON output
    return env


_ENV: list[Any] = []


def render(template: str, values: Mapping[str, Any], where: str) -> str:
    """`template` with `values`, as nunjucks renders it (an unknown name renders as nothing)."""
    if "{{" not in template and "{%" not in template:
        return template
    import jinja2

    if not _ENV:
        _ENV.append(_environment())
    try:
        return str(_ENV[0].from_string(template).render(**values))
    except jinja2.TemplateSyntaxError as exc:
        raise SelfImproveError(f"template error: {exc.message}", where=where,
                               hint="prompts are nunjucks templates, rendered with jinja2 (see the README)"
                               ) from None
    except jinja2.TemplateError as exc:
        raise SelfImproveError(f"template error: {exc}", where=where,
                               hint="prompts are nunjucks templates, rendered with jinja2 (see the README)"
                               ) from None


def conversation(rendered: str, chat: bool, where: str) -> list[dict[str, Any]]:
    """The messages promptfoo sends for a rendered prompt: a chat list as written (from a JSON or YAML
    prompt file, or an inline prompt that is a JSON list of messages), else one user turn."""
    text = rendered.strip()
    if chat or text.startswith("[") and text.endswith("]"):
        doc: Any = None
        try:
            doc = json.loads(text)
        except ValueError:
            if chat:
                import yaml

                try:
                    doc = yaml.safe_load(text)
                except yaml.YAMLError as exc:
                    raise SelfImproveError(f"the rendered chat prompt is neither JSON nor YAML: {exc}",
                                           where=where, hint="check the prompt file after filling its vars"
                                           ) from None
        if isinstance(doc, list) and doc and all(isinstance(m, Mapping) and "role" in m for m in doc):
            return [dict(m) for m in doc]
        if chat:
            raise SelfImproveError("a chat prompt must be a list of messages with a 'role' each", where=where,
                                   hint='e.g. [{"role": "system", "content": "..."}, {"role": "user", ...}]')
    return [{"role": "user", "content": rendered}]


def expand(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One set of vars per combination of list-valued vars (promptfoo's cartesian expansion)."""
    lists = [(k, v) for k, v in values.items() if isinstance(v, list)]
    if not lists:
        return [dict(values)]
    out = []
    for combo in itertools.product(*(v for _, v in lists)):
        out.append({**values, **dict(zip((k for k, _ in lists), combo, strict=True))})
    return out


def label_of(values: Mapping[str, Any], keys: Sequence[str]) -> str:
    """A short, readable name of one combination, for case ids."""
    parts = []
    for key in keys:
        value = values[key]
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        text = " ".join(text.split())
        parts.append(f"{key}={text[:24]}")
    return ",".join(parts)


# -- CSV tests --------------------------------------------------------------------------------------

_CSV_TYPES = ("not-", "contains-any", "contains-all", "icontains-any", "icontains-all", "icontains",
              "contains-json", "contains", "starts-with", "regex", "is-json", "equals", "python",
              "levenshtein", "llm-rubric", "javascript", "similar", "factuality",
              "is-valid-openai-tools-call")


def _csv_assert(cell: str) -> dict[str, Any]:
    """One `__expected` cell, as promptfoo reads it: `type: value` for a known type, else equals."""
    text = cell.strip()
    for prefix, kind in (("grade:", "llm-rubric"), ("fn:", "javascript"), ("eval:", "javascript")):
        if text.startswith(prefix):
            return {"type": kind, "value": text[len(prefix):].strip()}
    negated = text.startswith("not-")
    body = text.removeprefix("not-")
    for kind in _CSV_TYPES[1:]:
        if body == kind or body.startswith(kind + ":"):
            value = body[len(kind) + 1:].strip() if body.startswith(kind + ":") else None
            if value is not None and kind.endswith(("-any", "-all")):
                items = [v.strip() for v in value.split(",")]
                return {"type": ("not-" if negated else "") + kind, "value": items}
            out: dict[str, Any] = {"type": ("not-" if negated else "") + kind}
            if value is not None:
                out["value"] = value
            return out
    return {"type": "equals", "value": text}


def csv_tests(text: str) -> list[tuple[dict[str, Any], int]]:
    """promptfoo's CSV tests: a column per var, `__expected*` assertions, `__description`, `__metadata:*`."""
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return []
    header, out = rows[0], []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        test: dict[str, Any] = {"vars": {}, "assert": []}
        for name, cell in zip(header, row, strict=False):
            if name.startswith("__expected"):
                if cell.strip():
                    test["assert"].append(_csv_assert(cell))
            elif name == "__description":
                test["description"] = cell
            elif name.startswith("__metadata:"):
                test.setdefault("metadata", {})[name.removeprefix("__metadata:")] = cell
            elif name == "__threshold":
                test["threshold"] = float(cell)
            elif not name.startswith("__"):
                test["vars"][name] = cell
        out.append((test, number))
    return out


@dataclass(frozen=True)
class Issues:
    """Every unsupported item found while reading a suite, with its file:line."""

    items: list[tuple[str, str]]
    notes: list[tuple[str, str]]  # left out whatever the options: nothing to run

    def add(self, where: str, what: str) -> None:
        self.items.append((where, what))

    def note(self, where: str, what: str) -> None:
        self.notes.append((where, what))

    def raise_if_any(self, skip: bool, record: Callable[[str], None]) -> None:
        for where, what in self.notes:
            record(f"{where}: {what}")
        if not self.items:
            return
        lines = [f"{where}: {what}" for where, what in self.items]
        if skip:
            for line in lines:
                record(line)
            return
        count = len(lines)
        raise SelfImproveError(
            f"{count} unsupported item{'s' if count != 1 else ''} in the suite: " + "; ".join(lines),
            hint="rewrite them with supported types (see 'Eval suites' in the README), or pass "
                 "--skip-unsupported to run the rest")
