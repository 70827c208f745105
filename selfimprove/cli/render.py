"""Output discipline: one JSON document on stdout for `--json`; everything human goes to stderr."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def err_console() -> Console:
    """A console on the *current* stderr (so redirected streams in tests are honoured)."""
    from rich.console import Console

    width = None if sys.stderr.isatty() else int(os.environ.get("COLUMNS", "100"))
    return Console(file=sys.stderr, width=width, no_color="NO_COLOR" in os.environ, highlight=False,
                   soft_wrap=False)


def emit_json(doc: Any) -> None:
    """Write exactly one JSON document to stdout."""
    import json

    sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def progress_enabled(json_mode: bool) -> bool:
    return not json_mode and sys.stderr.isatty()
