"""The typer app: every command of DESIGN §2, each a thin module of its own."""

from __future__ import annotations

from typing import Annotated

import typer

from selfimprove import __version__
from selfimprove.cli import analyze, eval, history, init, propose, report, rollback

app = typer.Typer(
    name="selfimprove",
    help="Make an LLM agent better from its own production traces, safely.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"selfimprove {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Make an LLM agent better from its own production traces, safely."""


app.command("init")(init.command)
app.command("analyze")(analyze.command)
app.command("propose")(propose.command)
app.command("eval")(eval.command)
app.command("rollback")(rollback.command)
app.command("history")(history.command)
app.command("report")(report.command)
