"""`selfimprove init [DIR]`: scaffold a prompt repo; never overwrite."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selfimprove.cli import options as opt
from selfimprove.cli.render import emit_json, err_console, out_console


def command(
    directory: Annotated[Path, typer.Argument(help="Where to create the prompt repo.")] = Path("."),
    json: opt.Json = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Scaffold a prompt repo from prompts.example/ (git init when needed); never overwrite files."""
    from selfimprove.scaffold import scaffold

    result = scaffold(directory)
    if json:
        emit_json({
            "schema": "selfimprove.init/v1",
            "root": str(result.root),
            "created": list(result.created),
            "skipped": list(result.skipped),
            "git_initialised": result.git_initialised,
            "commit": result.commit,
        })
        return
    console = out_console()
    if result.git_initialised:
        console.print(f"initialised a git repository in {result.root}")
    for rel in result.created:
        console.print(f"  created  {rel}")
    for rel in result.skipped:
        console.print(f"  kept     {rel} (already exists)")
    if result.commit:
        console.print(f"committed {len(result.created)} files as {result.commit[:12]}")
    else:
        console.print("nothing to create: every template file already exists")
    err_console().print("next: put traces in logs/, then run 'selfimprove analyze'")
