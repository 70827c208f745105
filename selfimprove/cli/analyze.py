"""`selfimprove analyze [PATH...]`: read traces, decide outcomes, mine failure patterns, report."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from selfimprove.cli import options as opt
from selfimprove.errors import SelfImproveError

Paths = Annotated[list[Path] | None, typer.Argument(
    help="Trace files or directories (.gz read transparently). Default: traces.path of selfimprove.yaml.",
    show_default=False)]
Format = Annotated[str | None, typer.Option("--format", help="Force a trace format instead of detecting it.")]
Strict = Annotated[bool, typer.Option("--strict", help="Stop (exit 2) at the first bad record.")]
Since = Annotated[str | None, typer.Option("--since", help="Only traces started at or after this time "
                                                              "(ISO date/time, or 7d, 24h, 30m ago).")]
Until = Annotated[str | None, typer.Option("--until", help="Only traces started before this time.")]
Outcomes = Annotated[Path | None, typer.Option("--outcomes", help="Write one JSON line per trace here.")]
Markdown = Annotated[Path | None, typer.Option("--markdown", help="Write the report as Markdown here.")]
Cases = Annotated[Path | None, typer.Option("--export-cases",
                                            help="Write failing traces as eval cases (suite YAML) here.")]
Judge = Annotated[str | None, typer.Option("--judge", metavar="MODEL",
                                           help="Label a sample of traces with this LLM judge (a litellm "
                                                "model); default: analysis.judge.model.")]
JudgeSample = Annotated[int | None, typer.Option("--judge-sample", metavar="N",
                                                 help="Judge at most N traces (default: "
                                                      "analysis.judge.sample, else 50).")]


def command(paths: Paths = None, format: Format = None, strict: Strict = False, since: Since = None,
            until: Until = None, outcomes: Outcomes = None, markdown: Markdown = None,
            export_cases: Cases = None, judge: Judge = None, judge_sample: JudgeSample = None,
            json: opt.Json = False, model: opt.Model = None, offline: opt.Offline = False,
            max_calls: opt.MaxCalls = None, max_cost: opt.MaxCost = None,
            repo: opt.Repo = None, config: opt.Config = None,
            verbose: opt.Verbose = False, debug: opt.Debug = False) -> None:
    """Read traces, classify outcomes, mine failure patterns and report the top reasons for failure."""
    from selfimprove.analysis import export
    from selfimprove.analysis.judge import resolve as resolve_judge
    from selfimprove.analysis.pipeline import analyze
    from selfimprove.cli.render import ProgressBar, emit_json, err_console, out_console, progress_enabled
    from selfimprove.cli.reports import analysis as report

    inputs, fmt, reflection_model, timeout = resolve_inputs(paths or [], format, repo, config, model, offline)
    judging = resolve_judge(judge, judge_sample, offline=offline, fallback_model=reflection_model, repo=repo,
                            config=config)
    console = err_console()
    completer = None
    if reflection_model or judging:
        from selfimprove.llm import make_completer, with_budget

        # one completer for the judge and the reflection: every call of the run is counted in one place
        completer = with_budget(make_completer(reflection_model or (judging.model if judging else None),
                                               timeout=max(timeout, judging.timeout if judging else 0.0)),
                                opt.budget(None, max_calls, max_cost))
    with ProgressBar(progress_enabled(json), "reading traces", unit="bytes") as progress:
        result = analyze(inputs, format=fmt, since=parse_time(since, "--since"),
                         until=parse_time(until, "--until"), strict=strict, completer=completer,
                         model=reflection_model, progress=progress, judge=judging,
                         notice=progress.print if progress is not None
                         else lambda text: console.print(text, soft_wrap=True))
    if outcomes is not None:
        export.write_outcomes(result, outcomes)
    if markdown is not None:
        report.write_markdown(result, markdown)
    written = export.export_cases(result, export_cases) if export_cases is not None else None
    if json:
        emit_json(result.to_json())
    else:
        report.render(result, out_console(), verbose=verbose)
    stopped = (result.reflection or {}).get("stopped")
    if stopped:
        console.print(f"warning: reflection stopped, {stopped}; the offline analysis of every pattern is "
                      "kept (and the reflections made before)", markup=False, soft_wrap=True)
    for what, path in (("outcomes", outcomes), ("report", markdown)):
        if path is not None:
            console.print(f"wrote {what} to {path}")
    if written is not None:
        console.print(f"wrote {written} eval case(s) to {export_cases}")


# --- options completed from selfimprove.yaml ---------------------------------------------------------

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
        settings = _optional_settings()
    if not paths:
        assert settings is not None
        if not settings.traces_path:
            raise SelfImproveError("no trace paths given and selfimprove.yaml has no traces.path",
                                   where=str(settings.path.name),
                                   hint="pass PATH... or set traces: {path: logs/} in selfimprove.yaml")
        paths = [settings.root / settings.traces_path]
    fmt = format or (settings.traces_format if settings is not None else "auto")
    chosen = None if offline else (model or (settings.reflection_model if settings is not None else None))
    return list(paths), fmt, chosen, settings.reflection_timeout if settings is not None else 60.0


def _optional_settings() -> Any:
    """The settings around the cwd when there are any (for the reflection model); none is fine."""
    from selfimprove.config import CONFIG_NAME, find_root, load_settings

    try:
        root = find_root(Path.cwd())
    except SelfImproveError:
        return None
    return load_settings(root) if (root / CONFIG_NAME).is_file() else None
