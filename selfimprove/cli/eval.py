"""`selfimprove eval [REF]`: run the suite on base and candidate, apply the gate, show the diff on a pass."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selfimprove.cli import options as opt

Ref = Annotated[str | None, typer.Argument(metavar="REF", help="The candidate (default: the current branch).",
                                           show_default=False)]
Base = Annotated[str | None, typer.Option("--base", help="The base to compare with (default: the "
                                                         "Selfimprove-Base trailer, else the merge-base "
                                                         "with the default branch).")]
Repeat = Annotated[int | None, typer.Option("--repeat", min=1, help="Ask each case N times per side.")]
Concurrency = Annotated[int | None, typer.Option("--concurrency", min=1, help="Calls in flight at once.")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Ask again even when an answer is cached.")]
Junit = Annotated[Path | None, typer.Option("--junit", help="Write a JUnit XML report here.")]
AllowNoEffect = Annotated[bool, typer.Option("--allow-no-effect",
                                             help="Pass a change with no measured effect (a refactor).")]
Markdown = Annotated[Path | None, typer.Option("--markdown", help="Write a Markdown report here (for a PR).")]
Html = Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML report here (slices, "
                                                          "changed cases side by side, the diff).")]
Suite = Annotated[Path | None, typer.Option("--suite", help="Run this suite file (selfimprove's, or a "
                                                           "promptfoo config) instead of eval.suite.")]
SkipUnsupported = Annotated[bool, typer.Option("--skip-unsupported",
                                               help="Leave out what cannot run here (JavaScript, unsupported "
                                                    "assertion types) and list it, instead of refusing.")]


def command(ref: Ref = None, base: Base = None, repeat: Repeat = None, concurrency: Concurrency = None,
            no_cache: NoCache = False, max_cost: opt.MaxCost = None, max_calls: opt.MaxCalls = None,
            allow_no_effect: AllowNoEffect = False,
            model: opt.Model = None,
            offline: opt.Offline = False, json: opt.Json = False, junit: Junit = None,
            markdown: Markdown = None, html: Html = None, suite: Suite = None,
            skip_unsupported: SkipUnsupported = False,
            repo: opt.Repo = None, config: opt.Config = None,
            verbose: opt.Verbose = False, debug: opt.Debug = False) -> None:
    """Evaluate a candidate against its base offline and refuse regressions (exit 1)."""
    from selfimprove.cli.render import ProgressBar, emit_json, err_console, out_console, progress_enabled
    from selfimprove.cli.reports import eval as report
    from selfimprove.config import load_settings
    from selfimprove.errors import GateFailed, SelfImproveError
    from selfimprove.evals.runner import run_eval
    from selfimprove.gitrepo import Repo

    settings = load_settings(repo, config)
    chosen = model or settings.eval.model
    if offline and chosen and not chosen.startswith("exec:"):
        raise SelfImproveError("eval needs a model, and --offline forbids calling one",
                               hint="drop --offline, or use an exec: provider for your own harness")
    console = err_console()
    with Repo.open(settings.root) as git_repo, ProgressBar(progress_enabled(json), "evaluating") as bar:
        result = run_eval(settings, git_repo, candidate=ref, base=base, model=model, repeat=repeat,
                          concurrency=concurrency, use_cache=not no_cache, max_cost=max_cost,
                          allow_no_effect=allow_no_effect,
                          budget=opt.budget(settings, max_calls, max_cost),
                          progress=bar.update if bar else None, notice=None if json else console.print,
                          suite_path=str(suite) if suite is not None else None,
                          skip_unsupported=skip_unsupported)
    if junit is not None:
        report.write_junit(result, junit)
    if markdown is not None:
        report.write_markdown(result, markdown)
    if html is not None:
        from selfimprove.html import pages, write_page

        write_page(html, pages.eval_page(result.to_json(), result.diff))
    if json:
        emit_json(result.to_json())
    else:
        report.render(result, out_console(), verbose=verbose)
    if result.verdict != "pass":
        raise GateFailed(f"eval gate failed for {result.candidate.ref}: {'; '.join(result.gate.reasons)}")

