"""`selfimprove report DIR`: analyze, eval and history as three linked, self-contained HTML pages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selfimprove.cli import options as opt

Dir = Annotated[Path, typer.Argument(metavar="DIR", help="Folder to write analyze.html, eval.html and "
                                                         "history.html into (created if missing).")]
Traces = Annotated[list[Path] | None, typer.Option("--traces", metavar="PATH",
                                                   help="Trace files or folders (default: traces.path).")]
Format = Annotated[str | None, typer.Option("--format", help="Force a trace format instead of detecting it.")]


def command(dir: Dir, traces: Traces = None, format: Format = None, repo: opt.Repo = None,
            config: opt.Config = None, debug: opt.Debug = False) -> None:
    """Write the analysis of the traces, the newest stored eval result and the history as HTML pages."""
    from selfimprove.cli.render import err_console, out_console
    from selfimprove.html.build import report

    written = report(dir, traces=traces or [], format=format, repo=repo, config=config)
    console = err_console()
    if written.evaluated is None:
        console.print("no proposal has been evaluated yet: the eval page says so", markup=False)
    for path in (written.analyze, written.eval, written.history):
        out_console().print(str(path), markup=False, soft_wrap=True)
