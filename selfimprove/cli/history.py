"""`selfimprove history`: proposals, eval verdicts, merges and rollbacks, with process metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
        _render(doc, verbose=verbose)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _render(doc: dict[str, Any], *, verbose: bool = False) -> None:
    from rich import box
    from rich.table import Table

    console, notices = out_console(), err_console()
    table = Table(title=f"selfimprove history of {doc['branch'] or 'HEAD'}", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("when", "event", "commit"):
        table.add_column(name, no_wrap=True)
    for name in ("what", "detail"):
        table.add_column(name, overflow="fold")
    for row in doc["events"]:
        when = row["at"][:16].replace("T", " ")
        table.add_row(when, row["event"], row["commit"][:7], row["what"], row["detail"])
    console.print(table if doc["events"] else "no proposals, merges or rollbacks yet")
    m = doc["metrics"]
    console.print(
        f"{m['proposals']} proposal{'' if m['proposals'] == 1 else 's'} ({m['evaluated']} evaluated), "
        f"improvement rate {_pct(m['improvement_rate'])}; "
        f"{m['merged']} merged, regression rate {_pct(m['regression_rate'])}, validation coverage "
        f"{_pct(m['validation_coverage'])}; median hours to merge {_num(m['hours_to_merge']['median'])}")
    for warning in doc["warnings"]:
        notices.print(f"warning: {warning}")
    if verbose:  # every proposal with what the table leaves out: pattern, proposer, base, verdict, merge
        for p in doc["proposals"]:
            merged = f"merged by {p['merged_by'][:7]}" if p["merged_by"] else "not merged"
            console.print(f"{p['branch']}: pattern {p['pattern']}, proposer {p['proposer']}, base "
                          f"{(p['base'] or '-')[:7]}, verdict {p['verdict'] or 'not evaluated'}, {merged}",
                          markup=False, soft_wrap=True)
    production = doc.get("production")
    if production:
        for version in production["versions"]:
            rates = ", ".join(f"{k} {_pct(v['rate'])}" for k, v in version["patterns"].items())
            console.print(f"v{version['version']} {version['label']}: {version['traces']} traces, "
                          f"failure rate {_pct(version['failure_rate'])}; {rates or 'no failures'}")
        for check in production["changes"]:
            if check["kind"] == "change":
                verdict = {True: "fix held", False: "fix did NOT hold", None: "not enough traces to tell"}
                summary = verdict[check["held"]]
            else:
                summary = f"{check['traces_before']} traces before, {check['traces_after']} after"
            worse = f"; worse: {', '.join(check['worse'])}" if check["worse"] else ""
            console.print(f"{check['label']}: {summary}{worse}")
