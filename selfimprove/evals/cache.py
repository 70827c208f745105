"""Content-addressed answers on disk, so an unchanged base is never asked again and a re-run is free.

Owns: the cache key (a SHA-256 of the provider, the rendered messages, the call parameters and the
repeat index, as canonical JSON), the on-disk layout `.selfimprove/cache/<k[:2]>/<k>.json`, and atomic
writes (a reader never sees half an entry, two runs never corrupt one).

Must never: store an error (a failed call is retried next run, not remembered), or let a damaged entry
break a run (it is treated as a miss and rewritten).

The repeat index is part of the key on purpose: `--repeat 3` asks three times, and the second run of
the same suite finds all three answers again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from selfimprove.evals.assertions import Output
from selfimprove.traces.model import ToolCall

CACHE_DIR = Path(".selfimprove") / "cache"
KEY_VERSION = 1


def cache_key(provider: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any],
              repeat: int) -> str:
    """The hash of everything that determines an answer."""
    doc = {"v": KEY_VERSION, "provider": provider, "messages": list(messages), "params": dict(params),
           "repeat": repeat}
    canonical = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _to_json(output: Output) -> dict[str, Any]:
    return {
        "text": output.text,
        "tool_calls": [{"name": c.name, "arguments": c.arguments, "id": c.id} for c in output.tool_calls],
        "input_tokens": output.input_tokens,
        "output_tokens": output.output_tokens,
        "cost_usd": output.cost_usd,
    }


def _from_json(doc: Mapping[str, Any]) -> Output:
    return Output(
        text=str(doc["text"]),
        tool_calls=tuple(ToolCall(name=c["name"], arguments=c.get("arguments"), id=c.get("id"))
                         for c in doc.get("tool_calls", [])),
        input_tokens=int(doc.get("input_tokens", 0)),
        output_tokens=int(doc.get("output_tokens", 0)),
        cost_usd=float(doc.get("cost_usd", 0.0)),
    )


class Cache:
    """A directory of answers. `enabled=False` (`--no-cache`) neither reads nor writes."""

    def __init__(self, directory: Path, *, enabled: bool = True) -> None:
        self.directory = directory
        self.enabled = enabled

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> Output | None:
        if not self.enabled:
            return None
        try:
            with self._path(key).open(encoding="utf-8") as handle:
                return _from_json(json.load(handle))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a damaged entry is a miss; the next put replaces it

    def put(self, key: str, output: Output) -> None:
        if not self.enabled:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(_to_json(output), handle, ensure_ascii=False, default=str)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
