"""The common flags of DESIGN §2, declared once and shared by every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Repo = Annotated[
    Path | None, typer.Option("--repo", help="The prompt repo (default: the git repo around the cwd).")
]
Config = Annotated[Path | None, typer.Option("--config", help="selfimprove.yaml to use.")]
Json = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document on stdout.")]
Model = Annotated[str | None, typer.Option("--model", help="A litellm model string (or exec:COMMAND).")]
Offline = Annotated[bool, typer.Option("--offline", help="Never call an LLM (default when none is set).")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Say more on stderr.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks for unexpected errors.")]
