"""One user-facing error family.

Everything a user can cause (bad input, bad config, a refused operation) raises `SelfImproveError`;
the CLI boundary turns it into exactly one line on stderr and exit 2. A gate or check that ran and
said "no" raises `GateFailed` (exit 1). Nothing here formats tracebacks: that is the boundary's job,
and only with `--debug`.
"""

from __future__ import annotations


class SelfImproveError(Exception):
    """A problem the user can fix: what went wrong, where (file:line or JSON path), and a hint."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def one_line(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text = f"{text} (hint: {self.hint})"
        return " ".join(text.split())


class GateFailed(SelfImproveError):
    """A check that ran to completion and refused (eval gate, policy check): exit 1."""

    exit_code = 1
