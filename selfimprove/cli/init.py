"""`selfimprove init [DIR]`: not built yet in this version."""

from __future__ import annotations

from selfimprove.errors import SelfImproveError


def command() -> None:
    """Not built yet."""
    raise SelfImproveError("'selfimprove init' is not built yet in this version")
