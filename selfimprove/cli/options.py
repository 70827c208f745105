"""The common flags of DESIGN §2, declared once and shared by every command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from selfimprove.config import Settings
    from selfimprove.llm import Budget

Repo = Annotated[
    Path | None, typer.Option("--repo", help="The prompt repo (default: the git repo around the cwd).")
]
Config = Annotated[Path | None, typer.Option("--config", help="selfimprove.yaml to use.")]
Json = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document on stdout.")]
Model = Annotated[str | None, typer.Option("--model", help="A litellm model string (or exec:COMMAND).")]
Offline = Annotated[bool, typer.Option("--offline", help="Never call an LLM (default when none is set).")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Say more on stderr.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks for unexpected errors.")]
MaxCalls = Annotated[int | None, typer.Option(
    "--max-calls", min=1, help="Make at most N calls (model attempts, retries, judge and eval calls).")]
MaxCost = Annotated[float | None, typer.Option(
    "--max-cost", min=0.0, help="Spend at most this many USD; refuse to start above the estimate.")]


def budget(settings: Settings | None, max_calls: int | None, max_cost: float | None) -> Budget:
    """The run's `llm.Budget`: the flags, else `budget:` of selfimprove.yaml (None when neither sets one)."""
    from selfimprove.llm import Budget

    spec = settings.budget if settings is not None else None
    calls = max_calls if max_calls is not None else (spec.max_calls if spec else None)
    cost = max_cost if max_cost is not None else (spec.max_cost if spec else None)
    return Budget(calls, cost)
