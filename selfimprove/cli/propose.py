"""`selfimprove propose`: turn the top failure patterns into bounded edits, one git branch each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selfimprove.cli import options as opt


def command(
    from_: Annotated[Path | None, typer.Option(
        "--from", help="A saved 'analyze --json' file (default: analyse the configured traces now).")] = None,
    pattern: Annotated[str | None, typer.Option(
        "--pattern", help="Only this pattern: its id or its # in the analyze report.")] = None,
    max_n: Annotated[int, typer.Option("--max", min=1, help="At most this many proposals.")] = 3,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the diffs; write nothing.")] = False,
    base: Annotated[str | None, typer.Option(
        "--base", help="The commit to build on (default: HEAD's commit; never the working tree).")] = None,
    search: Annotated[bool, typer.Option(
        "--search", help="Search per pattern: k candidates a round, scored on the dev cases, the best "
                         "becomes the branch.")] = False,
    from_suite: Annotated[bool, typer.Option(
        "--from-suite", help="With --search: one search for the suite's own failing dev cases.")] = False,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Search rounds at most.")] = 4,
    k: Annotated[int, typer.Option("--k", min=1, help="Candidates per search round.")] = 3,
    patience: Annotated[int, typer.Option("--patience", min=1,
                                          help="Stop a search after N rounds without gain.")] = 2,
    max_calls: opt.MaxCalls = None,
    max_cost: opt.MaxCost = None,
    model: opt.Model = None,
    offline: opt.Offline = False,
    repo: opt.Repo = None,
    config: opt.Config = None,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Turn failure patterns into edits of mutable sections, one git branch per proposal."""
    from selfimprove.cli.render import emit_json, err_console, out_console
    from selfimprove.config import load_settings
    from selfimprove.gitrepo import Repo
    from selfimprove.proposals import fresh_analysis, load_analysis, propose

    settings = load_settings(repo, config)
    chosen = None if offline else (model or settings.reflection_model)
    budget = opt.budget(settings, max_calls, max_cost)
    completer = None
    if chosen:
        from selfimprove.llm import make_completer, with_budget

        completer = with_budget(make_completer(chosen, timeout=settings.reflection_timeout), budget)
    console = err_console()
    say = (lambda line: console.print(line, markup=False, soft_wrap=True)) if verbose else None
    if from_suite and not search:
        from selfimprove.errors import SelfImproveError

        raise SelfImproveError("--from-suite works with --search", hint="add --search")
    doc = (load_analysis(from_) if from_ else None if from_suite and search
           else fresh_analysis(settings, completer=completer, model=chosen))
    with Repo.open(settings.root) as git_repo:
        if search:
            from selfimprove.proposals.search import Options
            from selfimprove.proposals.search import search as run_search

            result = run_search(settings, git_repo, doc, options=Options(rounds, k, patience, from_suite),
                                completer=completer, model=chosen, pattern=pattern, max_n=max_n,
                                dry_run=dry_run, base=base, budget=budget,
                                progress=lambda line: console.print(line, markup=False, soft_wrap=True))
        else:
            assert doc is not None
            result = propose(settings, git_repo, doc, completer=completer, model=chosen, pattern=pattern,
                             max_n=max_n, dry_run=dry_run, base=base, progress=say, budget=budget,
                             notice=lambda line: console.print(line, markup=False, soft_wrap=True))
    if json:
        emit_json(result.to_json())
    else:
        from selfimprove.cli.reports.propose import render

        render(result, out_console(), err_console())
    if (result.rejected or result.stopped) and not result.proposals:
        from selfimprove.errors import GateFailed

        if result.stopped and not result.rejected:
            raise GateFailed(f"nothing proposed: {result.stopped}")
        where = "listed under 'rejected'" if json else "listed above"
        raise GateFailed(f"nothing proposed: every candidate was refused ({where})")
