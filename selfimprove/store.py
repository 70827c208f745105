"""Content-addressed JSON documents on disk: where model answers are cached between runs.

Owns: the on-disk layout `.selfimprove/cache/<k[:2]>/<k>.json`, atomic writes (a reader never sees half
an entry, two runs never corrupt one), the `.gitignore` that keeps the folder out of `git status`, and
the rule that a damaged entry is a miss. `evals.cache` stores eval answers here and `analysis.judge`
stores the judge's verdicts: both are asked again only when what determines the answer changed.

Never does: decide what a key means (callers hash what determines their answer) or store an error.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CACHE_DIR = Path(".selfimprove") / "cache"


class JsonStore:
    """A directory of JSON documents by key. `enabled=False` (`--no-cache`) neither reads nor writes."""

    def __init__(self, directory: Path, *, enabled: bool = True) -> None:
        self.directory = directory
        self.enabled = enabled
        self._made: set[Path] = set()
        self._counter = itertools.count()

    def _ignore_in_git(self) -> None:
        """Keep the cache out of `git status`, as .pytest_cache does: a `.gitignore` of `*` at the top
        of `.selfimprove/`, written once and never over a file the user made."""
        top = self.directory.parent if self.directory.name == "cache" else self.directory
        marker = top / ".gitignore"
        if not marker.exists():
            try:
                with open(marker, "x", encoding="utf-8") as handle:
                    handle.write("# created by selfimprove: cached model answers\n*\n")
            except OSError:
                pass  # another writer made it first, or the directory is read-only: not worth failing

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get_doc(self, key: str) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        try:
            with self._path(key).open(encoding="utf-8") as handle:
                doc = json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # a damaged entry is a miss; the next put replaces it
        return doc if isinstance(doc, dict) else None

    def put_doc(self, key: str, doc: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        path = self._path(key)
        if path.parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent)
            self._ignore_in_git()
        # a name no other writer uses (process id + counter), then an atomic rename over the entry
        tmp = path.parent / f".tmp-{os.getpid()}-{next(self._counter)}-{key[:8]}"
        data = json.dumps(dict(doc), ensure_ascii=False, default=str).encode("utf-8")
        try:
            with open(tmp, "xb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
