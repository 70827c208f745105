"""`selfimprove eval`: not built yet in this version."""

from __future__ import annotations

from selfimprove.cli import options as opt
from selfimprove.errors import SelfImproveError


def command(repo: opt.Repo = None, config: opt.Config = None, json: opt.Json = False,
            debug: opt.Debug = False) -> None:
    """Not built yet."""
    raise SelfImproveError("'selfimprove eval' is not built yet in this version")
