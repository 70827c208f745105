"""Output discipline, as git and pytest do: what the user asked for (a report, a table, a diff) goes to
stdout, so `> file` and pipes work; progress, notices, warnings and errors go to stderr; `--json`
replaces the human result with exactly one JSON document on stdout."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console


def _console(stream: TextIO, *, soft_wrap: bool = False) -> Console:
    from rich.console import Console

    width = None if stream.isatty() else int(os.environ.get("COLUMNS", "100"))
    return Console(file=stream, width=width, no_color="NO_COLOR" in os.environ, highlight=False,
                   soft_wrap=soft_wrap)


def out_console() -> Console:
    """A console on the *current* stdout, for results (redirected streams in tests are honoured)."""
    return _console(sys.stdout)


def err_console() -> Console:
    """A console on the *current* stderr, for progress, notices and warnings (one line each, never
    hard-wrapped, so a log keeps them whole)."""
    return _console(sys.stderr, soft_wrap=True)


def emit_json(doc: Any) -> None:
    """Write exactly one JSON document to stdout."""
    import json

    sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def progress_enabled(json_mode: bool) -> bool:
    return not json_mode and sys.stderr.isatty()


class ProgressBar:
    """A transient progress bar on stderr, off (None from `with`) unless stderr is a terminal.

    Called with a byte count it advances (`bar(n)`, with `set_total`); `update(done, total)` sets it.
    """

    def __init__(self, enabled: bool, label: str, *, unit: str = "items") -> None:
        self.enabled = enabled
        self.label = label
        self.unit = unit
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar | None:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        amount = DownloadColumn() if self.unit == "bytes" else MofNCompleteColumn()
        self._bar = Progress(self.label, BarColumn(), amount, TimeRemainingColumn(),
                             console=err_console(), transient=True)
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=None)
        return self

    def __call__(self, n: int) -> None:
        self._bar.advance(self._task, n)

    def set_total(self, total: int) -> None:
        self._bar.update(self._task, total=total)

    def update(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def print(self, text: str) -> None:
        """A line of its own above the bar, which stays below it."""
        self._bar.console.print(text, soft_wrap=True)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
