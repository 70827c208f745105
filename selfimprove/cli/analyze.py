"""`selfimprove analyze [PATH...]`: read traces, decide outcomes, mine failure patterns, report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selfimprove.cli import options as opt

Paths = Annotated[list[str] | None, typer.Argument(
    help="Trace files or directories (.gz read transparently), or s3:// gs:// az:// https:// URLs. "
         "Default: traces.path of selfimprove.yaml.", show_default=False)]
Format = Annotated[str | None, typer.Option("--format", help="Force a trace format instead of detecting it.")]
Strict = Annotated[bool, typer.Option("--strict", help="Stop (exit 2) at the first bad record.")]
Since = Annotated[str | None, typer.Option("--since", help="Only traces started at or after this time "
                                                              "(ISO date/time, or 7d, 24h, 30m ago).")]
Until = Annotated[str | None, typer.Option("--until", help="Only traces started before this time.")]
Outcomes = Annotated[Path | None, typer.Option("--outcomes", help="Write one JSON line per trace here.")]
Markdown = Annotated[Path | None, typer.Option("--markdown", help="Write the report as Markdown here.")]
Html = Annotated[Path | None, typer.Option("--html", help="Write the report as one self-contained HTML page "
                                                          "here (charts, example conversations).")]
Cases = Annotated[Path | None, typer.Option("--export-cases",
                                            help="Write failing traces as eval cases (suite YAML) here.")]
Judge = Annotated[str | None, typer.Option("--judge", metavar="MODEL",
                                           help="Label a sample of traces with this LLM judge (a litellm "
                                                "model); default: analysis.judge.model.")]
JudgeSample = Annotated[int | None, typer.Option("--judge-sample", metavar="N",
                                                 help="Judge at most N traces (default: "
                                                      "analysis.judge.sample, else 50).")]
Cluster = Annotated[str | None, typer.Option("--cluster", metavar="ADDRESS",
                                             help="Read the shards on this running Dask scheduler "
                                                  "(tcp://host:8786); default: analysis.cluster.")]


def command(paths: Paths = None, format: Format = None, strict: Strict = False, since: Since = None,
            until: Until = None, outcomes: Outcomes = None, markdown: Markdown = None, html: Html = None,
            export_cases: Cases = None, judge: Judge = None, judge_sample: JudgeSample = None,
            cluster: Cluster = None, json: opt.Json = False, model: opt.Model = None,
            offline: opt.Offline = False,
            max_calls: opt.MaxCalls = None, max_cost: opt.MaxCost = None,
            repo: opt.Repo = None, config: opt.Config = None,
            verbose: opt.Verbose = False, debug: opt.Debug = False) -> None:
    """Read traces, classify outcomes, mine failure patterns and report the top reasons for failure."""
    from selfimprove.analysis import export
    from selfimprove.analysis.pipeline import analyze
    from selfimprove.cli.inputs import parse_time, resolve_address, resolve_inputs, resolve_judge
    from selfimprove.cli.render import ProgressBar, emit_json, err_console, out_console, progress_enabled
    from selfimprove.cli.reports import analysis as report
    from selfimprove.traces.storage import as_path

    inputs, fmt, reflection_model, timeout = resolve_inputs([as_path(p) for p in paths or []], format, repo,
                                                            config, model, offline)
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
                         cluster=resolve_address(cluster, repo, config),
                         notice=progress.print if progress is not None
                         else lambda text: console.print(text, soft_wrap=True))
    if outcomes is not None:
        export.write_outcomes(result, outcomes)
    if markdown is not None:
        report.write_markdown(result, markdown)
    if html is not None:
        from selfimprove.html import write_page
        from selfimprove.html.build import analyze_html

        write_page(html, analyze_html(result.to_json(), (o.to_json() for o in result.outcomes), inputs,
                                      format=fmt))
    written = export.export_cases(result, export_cases) if export_cases is not None else None
    if json:
        emit_json(result.to_json())
    else:
        report.render(result, out_console(), verbose=verbose)
    stopped = (result.reflection or {}).get("stopped")
    if stopped:
        console.print(f"warning: reflection stopped, {stopped}; the offline analysis of every pattern is "
                      "kept (and the reflections made before)", markup=False, soft_wrap=True)
    for what, path in (("outcomes", outcomes), ("report", markdown), ("HTML report", html)):
        if path is not None:
            console.print(f"wrote {what} to {path}")
    if written is not None:
        console.print(f"wrote {written} eval case(s) to {export_cases}")
