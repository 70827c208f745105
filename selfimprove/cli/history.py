"""`selfimprove history`: proposals, eval verdicts, merges and rollbacks, with process metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selfimprove.cli import options as opt
from selfimprove.cli.render import emit_json, err_console, out_console


def command(
    since: Annotated[str | None, typer.Option("--since", help="Metrics window: 30d, 2w, or a date.")] = None,
    traces: Annotated[list[Path] | None, typer.Option("--traces", metavar="PATH",
                      help="Production check: failure rate per pattern and prompt version.")] = None,
    format: Annotated[str | None, typer.Option("--format", help="Trace format for --traces (default: "
                                                "selfimprove.yaml's traces.format, else detect).")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML report here "
                                                             "(timeline, rates per version).")] = None,
    repo: opt.Repo = None, config: opt.Config = None, json: opt.Json = False, verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Show the loop's record, newest first, and whether it is working."""
    from selfimprove import history
    from selfimprove.gitrepo import Repo

    window = history.parse_since(since)
    if traces and format is None:  # the repo's settings are only needed to read traces
        from selfimprove.config import CONFIG_NAME, find_root, load_settings

        if config is not None or (find_root(repo or Path.cwd()) / CONFIG_NAME).is_file():
            format = load_settings(repo, config).traces_format
    with Repo.open(repo or Path.cwd()) as git_repo:
        ledger = history.build_ledger(git_repo)
        production = None
        if traces:
            production = history.production_check(git_repo, ledger, traces, format=format or "auto")
    doc = history.to_json(ledger, since=window, production=production)
    if html is not None:
        from selfimprove.html import pages, write_page

        write_page(html, pages.history_page(doc))
        err_console().print(f"wrote HTML report to {html}")
    if json:
        emit_json(doc)
    else:
        from selfimprove.cli.reports.history import render

        render(doc, out_console(), err_console(), verbose=verbose)
