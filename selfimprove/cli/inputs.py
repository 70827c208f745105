"""The options of `analyze`, completed from selfimprove.yaml: trace paths and format, the reflection
model, the LLM judge, and --since / --until.

Owns how a command line and the prompt repo's settings combine (a flag wins; a repo is optional when
paths are given). Never does: read traces, call a model, or print.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from selfimprove.errors import SelfImproveError

if TYPE_CHECKING:
    from selfimprove.analysis.judge import JudgeOptions
    from selfimprove.config import Settings

_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*(?:ago)?\s*$", re.I)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str | None, flag: str, *, now: datetime | None = None) -> datetime | None:
    """An ISO date or date-time (UTC when no zone is given), or a span ago such as 7d, 24h, 30m."""
    if text is None:
        return None
    rel = _RELATIVE.match(text)
    if rel:
        now = now or datetime.now(timezone.utc)
        return now - timedelta(**{_UNITS[rel.group(2).lower()]: int(rel.group(1))})
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        when = None
    if when is None:
        raise SelfImproveError(f"{flag} {text!r} is not a date or time",
                               hint="use an ISO date such as 2025-01-31 or 2025-01-31T12:00, or 7d / 24h")
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def resolve_inputs(paths: Sequence[Path], format: str | None, repo: Path | None, config: Path | None,
                   model: str | None, offline: bool) -> tuple[list[Path], str, str | None, float]:
    """(paths, format, reflection model, its timeout): the command's options, completed from
    selfimprove.yaml."""
    from selfimprove.config import load_settings

    settings = None
    if not paths or repo is not None or config is not None:
        settings = load_settings(repo, config)
    elif not offline and model is None:
        settings = settings_around_cwd()
    if not paths:
        assert settings is not None
        if not settings.traces_path:
            raise SelfImproveError("no trace paths given and selfimprove.yaml has no traces.path",
                                   where=str(settings.path.name),
                                   hint="pass PATH... or set traces: {path: logs/} in selfimprove.yaml")
        from selfimprove.traces.storage import as_path, is_url

        paths = [as_path(settings.traces_path) if is_url(settings.traces_path)
                 else settings.root / settings.traces_path]
    fmt = format or (settings.traces_format if settings is not None else "auto")
    chosen = None if offline else (model or (settings.reflection_model if settings is not None else None))
    return list(paths), fmt, chosen, settings.reflection_timeout if settings is not None else 60.0


def settings_around_cwd() -> Settings | None:
    """The settings of the prompt repo around the cwd when there is one (for a model); none is fine."""
    from selfimprove.config import CONFIG_NAME, find_root, load_settings

    try:
        root = find_root(Path.cwd())
    except SelfImproveError:
        return None
    return load_settings(root) if (root / CONFIG_NAME).is_file() else None


def resolve_judge(model: str | None, sample: int | None, *, offline: bool, fallback_model: str | None,
                  repo: Path | None, config: Path | None) -> JudgeOptions | None:
    """The judge of this run, from `--judge` / `--judge-sample` and `analysis.judge`; None when there is
    none (no judge model, or `--offline`)."""
    from selfimprove.analysis.judge import DEFAULT_CONCURRENCY, DEFAULT_SAMPLE, MAX_SAMPLE, JudgeOptions
    from selfimprove.config import load_settings
    from selfimprove.store import CACHE_DIR

    if offline:
        return None
    named = repo is not None or config is not None
    settings = load_settings(repo, config) if named else settings_around_cwd()
    spec = settings.judge if settings is not None else None
    chosen = model or (spec.model or fallback_model if spec is not None else None)
    if chosen is None:
        if sample is not None:
            raise SelfImproveError("--judge-sample needs a judge model",
                                   hint="pass --judge MODEL or set analysis.judge.model in selfimprove.yaml")
        return None
    if chosen.startswith("exec:"):
        raise SelfImproveError(f"the judge must be a litellm model, not '{chosen}'",
                               hint="pass --judge MODEL (e.g. openai/gpt-4o-mini)")
    n = sample if sample is not None else (spec.sample if spec is not None and spec.sample
                                           else DEFAULT_SAMPLE)
    if not 1 <= n <= MAX_SAMPLE:
        raise SelfImproveError(f"--judge-sample must be between 1 and {MAX_SAMPLE}, got {n}")
    root = settings.root if settings is not None else _root()
    return JudgeOptions(
        model=chosen, sample=n, rubric=spec.rubric if spec is not None else None,
        concurrency=(spec.concurrency or DEFAULT_CONCURRENCY) if spec is not None else DEFAULT_CONCURRENCY,
        timeout=(spec.timeout or 60.0) if spec is not None else 60.0, cache_dir=root / CACHE_DIR)


def _root() -> Path:
    """Where verdicts are cached without a prompt repo: the git repo around the cwd, else the cwd."""
    from selfimprove.config import find_root

    try:
        return find_root(Path.cwd())
    except SelfImproveError:
        return Path.cwd()


def resolve_address(given: str | None, repo: Path | None, config: Path | None) -> str | None:
    """The cluster to run on: --cluster, else `analysis.cluster` of selfimprove.yaml, else none."""
    if given:
        return given
    from selfimprove.config import load_settings

    explicit = repo is not None or config is not None
    settings = load_settings(repo, config) if explicit else settings_around_cwd()
    return getattr(settings, "cluster", None) if settings is not None else None
