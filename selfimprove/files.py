"""Files written whole or not at all.

Owns `write_atomic`: a temporary sibling renamed into place, so a reader (or a crash half-way) never
sees half a report, outcomes file or exported suite; a missing folder is a one-line error.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from selfimprove.errors import SelfImproveError


def write_atomic(path: Path, chunks: Iterable[str]) -> None:
    """Write a whole file or nothing: a temporary sibling renamed into place."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SelfImproveError(f"cannot write {path}: the folder {parent} does not exist",
                               hint="create it first or choose another path")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for chunk in chunks:
                fh.write(chunk)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise SelfImproveError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
