"""`selfimprove propose`: turn the top failure patterns into bounded edits, one git branch each."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selfimprove.cli import options as opt

if TYPE_CHECKING:
    from selfimprove.proposals import ProposeResult


def command(
    from_: Annotated[Path | None, typer.Option(
        "--from", help="A saved 'analyze --json' file (default: analyse the configured traces now).")] = None,
    pattern: Annotated[str | None, typer.Option(
        "--pattern", help="Only this pattern: its id or its # in the analyze report.")] = None,
    max_n: Annotated[int, typer.Option("--max", min=1, help="At most this many proposals.")] = 3,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the diffs; write nothing.")] = False,
    base: Annotated[str | None, typer.Option(
        "--base", help="The commit to build on (default: HEAD's commit; never the working tree).")] = None,
    model: opt.Model = None,
    offline: opt.Offline = False,
    repo: opt.Repo = None,
    config: opt.Config = None,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Turn failure patterns into edits of mutable sections, one git branch per proposal."""
    from selfimprove.cli.render import emit_json, err_console
    from selfimprove.config import load_settings
    from selfimprove.gitrepo import Repo
    from selfimprove.proposals import fresh_analysis, load_analysis, propose

    settings = load_settings(repo, config)
    chosen = None if offline else (model or settings.reflection_model)
    completer = None
    if chosen:
        from selfimprove.llm import make_completer

        completer = make_completer(chosen, timeout=settings.reflection_timeout)
    console = err_console()
    say = (lambda line: console.print(line, markup=False, soft_wrap=True)) if verbose else None
    doc = load_analysis(from_) if from_ else fresh_analysis(settings, completer=completer, model=chosen)
    with Repo.open(settings.root) as git_repo:
        result = propose(settings, git_repo, doc, completer=completer, model=chosen, pattern=pattern,
                         max_n=max_n, dry_run=dry_run, base=base, progress=say)
    if json:
        emit_json(result.to_json())
    else:
        _render(result)
    if result.rejected and not result.proposals:
        from selfimprove.errors import GateFailed

        where = "listed under 'rejected'" if json else "listed above"
        raise GateFailed(f"nothing proposed: every candidate was refused ({where})")


def _render(result: ProposeResult) -> None:

    from selfimprove.cli.render import err_console, out_console

    console, notices = out_console(), err_console()
    for p in result.proposals:
        verb = {"created": "created", "exists": "exists ", "dry-run": "would create"}[p.status]
        console.print(f"{verb} {p.branch}  ({p.pattern}, {p.proposer})", markup=False, soft_wrap=True)
        console.print(f"  {p.title}", markup=False, soft_wrap=True)
        if p.status == "dry-run":
            console.file.write(p.diff)
    for r in result.rejected:
        console.print(f"refused {r.pattern}: {r.reason}", markup=False, soft_wrap=True)
    if result.cost_usd or result.input_tokens:
        console.print(f"model: {result.input_tokens} input + {result.output_tokens} output tokens, "
                      f"${result.cost_usd:.4f}", markup=False, soft_wrap=True)
    written = [p for p in result.proposals if p.status != "dry-run"]
    if written:
        notices.print(f"next: selfimprove eval {written[0].branch}", markup=False, soft_wrap=True)
    elif not result.proposals and not result.rejected:
        console.print("no failure patterns to propose for", markup=False, soft_wrap=True)
