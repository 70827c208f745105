"""`selfimprove.yaml` → frozen `Settings`.

Owns: finding the prompt repo's root, parsing and validating its settings file against the shipped
JSON Schema (`schemas/config.schema.json`), and the defaults of DESIGN §3. Every error names the
file, the line and JSON path of the offending value, and what was expected.

Never does: touch git (the root is found by looking for `.git` on disk, so this stays cheap and
importable at start-up) or read prompt files (that is `prompts`' job).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from selfimprove.errors import SelfImproveError

CONFIG_NAME = "selfimprove.yaml"


@dataclass(frozen=True)
class ConfigSpec:
    path: str
    schema: str | None = None
    mutable: tuple[str, ...] = ()


@dataclass(frozen=True)
class Gate:
    alpha: float = 0.05
    min_improvement: float = 0.0
    max_regressions: int = 0


@dataclass(frozen=True)
class EvalSpec:
    suite: str | None = None
    model: str | None = None
    repeats: int = 1
    concurrency: int = 8
    gate: Gate = field(default_factory=Gate)
    judge_model: str | None = None
    timeout: float = 60.0
    holdout: float = 0.0  # share of cases held out of search (by a stable hash of the case id)
    # the agent's tools as OpenAI function schemas (inline), or a `file://` JSON/YAML file of them
    tools: str | tuple[Any, ...] | None = None
    # a litellm Router configuration every eval call goes through (shared rpm/tpm limits, fallbacks)
    router: dict[str, Any] | None = field(default=None, compare=False, hash=False)


@dataclass(frozen=True)
class BudgetSpec:
    max_calls: int | None = None
    max_cost: float | None = None


@dataclass(frozen=True)
class JudgeSpec:
    """`analysis.judge`: an LLM judge labelling a sample of traces (None fields: the defaults apply)."""

    model: str | None = None
    sample: int | None = None
    rubric: str | None = None
    concurrency: int | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class PolicySpec:
    max_rules_per_section: int = 20
    max_added_chars: int = 2000
    protected_phrases: tuple[str, ...] = ()
    # one proposal, whichever proposer made it: items (rules, examples) added, items removed or
    # rewritten, and how far a numeric config value may move (a factor either way)
    max_added_items: int = 3
    max_removed_items: int = 1
    max_config_factor: float = 1.5


@dataclass(frozen=True)
class Settings:
    root: Path
    path: Path
    prompts: tuple[str, ...] = ()
    configs: tuple[ConfigSpec, ...] = ()
    traces_path: str | None = None
    traces_format: str = "auto"
    eval: EvalSpec = field(default_factory=EvalSpec)
    reflection_model: str | None = None
    reflection_timeout: float = 60.0
    policy: PolicySpec = field(default_factory=PolicySpec)
    judge: JudgeSpec | None = None  # analysis.judge, when the file has one
    budget: BudgetSpec = field(default_factory=BudgetSpec)
    cluster: str | None = None  # analysis.cluster: a Dask scheduler's address for analyze

    def managed_paths(self) -> tuple[str, ...]:
        """Every file a change may touch or the policy must compare: prompts, configs, their schemas."""
        paths: list[str] = list(self.prompts)
        for spec in self.configs:
            paths.append(spec.path)
            if spec.schema:
                paths.append(spec.schema)
        return tuple(dict.fromkeys(paths))


def find_root(start: Path) -> Path:
    """The nearest directory at or above `start` holding `.git` (or, failing that, selfimprove.yaml)."""
    start = start.resolve()
    candidates = [start, *start.parents]
    for directory in candidates:
        if (directory / ".git").exists():
            return directory
    for directory in candidates:
        if (directory / CONFIG_NAME).is_file():
            return directory
    raise SelfImproveError(
        f"no git repository found at or above {start}",
        hint="run inside your prompt repo, pass --repo DIR, or create one with 'selfimprove init'",
    )


def load_settings(repo: Path | None = None, config: Path | None = None) -> Settings:
    """Discover the repo (from `repo` or the cwd) and load its settings file (or `config`)."""
    if repo is not None and not repo.is_dir():
        raise SelfImproveError(f"--repo {repo} is not a directory")
    root = find_root(repo if repo is not None else Path.cwd())
    path = (config if config is not None else root / CONFIG_NAME).resolve()
    if not path.is_file():
        raise SelfImproveError(
            f"{_display(path, root)} not found",
            hint="create one with 'selfimprove init', or pass --config FILE",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SelfImproveError(f"cannot read {_display(path, root)}: {exc}") from None
    return parse_settings(text, root=root, source=_display(path, root), path=path)


def parse_settings(text: str, *, root: Path, source: str, path: Path | None = None) -> Settings:
    """Validate and freeze settings text (from disk, or read at a git ref)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise SelfImproveError(f"invalid YAML: {exc.problem or exc}", where=where) from None
    except yaml.YAMLError as exc:
        raise SelfImproveError(f"invalid YAML: {exc}", where=source) from None
    if data is None:
        data = {}
    _validate(data, text, source)
    return _freeze(data, root=root, path=path or root / CONFIG_NAME)


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A JSON Schema shipped in `selfimprove/schemas/`."""
    with resources.files("selfimprove.schemas").joinpath(name).open("r", encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


def _validate(data: Any, text: str, source: str) -> None:
    import jsonschema

    from selfimprove.validation import deepest_error, describe, error_location, json_path, yaml_text_line

    error = deepest_error(jsonschema.Draft202012Validator(load_schema("config.schema.json")), data)
    if error is None:
        return
    line = yaml_text_line(text, error_location(error))
    raise SelfImproveError(
        f"{json_path(list(error.absolute_path))}: {describe(error)}",
        where=f"{source}:{line}" if line else source,
        hint="see 'selfimprove.yaml' in the README",
    )


def _freeze(data: dict[str, Any], *, root: Path, path: Path) -> Settings:
    eval_data = data.get("eval") or {}
    gate_data = eval_data.get("gate") or {}
    policy_data = data.get("policy") or {}
    traces = data.get("traces") or {}
    judge = (data.get("analysis") or {}).get("judge")
    return Settings(
        root=root,
        path=path,
        prompts=tuple(p["path"] for p in data.get("prompts") or ()),
        configs=tuple(
            ConfigSpec(path=c["path"], schema=c.get("schema"), mutable=tuple(c.get("mutable") or ()))
            for c in data.get("configs") or ()
        ),
        traces_path=traces.get("path"),
        traces_format=traces.get("format", "auto"),
        eval=EvalSpec(
            suite=eval_data.get("suite"),
            model=eval_data.get("model"),
            repeats=eval_data.get("repeats", 1),
            concurrency=eval_data.get("concurrency", 8),
            gate=Gate(
                alpha=float(gate_data.get("alpha", 0.05)),
                min_improvement=float(gate_data.get("min_improvement", 0.0)),
                max_regressions=int(gate_data.get("max_regressions", 0)),
            ),
            judge_model=eval_data.get("judge_model"),
            timeout=float(eval_data.get("timeout", 60.0)),
            holdout=float(eval_data.get("holdout", 0.0)),
            tools=_tools(eval_data.get("tools")),
            router=eval_data.get("router"),
        ),
        reflection_model=(data.get("reflection") or {}).get("model"),
        reflection_timeout=float((data.get("reflection") or {}).get("timeout", 60.0)),
        policy=PolicySpec(
            max_rules_per_section=policy_data.get("max_rules_per_section", 20),
            max_added_chars=policy_data.get("max_added_chars", 2000),
            protected_phrases=tuple(policy_data.get("protected_phrases") or ()),
            max_added_items=int(policy_data.get("max_added_items", 3)),
            max_removed_items=int(policy_data.get("max_removed_items", 1)),
            max_config_factor=float(policy_data.get("max_config_factor", 1.5)),
        ),
        judge=None if judge is None else JudgeSpec(
            model=judge.get("model"), sample=judge.get("sample"), rubric=judge.get("rubric"),
            concurrency=judge.get("concurrency"),
            timeout=float(judge["timeout"]) if "timeout" in judge else None),
        budget=BudgetSpec(
            max_calls=(data.get("budget") or {}).get("max_calls"),
            max_cost=(data.get("budget") or {}).get("max_cost"),
        ),
        cluster=(data.get("analysis") or {}).get("cluster"),
    )


def _tools(raw: Any) -> str | tuple[Any, ...] | None:
    return tuple(raw) if isinstance(raw, list) else raw


def _display(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def missing_at_commit(path: str, *, root: Path, ref: str, known: Sequence[str], where: str | None = None,
                      role: str = "file") -> SelfImproveError:
    """The real reason a file named in selfimprove.yaml or a suite is absent from a commit: not yet
    committed (it is on disk), or a name that exists nowhere (with the closest committed name)."""
    from selfimprove.validation import closest

    if (root / path).is_file():
        return SelfImproveError(f"{role} {path} exists on disk but is not in commit {ref}", where=where,
                                hint="commit it first: selfimprove works from commits, never from the "
                                     "working tree")
    # compare file names, not paths: a shared folder and extension make any two names look alike
    by_name = {Path(k).name: k for k in known if Path(k).suffix == Path(path).suffix}
    near = closest(Path(path).name, by_name)
    suggestion = f" (did you mean {by_name[near]!r}?)" if near else ""
    return SelfImproveError(f"{role} {path} does not exist{suggestion}", where=where,
                            hint=f"fix the path in {where or CONFIG_NAME}")

